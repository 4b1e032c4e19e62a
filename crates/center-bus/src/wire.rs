//! The bus wire types: every frame a client sends (`Request`) and every frame
//! the broker sends (`Reply`), as JSON objects tagged by `type` (CEP 4).
//!
//! These types are the bus interface; `dispatchd` and every service link them
//! from here and nowhere else. Unknown fields are refused so that a typo in a
//! client is an error, not a silently ignored option.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Pattern;

/// The bus protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from a client to the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// First frame on every connection: which service is speaking.
    Hello { service: String, protocol: u32 },
    /// Adds patterns to this connection's subscription. `start` says where
    /// a subscriber that never subscribed before begins in the feeds (CEP
    /// 6); afterwards its cursors decide.
    Subscribe {
        id: u64,
        patterns: Vec<Pattern>,
        #[serde(default, skip_serializing_if = "Start::is_oldest")]
        start: Start,
    },
    /// Publishes an event. Without `to` it is a feed event: appended to this
    /// peer's feed, signed, replicated to every peer, and acknowledged once
    /// on disk; with `local`, a broadcast to this peer's subscribers only,
    /// kept nowhere. With `to`, a direct message to that peer (a UUID).
    Publish {
        id: u64,
        name: String,
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Lifetime in milliseconds; the broker's default when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "is_false")]
        local: bool,
    },
    /// Grant management; only root may send it.
    Admin { id: u64, op: AdminOp },
    /// The subscriber has handled every event up to and including `seq`
    /// (events that carry one: direct messages from other peers). No reply.
    Ack { seq: u64 },
    /// The subscriber has handled the feed events of `origin` up to and
    /// including `seq`. No reply.
    FeedAck { origin: String, seq: u64 },
}

/// Where a new subscriber starts in the feeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// From the oldest event this peer retains (every account ever made).
    #[default]
    Oldest,
    /// Only events stored after the subscription.
    New,
}

impl Start {
    fn is_oldest(&self) -> bool {
        *self == Start::Oldest
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Where a feed event sits: its origin peer and its sequence number there.
/// Consumers apply each (origin, seq) once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedPosition {
    pub origin: String,
    pub seq: u64,
}

/// The feeds as this peer holds them (`centerctl feed status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedStatus {
    pub origins: Vec<OriginEntry>,
}

/// One origin's feed on this peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginEntry {
    pub origin: String,
    /// The roster's name for it (or "this peer"), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Highest contiguous sequence number stored, and its hash.
    pub head_seq: u64,
    pub head_hash: String,
    /// Oldest sequence number still retained.
    pub oldest_seq: u64,
    pub events: u64,
    pub bytes: u64,
    /// Two validly signed events for one sequence number were seen: the
    /// origin is frozen until the sysadmin decides.
    pub forked: bool,
    /// What each peer told us it holds of this origin.
    pub peers: Vec<PeerAck>,
    /// Evidence of equivocation: pairs of events it signed for one seq.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<FeedConflict>,
}

/// Two events one origin signed that contradict each other (CEP 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConflict {
    /// The seq of the contradicting event.
    pub seq: u64,
    /// The hash of the event this peer held.
    pub held: String,
    /// The hash of the event that contradicts it.
    pub other: String,
    /// Whether the sysadmin has resolved it.
    pub resolved: bool,
}

/// How far one peer holds one origin's feed, as it last told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAck {
    pub peer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub seq: u64,
    /// Our head minus its `seq` (0 when it has all we have).
    pub lag: u64,
    /// When it told us, in ms since the Unix epoch.
    pub updated: u64,
}

/// What the sysadmin can do to grants over the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminOp {
    /// Creates or replaces the grant of `grant.service`.
    Approve { grant: Grant },
    /// Removes a service's grant; its connections are closed.
    Revoke { service: String },
    /// Lists every grant.
    List {},
    /// Verifies a peer's public description (what `centerctl peer whoami
    /// --json` printed on that peer) and trusts it (CEP 5).
    PeerAdd {
        description: Value,
        /// Trusted on another member's announcement, not vetted by this
        /// peer's sysadmin: its feed budget starts small and grows with
        /// its time in the roster (CEP 6, "Budgets").
        #[serde(default, skip_serializing_if = "is_false")]
        announced: bool,
    },
    /// Lists the roster.
    PeerList {},
    /// The feeds this peer holds, per origin (CEP 6).
    FeedStatus {},
    /// Resolves the fork of an origin frozen by an equivocation: `keep` is
    /// the hash of the event to keep at the conflicting seq (CEP 6).
    FeedResolve { origin: String, keep: String },
    /// Asks to join the network through the peer at `address` (CEP 7):
    /// the dispatcher signs the invitation's secret with this peer's key and
    /// sends `new-peer-server` (`NEW`), and from then on accepts one
    /// `add-peer-server` (`GPG`) from `uuid` if it is signed by the
    /// certificate with `fingerprint`.
    PeerJoin {
        address: String,
        uuid: String,
        fingerprint: String,
        admin: String,
        secret_file: String,
        secret: String,
    },
    /// Sends `add-peer-server` (`GPG`) to a peer in the roster: this peer
    /// approved its join request (CEP 7).
    PeerWelcome { uuid: String },
    /// Removes a peer from the roster: this peer stops talking to it and
    /// refuses its feed events after `until` (its `peer.leave`; when
    /// absent, the last event this peer holds of it), keeping the earlier
    /// ones valid for everyone (CEP 7, "Departed origins"). Answered with
    /// `value` `{"until": N}`, the end used; again for a departed peer.
    PeerRemove {
        uuid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
    /// The roster's entries (each peer's description and the keys it
    /// retired by rotation), for a join's roster hand-off (answered in
    /// `value`, a list).
    PeerDescriptions {},
    /// Trusts a peer from an entry another peer's `peer-descriptions`
    /// gave (its description and retired keys, all verified): the roster
    /// hand-off of a join (CEP 7).
    PeerImport { entry: Value },
    /// peerd took the roster hand-off of the peer this peer joined
    /// through (CEP 7): until then a newly joined peer does not know every
    /// origin, and is not a member.
    HandOffTaken {},
    /// This peer's current description with a signed address record for
    /// the DHT (answered in `value`; CEP 7).
    DhtRecord {},
    /// This peer's health on one screen: who it is, whether it is a
    /// member or still syncing the feeds, its peers by state, its feeds,
    /// its bus clients and uptime (CEP 7, "Heartbeats and peer state").
    Status {},
    /// Rotates this peer's keys (CEP 7): a new OpenPGP certificate and Olm
    /// account, announced by a `peer.rotate` event in this peer's feed
    /// signed by the old key. Answers once the new keys are in use.
    RotateKeys {},
}

/// How a roster peer is doing, as this peer sees it (CEP 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// Connected, heard from within three keepalive intervals, and neither
    /// side lacks feed events the other holds.
    Up,
    /// Connected and heard from, but the feeds differ (or its frontier has
    /// not come yet on this connection).
    Syncing,
    /// Not connected, or silent for three keepalive intervals.
    #[default]
    Down,
}

impl PeerState {
    /// The name on the wire and in tables: `up`, `syncing` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Syncing => "syncing",
            PeerState::Down => "down",
        }
    }
}

/// One trusted peer as the roster shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub uuid: String,
    pub name: String,
    pub address: String,
    /// The OpenPGP fingerprint of its certificate.
    pub fingerprint: String,
    /// When it was added, in ms since the Unix epoch.
    pub added: u64,
    /// Whether the last delivery attempt got through (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// When an authenticated frame last came from it, in ms (null: never
    /// since dispatchd started).
    #[serde(default)]
    pub last_heard: Option<u64>,
    /// Up, syncing or down (CEP 7).
    #[serde(default)]
    pub state: PeerState,
    /// The round-trip time of the last answered heartbeat, in ms rounded
    /// up (absent: none answered yet on this connection's peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
    /// Feed events this peer holds that it lacks, by the last frontier it
    /// sent (summed over origins, in sequence numbers).
    #[serde(default)]
    pub feed_lag: u64,
    /// Feed events it holds that this peer lacks, by the same frontier.
    #[serde(default)]
    pub feed_ahead: u64,
    /// Direct messages waiting for it.
    #[serde(default)]
    pub queued: u64,
    /// The current retry delay after failures, in ms.
    #[serde(default)]
    pub backoff_ms: u64,
    /// Whether it signed two different feed events for one sequence
    /// number (equivocation, CEP 6); its feed is frozen here.
    #[serde(default, skip_serializing_if = "is_false")]
    pub equivocated: bool,
}

/// This peer's health (`centerctl status`, CEP 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub uuid: String,
    pub name: String,
    pub address: String,
    /// The OpenPGP fingerprint of its certificate.
    pub fingerprint: String,
    pub membership: Membership,
    pub peers: PeerCounts,
    pub feeds: FeedSummary,
    /// Connections on the local bus now, this one included.
    pub bus_clients: u64,
    /// When dispatchd started, in ms since the Unix epoch.
    pub started: u64,
    pub uptime_ms: u64,
}

/// Whether this peer holds every feed event it knows of (CEP 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipState {
    /// Every roster peer's frontier came since dispatchd started, and this
    /// peer holds all they hold.
    Member,
    /// Still catching up, or still waiting for a peer's frontier.
    Syncing,
}

impl MembershipState {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipState::Member => "member",
            MembershipState::Syncing => "syncing",
        }
    }
}

/// This peer's place in the feeds: what it holds against what its peers'
/// frontiers say exists, in sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub state: MembershipState,
    /// Summed over the origins below.
    pub held: u64,
    pub known: u64,
    /// Per origin, ordered by origin (frozen origins left out).
    pub origins: Vec<OriginProgress>,
    /// Roster peers (UUIDs) whose frontier has not come since dispatchd
    /// started; while any is listed the state is `syncing`.
    pub waiting_for: Vec<String>,
    /// The local services named in `[membership] consumers`: while any has
    /// not handled every event this peer holds, the state is `syncing`.
    #[serde(default)]
    pub consumers: Vec<ConsumerProgress>,
}

/// One local service that full membership waits for (CEP 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerProgress {
    pub service: String,
    /// It is connected and subscribed to the feeds.
    pub connected: bool,
    /// Events sent to it and not yet acknowledged.
    pub in_flight: u64,
    /// Stored events above its cursors it has not been offered yet (events
    /// its subscription does not take included): what is left to look at.
    pub pending: u64,
    /// Connected, nothing in flight and nothing pending.
    pub caught_up: bool,
}

/// One origin: the head this peer holds and the highest any peer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginProgress {
    pub origin: String,
    /// The roster's name for it (or "this peer"), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub held: u64,
    pub known: u64,
}

/// Roster peers by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCounts {
    pub total: u64,
    pub up: u64,
    pub syncing: u64,
    pub down: u64,
}

/// The feeds in a few numbers (`feed-status` has the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSummary {
    pub origins: u64,
    pub events: u64,
    pub bytes: u64,
    /// Origins frozen by an equivocation.
    pub forked: u64,
    /// Evidence of equivocations the sysadmin has not resolved.
    pub conflicts: u64,
}

/// What one service may do: which Unix account may speak for it, which event
/// names it may receive and which it may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub service: String,
    pub uid: u32,
    pub receive: Vec<Pattern>,
    pub send: Vec<Pattern>,
    /// May change the roster (the membership operations of CEP 7:
    /// `peer-add`, `peer-remove`, `peer-list`, `peer-descriptions`,
    /// `peer-join`, `peer-welcome`, `dht-record`): granted to peerd, which
    /// does not run as root.
    #[serde(default, skip_serializing_if = "is_false")]
    pub membership: bool,
}

impl AdminOp {
    /// Whether a service granted `membership` may send this operation.
    pub fn is_membership(&self) -> bool {
        matches!(
            self,
            AdminOp::PeerAdd { .. }
                | AdminOp::PeerRemove { .. }
                | AdminOp::PeerList {}
                | AdminOp::PeerDescriptions {}
                | AdminOp::PeerImport { .. }
                | AdminOp::HandOffTaken {}
                | AdminOp::PeerJoin { .. }
                | AdminOp::PeerWelcome { .. }
                | AdminOp::DhtRecord {}
        )
    }
}

/// A frame from the broker to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    /// Answer to `hello`: who the kernel says is speaking and what it may do.
    Welcome {
        service: String,
        uid: u32,
        pid: i32,
        /// This peer's UUID.
        peer: String,
        max_frame: u32,
        receive: Vec<Pattern>,
        send: Vec<Pattern>,
    },
    /// A request succeeded.
    Ok {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grants: Option<Vec<Grant>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peers: Option<Vec<PeerEntry>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feeds: Option<FeedStatus>,
        /// The answer of operations that return a document of their own
        /// (`peer-descriptions`, `dht-record`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
        /// Boxed: it is large, and other replies are many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Box<StatusReport>>,
    },
    /// An event for this subscriber: an RFC envelope (CEP 2). A direct
    /// message from another peer carries `seq`: it is kept for this
    /// subscriber until acknowledged with `ack`. A feed event carries
    /// `feed`: it comes again until acknowledged with `feed-ack`.
    Event {
        event: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<FeedPosition>,
    },
    /// A request failed, or the connection is about to be closed.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
}

/// Machine-readable reason carried by every error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or not a valid request.
    Malformed,
    /// The frame is over the size limit; the connection is closed.
    Oversize,
    /// The first frame was not `hello`, or `hello` came twice.
    Protocol,
    /// The service has no grant for this Unix account.
    NotApproved,
    /// The grant does not allow this subscription or publication.
    OutOfGrant,
    /// Only root may do this.
    NotRoot,
    /// The event itself is invalid (name, data, lifetime).
    BadEvent,
    /// The destination peer cannot be reached from here.
    Unreachable,
    /// The subscriber did not keep up; it is disconnected.
    QueueFull,
    /// The broker is at its connection limit.
    TooManyConnections,
    /// The sysadmin changed this service's grant; reconnect to pick it up.
    GrantChanged,
    /// The thing named does not exist (e.g. revoking an unknown grant).
    NotFound,
    /// The client took too long.
    Timeout,
    /// The broker could not complete the request (e.g. disk error).
    Internal,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        f.write_str(name.as_deref().unwrap_or("unknown"))
    }
}

impl ErrorCode {
    /// Whether retrying the same request on a new connection can succeed.
    /// Refusals by policy are final; the client surfaces them at once.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorCode::NotApproved
                | ErrorCode::OutOfGrant
                | ErrorCode::NotRoot
                | ErrorCode::BadEvent
                | ErrorCode::Unreachable
                | ErrorCode::Malformed
                | ErrorCode::Protocol
                | ErrorCode::Oversize
        )
    }
}

pub use center_proto::name::check_service_name;

impl Request {
    /// Encodes the request as a frame body.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail: every key is a string.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Reply {
    /// A bare `ok` to request `id`.
    pub fn ok(id: u64) -> Reply {
        Reply::Ok {
            id,
            grants: None,
            peers: None,
            feeds: None,
            value: None,
            status: None,
        }
    }

    /// Adds the grants to an `ok` (`list`); other replies are unchanged.
    pub fn with_grants(mut self, list: Vec<Grant>) -> Reply {
        if let Reply::Ok { grants, .. } = &mut self {
            *grants = Some(list);
        }
        self
    }

    /// Adds roster entries to an `ok` (`peer-list`, `peer-add`).
    pub fn with_peers(mut self, list: Vec<PeerEntry>) -> Reply {
        if let Reply::Ok { peers, .. } = &mut self {
            *peers = Some(list);
        }
        self
    }

    /// Adds the feed status to an `ok` (`feed-status`, `feed-resolve`).
    pub fn with_feeds(mut self, status: FeedStatus) -> Reply {
        if let Reply::Ok { feeds, .. } = &mut self {
            *feeds = Some(status);
        }
        self
    }

    /// Adds a document of its own to an `ok` (`peer-descriptions`,
    /// `dht-record`).
    pub fn with_value(mut self, document: Value) -> Reply {
        if let Reply::Ok { value, .. } = &mut self {
            *value = Some(document);
        }
        self
    }

    /// Adds this peer's status to an `ok` (`status`).
    pub fn with_status(mut self, report: StatusReport) -> Reply {
        if let Reply::Ok { status, .. } = &mut self {
            *status = Some(Box::new(report));
        }
        self
    }

    /// Encodes the reply as a frame body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
