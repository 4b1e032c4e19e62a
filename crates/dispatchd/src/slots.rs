//! Connection slots counted per key (a source address, a uid): how many
//! connections one key holds at once, so that no single host or local user
//! takes every slot of a listener (CEP 4, CEP 5 "Bounds"). A [`Slot`] is
//! counted while it lives and uncounted when dropped, so a connection task
//! that ends by any path gives its slot back.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

/// The counts of one listener.
#[derive(Debug)]
pub struct Slots<K: Hash + Eq + Clone> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    max: usize,
}

/// One connection counted against its key.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq + Clone> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    /// At most `max` connections per key.
    pub fn new(max: usize) -> Slots<K> {
        Slots {
            counts: Arc::default(),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for `key`, unless it holds `max` already.
    pub fn take(&self, key: K) -> Option<Slot<K>> {
        let mut map = lock(&self.counts);
        let count = map.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: self.counts.clone(),
            key,
        })
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut map = lock(&self.counts);
        if let Some(count) = map.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The map, even if a holder panicked (counts stay meaningful).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_holds_at_most_max_and_gets_them_back() {
        let slots = Slots::new(2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").is_none(), "a third for one key");
        let _b = slots.take("b").unwrap();
        drop(a1);
        assert!(slots.take("a").is_some(), "a slot given back");
        assert_eq!(lock(&slots.counts).get("a"), Some(&1));
    }
}
