//! Local delivery and what other peers hold: each local subscriber's
//! durable cursor per origin (the highest seq it has handled), the events
//! it has not handled yet in local order, and the frontier each remote
//! peer last acknowledged.
//!
//! A subscriber reads with [`FeedStore::next_for`] and, once it has
//! applied an event, moves its cursor with [`FeedStore::advance`]; after
//! a crash it reads again from its cursors, so nothing is lost, and since
//! cursors never move back, nothing it acknowledged comes twice (but an
//! event read and not yet acknowledged does: consumers are idempotent).

use std::collections::{BTreeMap, HashMap};

use center_proto::{PeerId, Timestamp};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{FeedStore, StoreError, peer_col, sql_u64, sql_usize, time_col, u64_col};

/// Where a new subscriber starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StartAt {
    /// At the oldest event kept: it sees everything this store still has.
    Oldest,
    /// At the current heads: it sees only events stored from now on.
    Now,
}

/// One stored event, as delivered to a local subscriber.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredEvent {
    /// Local position; pass the last one seen as `after_pos` to read on.
    pub pos: i64,
    pub origin: PeerId,
    pub seq: u64,
    /// The canonical event.
    pub bytes: Vec<u8>,
}

/// What `peer` last said it holds of `origin`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerFrontier {
    pub peer: PeerId,
    pub origin: PeerId,
    pub seq: u64,
    pub updated_at: Timestamp,
}

impl FeedStore {
    /// Registers `subscriber`; returns false, changing nothing, if it is
    /// already known. With [`StartAt::Now`] its cursors are set to the
    /// current heads; with [`StartAt::Oldest`] they stay at 0. An origin
    /// first stored later starts at 0 either way: all of it is new.
    pub fn new_subscriber(&mut self, subscriber: &str, start: StartAt) -> Result<bool, StoreError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO subscribers (name) VALUES (?1)",
            [subscriber],
        )?;
        if added == 0 {
            return Ok(false);
        }
        if start == StartAt::Now {
            tx.execute(
                "INSERT INTO cursors (subscriber, origin, seq)
                 SELECT ?1, origin, seq FROM heads WHERE true
                 ON CONFLICT (subscriber, origin) DO UPDATE SET seq = excluded.seq",
                [subscriber],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The highest seq of `origin` that `subscriber` has handled (0: none).
    pub fn cursor(&self, subscriber: &str, origin: PeerId) -> Result<u64, StoreError> {
        let seq = self
            .db
            .prepare_cached("SELECT seq FROM cursors WHERE subscriber = ?1 AND origin = ?2")?
            .query_row(params![subscriber, origin.to_string()], |row| {
                u64_col(row, 0)
            })
            .optional()?;
        Ok(seq.unwrap_or(0))
    }

    /// Records that `subscriber` has handled `origin` up to `seq`; a lower
    /// seq than the cursor's changes nothing. Committed when this returns,
    /// with `synchronous=NORMAL`: a subscriber acknowledges every event, and
    /// in WAL mode such a commit survives the process being killed; a power
    /// loss may take the newest positions back, which only delivers those
    /// events again (consumers apply each (origin, seq) once).
    pub fn advance(
        &mut self,
        subscriber: &str,
        origin: PeerId,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.cursors
            .prepare_cached(
                "INSERT INTO cursors (subscriber, origin, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (subscriber, origin) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            )?
            .execute(params![subscriber, origin.to_string(), sql_u64(seq)])?;
        Ok(())
    }

    /// At most `limit` events after local position `after_pos` (0: from
    /// the start), in local order, each above `subscriber`'s cursor for its
    /// origin. A subscriber never registered has every cursor at 0.
    pub fn next_for(
        &self,
        subscriber: &str,
        after_pos: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Each origin's first unhandled event, found through (origin, seq):
        // the scan by `pos` starts at the lowest, not at the first event
        // stored, however far the cursors are.
        let cursors: HashMap<String, i64> = {
            let mut statement = self
                .db
                .prepare_cached("SELECT origin, seq FROM cursors WHERE subscriber = ?1")?;
            let rows = statement.query_map([subscriber], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let origins: Vec<String> = {
            let mut statement = self.db.prepare_cached("SELECT origin FROM heads")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut first = self.db.prepare_cached(
            "SELECT pos FROM events WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT 1",
        )?;
        let mut start: Option<i64> = None;
        for origin in &origins {
            let cursor = cursors.get(origin).copied().unwrap_or(0);
            if let Some(pos) = first
                .query_row(params![origin, cursor], |row| row.get::<_, i64>(0))
                .optional()?
            {
                start = Some(start.map_or(pos, |s| s.min(pos)));
            }
        }
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let mut statement = self.db.prepare_cached(
            "SELECT e.pos, e.origin, e.seq, e.bytes FROM events e
             LEFT JOIN cursors c ON c.subscriber = ?1 AND c.origin = e.origin
             WHERE e.pos >= ?2 AND e.seq > IFNULL(c.seq, 0)
             ORDER BY e.pos LIMIT ?3",
        )?;
        let from = start.max(after_pos.saturating_add(1));
        let rows = statement.query_map(params![subscriber, from, sql_usize(limit)], |row| {
            Ok(StoredEvent {
                pos: row.get(0)?,
                origin: peer_col(row, 1)?,
                seq: u64_col(row, 2)?,
                bytes: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many stored events after local position `after_pos` are above
    /// `subscriber`'s cursor for their origin: what it has yet to be
    /// offered (events its subscription would skip included).
    pub fn count_after(&self, subscriber: &str, after_pos: i64) -> Result<u64, StoreError> {
        let count: i64 = self
            .db
            .prepare_cached(
                "SELECT COUNT(*) FROM events e
                 LEFT JOIN cursors c ON c.subscriber = ?1 AND c.origin = e.origin
                 WHERE e.pos > ?2 AND e.seq > IFNULL(c.seq, 0)",
            )?
            .query_row(params![subscriber, after_pos], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Records what `peer` says it holds (origin → highest contiguous seq),
    /// at `now`, for the origins `known` takes (the roster's, departed ones
    /// included, and this peer's): a frontier names whatever origins its
    /// sender likes, and only these are worth keeping, so what is stored
    /// per peer is bounded by the roster. Origins it did not mention keep
    /// their last record; records of origins `known` no longer takes are
    /// forgotten. Returns how many origins of `frontier` were ignored.
    pub fn record_peer_frontier(
        &mut self,
        peer: PeerId,
        frontier: &BTreeMap<PeerId, u64>,
        known: impl Fn(&PeerId) -> bool,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ignored = 0;
        {
            let held: Vec<PeerId> = tx
                .prepare_cached("SELECT origin FROM peer_frontiers WHERE peer = ?1")?
                .query_map([peer.to_string()], |row| peer_col(row, 0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut forget =
                tx.prepare_cached("DELETE FROM peer_frontiers WHERE peer = ?1 AND origin = ?2")?;
            for origin in held.iter().filter(|origin| !known(origin)) {
                forget.execute(params![peer.to_string(), origin.to_string()])?;
            }
        }
        {
            let mut statement = tx.prepare_cached(
                "INSERT INTO peer_frontiers (peer, origin, seq, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (peer, origin) DO UPDATE
                 SET seq = excluded.seq, updated_at = excluded.updated_at",
            )?;
            let peer = peer.to_string();
            for (origin, seq) in frontier {
                if !known(origin) {
                    ignored += 1;
                    continue;
                }
                statement.execute(params![
                    peer,
                    origin.to_string(),
                    sql_u64(*seq),
                    sql_u64(now.as_millis())
                ])?;
            }
        }
        tx.commit()?;
        Ok(ignored)
    }

    /// Every recorded peer frontier, by peer then origin.
    pub fn peer_frontiers(&self) -> Result<Vec<PeerFrontier>, StoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT peer, origin, seq, updated_at FROM peer_frontiers ORDER BY peer, origin",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(PeerFrontier {
                peer: peer_col(row, 0)?,
                origin: peer_col(row, 1)?,
                seq: u64_col(row, 2)?,
                updated_at: time_col(row, 3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
