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

impl FeedBudget {
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
