//! Equivocation: two validly signed events of one origin that cannot both
//! be in its feed. The store keeps both as [`Evidence`], freezes the
//! origin (its head stops moving), and waits for an operator to choose
//! with [`FeedStore::resolve_fork`].
//!
//! Two kinds of contradiction are detected: a second event for an
//! (origin, seq) already stored ([`Conflict::SameSeq`]), and an event for
//! head + 1 whose `prev` is not the stored head's hash
//! ([`Conflict::BrokenChain`]), which proves the origin signed another
//! event at the head's seq. Resolving records the losing branch's hashes in
//! `rejected`, and events on that branch (or chained to it) are refused
//! from then on instead of freezing the origin again.

use center_proto::{PeerId, Timestamp};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::accept::{self, OriginState, Outcome, Refusal};
use super::{
    FeedStore, Head, StoreError, from_sql, hash_col, peer_col, sql_u64, time_col, u64_col,
};
use crate::event::{FeedEvent, FeedLimits};
use crate::hash::EventHash;
use crate::rotation::OriginKeys;

/// Evidence rows kept per origin; past it equivocations are still
/// reported, but not stored, so a hostile origin cannot fill the disk.
pub const MAX_EVIDENCE_PER_ORIGIN: u64 = 64;

/// How two events contradict each other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Conflict {
    /// Both events have the same seq.
    SameSeq,
    /// `second` is at seq N and its `prev` is not the hash of `first`, the
    /// stored event N - 1.
    BrokenChain,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::SameSeq => "same-seq",
            Conflict::BrokenChain => "broken-chain",
        }
    }

    fn from_sql(text: &str) -> Conflict {
        if text == "broken-chain" {
            Conflict::BrokenChain
        } else {
            Conflict::SameSeq
        }
    }
}

/// Proof that an origin equivocated: two events it validly signed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Evidence {
    pub origin: PeerId,
    /// The seq of `second`.
    pub seq: u64,
    pub kind: Conflict,
    pub first_hash: EventHash,
    /// The event this store held (canonical bytes).
    pub first: Vec<u8>,
    pub second_hash: EventHash,
    /// The event that contradicts it (canonical bytes).
    pub second: Vec<u8>,
    pub detected_at: Timestamp,
    /// An operator has resolved the fork it caused.
    pub resolved: bool,
}

/// What [`FeedStore::resolve_fork`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resolution {
    /// The chosen event was the stored one: the stored chain stays, and the
    /// events that contradicted it are rejected.
    KeptStored { head: Head },
    /// The chosen event replaced the stored one at `seq`: `removed` stored
    /// events (`seq` and after) were deleted and rejected, and the chosen
    /// event is the new head.
    Replaced { seq: u64, removed: u64 },
}

/// Handles `event`, which contradicts the stored feed as `kind` says.
pub(super) fn conflict(
    tx: &Transaction<'_>,
    state: &mut OriginState,
    event: &FeedEvent,
    kind: Conflict,
    keys: &dyn Fn(&PeerId) -> Option<OriginKeys>,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let (origin, seq) = (event.origin(), event.seq());
    // A rejected event was verified when it was first seen.
    if is_rejected(tx, &state.key, event.hash())? {
        return Ok(Outcome::Refused(Refusal::Rejected { origin, seq }));
    }
    // So was evidence already held: relayed again, it changes nothing and
    // costs no signature check. Nor does more evidence against an origin
    // already frozen with all the evidence it may keep.
    if state.forked && (is_held(tx, &state.key, event.hash())? || evidence_full(tx, &state.key)?) {
        return Ok(Outcome::Refused(Refusal::Forked { origin, seq }));
    }
    if let Err(refusal) = state.verify(event, keys) {
        return Ok(Outcome::Refused(refusal));
    }
    if is_rejected(tx, &state.key, event.prev())? {
        reject(tx, &state.key, event.hash())?;
        return Ok(Outcome::Refused(Refusal::Rejected { origin, seq }));
    }
    let first_seq = match kind {
        Conflict::SameSeq => seq,
        Conflict::BrokenChain => seq.saturating_sub(1),
    };
    let (first_hash, first) = tx
        .prepare_cached("SELECT hash, bytes FROM events WHERE origin = ?1 AND seq = ?2")?
        .query_row(params![state.key, sql_u64(first_seq)], |row| {
            Ok((hash_col(row, 0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("event {first_seq} of {origin} is missing")))?;
    if !evidence_full(tx, &state.key)? {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO equivocations
             (origin, seq, kind, first_hash, first, second_hash, second, detected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            state.key,
            sql_u64(seq),
            kind.as_str(),
            first_hash.to_hex(),
            first,
            event.hash().to_hex(),
            event.as_bytes(),
            sql_u64(now.as_millis()),
        ])?;
    }
    state.forked = true;
    state.head_dirty = true;
    tracing::warn!(
        %origin,
        seq,
        kind = kind.as_str(),
        first = %first_hash,
        second = %event.hash(),
        "equivocation: two validly signed events of one origin conflict; its feed is frozen"
    );
    Ok(Outcome::Equivocation { origin, seq })
}

/// Whether `hash` is the contradicting event of evidence held (and not
/// yet resolved) against `origin`.
fn is_held(tx: &Transaction<'_>, origin: &str, hash: EventHash) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM equivocations WHERE origin = ?1 AND second_hash = ?2 AND NOT resolved",
        )?
        .exists(params![origin, hash.to_hex()])?)
}

/// Whether `origin` has all the evidence rows it may keep.
fn evidence_full(tx: &Transaction<'_>, origin: &str) -> Result<bool, StoreError> {
    let held: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM equivocations WHERE origin = ?1")?
        .query_row([origin], |row| row.get(0))?;
    Ok(from_sql(held) >= MAX_EVIDENCE_PER_ORIGIN)
}

fn is_rejected(tx: &Transaction<'_>, origin: &str, hash: EventHash) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM rejected WHERE origin = ?1 AND hash = ?2")?
        .exists(params![origin, hash.to_hex()])?)
}

fn reject(tx: &Transaction<'_>, origin: &str, hash: EventHash) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR IGNORE INTO rejected (origin, hash) VALUES (?1, ?2)")?
        .execute(params![origin, hash.to_hex()])?;
    Ok(())
}

impl FeedStore {
    /// All evidence held, oldest first.
    pub fn equivocations(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT origin, seq, kind, first_hash, first, second_hash, second, detected_at,
                    resolved
             FROM equivocations ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Evidence {
                origin: peer_col(row, 0)?,
                seq: u64_col(row, 1)?,
                kind: Conflict::from_sql(&row.get::<_, String>(2)?),
                first_hash: hash_col(row, 3)?,
                first: row.get(4)?,
                second_hash: hash_col(row, 5)?,
                second: row.get(6)?,
                detected_at: time_col(row, 7)?,
                resolved: row.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Unfreezes `origin`, keeping the event `keep`:
    ///
    /// - if `keep` is a stored event, the stored chain stays; every event
    ///   of the open evidence that contradicts it is rejected (and, for a
    ///   broken chain, the unseen event its `prev` names);
    /// - if `keep` is the contradicting event of open evidence, at seq N,
    ///   and follows the stored event N - 1, the stored events from N on
    ///   are deleted and rejected, `keep` is stored as the new head, and
    ///   every subscriber cursor of the origin past N - 1 is set back to
    ///   N - 1, so subscribers see the kept event.
    ///
    /// Events of a rejected branch are refused from then on
    /// ([`Refusal::Rejected`]); a contradiction not yet seen freezes the
    /// origin again. The evidence stays, marked resolved.
    pub fn resolve_fork(
        &mut self,
        origin: PeerId,
        keep: EventHash,
    ) -> Result<Resolution, StoreError> {
        let limits = FeedLimits {
            max_event_bytes: usize::MAX,
        };
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut state = OriginState::load(&tx, origin, self.config.budget)?;
        let Some(head) = state.head.filter(|_| state.forked) else {
            return Err(StoreError::NotForked { origin });
        };
        let key = state.key.clone();
        let open = open_evidence(&tx, &key)?;

        let stored = tx
            .prepare_cached("SELECT seq FROM events WHERE origin = ?1 AND hash = ?2")?
            .exists(params![key, keep.to_hex()])?;
        let resolution = if stored {
            for (kind, _, second) in &open {
                let event = FeedEvent::parse(second, &limits)?;
                reject_unless_stored(&tx, &key, event.hash())?;
                // A broken chain's `prev` names the unseen other event at seq N - 1.
                if *kind == Conflict::BrokenChain {
                    reject_unless_stored(&tx, &key, event.prev())?;
                }
            }
            Resolution::KeptStored { head }
        } else {
            let Some((_, _, bytes)) = open.iter().find(|(_, hash, _)| *hash == keep) else {
                return Err(StoreError::UnknownEvent { origin, hash: keep });
            };
            let chosen = FeedEvent::parse(bytes, &limits)?;
            let seq = chosen.seq();
            if seq > 1 {
                let before = super::stored_hash(&tx, &key, seq - 1)?;
                match before {
                    None => return Err(StoreError::PredecessorPruned { hash: keep, seq }),
                    Some(hash) if hash != chosen.prev() => {
                        return Err(StoreError::DoesNotChain { hash: keep, seq });
                    }
                    Some(_) => {}
                }
            }
            let losing: Vec<EventHash> = {
                let mut statement =
                    tx.prepare_cached("SELECT hash FROM events WHERE origin = ?1 AND seq >= ?2")?;
                let rows =
                    statement.query_map(params![key, sql_u64(seq)], |row| hash_col(row, 0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "DELETE FROM events WHERE origin = ?1 AND seq >= ?2",
                params![key, sql_u64(seq)],
            )?;
            for hash in &losing {
                reject(&tx, &key, *hash)?;
            }
            tx.execute(
                "DELETE FROM rejected WHERE origin = ?1 AND hash = ?2",
                params![key, keep.to_hex()],
            )?;
            accept::insert(&tx, &key, &chosen, chosen.iat())?;
            state.set_head(&chosen);
            tx.execute(
                "UPDATE cursors SET seq = ?2 WHERE origin = ?1 AND seq >= ?3",
                params![key, sql_u64(seq - 1), sql_u64(seq)],
            )?;
            Resolution::Replaced {
                seq,
                removed: u64::try_from(losing.len()).unwrap_or(u64::MAX),
            }
        };
        tx.execute(
            "UPDATE equivocations SET resolved = 1 WHERE origin = ?1",
            [&key],
        )?;
        state.forked = false;
        state.head_dirty = true;
        state.save(&tx)?;
        tx.commit()?;
        tracing::warn!(%origin, %keep, ?resolution, "equivocation resolved by the operator");
        Ok(resolution)
    }
}

/// The contradicting events of `origin`'s unresolved evidence.
type OpenEvidence = Vec<(Conflict, EventHash, Vec<u8>)>;

fn open_evidence(tx: &Transaction<'_>, origin: &str) -> Result<OpenEvidence, StoreError> {
    let mut statement = tx.prepare_cached(
        "SELECT kind, second_hash, second FROM equivocations
         WHERE origin = ?1 AND resolved = 0 ORDER BY id",
    )?;
    let rows = statement.query_map([origin], |row| {
        let kind = Conflict::from_sql(&row.get::<_, String>(0)?);
        Ok((kind, hash_col(row, 1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn is_stored(tx: &Transaction<'_>, origin: &str, hash: EventHash) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM events WHERE origin = ?1 AND hash = ?2")?
        .exists(params![origin, hash.to_hex()])?)
}

fn reject_unless_stored(
    tx: &Transaction<'_>,
    origin: &str,
    hash: EventHash,
) -> Result<(), StoreError> {
    if !is_stored(tx, origin, hash)? {
        reject(tx, origin, hash)?;
    }
    Ok(())
}
