//! Links to other peers (CEP 5): one connection per peer pair, used both
//! ways and kept alive; direct messages out of a durable outbox, one batch in
//! flight per peer; the listener that accepts connections.
//!
//! Ownership: `Links` is shared (`Arc`) by the broker (which enqueues), the
//! TCP listener, every connection's tasks, and one outbound task per peer
//! (spawned the first time something waits for that peer). The roster, the
//! identity with its Olm sessions, the store, the connection table and the
//! session-setup table each sit behind their own `std` mutex, never held
//! across an await; when two are held, crypto is taken before roster, never
//! the other way. Shutdown: the tasks end with the runtime; nothing
//! acknowledged lives only in memory.

mod conn;
mod feeds;
mod inbound;
pub mod join;
mod outbound;
pub(crate) mod quiet;
mod rotate;
pub mod store;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock, Weak},
    time::Duration,
};

use center_identity::{Identity, PeerKeys};
use center_proto::{Envelope, Limits, PeerId, Timestamp};
use tokio::sync::Notify;

use crate::{
    bus::Broker,
    peer::{Receiver, Refusal, ReplayCache, SaveSessions, Sessions, Verified},
    roster::Roster,
};
use conn::ConnHandle;
pub use feeds::prune_periodically;
pub use inbound::serve;
pub use rotate::{RotatedKeys, reconcile};
use store::Store;

/// Envelopes per batch; one batch in flight per peer.
pub const BATCH: usize = 50;
/// Digests of GPG frames remembered against replay.
const REPLAY_CAPACITY: usize = 100_000;
/// The most of them from one sender: heartbeats at a 1 s keepalive with a
/// 5-minute lifetime leave 600 (pings and pongs), so only a peer sending
/// far faster than any dispatcher does reaches it.
const REPLAY_SHARE: usize = 4096;

/// What the crypto needs, under one lock.
pub struct Crypto {
    pub identity: Identity,
    pub sessions: Sessions,
    pub replay: ReplayCache,
}

/// How the link to one peer is doing, for `centerctl peer list`. Kept in
/// memory: it starts empty each time dispatchd starts.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    /// Whether the last attempt to deliver got through.
    pub reachable: Option<bool>,
    /// When an authenticated frame last came from that peer.
    pub last_heard: Option<Timestamp>,
    /// The same, on the monotonic clock (for how long it has been silent).
    pub heard_at: Option<tokio::time::Instant>,
    /// The round-trip time of the last answered heartbeat (CEP 7).
    pub rtt: Option<Duration>,
    /// Its feed frontier has come since dispatchd started.
    pub frontier_heard: bool,
    /// The current retry delay after failures.
    pub backoff: Duration,
}

/// One roster peer as the links see it now (for the peer states of CEP 7).
#[derive(Debug, Clone)]
pub struct LinkView {
    pub status: LinkStatus,
    /// Direct messages waiting for it.
    pub queued: u64,
    /// A connection to it is open.
    pub connected: bool,
    /// Its frontier has arrived on that connection.
    pub frontier_on_connection: bool,
}

/// Who this peer is, for `centerctl status`.
#[derive(Debug, Clone)]
pub struct Whoami {
    pub name: String,
    pub address: String,
    pub fingerprint: String,
}

/// What wakes a peer's outbound task. Each has one waiter (that task), so
/// `notify_one` keeps a wake-up that comes while it is busy.
#[derive(Default)]
struct Signals {
    /// New work, or the peer was heard from.
    work: Notify,
    /// The peer acknowledged something.
    acked: Notify,
    /// Bumped when an Olm session with the peer appears (several tasks
    /// wait for it: the outbound task and the feed exchange).
    session: tokio::sync::watch::Sender<u64>,
}

/// Where starting an Olm session with one peer stands.
#[derive(Default)]
struct Setup {
    /// Our outstanding key request, if any (lower UUID only).
    request: Option<String>,
    /// When we last asked for or offered a key, to pace retries.
    last_attempt: Option<tokio::time::Instant>,
    /// When we last started a session (lower UUID only).
    started: Option<tokio::time::Instant>,
}

/// Shared state of every link.
pub struct Links {
    me: PeerId,
    roster: Mutex<Roster>,
    crypto: Mutex<Crypto>,
    store: Mutex<Store>,
    signals: Mutex<HashMap<PeerId, Arc<Signals>>>,
    status: Mutex<HashMap<PeerId, LinkStatus>>,
    /// The one live connection per peer.
    conns: Mutex<HashMap<PeerId, Arc<ConnHandle>>>,
    setup: Mutex<HashMap<PeerId, Setup>>,
    /// Where received direct messages go; set once at start.
    broker: OnceLock<Weak<Broker>>,
    /// Ping after this much silence; a connection silent three times as
    /// long is closed.
    keepalive: Duration,
    /// The feeds (CEP 6); taken before crypto and roster, never after.
    feeds: Mutex<center_feed::FeedStore>,
    /// Bumped on every change of the feed store.
    feed_changes: tokio::sync::watch::Sender<u64>,
    /// This peer's own public keys, to check its own events relayed back
    /// (with the keys it retired since this process started).
    own_keys: Mutex<center_feed::OriginKeys>,
    /// Our latest `peer.rotate` events, which every hello carries (CEP 7).
    own_rotations: Mutex<Vec<serde_json::Value>>,
    /// `description.json`, rewritten when our keys rotate.
    description_file: Option<std::path::PathBuf>,
    /// Direct messages that may wait for one peer.
    max_queued: u64,
    /// The `add-peer-server` answers this peer waits for (CEP 7).
    joins: Mutex<join::Pending>,
    /// A join was welcomed and peerd has not yet taken the introducer's
    /// roster hand-off: this peer does not know every origin yet, so it is
    /// not a member (set on the welcome, cleared by `hand-off-taken`).
    hand_off_pending: std::sync::atomic::AtomicBool,
}

/// Why a direct message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(
        "{queued} direct messages already wait for peer {peer} (the limit); it is down or slow: publish again once it has caught up"
    )]
    Full { peer: PeerId, queued: u64 },
    #[error("cannot queue: {0}")]
    Store(String),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Links {
    pub fn new(
        identity: Identity,
        sessions: Sessions,
        roster: Roster,
        store: Store,
        feeds: center_feed::FeedStore,
        keepalive: Duration,
    ) -> Result<Links, String> {
        let own_keys = identity
            .describe()
            .map(|description| PeerKeys::from_description(&description))
            .map_err(|err| format!("cannot describe this peer: {err}"))?;
        Ok(Links {
            me: identity.uuid(),
            roster: Mutex::new(roster),
            crypto: Mutex::new(Crypto {
                identity,
                sessions,
                replay: ReplayCache::new(REPLAY_CAPACITY, REPLAY_SHARE),
            }),
            store: Mutex::new(store),
            signals: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            setup: Mutex::new(HashMap::new()),
            broker: OnceLock::new(),
            keepalive,
            feeds: Mutex::new(feeds),
            feed_changes: tokio::sync::watch::Sender::new(0),
            own_keys: Mutex::new(own_keys.into()),
            own_rotations: Mutex::new(Vec::new()),
            description_file: None,
            max_queued: u64::MAX,
            joins: Mutex::new(join::Pending::none()),
            hand_off_pending: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets where the join answers this peer waits for are kept.
    pub fn with_joins(mut self, joins: join::Pending) -> Links {
        self.joins = Mutex::new(joins);
        self
    }

    /// The peer is in the roster now: its join answer is no longer awaited.
    pub fn joined(&self, peer: &PeerId) {
        if let Err(err) = lock(&self.joins).forget(peer) {
            tracing::error!(%peer, error = err.as_str(), "cannot forget a join request");
        }
    }

    /// The peer could not be reached at its address: a local
    /// `peer.unreachable` event, for peerd to look for a newer one.
    pub fn unreachable(&self, peer: PeerId, reason: &str) {
        let address = self
            .roster()
            .get(&peer)
            .map(|p| p.description.address().to_owned());
        if let (Some(broker), Some(address)) = (self.broker(), address) {
            broker.raise_local(
                "peer.unreachable",
                serde_json::json!({ "peer": peer.to_string(), "address": address, "reason": reason }),
            );
        }
    }

    /// The peer left the roster: its link ends, and what waits for it is
    /// dropped (it will never be delivered).
    pub fn removed(&self, peer: &PeerId) {
        if let Some(conn) = lock(&self.conns).remove(peer) {
            conn.close();
        }
        if let Some(signals) = lock(&self.signals).get(peer) {
            signals.work.notify_one();
        }
    }

    /// Sets how many direct messages may wait for one peer.
    pub fn with_max_queued(mut self, max: u64) -> Links {
        self.max_queued = max;
        self
    }

    /// Our rotation events (oldest first), which hellos carry, and where
    /// our public description is kept.
    pub fn with_rotations(
        self,
        rotations: &[center_feed::FeedEvent],
        description_file: std::path::PathBuf,
    ) -> Links {
        let start = rotations.len().saturating_sub(rotate::HELLO_ROTATIONS);
        let own: Vec<_> = rotations
            .iter()
            .skip(start)
            .filter_map(rotate::event_value)
            .collect();
        *lock(&self.own_rotations) = own;
        Links {
            description_file: Some(description_file),
            ..self
        }
    }

    /// Connects the links to the broker that keeps received messages.
    pub fn attach(&self, broker: &Arc<Broker>) {
        let _ = self.broker.set(Arc::downgrade(broker));
    }

    fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().and_then(Weak::upgrade)
    }

    pub fn me(&self) -> PeerId {
        self.me
    }

    /// This peer's name, address and fingerprint.
    pub fn whoami(&self) -> Whoami {
        let crypto = self.crypto();
        Whoami {
            name: crypto.identity.name().to_owned(),
            address: crypto.identity.address().to_owned(),
            fingerprint: crypto.identity.fingerprint().to_string(),
        }
    }

    /// The heartbeat interval (`[links] keepalive_seconds`).
    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// The IP of this peer's own address, if it is one (not a host name).
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        let crypto = self.crypto();
        crypto
            .identity
            .address()
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip())
    }

    pub fn roster(&self) -> MutexGuard<'_, Roster> {
        lock(&self.roster)
    }

    fn crypto(&self) -> MutexGuard<'_, Crypto> {
        lock(&self.crypto)
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Opens a frame body from a connection (CEP 5's checks, in order).
    pub fn open_frame(
        &self,
        body: &[u8],
        connection_peer: Option<PeerId>,
        now: Timestamp,
        save: SaveSessions,
    ) -> Result<Verified, Refusal> {
        let mut crypto = self.crypto();
        let Crypto {
            identity,
            sessions,
            replay,
        } = &mut *crypto;
        let keys = |p: &PeerId| self.keys(p);
        let mut receiver = Receiver {
            identity,
            keys: &keys,
            sessions,
            replay,
            limits: &Limits::DEFAULT,
            save,
        };
        crate::peer::open(&mut receiver, body, connection_peer, now)
    }

    /// The verified keys of a trusted peer.
    pub fn keys(&self, peer: &PeerId) -> Option<PeerKeys> {
        self.roster().get(peer).map(|p| p.keys.clone())
    }

    /// Queues a direct message; on disk when this returns. Starts the
    /// peer's outbound task if it is not running.
    pub fn enqueue(
        self: &Arc<Self>,
        peer: PeerId,
        envelope: &Envelope,
    ) -> Result<(), EnqueueError> {
        let bytes = envelope
            .canonical_bytes()
            .map_err(|err| EnqueueError::Store(err.to_string()))?;
        {
            let store = self.store();
            let queued = store
                .depth(peer)
                .map_err(|err| EnqueueError::Store(err.to_string()))?;
            if queued >= self.max_queued {
                return Err(EnqueueError::Full { peer, queued });
            }
            store
                .push(peer, &bytes, envelope.meta.exp)
                .map_err(|err| EnqueueError::Store(err.to_string()))?;
        }
        self.signals(peer).work.notify_one();
        Ok(())
    }

    /// Starts the task of every peer in the roster: each keeps a
    /// connection to its peer and delivers what waits for it.
    pub fn resume(self: &Arc<Self>) -> Result<(), String> {
        let peers: Vec<PeerId> = self.roster().list().map(|p| p.description.uuid()).collect();
        for peer in peers {
            self.keep_connected(peer);
        }
        Ok(())
    }

    /// Makes sure the task of `peer` runs and tries now (a peer just added
    /// to the roster: it may have been refused before because the other
    /// side did not know it yet).
    pub fn keep_connected(self: &Arc<Self>, peer: PeerId) {
        lock(&self.status).entry(peer).or_default().backoff = Duration::ZERO;
        self.signals(peer).work.notify_one();
    }

    /// Something authenticated came from `peer`: it is up, so retry now.
    pub fn heard_from(self: &Arc<Self>, peer: PeerId) {
        {
            let mut status = lock(&self.status);
            let entry = status.entry(peer).or_default();
            entry.last_heard = Some(Timestamp::now());
            entry.heard_at = Some(tokio::time::Instant::now());
            entry.backoff = Duration::ZERO;
        }
        if let Some(signals) = lock(&self.signals).get(&peer) {
            signals.work.notify_one();
        }
    }

    /// A heartbeat to `peer` was answered after `rtt`.
    fn record_rtt(&self, peer: PeerId, rtt: Duration) {
        lock(&self.status).entry(peer).or_default().rtt = Some(rtt);
    }

    /// `peer` told us its feed frontier.
    fn frontier_heard(&self, peer: PeerId) {
        lock(&self.status).entry(peer).or_default().frontier_heard = true;
    }

    /// Whether a welcomed join still waits for its roster hand-off.
    pub fn hand_off_pending(&self) -> bool {
        self.hand_off_pending
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A join was welcomed (`true`), or its hand-off taken (`false`).
    pub fn set_hand_off_pending(&self, pending: bool) {
        self.hand_off_pending
            .store(pending, std::sync::atomic::Ordering::SeqCst);
        if !pending {
            self.frontiers_stale();
        }
    }

    /// The roster gained origins (a hand-off): the frontiers heard so far
    /// were recorded without them (a frontier's unknown origins are
    /// ignored), so membership waits for each peer's next one.
    pub fn frontiers_stale(&self) {
        for status in lock(&self.status).values_mut() {
            status.frontier_heard = false;
        }
    }

    /// The peer acknowledged something: its outbound task looks again.
    fn acked(&self, peer: PeerId) {
        if let Some(signals) = lock(&self.signals).get(&peer) {
            signals.acked.notify_one();
        }
    }

    /// A session with the peer may have appeared (one started, or an
    /// encrypted frame came in).
    fn session_appeared(&self, peer: PeerId) {
        if let Some(signals) = lock(&self.signals).get(&peer) {
            signals.session.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The status of every link, with its queue depth.
    pub fn status(&self, peer: PeerId) -> (LinkStatus, u64) {
        let status = lock(&self.status).get(&peer).cloned().unwrap_or_default();
        let depth = self.store().depth(peer).unwrap_or(0);
        (status, depth)
    }

    /// The link to `peer` as it is now: its status, queue and connection.
    pub fn view(&self, peer: PeerId) -> LinkView {
        let (status, queued) = self.status(peer);
        let conn = self.connection(peer);
        LinkView {
            status,
            queued,
            connected: conn.is_some(),
            frontier_on_connection: conn.is_some_and(|conn| conn.has_frontier()),
        }
    }

    /// The peer's signals, spawning its outbound task the first time.
    fn signals(self: &Arc<Self>, peer: PeerId) -> Arc<Signals> {
        let mut all = lock(&self.signals);
        if let Some(existing) = all.get(&peer) {
            return existing.clone();
        }
        let signals = Arc::new(Signals::default());
        all.insert(peer, signals.clone());
        tokio::spawn(outbound::run(self.clone(), peer, signals.clone()));
        signals
    }

    /// The live connection to `peer`, if there is one.
    fn connection(&self, peer: PeerId) -> Option<Arc<ConnHandle>> {
        lock(&self.conns)
            .get(&peer)
            .filter(|conn| !conn.is_closed())
            .cloned()
    }

    /// Makes `conn` the connection to `peer` unless the one already there
    /// wins the tie-break (CEP 5): of two connections dialled by different
    /// sides, the one the lower UUID dialled stays; of two dialled by the
    /// same side, the newer. Both peers apply the same rule to the same
    /// pair, so both keep the same connection. The loser is closed. Returns
    /// whether `conn` was kept.
    fn register(&self, peer: PeerId, conn: &Arc<ConnHandle>) -> bool {
        let mut conns = lock(&self.conns);
        let keep_new = match conns.get(&peer) {
            Some(old) if !old.is_closed() => {
                let keep_new = if old.dialer == conn.dialer {
                    true
                } else {
                    conn.dialer == self.me.min(peer)
                };
                let loser = if keep_new { old } else { conn };
                tracing::info!(%peer, dialled_by = %loser.dialer, "two connections to one peer; closing one");
                loser.close();
                keep_new
            }
            _ => true,
        };
        if keep_new {
            conns.insert(peer, conn.clone());
        }
        keep_new
    }

    /// Forgets `conn` if it is still the registered one.
    fn unregister(&self, peer: PeerId, conn: &ConnHandle) {
        let mut conns = lock(&self.conns);
        if conns.get(&peer).is_some_and(|c| c.id == conn.id) {
            conns.remove(&peer);
        }
    }

    fn set_status(&self, peer: PeerId, reachable: bool, backoff: Duration) {
        let mut status = lock(&self.status);
        let entry = status.entry(peer).or_default();
        entry.reachable = Some(reachable);
        entry.backoff = backoff;
    }
}
