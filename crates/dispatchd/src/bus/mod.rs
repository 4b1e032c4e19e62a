//! The local bus broker: who is connected, what each may receive, and fan-out
//! of published events to matching subscribers.
//!
//! The broker trusts nothing a client says about itself: the uid comes from
//! the kernel (`SO_PEERCRED`, read in `conn`), and the service name a client
//! gives is honoured only if the sysadmin granted it to that uid. Root is the
//! sysadmin and may speak for any service with every right.
//!
//! Memory is bounded: every subscriber has a queue of `queue_depth` frames;
//! a subscriber whose queue is full is disconnected with a `queue-full` error
//! and a log line, never waited for. Frames are encoded once and shared.
//!
//! The broker does not execute anything on behalf of a message: events are
//! data, consumers decide.

pub mod conn;
mod feeds;
mod inbox;
mod status;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use center_bus::{ErrorCode, Pattern, Reply, frame::encode_frame, pattern::any_matches};
use center_proto::{Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{
    grants::GrantStore,
    link::Links,
    roster::{Roster, RosterPeer},
};
pub use conn::serve;

/// Lifetime of a published event when the publisher gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// How the broker is sized; from the `[bus]` section of the config.
#[derive(Debug, Clone)]
pub struct BusLimits {
    pub max_frame: u32,
    pub queue_depth: usize,
    pub max_connections: usize,
    /// How long a new connection may take to say hello.
    pub hello_timeout: Duration,
    /// How long one frame may take to arrive once it has started.
    pub frame_timeout: Duration,
}

/// Something queued for a connection's writer task.
#[derive(Debug)]
enum Outgoing {
    /// An encoded frame (length prefix included), shared between subscribers.
    Frame(Arc<Vec<u8>>),
}

/// A connected, subscribed client as the broker sees it.
struct Subscriber {
    service: String,
    /// Who it is durably: `uid:service`. Its inbox cursor is kept under it.
    key: String,
    /// Its place in the inbox of kept direct messages, once it subscribed.
    inbox: Option<inbox::InboxState>,
    /// Its place in the feeds, once it subscribed.
    feed: Option<feeds::FeedState>,
    /// What it subscribed to (always inside `receive`).
    patterns: Vec<Pattern>,
    /// What its grant lets it receive.
    receive: Vec<Pattern>,
    /// Its writer task's queue.
    queue: mpsc::Sender<Outgoing>,
    /// Fired to make the connection send a last error frame and close.
    kick: Option<oneshot::Sender<Reply>>,
}

/// Shared state of the broker. One per dispatchd.
pub struct Broker {
    peer: PeerId,
    limits: BusLimits,
    /// Grants; the lock is held only for lookups and for the file write of an
    /// admin change (rare, and the write is small).
    grants: Mutex<GrantStore>,
    /// Links to other peers: the roster and the outbox of direct messages.
    links: Arc<Links>,
    /// The last `iat` given out: each publication gets a later one, so no two
    /// envelopes of this peer are identical (their digest identifies them).
    last_iat: Mutex<u64>,
    /// Live connections by connection number. Lock held only to look up or
    /// push frames with `try_send`, never across an await.
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    /// When the broker was made (dispatchd's start), for `status`.
    started: (Timestamp, std::time::Instant),
    /// `[membership] consumers`: local services full membership waits for.
    consumers: Vec<String>,
}

/// The result of handling one request: the reply to send back.
type Answer = Result<Reply, (ErrorCode, String)>;

/// What a connection may do, from its service's grant (root: anything).
pub(crate) struct Rights {
    pub receive: Vec<Pattern>,
    pub send: Vec<Pattern>,
    /// May use the membership operations (CEP 7).
    pub membership: bool,
}

impl Broker {
    pub fn new(limits: BusLimits, grants: GrantStore, links: Arc<Links>) -> Broker {
        Broker {
            peer: links.me(),
            limits,
            grants: Mutex::new(grants),
            links,
            last_iat: Mutex::new(0),
            subscribers: Mutex::new(HashMap::new()),
            started: (Timestamp::now(), std::time::Instant::now()),
            consumers: Vec::new(),
        }
    }

    /// Names the local services that must have handled every feed event
    /// before this peer counts as a full member (`[membership] consumers`).
    pub fn with_consumers(mut self, consumers: Vec<String>) -> Broker {
        self.consumers = consumers;
        self
    }

    pub fn limits(&self) -> &BusLimits {
        &self.limits
    }

    fn subscribers(&self) -> MutexGuard<'_, HashMap<u64, Subscriber>> {
        // A poisoned lock means a panic elsewhere; the map itself is still sound.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn roster(&self) -> MutexGuard<'_, Roster> {
        self.links.roster()
    }

    fn grant_store(&self) -> MutexGuard<'_, GrantStore> {
        self.grants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The rights of `service` spoken by `uid`, or why it is refused.
    fn rights(&self, uid: u32, service: &str) -> Result<Rights, (ErrorCode, String)> {
        center_bus::wire::check_service_name(service)
            .map_err(|reason| (ErrorCode::Malformed, reason))?;
        if uid == 0 {
            let all =
                vec![Pattern::parse("*").map_err(|err| (ErrorCode::Internal, err.to_string()))?];
            return Ok(Rights {
                receive: all.clone(),
                send: all,
                membership: true,
            });
        }
        match self.grant_store().get(service) {
            Some(grant) if grant.uid == uid => Ok(Rights {
                receive: grant.receive.clone(),
                send: grant.send.clone(),
                membership: grant.membership,
            }),
            Some(grant) => Err((
                ErrorCode::NotApproved,
                format!(
                    "service `{service}` is approved for uid {}, not for uid {uid}; the sysadmin can change that with \
                     `centerctl service approve {service} --user {uid} …`",
                    grant.uid
                ),
            )),
            None => Err((
                ErrorCode::NotApproved,
                format!(
                    "service `{service}` is not approved on this peer for uid {uid}; ask the sysadmin to run \
                     `centerctl service approve {service} --user {uid} --receive PATTERN… --send PATTERN…`"
                ),
            )),
        }
    }

    /// Registers a connection (not yet subscribed to anything).
    fn register(
        &self,
        id: u64,
        uid: u32,
        service: &str,
        receive: Vec<Pattern>,
        queue: mpsc::Sender<Outgoing>,
        kick: oneshot::Sender<Reply>,
    ) {
        let subscriber = Subscriber {
            service: service.to_owned(),
            key: format!("{uid}:{service}"),
            inbox: None,
            feed: None,
            patterns: Vec::new(),
            receive,
            queue,
            kick: Some(kick),
        };
        self.subscribers().insert(id, subscriber);
    }

    fn unregister(&self, id: u64) {
        self.subscribers().remove(&id);
    }

    /// Adds patterns to a connection's subscription if its grant covers them.
    fn subscribe(
        &self,
        id: u64,
        patterns: Vec<Pattern>,
        start: center_bus::Start,
    ) -> Result<(), (ErrorCode, String)> {
        let mut subscribers = self.subscribers();
        let Some(subscriber) = subscribers.get_mut(&id) else {
            return Err((ErrorCode::Internal, "connection is closing".to_owned()));
        };
        if let Some(outside) = patterns
            .iter()
            .find(|p| !center_bus::pattern::granted(&subscriber.receive, p))
        {
            return Err((
                ErrorCode::OutOfGrant,
                format!(
                    "service `{}` may not receive `{outside}`: its grant allows only [{}]",
                    subscriber.service,
                    join(&subscriber.receive)
                ),
            ));
        }
        for pattern in patterns {
            if !subscriber.patterns.contains(&pattern) {
                subscriber.patterns.push(pattern);
            }
        }
        self.start_inbox(subscriber)?;
        self.start_feeds(subscriber, start)?;
        Ok(())
    }

    /// Checks and builds the envelope of a publication.
    fn envelope(
        &self,
        send: &[Pattern],
        name: &str,
        data: Value,
        to: Option<&str>,
        ttl_ms: Option<u64>,
    ) -> Result<Envelope, (ErrorCode, String)> {
        let bad = |message: String| (ErrorCode::BadEvent, message);
        let name = EventName::parse(name).map_err(|err| bad(err.to_string()))?;
        if name.as_str().starts_with(crate::peer::RESERVED_PREFIX) {
            return Err(bad(format!(
                "names starting with `{}` are reserved for dispatchers",
                crate::peer::RESERVED_PREFIX
            )));
        }
        if !any_matches(send, name.as_str()) {
            return Err((
                ErrorCode::OutOfGrant,
                format!(
                    "may not send `{name}`: the grant allows only [{}]",
                    join(send)
                ),
            ));
        }
        let to = match to {
            None => Destination::Broadcast,
            Some(text) => text
                .parse::<Destination>()
                .map_err(|err| bad(format!("bad `to`: {err}")))?,
        };
        let ttl = ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis);
        if ttl.is_zero() || ttl > Limits::DEFAULT.max_lifetime {
            return Err(bad(format!(
                "lifetime must be between 1 ms and {} s",
                Limits::DEFAULT.max_lifetime.as_secs()
            )));
        }
        let iat = self.next_iat();
        let envelope = Envelope {
            name,
            meta: Meta {
                from: self.peer,
                to,
                iat,
                exp: iat.saturating_add(ttl),
            },
            data,
        };
        // The same strict rules a remote envelope meets (object data, integer
        // numbers, depth), so nothing leaves this peer that others would refuse.
        Envelope::from_value(envelope.to_value(), iat, &Limits::DEFAULT)
            .map_err(|err| bad(err.to_string()))
    }

    /// Delivers an envelope to every local subscriber that wants it; too-slow
    /// subscribers are disconnected. Returns how many received it.
    fn fan_out(&self, envelope: &Envelope) -> Result<usize, (ErrorCode, String)> {
        let body = Reply::Event {
            event: envelope.to_value(),
            seq: None,
            feed: None,
        }
        .to_bytes();
        if body.len() > self.limits.max_frame as usize {
            return Err((
                ErrorCode::BadEvent,
                format!(
                    "event of {} bytes is over the bus limit of {} bytes",
                    body.len(),
                    self.limits.max_frame
                ),
            ));
        }
        let frame =
            Arc::new(encode_frame(&body).map_err(|err| (ErrorCode::Internal, err.to_string()))?);
        let name = envelope.name.as_str();
        let mut delivered = 0;
        let mut subscribers = self.subscribers();
        for subscriber in subscribers.values_mut() {
            if !any_matches(&subscriber.patterns, name) || !any_matches(&subscriber.receive, name) {
                continue;
            }
            match subscriber.queue.try_send(Outgoing::Frame(frame.clone())) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let message = format!(
                        "disconnected: {} events were waiting unread; read faster or subscribe to less",
                        self.limits.queue_depth
                    );
                    tracing::warn!(
                        service = subscriber.service,
                        queue_depth = self.limits.queue_depth,
                        "slow subscriber disconnected"
                    );
                    kick(subscriber, ErrorCode::QueueFull, message);
                }
                // The connection is going away; it unregisters itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        Ok(delivered)
    }

    /// Handles a publication from a connection with rights `send`.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        send: &[Pattern],
        id: u64,
        name: &str,
        data: Value,
        to: Option<&str>,
        ttl_ms: Option<u64>,
        local: bool,
    ) -> Answer {
        if local && to.is_some() {
            return Err((
                ErrorCode::BadEvent,
                "a local broadcast has no `to`".to_owned(),
            ));
        }
        let envelope = self.envelope(send, name, data, to, ttl_ms)?;
        match envelope.meta.to {
            Destination::Broadcast if local => {}
            Destination::Broadcast => {
                // A feed event: signed into this peer's feed, on disk before
                // "ok"; subscribers here and on every peer get it from there.
                let Envelope {
                    name, data, meta, ..
                } = envelope;
                let appended =
                    self.links
                        .append_feed(name, data, meta.iat)
                        .map_err(|err| match err {
                            center_feed::StoreError::Event(err) => {
                                (ErrorCode::BadEvent, err.to_string())
                            }
                            err => {
                                tracing::error!(error = %err, "cannot append a feed event");
                                (ErrorCode::Internal, err.to_string())
                            }
                        })?;
                tracing::debug!(seq = appended.seq, "feed event appended");
                return Ok(ok_reply(id));
            }
            Destination::Peer(peer) if peer == self.peer => {}
            Destination::Peer(peer) if self.roster().get(&peer).is_some() => {
                // Durable before the publisher hears "ok"; delivered later.
                self.links.enqueue(peer, &envelope).map_err(|err| match err {
                    crate::link::EnqueueError::Full { .. } => {
                        tracing::warn!(%peer, reason = %err, "direct message refused: the outbox for that peer is full");
                        (ErrorCode::Unreachable, err.to_string())
                    }
                    crate::link::EnqueueError::Store(_) => {
                        tracing::error!(%peer, reason = %err, "cannot queue a direct message");
                        (ErrorCode::Internal, err.to_string())
                    }
                })?;
                return Ok(Reply::ok(id));
            }
            Destination::Peer(peer) => {
                return Err((
                    ErrorCode::Unreachable,
                    format!(
                        "peer {peer} is not in this peer's roster; direct messages reach only known peers"
                    ),
                ));
            }
        }
        self.fan_out(&envelope)?;
        Ok(Reply::ok(id))
    }

    /// The feeds as this peer holds them, per origin, with what each peer
    /// last said it holds.
    fn feed_status(&self) -> Result<center_bus::FeedStatus, (ErrorCode, String)> {
        let internal = |err: center_feed::StoreError| (ErrorCode::Internal, err.to_string());
        let (origins, frontiers, evidence) = {
            let feeds = self.links.feeds();
            (
                feeds.status().map_err(internal)?,
                feeds.peer_frontiers().map_err(internal)?,
                feeds.equivocations().map_err(internal)?,
            )
        };
        let names: HashMap<PeerId, String> = self
            .roster()
            .list()
            .map(|p| (p.description.uuid(), p.description.name().to_owned()))
            .collect();
        let name = |peer: &PeerId| {
            if *peer == self.peer {
                Some("this peer".to_owned())
            } else {
                names.get(peer).cloned()
            }
        };
        let origins = origins
            .into_iter()
            .map(|o| center_bus::OriginEntry {
                origin: o.origin.to_string(),
                name: name(&o.origin),
                head_seq: o.head_seq,
                head_hash: o.head_hash.to_hex(),
                oldest_seq: o.oldest_seq,
                events: o.events_stored,
                bytes: o.bytes_stored,
                forked: o.forked,
                peers: frontiers
                    .iter()
                    .filter(|f| f.origin == o.origin)
                    .map(|f| center_bus::PeerAck {
                        peer: f.peer.to_string(),
                        name: name(&f.peer),
                        seq: f.seq,
                        lag: o.head_seq.saturating_sub(f.seq),
                        updated: f.updated_at.as_millis(),
                    })
                    .collect(),
                conflicts: evidence
                    .iter()
                    .filter(|e| e.origin == o.origin)
                    .map(|e| center_bus::FeedConflict {
                        seq: e.seq,
                        held: e.first_hash.to_hex(),
                        other: e.second_hash.to_hex(),
                        resolved: e.resolved,
                    })
                    .collect(),
            })
            .collect();
        Ok(center_bus::FeedStatus { origins })
    }

    /// Handles a sysadmin request from connection `conn`; the caller has
    /// checked that uid is 0.
    fn admin(&self, conn: u64, id: u64, op: center_bus::AdminOp) -> Answer {
        use center_bus::AdminOp;
        let internal = |err: crate::grants::GrantError| {
            tracing::error!(error = %err, "grant change failed");
            (ErrorCode::Internal, err.to_string())
        };
        match op {
            AdminOp::FeedResolve { origin, keep } => {
                let bad = |message: String| (ErrorCode::BadEvent, message);
                let origin = origin
                    .parse::<PeerId>()
                    .map_err(|err| bad(format!("bad origin: {err}")))?;
                let keep = keep
                    .parse::<center_feed::EventHash>()
                    .map_err(|err| bad(format!("bad hash to keep: {err}")))?;
                let resolution =
                    self.links
                        .resolve_fork(origin, keep)
                        .map_err(|err| match err {
                            center_feed::StoreError::NotForked { .. }
                            | center_feed::StoreError::UnknownEvent { .. }
                            | center_feed::StoreError::PredecessorPruned { .. }
                            | center_feed::StoreError::DoesNotChain { .. } => bad(err.to_string()),
                            err => {
                                tracing::error!(error = %err, "cannot resolve a fork");
                                (ErrorCode::Internal, err.to_string())
                            }
                        })?;
                tracing::warn!(%origin, keep = %keep, ?resolution, "the sysadmin resolved a feed fork");
                Ok(Reply::ok(id).with_feeds(self.feed_status()?))
            }
            AdminOp::RotateKeys {} => {
                let rotated = self.links.rotate_keys().map_err(|err| {
                    tracing::error!(error = err, "key rotation failed");
                    (ErrorCode::Internal, err)
                })?;
                tracing::info!(seq = rotated.seq, "the sysadmin rotated this peer's keys");
                Ok(Reply::ok(id))
            }
            AdminOp::FeedStatus {} => Ok(Reply::ok(id).with_feeds(self.feed_status()?)),
            AdminOp::List {} => Ok(Reply::ok(id).with_grants(self.grant_store().list())),
            AdminOp::PeerList {} => {
                let peers: Vec<RosterPeer> = self.roster().list().cloned().collect();
                Ok(Reply::ok(id).with_peers(self.peer_entries(&peers)?))
            }
            AdminOp::Status {} => Ok(Reply::ok(id).with_status(self.status_report()?)),
            AdminOp::PeerAdd {
                description,
                announced,
            } => {
                let bytes = serde_json::to_vec(&description)
                    .map_err(|err| (ErrorCode::Malformed, err.to_string()))?;
                let added = if announced {
                    self.roster().add_announced(&bytes)
                } else {
                    self.roster().add(&bytes)
                };
                let (added, peer) = added.map_err(|err| match err {
                    crate::roster::RosterError::Write { .. }
                    | crate::roster::RosterError::Read { .. } => {
                        tracing::error!(error = %err, "roster change failed");
                        (ErrorCode::Internal, err.to_string())
                    }
                    _ => (ErrorCode::BadEvent, err.to_string()),
                })?;
                self.links.joined(&peer.description.uuid());
                self.links.keep_connected(peer.description.uuid());
                tracing::info!(
                    peer = %peer.description.uuid(),
                    name = peer.description.name(),
                    address = peer.description.address(),
                    fingerprint = peer.description.fingerprint(),
                    outcome = ?added,
                    "peer added to the roster"
                );
                Ok(Reply::ok(id).with_peers(self.peer_entries(std::slice::from_ref(&peer))?))
            }
            AdminOp::PeerRemove { uuid, until } => {
                let uuid = uuid
                    .parse::<PeerId>()
                    .map_err(|err| (ErrorCode::BadEvent, format!("bad uuid: {err}")))?;
                // Already departed: the same answer again (idempotent).
                if let Some(end) = self.roster().departed_end(&uuid) {
                    return Ok(Reply::ok(id).with_value(serde_json::json!({ "until": end })));
                }
                let until = match until {
                    Some(until) => until,
                    None => self
                        .links
                        .feeds()
                        .frontier()
                        .map_err(|err| (ErrorCode::Internal, format!("feeds: {err}")))?
                        .get(&uuid)
                        .map_or(0, |head| head.seq),
                };
                let gone = self.roster().remove(&uuid, until).map_err(|err| {
                    tracing::error!(error = %err, "roster change failed");
                    (ErrorCode::Internal, err.to_string())
                })?;
                let Some(gone) = gone else {
                    return Err((
                        ErrorCode::NotFound,
                        format!("peer {uuid} is not in this peer's roster"),
                    ));
                };
                self.links.removed(&uuid);
                tracing::warn!(
                    peer = %uuid,
                    name = gone.description.name(),
                    until,
                    "peer removed from the roster: no more frames, and no feed events after `until`, are taken from it"
                );
                Ok(Reply::ok(id).with_value(serde_json::json!({ "until": until })))
            }
            AdminOp::PeerDescriptions {} => {
                let entries = {
                    let roster = self.roster();
                    let mut entries: Vec<serde_json::Value> = roster
                        .list()
                        .filter_map(|p| roster.export_entry(&p.description.uuid()))
                        .collect();
                    entries.extend(roster.export_departed());
                    entries
                };
                Ok(Reply::ok(id).with_value(serde_json::Value::Array(entries)))
            }
            AdminOp::PeerImport { entry } => {
                let (added, peer) =
                    self.roster()
                        .import_entry(&entry)
                        .map_err(|err| match err {
                            crate::roster::RosterError::Write { .. }
                            | crate::roster::RosterError::Read { .. } => {
                                tracing::error!(error = %err, "roster change failed");
                                (ErrorCode::Internal, err.to_string())
                            }
                            _ => (ErrorCode::BadEvent, err.to_string()),
                        })?;
                let uuid = peer.description.uuid();
                self.links.joined(&uuid);
                self.links.keep_connected(uuid);
                self.links.frontiers_stale();
                tracing::info!(
                    peer = %uuid,
                    name = peer.description.name(),
                    retired_keys = peer.retired.len(),
                    outcome = ?added,
                    "peer imported into the roster"
                );
                Ok(Reply::ok(id))
            }
            AdminOp::HandOffTaken {} => {
                self.links.set_hand_off_pending(false);
                tracing::info!("roster hand-off taken: membership counts every origin it named");
                Ok(Reply::ok(id))
            }
            AdminOp::DhtRecord {} => {
                let record = crate::link::join::dht_record(&self.links).map_err(|err| {
                    tracing::error!(error = err.as_str(), "cannot make the DHT record");
                    (ErrorCode::Internal, err)
                })?;
                Ok(Reply::ok(id).with_value(record))
            }
            AdminOp::PeerJoin { .. } | AdminOp::PeerWelcome { .. } => Err((
                ErrorCode::Internal,
                "this operation is answered by the connection task".to_owned(),
            )),
            AdminOp::Approve { grant } => {
                center_bus::wire::check_service_name(&grant.service)
                    .map_err(|reason| (ErrorCode::Malformed, reason))?;
                let service = grant.service.clone();
                tracing::info!(service, uid = grant.uid, receive = %join(&grant.receive), send = %join(&grant.send), "service approved");
                self.grant_store()
                    .approve(grant.clone())
                    .map_err(internal)?;
                // Direct messages arriving from now on wait for this service.
                self.keep_from_now(&format!("{}:{}", grant.uid, grant.service));
                self.kick_service(
                    &service,
                    conn,
                    "the sysadmin changed this service's grant; reconnect to use it",
                );
                Ok(Reply::ok(id).with_grants(vec![grant]))
            }
            AdminOp::Revoke { service } => {
                if !self.grant_store().revoke(&service).map_err(internal)? {
                    return Err((
                        ErrorCode::NotFound,
                        format!("service `{service}` has no grant on this peer"),
                    ));
                }
                tracing::info!(service, "service revoked");
                self.kick_service(&service, conn, "the sysadmin revoked this service's grant");
                Ok(Reply::ok(id))
            }
        }
    }

    /// The sysadmin operations that talk to another peer: a join request
    /// sent, or a join approved (CEP 7). The caller has checked that uid
    /// is 0.
    pub async fn admin_remote(&self, id: u64, op: center_bus::AdminOp) -> Answer {
        use crate::link::join;
        use center_bus::AdminOp;
        let bad = |message: String| (ErrorCode::BadEvent, message);
        let uuid = |text: &str| {
            text.parse::<PeerId>()
                .map_err(|err| bad(format!("bad uuid `{text}`: {err}")))
        };
        let result = match op {
            AdminOp::PeerJoin {
                address,
                uuid: to,
                fingerprint,
                admin,
                secret_file,
                secret,
            } => {
                let request = join::Request {
                    address,
                    uuid: uuid(&to)?,
                    fingerprint,
                    admin,
                    secret_file,
                    secret,
                };
                join::send_request(&self.links, request).await
            }
            AdminOp::PeerWelcome { uuid: to } => join::send_welcome(&self.links, uuid(&to)?).await,
            _ => Err("not an operation that talks to another peer".to_owned()),
        };
        result.map_err(|err| {
            tracing::warn!(error = err.as_str(), "join message not sent");
            (ErrorCode::Unreachable, err)
        })?;
        Ok(Reply::ok(id))
    }

    /// Now, or one millisecond after the last `iat` given out if the clock
    /// has not moved on.
    fn next_iat(&self) -> Timestamp {
        let mut last = self
            .last_iat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Timestamp::now().as_millis().max(*last + 1);
        *last = now;
        Timestamp::from_millis(now)
    }

    /// Whether a connection may still act (registered and not kicked).
    fn is_live(&self, id: u64) -> bool {
        self.subscribers()
            .get(&id)
            .is_some_and(|s| s.kick.is_some())
    }

    /// Closes one connection with a last error frame.
    fn kick_conn(&self, id: u64, code: ErrorCode, message: String) {
        if let Some(subscriber) = self.subscribers().get_mut(&id) {
            kick(subscriber, code, message);
        }
    }

    /// Closes every connection speaking for `service` (root's included), so
    /// new rights take effect at once; except `requester`, the connection
    /// that asked for the change, which must get its answer.
    fn kick_service(&self, service: &str, requester: u64, message: &str) {
        let mut subscribers = self.subscribers();
        let affected = subscribers
            .iter_mut()
            .filter(|(id, s)| **id != requester && s.service == service);
        for (_, subscriber) in affected {
            kick(subscriber, ErrorCode::GrantChanged, message.to_owned());
        }
    }
}

fn ok_reply(id: u64) -> Reply {
    Reply::ok(id)
}

fn kick(subscriber: &mut Subscriber, code: ErrorCode, message: String) {
    subscriber.patterns.clear();
    if let Some(kick) = subscriber.kick.take() {
        // The connection may already be gone; then there is nobody to tell.
        let _ = kick.send(Reply::Error {
            id: None,
            code,
            message,
        });
    }
}

fn join(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(Pattern::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
