//! [`FeedStore`]: the feeds this peer holds, in one SQLite database (WAL,
//! `synchronous=FULL`): every origin's events, its head, the evidence of
//! its equivocations, the rate it used, and the cursors of local
//! subscribers and the frontiers other peers acknowledged.
//!
//! The invariant the rest rests on: the events of one origin are stored
//! contiguously, from the oldest kept (the *floor*) to the head, and an
//! event is stored only right after its predecessor (seq = head + 1, prev =
//! head hash). So the local insertion order, `pos`, respects every origin's
//! order, and a subscriber that reads in `pos` order sees each feed in
//! order.
//!
//! The store does no networking and reads no clock: callers pass `now`.
//! It is one connection, used by one owner (`&mut self` for writes); the
//! dispatcher wraps it in its own lock or task.
//!
//! - [`accept`](FeedStore::accept), [`append_local`](FeedStore::append_local): writing events (`accept.rs`).
//! - equivocation evidence and [`resolve_fork`](FeedStore::resolve_fork) (`fork.rs`).
//! - [`prune`](FeedStore::prune): retention (`prune.rs`).
//! - cursors, [`next_for`](FeedStore::next_for), peer frontiers (`cursor.rs`).

mod accept;
mod cursor;
mod fork;
mod prune;
mod schema;
mod verify;

use std::collections::BTreeMap;
use std::path::Path;

use center_proto::{PeerId, Timestamp};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::budget::FeedConfig;
use crate::event::{FeedError, FeedEvent};
use crate::hash::EventHash;

pub use accept::{Appended, BudgetLimit, Outcome, Refusal};
pub use cursor::{PeerFrontier, StartAt, StoredEvent};
pub use fork::{Conflict, Evidence, Resolution};
pub use prune::{PruneReason, PruneReport, Pruned};

/// The feed store; see the module docs.
pub struct FeedStore {
    db: Connection,
    /// Subscribers' cursors, `synchronous=NORMAL` (see [`FeedStore::advance`]).
    cursors: Connection,
    config: FeedConfig,
    /// Signature checks [`FeedStore::accept`] made since the store opened
    /// (ahead and inline): what relayed input cost in CPU.
    signature_checks: u64,
    /// Origins trusted on another member's announcement, and since when:
    /// their rate budget grows with that age ([`FeedBudget::for_age`]).
    announced: std::collections::HashMap<PeerId, Timestamp>,
}

impl std::fmt::Debug for FeedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStore")
            .field("path", &self.db.path())
            .field("config", &self.config)
            .finish()
    }
}

/// Why a store operation failed. A failed write changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("feed database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "feed database has schema version {found}, newer than the {supported} this program knows; run a newer center"
    )]
    Schema { found: i64, supported: i64 },
    #[error("cannot make the event: {0}")]
    Event(#[from] FeedError),
    #[error("cannot sign the event: {0}")]
    Sign(String),
    #[error(
        "the feed of {origin} is frozen by an equivocation; look at the evidence and resolve it"
    )]
    Forked { origin: PeerId },
    #[error("the feed of {origin} is not frozen; there is nothing to resolve")]
    NotForked { origin: PeerId },
    #[error("no event {hash} of {origin} is stored or held as evidence of an open equivocation")]
    UnknownEvent { origin: PeerId, hash: EventHash },
    #[error(
        "event {hash} (seq {seq}) does not follow the stored event {}: keep the stored chain, or resolve the equivocation at seq {} first",
        .seq.saturating_sub(1), .seq.saturating_sub(1)
    )]
    DoesNotChain { hash: EventHash, seq: u64 },
    #[error(
        "event {hash} (seq {seq}) cannot be checked against event {}, which was pruned",
        .seq.saturating_sub(1)
    )]
    PredecessorPruned { hash: EventHash, seq: u64 },
    #[error("the feed database holds a damaged value: {0}")]
    Corrupt(String),
}

/// An origin's head: its highest stored seq, with no gap below it down to
/// the floor, and that event's hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Head {
    pub seq: u64,
    pub hash: EventHash,
}

/// One answer to a page request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Page {
    /// Canonical events, oldest first.
    pub events: Vec<Vec<u8>>,
    /// The oldest seq of the origin this store still holds (0 if none):
    /// a requester whose `after_seq + 1` is below it cannot get the events
    /// in between here.
    pub floor: u64,
}

/// What the store holds of one origin, for `centerctl feed status`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OriginStatus {
    pub origin: PeerId,
    pub head_seq: u64,
    pub head_hash: EventHash,
    pub events_stored: u64,
    pub bytes_stored: u64,
    /// The floor: the oldest seq kept.
    pub oldest_seq: u64,
    /// Frozen by an equivocation until an operator resolves it.
    pub forked: bool,
}

impl FeedStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path, config: FeedConfig) -> Result<FeedStore, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "wal")?;
        // FULL: a commit is on disk before `append_local` or `accept` returns.
        db.pragma_update(None, "synchronous", "full")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&db)?;
        let cursors = Connection::open(path)?;
        cursors.pragma_update(None, "synchronous", "normal")?;
        cursors.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(FeedStore {
            db,
            cursors,
            config,
            signature_checks: 0,
            announced: std::collections::HashMap::new(),
        })
    }

    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// How many signatures [`FeedStore::accept`] checked since the store
    /// was opened: an event refused before its signature (over budget,
    /// frozen origin, evidence already held) costs none.
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks
    }

    /// Which origins were trusted on another member's announcement, and
    /// when (the caller's roster says): their budget starts small (CEP 6,
    /// "Budgets"). Every other origin has the full budget.
    pub fn set_announced(&mut self, announced: std::collections::HashMap<PeerId, Timestamp>) {
        self.announced = announced;
    }

    /// The rate budget of `origin` at `now`.
    pub(super) fn budget_of(&self, origin: PeerId, now: Timestamp) -> crate::FeedBudget {
        let age = self.announced.get(&origin).map(|since| {
            std::time::Duration::from_millis(now.as_millis().saturating_sub(since.as_millis()))
        });
        self.config.budget.for_age(age)
    }

    /// Every origin's head: what this peer tells others it has.
    pub fn frontier(&self) -> Result<BTreeMap<PeerId, Head>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached("SELECT origin, seq, hash FROM heads")?;
        let rows = statement.query_map([], |row| {
            Ok((
                peer_col(row, 0)?,
                Head {
                    seq: u64_col(row, 1)?,
                    hash: hash_col(row, 2)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Origins frozen by an equivocation (cheap: it reads the heads only).
    pub fn forked(&self) -> Result<Vec<PeerId>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached("SELECT origin FROM heads WHERE forked != 0")?;
        let rows = statement.query_map([], |row| peer_col(row, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Events of `origin` with seq above `after_seq`, oldest first: at most
    /// `max_events`, and no more than `max_bytes` in all unless the first
    /// alone is larger (a page holds at least one event if there is one).
    pub fn page(
        &self,
        origin: PeerId,
        after_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Page, StoreError> {
        let floor = floor(&self.db, origin)?;
        let mut statement = self.db.prepare_cached(
            "SELECT bytes FROM events WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = statement.query(params![
            origin.to_string(),
            sql_u64(after_seq),
            sql_usize(max_events)
        ])?;
        let (mut events, mut total) = (Vec::new(), 0usize);
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            total = total.saturating_add(bytes.len());
            if total > max_bytes && !events.is_empty() {
                break;
            }
            events.push(bytes);
        }
        Ok(Page { events, floor })
    }

    /// The stored `peer.rotate` events of `origin` with seq above
    /// `after_seq`, oldest first (CEP 7): what a dispatcher replays into
    /// its key history after a crash between storing one and applying it.
    /// Each was verified when it was stored.
    pub fn rotations(&self, origin: PeerId, after_seq: u64) -> Result<Vec<FeedEvent>, StoreError> {
        let needle = format!("\"name\":\"{}\"", crate::rotation::ROTATE_EVENT);
        let mut statement = self.db.prepare_cached(
            "SELECT bytes FROM events WHERE origin = ?1 AND seq > ?2 AND instr(bytes, ?3) > 0
             ORDER BY seq",
        )?;
        let mut rows = statement.query(params![
            origin.to_string(),
            sql_u64(after_seq),
            needle.as_bytes()
        ])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            let event = FeedEvent::parse(&bytes, &self.config.limits)
                .map_err(|err| StoreError::Corrupt(format!("a stored event: {err}")))?;
            if event.name().as_str() == crate::rotation::ROTATE_EVENT {
                found.push(event);
            }
        }
        Ok(found)
    }

    /// What the store holds of each origin.
    pub fn status(&self) -> Result<Vec<OriginStatus>, StoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT h.origin, h.seq, h.hash, h.forked,
                    COUNT(e.seq), IFNULL(SUM(e.size), 0), IFNULL(MIN(e.seq), 0)
             FROM heads h LEFT JOIN events e ON e.origin = h.origin
             GROUP BY h.origin ORDER BY h.origin",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(OriginStatus {
                origin: peer_col(row, 0)?,
                head_seq: u64_col(row, 1)?,
                head_hash: hash_col(row, 2)?,
                forked: row.get(3)?,
                events_stored: u64_col(row, 4)?,
                bytes_stored: u64_col(row, 5)?,
                oldest_seq: u64_col(row, 6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The oldest seq of `origin` stored, or 0.
fn floor(db: &Connection, origin: PeerId) -> Result<u64, StoreError> {
    let floor: Option<i64> = db
        .prepare_cached("SELECT MIN(seq) FROM events WHERE origin = ?1")?
        .query_row([origin.to_string()], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(floor.map_or(0, from_sql))
}

/// The hash of the stored event (`origin`, `seq`), if stored.
fn stored_hash(db: &Connection, origin: &str, seq: u64) -> Result<Option<EventHash>, StoreError> {
    let hash = db
        .prepare_cached("SELECT hash FROM events WHERE origin = ?1 AND seq = ?2")?
        .query_row(params![origin, sql_u64(seq)], |row| hash_col(row, 0))
        .optional()?;
    Ok(hash)
}

/// A `u64` as SQLite's signed integer. Seqs, sizes and timestamps stay
/// below 2^53; anything larger saturates rather than wraps.
fn sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sql_usize(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer as `u64`; the store never writes a negative one.
fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn u64_col(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(from_sql(row.get(index)?))
}

fn peer_col(row: &Row<'_>, index: usize) -> rusqlite::Result<PeerId> {
    let text: String = row.get(index)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn hash_col(row: &Row<'_>, index: usize) -> rusqlite::Result<EventHash> {
    let text: String = row.get(index)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn time_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_millis(from_sql(row.get(index)?)))
}
