//! Peer state and membership (CEP 7, "Heartbeats and peer state"): the
//! rules that turn what the links observed into `up`, `syncing` or `down`
//! for each roster peer, and into `member` or `syncing` for this peer.
//!
//! Pure functions over plain values: no I/O, no lock, no clock (the caller
//! passes how long a peer has been silent). The links and the feed store
//! gather the facts; the broker turns the results into bus wire types.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use center_bus::PeerState;
use center_proto::PeerId;

/// Heads per origin: the highest contiguous seq held.
pub type Heads = BTreeMap<PeerId, u64>;

/// How two frontiers differ, in sequence numbers summed over origins.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Events we hold that the peer lacks.
    pub behind: u64,
    /// Events the peer holds that we lack.
    pub ahead: u64,
}

impl Lag {
    pub fn is_zero(&self) -> bool {
        self.behind == 0 && self.ahead == 0
    }
}

/// How `theirs` differs from `ours`. An origin missing from one side counts
/// as seq 0 there; origins in `frozen` (an equivocation froze them here, so
/// they move neither way until the sysadmin decides) are left out.
pub fn lag(ours: &Heads, theirs: &Heads, frozen: &BTreeSet<PeerId>) -> Lag {
    let origins: BTreeSet<&PeerId> = ours.keys().chain(theirs.keys()).collect();
    let mut lag = Lag::default();
    for origin in origins.into_iter().filter(|o| !frozen.contains(o)) {
        let mine = ours.get(origin).copied().unwrap_or(0);
        let its = theirs.get(origin).copied().unwrap_or(0);
        lag.behind = lag.behind.saturating_add(mine.saturating_sub(its));
        lag.ahead = lag.ahead.saturating_add(its.saturating_sub(mine));
    }
    lag
}

/// What this peer observed of one roster peer.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// A connection to it is registered and open.
    pub connected: bool,
    /// How long since its last authenticated frame (`None`: never since
    /// dispatchd started).
    pub silent_for: Option<Duration>,
    /// `[links] keepalive_seconds`.
    pub keepalive: Duration,
    /// Its frontier has arrived on the current connection.
    pub frontier_on_connection: bool,
    /// By the last frontier it sent.
    pub lag: Lag,
}

/// `down` unless connected and heard within three keepalive intervals (the
/// silence after which the connection is closed anyway); then `syncing`
/// until its frontier on this connection has come and neither side lacks an
/// event the other holds; else `up`.
pub fn peer_state(observed: &Observed) -> PeerState {
    let heard = observed
        .silent_for
        .is_some_and(|silent| silent <= observed.keepalive.saturating_mul(3));
    if !observed.connected || !heard {
        PeerState::Down
    } else if !observed.frontier_on_connection || !observed.lag.is_zero() {
        PeerState::Syncing
    } else {
        PeerState::Up
    }
}

/// Where this peer stands in the feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Per origin (ordered), the head held and the highest head known.
    pub origins: Vec<(PeerId, u64, u64)>,
    pub held: u64,
    pub known: u64,
    /// Roster peers whose frontier has not come since dispatchd started.
    pub waiting_for: Vec<PeerId>,
    /// Nobody is waited for and every origin is held up to what is known.
    pub member: bool,
}

/// This peer's progress: per origin, what it holds (`ours`) against the
/// highest head any roster peer reported (`frontiers`, the last frontier
/// each sent). It is a member once every roster peer's frontier has come
/// since dispatchd started (`heard`) and it holds, of every origin, all
/// that any of them holds; with an empty roster it is a member. Frozen
/// origins are left out, as in [`lag`]; frontiers of peers not in `roster`
/// are ignored.
pub fn progress(
    ours: &Heads,
    roster: &[PeerId],
    frontiers: &BTreeMap<PeerId, Heads>,
    heard: &BTreeSet<PeerId>,
    frozen: &BTreeSet<PeerId>,
) -> Progress {
    let mut known: Heads = ours.clone();
    for heads in roster.iter().filter_map(|peer| frontiers.get(peer)) {
        for (origin, seq) in heads {
            let entry = known.entry(*origin).or_insert(0);
            *entry = (*entry).max(*seq);
        }
    }
    let origins: Vec<(PeerId, u64, u64)> = known
        .into_iter()
        .filter(|(origin, _)| !frozen.contains(origin))
        .map(|(origin, known)| (origin, ours.get(&origin).copied().unwrap_or(0), known))
        .collect();
    let held = origins
        .iter()
        .fold(0u64, |sum, (_, held, _)| sum.saturating_add(*held));
    let known = origins
        .iter()
        .fold(0u64, |sum, (_, _, known)| sum.saturating_add(*known));
    let waiting_for: Vec<PeerId> = roster
        .iter()
        .filter(|peer| !heard.contains(peer))
        .copied()
        .collect();
    let member = waiting_for.is_empty() && origins.iter().all(|(_, held, known)| held >= known);
    Progress {
        origins,
        held,
        known,
        waiting_for,
        member,
    }
}

#[cfg(test)]
mod tests;
