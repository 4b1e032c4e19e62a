//! Log lines that a flood could repeat: one site logs at most once per
//! interval, and the next line it logs says how many it left out, so a
//! hostile peer or host costs the log a line per interval, not one per
//! frame.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How often one site logs, at most.
pub const EVERY: Duration = Duration::from_secs(10);

/// One rate-limited log site (a `static`).
pub struct Quiet {
    /// When it last logged: ms since [`start`] plus one (0: never).
    last: AtomicU64,
    /// Lines left out since.
    skipped: AtomicU64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl Quiet {
    pub const fn new() -> Quiet {
        Quiet {
            last: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were
    /// left out since the last; `None`: leave this one out.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(millis(start().elapsed()).saturating_add(1))
    }

    /// [`Quiet::allow`] at `now` (ms since [`start`], plus one).
    fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < millis(EVERY) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.skipped.swap(0, Ordering::Relaxed))
    }
}

impl Default for Quiet {
    fn default() -> Quiet {
        Quiet::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_left_out() {
        let quiet = Quiet::new();
        assert_eq!(quiet.allow_at(1), Some(0));
        for at in 2..1002 {
            assert_eq!(quiet.allow_at(at), None);
        }
        let later = millis(EVERY) + 1;
        assert_eq!(quiet.allow_at(later), Some(1000));
        assert_eq!(quiet.allow_at(later + 1), None);
    }
}
