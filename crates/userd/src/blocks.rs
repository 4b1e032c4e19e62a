//! The number blocks (CEP 8, "Numbers"): every `account.block` claim seen,
//! and who holds which block. A claim is `(index, iat, origin)`; for each
//! index the claim with the earliest `iat`, then the lowest origin UUID,
//! wins, whatever order the claims arrived in. An origin's block is its
//! earliest winning claim. Every peer applies the same rule to the same
//! claims, so every peer ends up agreeing.
//!
//! The table is kept in `state_dir/userd/blocks.json` (written atomically,
//! mode 0600), which `centerctl user add` reads (root only) to number a
//! new account. Nothing here touches LDAP or the bus.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::account::{BLOCKS, block_range};

/// One claim as seen on a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub index: u32,
    /// The claim event's `iat`, in milliseconds.
    pub iat: u64,
    /// The claiming origin's UUID.
    pub origin: String,
}

impl Claim {
    fn key(&self) -> (u64, &str) {
        (self.iat, &self.origin)
    }
}

/// Every claim seen, on disk.
#[derive(Debug, Default)]
pub struct Blocks {
    path: PathBuf,
    claims: Vec<Claim>,
}

#[derive(Serialize, Deserialize)]
struct File {
    claims: Vec<Claim>,
}

/// The file name in userd's state directory.
pub const FILE: &str = "blocks.json";

impl Blocks {
    /// Opens (or starts) the table in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Blocks> {
        let path = dir.join(FILE);
        let claims = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?
                    .claims
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
        };
        Ok(Blocks { path, claims })
    }

    /// Records a claim (a replay changes nothing); saved before returning.
    pub fn record(&mut self, claim: Claim) -> anyhow::Result<()> {
        if self.claims.contains(&claim) {
            return Ok(());
        }
        self.claims.push(claim);
        self.save()
    }

    fn save(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&File {
            claims: self.claims.clone(),
        })?;
        center_config::durable::replace_file(&self.path, &bytes, 0o600)?;
        Ok(())
    }

    /// Whether `claim` wins its index among the claims seen.
    fn wins(&self, claim: &Claim) -> bool {
        !self
            .claims
            .iter()
            .any(|other| other.index == claim.index && other.key() < claim.key())
    }

    /// The block `origin` holds, if any.
    pub fn block_of(&self, origin: &str) -> Option<u32> {
        self.claims
            .iter()
            .filter(|c| c.origin == origin && self.wins(c))
            .min_by(|a, b| a.key().cmp(&b.key()))
            .map(|c| c.index)
    }

    /// Whether `origin` may number an account `uid_number`.
    pub fn allows(&self, origin: &str, uid_number: u32) -> bool {
        self.block_of(origin)
            .is_some_and(|index| block_range(index).contains(&uid_number))
    }

    /// A free index to claim, picked at random among those nobody claimed
    /// (random, so that peers claiming at the same moment rarely collide).
    pub fn free_index(&self) -> Option<u32> {
        let free: Vec<u32> = (0..BLOCKS)
            .filter(|i| !self.claims.iter().any(|c| c.index == *i))
            .collect();
        if free.is_empty() {
            return None;
        }
        free.get(rand::random_range(0..free.len())).copied()
    }
}

/// The block of `origin` as recorded in `dir` (for `centerctl user add`).
pub fn read_block(dir: &Path, origin: &str) -> anyhow::Result<Option<u32>> {
    Ok(Blocks::open(dir)?.block_of(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(index: u32, iat: u64, origin: &str) -> Claim {
        Claim {
            index,
            iat,
            origin: origin.to_owned(),
        }
    }

    #[test]
    fn earliest_claim_then_lowest_uuid_wins_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let claims = [
            claim(5, 200, "bbbb"),
            claim(5, 100, "cccc"),
            claim(5, 100, "aaaa"),
            claim(7, 300, "bbbb"),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
            let mut blocks = Blocks::open(dir.path()).unwrap();
            blocks.claims.clear();
            for i in order {
                blocks.record(claims[i].clone()).unwrap();
            }
            assert_eq!(blocks.block_of("aaaa"), Some(5));
            assert_eq!(blocks.block_of("cccc"), None);
            assert_eq!(blocks.block_of("bbbb"), Some(7));
            assert!(blocks.allows("bbbb", block_range(7).start + 1));
            assert!(!blocks.allows("bbbb", block_range(5).start + 1));
            assert!(!blocks.allows("cccc", block_range(5).start + 1));
        }
        let reopened = Blocks::open(dir.path()).unwrap();
        assert_eq!(reopened.block_of("aaaa"), Some(5));
        let free = reopened.free_index().unwrap();
        assert!(free != 5 && free != 7 && free < BLOCKS);
    }
}
