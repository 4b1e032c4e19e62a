//! Retention: [`FeedStore::prune`] deletes each origin's oldest events past
//! the age and size limits of the [`FeedBudget`](crate::FeedBudget).
//!
//! Pruning only ever removes a prefix of an origin's stored events, so
//! what remains is contiguous from the new floor to the head, and it never
//! removes the head: its seq and hash must stay known to check the next
//! event's `prev` (the `heads` table keeps them too), and a peer must be
//! able to show its head to prove what it holds.

use center_proto::{PeerId, Timestamp};
use rusqlite::{Transaction, TransactionBehavior, params};

use super::{FeedStore, StoreError, from_sql, peer_col, sql_u64, u64_col};

/// Why events were pruned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PruneReason {
    /// Older than `retention_days` (by their `iat`).
    Age,
    /// Past `max_bytes_per_origin`.
    Bytes,
}

impl PruneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::Age => "age",
            PruneReason::Bytes => "bytes",
        }
    }
}

/// One deletion: `events` events of `origin`, `bytes` in all, below the new `floor`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pruned {
    pub origin: PeerId,
    pub reason: PruneReason,
    pub events: u64,
    pub bytes: u64,
    pub floor: u64,
}

/// What one [`FeedStore::prune`] deleted; one entry per origin and reason.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PruneReport {
    pub pruned: Vec<Pruned>,
}

impl PruneReport {
    pub fn events(&self) -> u64 {
        self.pruned.iter().map(|p| p.events).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.pruned.iter().map(|p| p.bytes).sum()
    }
}

impl FeedStore {
    /// Applies retention at `now`, in one transaction: first age
    /// (`retention_days`, 0 = forever), then size (`max_bytes_per_origin`,
    /// 0 = no limit). Logs each deletion.
    pub fn prune(&mut self, now: Timestamp) -> Result<PruneReport, StoreError> {
        let budget = self.config.budget;
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let heads: Vec<(PeerId, u64)> = {
            let mut statement = tx.prepare("SELECT origin, seq FROM heads ORDER BY origin")?;
            let rows = statement.query_map([], |row| Ok((peer_col(row, 0)?, u64_col(row, 1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut report = PruneReport::default();
        for (origin, head) in heads {
            let key = origin.to_string();
            if budget.retention_days > 0 {
                let age = u64::from(budget.retention_days) * 24 * 60 * 60 * 1000;
                let cutoff = now.as_millis().saturating_sub(age);
                // The floor is the first event young enough; all before it are older.
                let young: Option<i64> = tx.query_row(
                    "SELECT MIN(seq) FROM events WHERE origin = ?1 AND iat >= ?2",
                    params![key, sql_u64(cutoff)],
                    |row| row.get(0),
                )?;
                let floor = young.map_or(head, from_sql).min(head);
                report
                    .pruned
                    .extend(delete_below(&tx, origin, floor, PruneReason::Age)?);
            }
            if budget.max_bytes_per_origin > 0 {
                let floor = bytes_floor(&tx, &key, budget.max_bytes_per_origin)?.min(head);
                report
                    .pruned
                    .extend(delete_below(&tx, origin, floor, PruneReason::Bytes)?);
            }
        }
        tx.commit()?;
        for p in &report.pruned {
            tracing::info!(
                origin = %p.origin,
                reason = p.reason.as_str(),
                events = p.events,
                bytes = p.bytes,
                floor = p.floor,
                "pruned feed events"
            );
        }
        Ok(report)
    }
}

/// The lowest seq from which the stored events of `origin` fit in `max`
/// bytes (newest first); the head's seq if even the head alone does not.
fn bytes_floor(tx: &Transaction<'_>, origin: &str, max: u64) -> Result<u64, StoreError> {
    let mut statement =
        tx.prepare("SELECT seq, size FROM events WHERE origin = ?1 ORDER BY seq DESC")?;
    let mut rows = statement.query([origin])?;
    let (mut total, mut floor) = (0u64, 0u64);
    while let Some(row) = rows.next()? {
        let (seq, size) = (u64_col(row, 0)?, u64_col(row, 1)?);
        total = total.saturating_add(size);
        if total > max {
            return Ok(if floor == 0 { seq } else { floor });
        }
        floor = seq;
    }
    Ok(0)
}

/// Deletes the events of `origin` below `floor`, if any.
fn delete_below(
    tx: &Transaction<'_>,
    origin: PeerId,
    floor: u64,
    reason: PruneReason,
) -> Result<Option<Pruned>, StoreError> {
    let key = origin.to_string();
    let (events, bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), IFNULL(SUM(size), 0) FROM events WHERE origin = ?1 AND seq < ?2",
        params![key, sql_u64(floor)],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if events == 0 {
        return Ok(None);
    }
    tx.execute(
        "DELETE FROM events WHERE origin = ?1 AND seq < ?2",
        params![key, sql_u64(floor)],
    )?;
    Ok(Some(Pruned {
        origin,
        reason,
        events: from_sql(events),
        bytes: from_sql(bytes),
        floor,
    }))
}
