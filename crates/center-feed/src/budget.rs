//! What a store lets one origin cost it: a rate budget on what
//! [`FeedStore::accept`](crate::FeedStore::accept) stores, and the retention
//! [`FeedStore::prune`](crate::FeedStore::prune) applies. Plain
//! configuration; the store enforces it.

use std::time::Duration;

use crate::event::FeedLimits;

/// Per-origin limits. A limit of 0 is no limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeedBudget {
    /// The length of a rate window. Windows are fixed, per origin: one
    /// starts with the first event stored after the previous one ended.
    pub window: Duration,
    /// Events of one origin stored per window.
    pub max_events_per_window: u64,
    /// Bytes (canonical encodings) of one origin stored per window.
    pub max_bytes_per_window: u64,
    /// Bytes of one origin kept; `prune` removes its oldest events beyond it.
    pub max_bytes_per_origin: u64,
    /// Days an event is kept after its `iat`; `prune` removes older ones.
    pub retention_days: u32,
}

/// How long a newcomer's rate budget takes to grow to the full one.
pub const RAMP: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The share of the full rate budget a brand-new newcomer starts with.
pub const START_SHARE: u64 = 16;

impl FeedBudget {
    /// This budget for an origin another member announced `age` ago
    /// (`None`: vetted by this peer's sysadmin, or founding: the full
    /// budget): its events and bytes per window grow linearly from
    /// 1/[`START_SHARE`] to the whole over [`RAMP`], so one member that
    /// adds peers cannot add as many full budgets. Retention is not scaled.
    pub fn for_age(&self, age: Option<Duration>) -> FeedBudget {
        let Some(age) = age else { return *self };
        let ramp = RAMP.as_millis();
        let age = age.as_millis().min(ramp);
        let start = u128::from(START_SHARE);
        // max × (1/S + (1 − 1/S) × age/ramp) = max × (ramp + (S−1)·age) / (S·ramp)
        let scale = |max: u64| {
            if max == 0 {
                return 0;
            }
            let scaled = u128::from(max) * (ramp + (start - 1) * age) / (start * ramp);
            u64::try_from(scaled).unwrap_or(max).max(1)
        };
        FeedBudget {
            max_events_per_window: scale(self.max_events_per_window),
            max_bytes_per_window: scale(self.max_bytes_per_window),
            ..*self
        }
    }

    /// 20,000 events and 64 MiB per origin and hour, 1 GiB kept per
    /// origin, kept forever; CEP 6 argues them.
    pub const DEFAULT: FeedBudget = FeedBudget {
        window: Duration::from_secs(60 * 60),
        max_events_per_window: 20_000,
        max_bytes_per_window: 64 * 1024 * 1024,
        max_bytes_per_origin: 1024 * 1024 * 1024,
        retention_days: 0,
    };
}

impl Default for FeedBudget {
    fn default() -> FeedBudget {
        FeedBudget::DEFAULT
    }
}

/// Everything [`FeedStore::open`](crate::FeedStore::open) is configured with.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FeedConfig {
    pub limits: FeedLimits,
    pub budget: FeedBudget,
}
