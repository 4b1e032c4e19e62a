//! Checking the signatures of a page on every core before the store walks
//! it: signature checks are nearly all the cost of
//! [`FeedStore::accept`](super::FeedStore::accept), and they need nothing
//! but the event and its origin's keys.
//!
//! The walk is sequential and decides everything; this only guesses which
//! events it will verify (each origin's chain continued from its head, as
//! far as the page continues it) and checks those ahead, in scoped
//! threads that end before the walk starts. A wrong guess costs a wasted
//! check or an inline one, never a wrong answer. Each event is checked
//! with the key valid at its seq; after a `peer.rotate` event nothing more
//! of its origin is checked ahead, since the keys change only once the
//! walk has stored it.
//!
//! The guess follows the origin's rate budget as the walk will: an event
//! the walk will refuse as over budget is not checked ahead, so a relay
//! cannot make this peer check signatures it will not store.

use std::collections::{HashMap, HashSet};
use std::num::NonZero;

use center_proto::{PeerId, Timestamp};

use super::accept::{OriginState, Rate};
use crate::event::{FeedError, FeedEvent, VerifyEventError};
use crate::hash::EventHash;
use crate::rotation::{OriginKeys, ROTATE_EVENT};

/// Fewer checks than this are left to the walk: threads would cost more.
const MIN_PARALLEL: usize = 32;

/// The most threads one page uses.
const MAX_THREADS: usize = 8;

/// One precomputed check per event of the page, `None` where none was made.
pub(super) type Checks = Vec<Option<Result<(), VerifyEventError>>>;

/// Verifies ahead, in parallel, the events of `page` that the walk is
/// expected to store. `states` must hold every origin of the page; their
/// keys are looked up here, once per origin.
pub(super) fn ahead(
    page: &[Result<FeedEvent, FeedError>],
    states: &mut HashMap<PeerId, OriginState>,
    keys: &dyn Fn(&PeerId) -> Option<OriginKeys>,
    now: Timestamp,
) -> Checks {
    let mut checks: Checks = vec![None; page.len()];
    // Each origin's head as it will be if every expected event is stored.
    let mut heads: HashMap<PeerId, (u64, EventHash)> = HashMap::new();
    // Each origin's rate window as it will be, likewise.
    let mut rates: HashMap<PeerId, Rate> = HashMap::new();
    let mut jobs: Vec<(usize, &FeedEvent)> = Vec::new();
    // Origins nothing more is checked ahead for: a rotation in the page
    // changes their keys from here on, or their budget is spent.
    let mut stopped: HashSet<PeerId> = HashSet::new();
    for (index, event) in page.iter().enumerate() {
        let Ok(event) = event else { continue };
        let origin = event.origin();
        let Some(state) = states.get_mut(&origin) else {
            continue;
        };
        let ended = match state.keys(origin, keys) {
            None => continue,
            Some(found) => found.until().is_some_and(|until| event.seq() > until),
        };
        if state.forked || stopped.contains(&origin) || ended {
            continue;
        }
        if event.name().as_str() == ROTATE_EVENT {
            stopped.insert(origin);
        }
        let head = heads
            .entry(origin)
            .or_insert_with(|| state.head.map_or((0, EventHash::ZERO), |h| (h.seq, h.hash)));
        if event.seq() == head.0 + 1 && event.prev() == head.1 {
            let rate = rates.entry(origin).or_insert(state.rate);
            let size = u64::try_from(event.as_bytes().len()).unwrap_or(u64::MAX);
            if rate.over(now, size, &state.budget).is_some() {
                // The walk refuses it, and everything after it, unchecked.
                stopped.insert(origin);
                continue;
            }
            rate.add(now, size, &state.budget);
            *head = (event.seq(), event.hash());
            jobs.push((index, event));
        }
    }
    if jobs.len() < MIN_PARALLEL {
        return checks;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZero::get)
        .min(MAX_THREADS);
    let per_thread = jobs.len().div_ceil(threads);
    let states = &*states;
    std::thread::scope(|scope| {
        let running: Vec<_> = jobs
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|&(index, event)| {
                            let keys = states.get(&event.origin())?.known_keys()?;
                            Some((index, event.verify(keys.for_seq(event.seq()))))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in running {
            // A thread that panicked leaves its checks to the walk.
            for (index, result) in thread.join().unwrap_or_default() {
                if let Some(slot) = checks.get_mut(index) {
                    *slot = Some(result);
                }
            }
        }
    });
    checks
}
