//! The answers to `peer-list` and `status` (CEP 4; CEP 7, "Heartbeats and
//! peer state"): roster entries with each peer's state, round-trip time and
//! feed lag, and this peer's health on one screen.
//!
//! Reads the links, the feed store and the table of bus connections, and
//! changes nothing. The rules themselves are in [`crate::health`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use center_bus::{
    ErrorCode, FeedSummary, Membership, MembershipState, OriginProgress, PeerCounts, PeerEntry,
    PeerState, StatusReport,
};
use center_proto::{PeerId, Timestamp};

use super::Broker;
use crate::{
    health::{self, Heads, Lag, Observed},
    roster::RosterPeer,
};

/// What the rules need from the feed store, read under one lock.
struct FeedFacts {
    ours: Heads,
    /// The last frontier each peer sent.
    theirs: BTreeMap<PeerId, Heads>,
    /// Origins frozen here by an equivocation.
    frozen: BTreeSet<PeerId>,
    summary: FeedSummary,
}

type Failure = (ErrorCode, String);

impl Broker {
    fn feed_facts(&self) -> Result<FeedFacts, Failure> {
        let internal = |err: center_feed::StoreError| {
            tracing::error!(error = %err, "cannot read the feeds");
            (ErrorCode::Internal, err.to_string())
        };
        // A departed origin counts up to its end only: what a peer holds
        // beyond it is refused here and is nothing to wait for.
        let ends = self.roster().departed_ends();
        let clamp = |origin: &PeerId, seq: u64| ends.get(origin).map_or(seq, |end| seq.min(*end));
        let feeds = self.links.feeds();
        let origins = feeds.status().map_err(internal)?;
        let mut theirs: BTreeMap<PeerId, Heads> = BTreeMap::new();
        for frontier in feeds.peer_frontiers().map_err(internal)? {
            theirs
                .entry(frontier.peer)
                .or_default()
                .insert(frontier.origin, clamp(&frontier.origin, frontier.seq));
        }
        let conflicts = feeds
            .equivocations()
            .map_err(internal)?
            .iter()
            .filter(|e| !e.resolved)
            .count();
        let frozen: BTreeSet<PeerId> = origins
            .iter()
            .filter(|o| o.forked)
            .map(|o| o.origin)
            .collect();
        let summary = FeedSummary {
            origins: count(origins.len()),
            events: origins.iter().map(|o| o.events_stored).sum(),
            bytes: origins.iter().map(|o| o.bytes_stored).sum(),
            forked: count(frozen.len()),
            conflicts: count(conflicts),
        };
        Ok(FeedFacts {
            ours: origins
                .iter()
                .map(|o| (o.origin, clamp(&o.origin, o.head_seq)))
                .collect(),
            theirs,
            frozen,
            summary,
        })
    }

    /// Roster entries for `peers`, each with its state (CEP 7).
    pub(super) fn peer_entries(&self, peers: &[RosterPeer]) -> Result<Vec<PeerEntry>, Failure> {
        let facts = self.feed_facts()?;
        Ok(peers.iter().map(|p| self.peer_entry(p, &facts)).collect())
    }

    fn peer_entry(&self, peer: &RosterPeer, facts: &FeedFacts) -> PeerEntry {
        let uuid = peer.description.uuid();
        let view = self.links.view(uuid);
        // No frontier from it yet: nothing to compare (it is syncing or down).
        let lag = facts.theirs.get(&uuid).map_or(Lag::default(), |theirs| {
            health::lag(&facts.ours, theirs, &facts.frozen)
        });
        let state = health::peer_state(&Observed {
            connected: view.connected,
            silent_for: view.status.heard_at.map(|at| at.elapsed()),
            keepalive: self.links.keepalive(),
            frontier_on_connection: view.frontier_on_connection,
            lag,
        });
        PeerEntry {
            uuid: uuid.to_string(),
            name: peer.description.name().to_owned(),
            address: peer.description.address().to_owned(),
            fingerprint: peer.description.fingerprint().to_owned(),
            added: peer.added.as_millis(),
            reachable: view.status.reachable,
            last_heard: view.status.last_heard.map(Timestamp::as_millis),
            state,
            rtt_ms: view.status.rtt.map(|rtt| {
                // Rounded up: a loopback round trip is not 0 ms.
                u64::try_from(rtt.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
            }),
            feed_lag: lag.behind,
            feed_ahead: lag.ahead,
            queued: view.queued,
            backoff_ms: u64::try_from(view.status.backoff.as_millis()).unwrap_or(u64::MAX),
            equivocated: facts.frozen.contains(&uuid),
        }
    }

    /// This peer's health: identity, membership, peers by state, feeds, bus
    /// clients and uptime.
    pub(super) fn status_report(&self) -> Result<StatusReport, Failure> {
        let peers: Vec<RosterPeer> = self.roster().list().cloned().collect();
        let facts = self.feed_facts()?;
        let entries: Vec<PeerEntry> = peers.iter().map(|p| self.peer_entry(p, &facts)).collect();
        let roster: Vec<PeerId> = peers.iter().map(|p| p.description.uuid()).collect();
        let heard: BTreeSet<PeerId> = roster
            .iter()
            .filter(|peer| self.links.view(**peer).status.frontier_heard)
            .copied()
            .collect();
        let progress = health::progress(&facts.ours, &roster, &facts.theirs, &heard, &facts.frozen);
        let names: HashMap<PeerId, String> = peers
            .iter()
            .map(|p| (p.description.uuid(), p.description.name().to_owned()))
            .collect();
        let name = |peer: &PeerId| {
            if *peer == self.peer {
                Some("this peer".to_owned())
            } else {
                names.get(peer).cloned()
            }
        };
        let by_state =
            |state: PeerState| count(entries.iter().filter(|e| e.state == state).count());
        let me = self.links.whoami();
        let consumers = self.consumer_progress();
        // A newly joined peer knows every origin only once it took its
        // introducer's roster hand-off (CEP 7).
        let member = progress.member
            && consumers.iter().all(|c| c.caught_up)
            && !self.links.hand_off_pending();
        Ok(StatusReport {
            uuid: self.peer.to_string(),
            name: me.name,
            address: me.address,
            fingerprint: me.fingerprint,
            membership: Membership {
                state: if member {
                    MembershipState::Member
                } else {
                    MembershipState::Syncing
                },
                held: progress.held,
                known: progress.known,
                origins: progress
                    .origins
                    .iter()
                    .map(|(origin, held, known)| OriginProgress {
                        origin: origin.to_string(),
                        name: name(origin),
                        held: *held,
                        known: *known,
                    })
                    .collect(),
                waiting_for: progress.waiting_for.iter().map(PeerId::to_string).collect(),
                consumers,
            },
            peers: PeerCounts {
                total: count(entries.len()),
                up: by_state(PeerState::Up),
                syncing: by_state(PeerState::Syncing),
                down: by_state(PeerState::Down),
            },
            feeds: facts.summary,
            bus_clients: count(self.subscribers().len()),
            started: self.started.0.as_millis(),
            uptime_ms: u64::try_from(self.started.1.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
