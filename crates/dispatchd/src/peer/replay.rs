//! Remembering which signed-but-unencrypted frames were already accepted, so
//! a recorded `GPG` frame cannot be played again before its envelope expires.
//!
//! Keyed by the SHA-256 of the frame's signing input, kept until the
//! envelope's `exp`. Bounded: when full and nothing has expired, new frames
//! are refused (fail closed) rather than the memory growing. Each sender
//! has a share of its own, so one peer sending valid frames as fast as it
//! can fills only its share and cuts off only itself, not everyone's hello.

use std::collections::{BTreeMap, HashMap};

use center_proto::{PeerId, Timestamp};
use sha2::{Digest, Sha256};

/// Digests of accepted frames, each with its expiry and sender.
pub struct ReplayCache {
    seen: HashMap<[u8; 32], (Timestamp, PeerId)>,
    /// The same entries ordered by expiry, for pruning.
    by_exp: BTreeMap<(Timestamp, [u8; 32]), ()>,
    /// Live entries per sender.
    per_sender: HashMap<PeerId, usize>,
    capacity: usize,
    share: usize,
}

impl ReplayCache {
    /// At most `capacity` digests in all, and `share` from any one sender.
    pub fn new(capacity: usize, share: usize) -> ReplayCache {
        ReplayCache {
            seen: HashMap::new(),
            by_exp: BTreeMap::new(),
            per_sender: HashMap::new(),
            capacity,
            share,
        }
    }

    /// Records `signing_input` of a frame from `from` and says whether it
    /// was new. A frame that cannot be recorded (the cache, or the sender's
    /// share of it, is full of live entries) counts as seen.
    pub fn first_time(
        &mut self,
        from: PeerId,
        signing_input: &[u8],
        exp: Timestamp,
        now: Timestamp,
    ) -> bool {
        self.prune(now);
        let mut key = [0u8; 32];
        key.copy_from_slice(&Sha256::digest(signing_input));
        let held = self.per_sender.get(&from).copied().unwrap_or(0);
        if self.seen.contains_key(&key) || self.seen.len() >= self.capacity || held >= self.share {
            return false;
        }
        self.seen.insert(key, (exp, from));
        self.by_exp.insert((exp, key), ());
        self.per_sender.insert(from, held + 1);
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
            if let Some((_, from)) = self.seen.remove(&key)
                && let Some(count) = self.per_sender.get_mut(&from)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_sender.remove(&from);
                }
            }
        }
    }
}
