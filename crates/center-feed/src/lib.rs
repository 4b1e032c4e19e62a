//! Signed per-origin append-only feeds (CEP 6): the event format, its
//! strict parser, and the SQLite store that checks each origin's chain,
//! detects equivocation, applies budgets and retention, and keeps the
//! cursors of local subscribers.
//!
//! Every peer appends the events it originates to its own feed, numbered
//! 1, 2, 3…, each carrying the hash of the one before and signed with the
//! origin's OpenPGP key; any peer relays any feed, and every receiver
//! checks signature and chain, so a relay can neither forge nor reorder.
//!
//! # Layout
//!
//! - [`event`]: [`FeedEvent`], [`EventBody`], [`FeedLimits`] and the
//!   parser's [`FeedError`]; signing input and hash.
//! - [`hash`]: [`EventHash`], the SHA-256 that names and chains events.
//! - [`rotation`]: [`OriginKeys`] (which key verifies which seqs of an
//!   origin) and [`Rotation`], the `peer.rotate` event (CEP 7).
//! - [`budget`]: [`FeedBudget`] (rate and retention per origin) and
//!   [`FeedConfig`].
//! - [`store`]: [`FeedStore`] and what its operations answer ([`Outcome`],
//!   [`Refusal`], [`Head`], [`Page`], [`Evidence`], …).
//! - [`fuzz`]: the fuzz target's body, run by the tests over the vectors.
//!
//! **Invariant:** nothing here opens a socket or reads a clock (callers
//! pass `now`), and no input, from the network or from the database, makes
//! it panic. The exchange of frontiers and pages between peers is the
//! dispatcher's; this crate only answers it.

pub mod budget;
pub mod event;
pub mod fuzz;
pub mod hash;
pub mod rotation;
pub mod store;

pub use budget::{FeedBudget, FeedConfig, RAMP, START_SHARE};
pub use event::{
    EventBody, FeedError, FeedEvent, FeedLimits, SIGNING_CONTEXT, SignError, VerifyEventError,
};
pub use hash::{EventHash, HashError};
pub use rotation::{
    HistoryError, OriginKeys, ROTATE_EVENT, RetiredKeys, Rotation, RotationError, rotation_data,
};
pub use store::{
    Appended, BudgetLimit, Conflict, Evidence, FeedStore, Head, OriginStatus, Outcome, Page,
    PeerFrontier, PruneReason, PruneReport, Pruned, Refusal, Resolution, StartAt, StoreError,
    StoredEvent,
};
