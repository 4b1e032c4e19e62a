//! Remembering which signed-but-unencrypted frames were already accepted, so
//! a recorded `GPG` frame cannot be played again before its envelope expires.
//!
//! Keyed by the SHA-256 of the frame's signing input, kept until the
//! envelope's `exp`. Bounded: when full and nothing has expired, new frames
//! are refused (fail closed) rather than the memory growing.

use std::collections::{BTreeMap, HashMap};

use center_proto::Timestamp;
use sha2::{Digest, Sha256};

/// Digests of accepted frames, each with its expiry.
pub struct ReplayCache {
    seen: HashMap<[u8; 32], Timestamp>,
    /// The same entries ordered by expiry, for pruning.
    by_exp: BTreeMap<(Timestamp, [u8; 32]), ()>,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: HashMap::new(),
            by_exp: BTreeMap::new(),
            capacity,
        }
    }

    /// Records `signing_input` and says whether it was new. A frame that
    /// cannot be recorded (the cache is full of live entries) counts as seen.
    pub fn first_time(&mut self, signing_input: &[u8], exp: Timestamp, now: Timestamp) -> bool {
        self.prune(now);
        let mut key = [0u8; 32];
        key.copy_from_slice(&Sha256::digest(signing_input));
        if self.seen.contains_key(&key) || self.seen.len() >= self.capacity {
            return false;
        }
        self.seen.insert(key, exp);
        self.by_exp.insert((exp, key), ());
        true
    }

    /// How many digests are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn prune(&mut self, now: Timestamp) {
        while let Some((&(exp, key), ())) = self.by_exp.first_key_value() {
            if exp > now {
                break;
            }
            self.by_exp.remove(&(exp, key));
            self.seen.remove(&key);
        }
    }
}
