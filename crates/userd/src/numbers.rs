//! The account numbers this peer gave out (CEP 8, "Numbers"): userd alone
//! numbers this peer's new accounts, each number once, and records the
//! last one given (`state_dir/userd/numbers.json`, written durably, mode
//! 0600) before the creation is published. Two `user add` at once, or an
//! add while userd is still applying what was published before, therefore
//! never get one number: the number comes from this record, not from what
//! the directory happens to hold yet. A number whose creation was never
//! published (a crash between the two) is skipped, never given twice.
//!
//! Should the record be lost, the next number is one above the highest of
//! the block that the directory holds. Nothing here touches LDAP or the
//! bus.

use std::{
    fs,
    ops::Range,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The file name in userd's state directory.
pub const FILE: &str = "numbers.json";

/// The last number given, and from which block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    pub block: u32,
    pub last: u32,
}

/// The record, on disk.
#[derive(Debug)]
pub struct Numbers {
    path: PathBuf,
    given: Option<Given>,
}

/// Why no number is given.
#[derive(Debug, thiserror::Error)]
pub enum NumberError {
    #[error("this peer's number block {0} is full")]
    Full(u32),
    #[error("cannot record the number given: {0}")]
    Save(#[from] std::io::Error),
}

/// The number after the last one given from `block` (`range`), or after
/// the highest the directory holds in it when nothing was recorded for
/// that block; the first of a block is its start + 1. `None` when the
/// block is full.
pub fn next(
    block: u32,
    range: &Range<u32>,
    given: Option<Given>,
    highest_held: Option<u32>,
) -> Option<u32> {
    let recorded = given.filter(|g| g.block == block).map(|g| g.last);
    let held = highest_held.filter(|n| range.contains(n));
    let after = [recorded, held]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(range.start);
    after.checked_add(1).filter(|n| range.contains(n))
}

impl Numbers {
    /// Opens the record in `dir` (none yet is no error; a damaged one is).
    pub fn open(dir: &Path) -> anyhow::Result<Numbers> {
        let path = dir.join(FILE);
        let given = match fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice::<Given>(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?,
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
        };
        Ok(Numbers { path, given })
    }

    /// What was given last.
    pub fn given(&self) -> Option<Given> {
        self.given
    }

    /// Whether the directory must be asked for the block's highest
    /// number: nothing was recorded for `block`.
    pub fn needs_directory(&self, block: u32) -> bool {
        self.given.is_none_or(|g| g.block != block)
    }

    /// The number the next [`Numbers::take`] would give, without giving
    /// it (a dry run).
    pub fn peek(&self, block: u32, highest_held: Option<u32>) -> Option<u32> {
        next(
            block,
            &crate::account::block_range(block),
            self.given,
            highest_held,
        )
    }

    /// Gives the next number of `block`: recorded on disk (fsynced) before
    /// it is returned.
    pub fn take(&mut self, block: u32, highest_held: Option<u32>) -> Result<u32, NumberError> {
        let number = self
            .peek(block, highest_held)
            .ok_or(NumberError::Full(block))?;
        let given = Given {
            block,
            last: number,
        };
        let bytes = serde_json::to_vec(&given).map_err(std::io::Error::other)?;
        center_config::durable::replace_file(&self.path, &bytes, 0o600)?;
        self.given = Some(given);
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::block_range;

    #[test]
    fn each_number_once_from_the_record_or_the_directory() {
        let range = block_range(7);
        let first = range.start + 1;
        // A new block starts at one above its start.
        assert_eq!(next(7, &range, None, None), Some(first));
        // The directory's highest counts when nothing is recorded.
        assert_eq!(next(7, &range, None, Some(first + 9)), Some(first + 10));
        // The record counts even when the directory lags behind it.
        let given = Some(Given {
            block: 7,
            last: first + 4,
        });
        assert_eq!(next(7, &range, given, Some(first)), Some(first + 5));
        // Whichever is higher wins.
        assert_eq!(next(7, &range, given, Some(first + 20)), Some(first + 21));
        // A record of another (lost) block does not count, nor a directory
        // number outside the block.
        let other = Some(Given {
            block: 3,
            last: block_range(3).start + 50,
        });
        assert_eq!(next(7, &range, other, Some(5)), Some(first));
        // A full block gives nothing.
        assert_eq!(next(7, &range, None, Some(range.end - 1)), None);
    }

    #[test]
    fn a_number_is_recorded_before_it_is_returned_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut numbers = Numbers::open(dir.path()).unwrap();
        assert!(numbers.needs_directory(2));
        let a = numbers.take(2, None).unwrap();
        let b = numbers.take(2, None).unwrap();
        assert_eq!(b, a + 1);
        assert!(!numbers.needs_directory(2));
        // Reopened (a restart, or kill -9 after the answer): never again.
        let mut reopened = Numbers::open(dir.path()).unwrap();
        assert_eq!(reopened.peek(2, None), Some(b + 1));
        assert_eq!(reopened.take(2, Some(a)).unwrap(), b + 1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join(FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.path().join(FILE), b"{").unwrap();
        assert!(Numbers::open(dir.path()).is_err(), "damage is reported");
    }
}
