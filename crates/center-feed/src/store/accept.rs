//! Writing events: [`FeedStore::append_local`] for this peer's own feed and
//! [`FeedStore::accept`] for a page of events relayed by another peer,
//! each in one transaction, and the [`Outcome`] of each event.
//!
//! The checks of one relayed event, cheapest first, so that a refused
//! event costs no signature check: parse; compare with what is stored
//! (duplicate, pruned, gap, frozen origin); the chain (`prev` against the
//! head); the origin's rate budget; its keys and signature. An event that
//! contradicts a stored one goes to `fork.rs`, which verifies it and keeps
//! both as evidence.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::time::Duration;

use center_proto::{EventName, PeerId, Timestamp};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;

use super::fork::{self, Conflict};
use super::verify;
use super::{FeedStore, Head, StoreError, floor, hash_col, sql_u64, stored_hash, u64_col};
use crate::budget::FeedBudget;
use crate::event::{EventBody, FeedError, FeedEvent, SignError, VerifyEventError};
use crate::hash::EventHash;
use crate::rotation::{OriginKeys, Rotation, RotationError};

/// This peer's new event, committed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Appended {
    pub seq: u64,
    pub hash: EventHash,
    pub pos: i64,
}

/// What [`FeedStore::accept`] did with one event of a page.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Verified and stored, at local position `pos`.
    Stored {
        origin: PeerId,
        seq: u64,
        pos: i64,
    },
    /// The same event (same hash) is already stored.
    Duplicate {
        origin: PeerId,
        seq: u64,
    },
    /// Above the head plus one: not stored; fetch the events from `have + 1` first.
    Gap {
        origin: PeerId,
        seq: u64,
        have: u64,
    },
    /// At or below the head, but older than the oldest event kept here
    /// (`floor`): pruned here, so neither stored nor compared.
    Stale {
        origin: PeerId,
        seq: u64,
        floor: u64,
    },
    /// A validly signed event that contradicts a stored one: both are kept
    /// as evidence and the origin is frozen (see [`FeedStore::equivocations`]).
    Equivocation {
        origin: PeerId,
        seq: u64,
    },
    Refused(Refusal),
}

/// Why an event was refused. Nothing was stored.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Parse(FeedError),
    #[error("event {seq} of {origin}: the origin is not a known peer")]
    UnknownOrigin { origin: PeerId, seq: u64 },
    #[error("event {seq} of {origin}: the origin departed after event {until}")]
    Departed {
        origin: PeerId,
        seq: u64,
        until: u64,
    },
    #[error("event {seq} of {origin}: {reason}")]
    BadSignature {
        origin: PeerId,
        seq: u64,
        reason: VerifyEventError,
    },
    /// A validly signed `peer.rotate` event whose data is not a rotation
    /// of the origin's keys.
    #[error("event {seq} of {origin}: a bad key rotation: {reason}")]
    BadRotation {
        origin: PeerId,
        seq: u64,
        reason: RotationError,
    },
    #[error(
        "event {seq} of {origin}: the feed is frozen by an equivocation until an operator resolves it"
    )]
    Forked { origin: PeerId, seq: u64 },
    #[error("event {seq} of {origin} is on a branch an operator rejected when resolving a fork")]
    Rejected { origin: PeerId, seq: u64 },
    #[error(
        "event {seq} of {origin}: the origin is over its budget of {limit}; fetch it again later"
    )]
    OverBudget {
        origin: PeerId,
        seq: u64,
        limit: BudgetLimit,
    },
}

/// The rate limit an event would have broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BudgetLimit {
    Events { max: u64, window: Duration },
    Bytes { max: u64, window: Duration },
}

impl fmt::Display for BudgetLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetLimit::Events { max, window } => {
                write!(f, "{max} events per {} s", window.as_secs())
            }
            BudgetLimit::Bytes { max, window } => {
                write!(f, "{max} bytes per {} s", window.as_secs())
            }
        }
    }
}

impl FeedStore {
    /// Appends an event to `origin`'s feed (this peer's own): the next seq,
    /// chained to the head, signed by `sign` (`Identity::sign`), committed
    /// before this returns. Refused while the feed is frozen.
    pub fn append_local<E: fmt::Display>(
        &mut self,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
        origin: PeerId,
        name: EventName,
        data: Value,
        iat: Timestamp,
    ) -> Result<Appended, StoreError> {
        let limits = self.config.limits;
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut state = OriginState::load(&tx, origin, self.config.budget)?;
        if state.forked {
            return Err(StoreError::Forked { origin });
        }
        let body = EventBody {
            origin,
            seq: state.head.map_or(0, |h| h.seq) + 1,
            prev: state.head.map_or(EventHash::ZERO, |h| h.hash),
            name,
            iat,
            data,
        };
        let event = FeedEvent::sign(body, sign).map_err(|e| match e {
            SignError::Event(e) => StoreError::Event(e),
            SignError::Signer(e) => StoreError::Sign(e.to_string()),
        })?;
        let len = event.as_bytes().len();
        if len > limits.max_event_bytes {
            return Err(StoreError::Event(FeedError::TooLarge {
                len,
                max: limits.max_event_bytes,
            }));
        }
        let pos = insert(&tx, &state.key, &event, iat)?;
        state.set_head(&event);
        state.save(&tx)?;
        tx.commit()?;
        Ok(Appended {
            seq: event.seq(),
            hash: event.hash(),
            pos,
        })
    }

    /// Checks and stores a page of events relayed by another peer, in one
    /// transaction: one outcome per event, in order. `keys` gives an
    /// origin's verified keys with their history (the roster); it is asked
    /// once per origin. Each event is verified with the key valid at its
    /// seq, and a stored `peer.rotate` event switches the origin's keys for
    /// the rest of the page (CEP 7, "Key rotation").
    ///
    /// Events of one origin must come oldest first: an event whose
    /// predecessor is missing is a [`Outcome::Gap`], even if the
    /// predecessor comes later in the page. An error (of the database)
    /// rolls back the whole page.
    pub fn accept<B: AsRef<[u8]>>(
        &mut self,
        events: &[B],
        keys: impl Fn(&PeerId) -> Option<OriginKeys>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        let config = self.config;
        let page: Vec<Result<FeedEvent, FeedError>> = events
            .iter()
            .map(|raw| FeedEvent::parse(raw.as_ref(), &config.limits))
            .collect();
        let budgets: HashMap<PeerId, FeedBudget> = page
            .iter()
            .flatten()
            .map(|event| (event.origin(), self.budget_of(event.origin(), now)))
            .collect();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut states: HashMap<PeerId, OriginState> = HashMap::new();
        for event in page.iter().flatten() {
            if let Entry::Vacant(entry) = states.entry(event.origin()) {
                let budget = budgets
                    .get(&event.origin())
                    .copied()
                    .unwrap_or(config.budget);
                entry.insert(OriginState::load(&tx, event.origin(), budget)?);
            }
        }
        let mut checks = verify::ahead(&page, &mut states, &keys, now);
        let mut signature_checks = checks.iter().filter(|check| check.is_some()).count();
        let walk = Walk { keys: &keys, now };
        let mut outcomes = Vec::with_capacity(page.len());
        for (event, check) in page.into_iter().zip(checks.iter_mut()) {
            let outcome = match event {
                Ok(event) => match states.get_mut(&event.origin()) {
                    Some(state) => accept_one(&tx, state, &event, &walk, check.take())?,
                    None => {
                        return Err(StoreError::Corrupt(
                            "an origin of the page has no state".into(),
                        ));
                    }
                },
                Err(e) => Outcome::Refused(Refusal::Parse(e)),
            };
            if let Outcome::Refused(refusal) = &outcome {
                tracing::debug!(%refusal, "feed event refused");
            }
            outcomes.push(outcome);
        }
        for state in states.values() {
            state.save(&tx)?;
            signature_checks = signature_checks.saturating_add(state.checks);
        }
        tx.commit()?;
        self.signature_checks = self
            .signature_checks
            .saturating_add(u64::try_from(signature_checks).unwrap_or(u64::MAX));
        Ok(outcomes)
    }
}

/// What every event of one `accept` call is checked with.
struct Walk<'a> {
    keys: &'a dyn Fn(&PeerId) -> Option<OriginKeys>,
    now: Timestamp,
}

/// Decides one event; `check` is its signature check if it was made ahead.
fn accept_one(
    tx: &Transaction<'_>,
    state: &mut OriginState,
    event: &FeedEvent,
    walk: &Walk<'_>,
    check: Option<Result<(), VerifyEventError>>,
) -> Result<Outcome, StoreError> {
    let (keys, now, budget) = (walk.keys, walk.now, state.budget);
    let (origin, seq) = (event.origin(), event.seq());
    let head = state.head.map_or(0, |h| h.seq);
    if seq <= head {
        return match stored_hash(tx, &state.key, seq)? {
            Some(stored) if stored == event.hash() => Ok(Outcome::Duplicate { origin, seq }),
            Some(_) => fork::conflict(tx, state, event, Conflict::SameSeq, keys, now),
            None => Ok(Outcome::Stale {
                origin,
                seq,
                floor: floor(tx, origin)?,
            }),
        };
    }
    if state.forked {
        return Ok(Outcome::Refused(Refusal::Forked { origin, seq }));
    }
    if seq > head + 1 {
        return Ok(Outcome::Gap {
            origin,
            seq,
            have: head,
        });
    }
    if event.prev() != state.head.map_or(EventHash::ZERO, |h| h.hash) {
        // Seq 1 always chains (its prev is zero), so a head exists here.
        return fork::conflict(tx, state, event, Conflict::BrokenChain, keys, now);
    }
    let size = u64::try_from(event.as_bytes().len()).unwrap_or(u64::MAX);
    if let Some(limit) = state.rate.over(now, size, &budget) {
        return Ok(Outcome::Refused(Refusal::OverBudget { origin, seq, limit }));
    }
    let verified = match check {
        Some(result) => result.map_err(|reason| Refusal::BadSignature {
            origin,
            seq,
            reason,
        }),
        None => state.verify(event, keys),
    };
    if let Err(refusal) = verified {
        return Ok(Outcome::Refused(refusal));
    }
    let rotation = match state.check_rotation(event) {
        Ok(rotation) => rotation,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    let pos = insert(tx, &state.key, event, now)?;
    if let (Some(rotation), Some(Some(history))) = (rotation, state.keys.as_mut()) {
        history.rotate(rotation.keys(), seq);
    }
    state.set_head(event);
    state.rate.add(now, size, &budget);
    state.rate_dirty = true;
    Ok(Outcome::Stored { origin, seq, pos })
}

/// Inserts a checked event; returns its `pos`.
pub(super) fn insert(
    tx: &Transaction<'_>,
    origin: &str,
    event: &FeedEvent,
    now: Timestamp,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (origin, seq, hash, iat, size, stored_at, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        origin,
        sql_u64(event.seq()),
        event.hash().to_hex(),
        sql_u64(event.iat().as_millis()),
        super::sql_usize(event.as_bytes().len()),
        sql_u64(now.as_millis()),
        event.as_bytes(),
    ])?;
    Ok(tx.last_insert_rowid())
}

/// What one write knows of an origin: loaded on its first event, written
/// back before the commit.
pub(super) struct OriginState {
    /// The origin as stored (its text form).
    pub(super) key: String,
    pub(super) head: Option<Head>,
    pub(super) forked: bool,
    /// `head` or `forked` changed.
    pub(super) head_dirty: bool,
    pub(super) rate: Rate,
    rate_dirty: bool,
    /// The origin's rate budget (the store's, or less for a newcomer).
    pub(super) budget: FeedBudget,
    /// Signatures checked inline (not ahead) for this origin in this write.
    pub(super) checks: usize,
    /// The origin's keys, once asked for; rotated as the page rotates them.
    keys: Option<Option<OriginKeys>>,
}

impl OriginState {
    pub(super) fn load(
        tx: &Transaction<'_>,
        origin: PeerId,
        budget: FeedBudget,
    ) -> Result<OriginState, StoreError> {
        let key = origin.to_string();
        let head = tx
            .prepare_cached("SELECT seq, hash, forked FROM heads WHERE origin = ?1")?
            .query_row([&key], |row| {
                let head = Head {
                    seq: u64_col(row, 0)?,
                    hash: hash_col(row, 1)?,
                };
                Ok((head, row.get::<_, bool>(2)?))
            })
            .optional()?;
        let rate = tx
            .prepare_cached("SELECT window_start, events, bytes FROM rates WHERE origin = ?1")?
            .query_row([&key], |row| {
                Ok(Rate {
                    start: u64_col(row, 0)?,
                    events: u64_col(row, 1)?,
                    bytes: u64_col(row, 2)?,
                })
            })
            .optional()?;
        Ok(OriginState {
            key,
            head: head.map(|(head, _)| head),
            forked: head.is_some_and(|(_, forked)| forked),
            head_dirty: false,
            rate: rate.unwrap_or_default(),
            rate_dirty: false,
            budget,
            checks: 0,
            keys: None,
        })
    }

    pub(super) fn set_head(&mut self, event: &FeedEvent) {
        self.head = Some(Head {
            seq: event.seq(),
            hash: event.hash(),
        });
        self.head_dirty = true;
    }

    /// The origin's keys, asking `keys` the first time.
    pub(super) fn keys(
        &mut self,
        origin: PeerId,
        keys: &dyn Fn(&PeerId) -> Option<OriginKeys>,
    ) -> Option<&OriginKeys> {
        self.keys.get_or_insert_with(|| keys(&origin)).as_ref()
    }

    /// The origin's keys if they were asked for and exist.
    pub(super) fn known_keys(&self) -> Option<&OriginKeys> {
        self.keys.as_ref().and_then(Option::as_ref)
    }

    /// Verifies `event` with the key its origin had at its seq.
    pub(super) fn verify(
        &mut self,
        event: &FeedEvent,
        keys: &dyn Fn(&PeerId) -> Option<OriginKeys>,
    ) -> Result<(), Refusal> {
        let (origin, seq) = (event.origin(), event.seq());
        let Some(found) = self.keys(origin, keys) else {
            return Err(Refusal::UnknownOrigin { origin, seq });
        };
        if let Some(until) = found.until().filter(|until| seq > *until) {
            return Err(Refusal::Departed { origin, seq, until });
        }
        self.checks = self.checks.saturating_add(1);
        let Some(found) = self.known_keys() else {
            return Err(Refusal::UnknownOrigin { origin, seq });
        };
        event
            .verify(found.for_seq(seq))
            .map_err(|reason| Refusal::BadSignature {
                origin,
                seq,
                reason,
            })
    }

    /// For a verified event: its rotation if it is a `peer.rotate` event,
    /// refused if its data is not a rotation of the key that signed it.
    fn check_rotation(&self, event: &FeedEvent) -> Result<Option<Rotation>, Refusal> {
        let (origin, seq) = (event.origin(), event.seq());
        let bad = |reason| Refusal::BadRotation {
            origin,
            seq,
            reason,
        };
        let Some(rotation) = Rotation::from_event(event) else {
            return Ok(None);
        };
        let rotation = rotation.map_err(bad)?;
        if let Some(history) = self.known_keys() {
            rotation.check_signer(history.for_seq(seq)).map_err(bad)?;
        }
        Ok(Some(rotation))
    }

    pub(super) fn save(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        if let (true, Some(head)) = (self.head_dirty, self.head) {
            tx.prepare_cached(
                "INSERT INTO heads (origin, seq, hash, forked) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (origin) DO UPDATE
                 SET seq = excluded.seq, hash = excluded.hash, forked = excluded.forked",
            )?
            .execute(params![
                self.key,
                sql_u64(head.seq),
                head.hash.to_hex(),
                self.forked
            ])?;
        }
        if self.rate_dirty {
            tx.prepare_cached(
                "INSERT INTO rates (origin, window_start, events, bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (origin) DO UPDATE SET window_start = excluded.window_start,
                 events = excluded.events, bytes = excluded.bytes",
            )?
            .execute(params![
                self.key,
                sql_u64(self.rate.start),
                sql_u64(self.rate.events),
                sql_u64(self.rate.bytes)
            ])?;
        }
        Ok(())
    }
}

/// An origin's use of its current rate window.
#[derive(Clone, Copy, Default)]
pub(super) struct Rate {
    /// When the window started, in ms.
    start: u64,
    events: u64,
    bytes: u64,
}

impl Rate {
    /// Whether the window is over at `now` (or the clock went back past its start).
    fn ended(&self, now: Timestamp, window: Duration) -> bool {
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        match now.as_millis().checked_sub(self.start) {
            Some(elapsed) => elapsed >= window,
            None => true,
        }
    }

    /// The limit storing `size` more bytes at `now` would break, if any.
    pub(super) fn over(
        &self,
        now: Timestamp,
        size: u64,
        budget: &FeedBudget,
    ) -> Option<BudgetLimit> {
        let (events, bytes) = if self.ended(now, budget.window) {
            (0, 0)
        } else {
            (self.events, self.bytes)
        };
        let window = budget.window;
        let max = budget.max_events_per_window;
        if max > 0 && events >= max {
            return Some(BudgetLimit::Events { max, window });
        }
        let max = budget.max_bytes_per_window;
        if max > 0 && bytes.saturating_add(size) > max {
            return Some(BudgetLimit::Bytes { max, window });
        }
        None
    }

    pub(super) fn add(&mut self, now: Timestamp, size: u64, budget: &FeedBudget) {
        if self.ended(now, budget.window) {
            *self = Rate {
                start: now.as_millis(),
                events: 0,
                bytes: 0,
            };
        }
        self.events = self.events.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size);
    }
}
