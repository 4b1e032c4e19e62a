//! The number blocks (CEP 8, "Numbers"): the latest `account.block` claim
//! of each origin, and who holds which block. A claim names an attempt
//! `k` and the index that attempt gives its origin, `index(origin, k)` (a
//! hash: an origin cannot pick the block it claims, only try the next
//! attempt). Of two claims for one index the one with the lower attempt
//! wins, then the one with the lower `hash(origin, index)`: nothing an
//! origin states about its clock counts, and every peer applies the same
//! rule to the same claims. Each origin has one claim at a time (its
//! latest attempt), so the table grows with the number of peers, and one
//! origin holds at most one block.
//!
//! The table is kept in `state_dir/userd/blocks.json` (written atomically,
//! mode 0600); userd alone reads it ([`crate::numbers`] numbers the
//! accounts). Nothing here touches LDAP or the bus.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::account::{BLOCKS, block_range};

/// Most origins kept (far more than any network has peers): a claim from
/// one more is refused.
pub const MAX_ORIGINS: usize = 4096;
/// Most attempts an origin makes: past it every block is taken.
pub const MAX_ATTEMPT: u32 = 100_000;

/// The index attempt `attempt` of `origin` claims.
pub fn index_for(origin: &str, attempt: u32) -> u32 {
    let digest = Sha256::digest(format!("center-block/v1/{origin}/{attempt}").as_bytes());
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(first) % BLOCKS
}

/// One claim as seen on a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub index: u32,
    pub attempt: u32,
    /// The claiming origin's UUID.
    pub origin: String,
}

impl Claim {
    /// The order of two claims for one index: lower attempt, then lower
    /// hash of origin and index.
    fn key(&self) -> (u32, String) {
        let digest = Sha256::digest(format!("{}/{}", self.origin, self.index).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        (self.attempt, hex)
    }
}

/// Why a claim is not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("index {index} is not what attempt {attempt} gives its origin ({expected})")]
    WrongIndex {
        index: u32,
        attempt: u32,
        expected: u32,
    },
    #[error("attempt {attempt} is not after this origin's last claim (attempt {last})")]
    NotAfter { attempt: u32, last: u32 },
    #[error("the table holds {MAX_ORIGINS} origins already")]
    Full,
    #[error(transparent)]
    Save(#[from] anyhow::Error),
}

/// The latest claim of each origin, on disk.
#[derive(Debug, Default)]
pub struct Blocks {
    path: PathBuf,
    claims: BTreeMap<String, Claim>,
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
        let list = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?
                    .claims
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
        };
        let claims = list.into_iter().map(|c| (c.origin.clone(), c)).collect();
        Ok(Blocks { path, claims })
    }

    /// Records a claim, replacing its origin's earlier one (a replay
    /// changes nothing); saved before returning.
    pub fn record(&mut self, claim: Claim) -> Result<(), ClaimError> {
        let expected = index_for(&claim.origin, claim.attempt);
        if claim.index != expected {
            return Err(ClaimError::WrongIndex {
                index: claim.index,
                attempt: claim.attempt,
                expected,
            });
        }
        match self.claims.get(&claim.origin) {
            Some(held) if *held == claim => return Ok(()),
            Some(held) if held.attempt >= claim.attempt => {
                return Err(ClaimError::NotAfter {
                    attempt: claim.attempt,
                    last: held.attempt,
                });
            }
            None if self.claims.len() >= MAX_ORIGINS => return Err(ClaimError::Full),
            _ => {}
        }
        self.claims.insert(claim.origin.clone(), claim);
        self.save()?;
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&File {
            claims: self.claims.values().cloned().collect(),
        })?;
        center_config::durable::replace_file(&self.path, &bytes, 0o600)?;
        Ok(())
    }

    /// Whether `claim` wins its index among the claims seen.
    fn wins(&self, claim: &Claim) -> bool {
        let key = claim.key();
        !self.claims.values().any(|other| {
            other.index == claim.index && other.origin != claim.origin && other.key() < key
        })
    }

    /// The block `origin` holds, if any.
    pub fn block_of(&self, origin: &str) -> Option<u32> {
        self.claims
            .get(origin)
            .filter(|c| self.wins(c))
            .map(|c| c.index)
    }

    /// Whether `origin` may number an account `uid_number`.
    pub fn allows(&self, origin: &str, uid_number: u32) -> bool {
        self.block_of(origin)
            .is_some_and(|index| block_range(index).contains(&uid_number))
    }

    /// The claim `origin` should make now: its next attempt whose index
    /// no other origin claims, if any is left.
    pub fn next_claim(&self, origin: &str) -> Option<Claim> {
        let first = self.claims.get(origin).map_or(0, |c| c.attempt + 1);
        (first..MAX_ATTEMPT).find_map(|attempt| {
            let index = index_for(origin, attempt);
            let taken = self
                .claims
                .values()
                .any(|c| c.index == index && c.origin != origin);
            (!taken).then(|| Claim {
                index,
                attempt,
                origin: origin.to_owned(),
            })
        })
    }
}

/// The block of `origin` as recorded in `dir` (for tests and benchmarks
/// that check what userd recorded).
pub fn read_block(dir: &Path, origin: &str) -> anyhow::Result<Option<u32>> {
    Ok(Blocks::open(dir)?.block_of(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An origin whose attempt 0 gives `index`, and its claim.
    fn claim_at(index: u32, attempt: u32, prefix: &str) -> Claim {
        let origin = (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|o| index_for(o, attempt) == index)
            .unwrap();
        Claim {
            index,
            attempt,
            origin,
        }
    }

    #[test]
    fn lower_attempt_then_lower_hash_wins_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let early = claim_at(5, 0, "x");
        let other = claim_at(5, 0, "y");
        let late = claim_at(5, 1, "z");
        let (first, second) = if early.key() < other.key() {
            (early.clone(), other.clone())
        } else {
            (other.clone(), early.clone())
        };
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut blocks = Blocks::open(dir.path()).unwrap();
            blocks.claims.clear();
            let all = [early.clone(), other.clone(), late.clone()];
            for i in order {
                blocks.record(all[i].clone()).unwrap();
            }
            assert_eq!(blocks.block_of(&first.origin), Some(5));
            assert_eq!(blocks.block_of(&second.origin), None);
            // A later attempt never beats an earlier one, whatever its hash.
            assert_eq!(blocks.block_of(&late.origin), None);
            assert!(blocks.allows(&first.origin, block_range(5).start + 1));
            assert!(!blocks.allows(&second.origin, block_range(5).start + 1));
        }
        let reopened = Blocks::open(dir.path()).unwrap();
        assert_eq!(reopened.block_of(&first.origin), Some(5));
        // The loser's next claim is another index, at its next attempt.
        let next = reopened.next_claim(&second.origin).unwrap();
        assert!(next.attempt >= 1 && next.index != 5);
    }

    #[test]
    fn an_origin_cannot_pick_its_index_nor_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut blocks = Blocks::open(dir.path()).unwrap();
        let wanted = claim_at(7, 0, "m");
        let mut chosen = wanted.clone();
        chosen.index = (wanted.index + 1) % BLOCKS;
        assert!(matches!(
            blocks.record(chosen),
            Err(ClaimError::WrongIndex { .. })
        ));
        let next = Claim {
            index: index_for(&wanted.origin, 3),
            attempt: 3,
            origin: wanted.origin.clone(),
        };
        blocks.record(next.clone()).unwrap();
        // One claim per origin: an earlier attempt is refused, a replay is
        // nothing.
        assert!(matches!(
            blocks.record(wanted),
            Err(ClaimError::NotAfter { .. })
        ));
        blocks.record(next).unwrap();
        assert_eq!(blocks.claims.len(), 1);
    }
}
