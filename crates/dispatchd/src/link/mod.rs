//! Links to other peers: direct messages out of a durable outbox, one batch
//! in flight per peer, and the listener that receives them (CEP 5).
//!
//! Ownership: `Links` is shared (`Arc`) by the broker (which enqueues), the
//! TCP listener (which receives) and one outbound task per peer (spawned the
//! first time something waits for that peer). The roster, the identity with
//! its Olm sessions, and the store each sit behind their own `std` mutex,
//! never held across an await; when two are held, crypto is taken before
//! roster, never the other way. Shutdown: the tasks
//! end with the runtime; nothing acknowledged lives only in memory.

mod inbound;
mod outbound;
pub mod store;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use center_identity::{Identity, PeerKeys};
use center_proto::{Envelope, Limits, PeerId, Timestamp};
use tokio::sync::Notify;

use crate::{
    peer::{Receiver, Refusal, ReplayCache, SaveSessions, Sessions, Verified},
    roster::Roster,
};
pub use inbound::serve;
use store::Store;

/// Envelopes per batch; one batch in flight per peer.
pub const BATCH: usize = 50;
/// Digests of GPG frames remembered against replay.
const REPLAY_CAPACITY: usize = 100_000;

/// What the crypto needs, under one lock.
pub struct Crypto {
    pub identity: Identity,
    pub sessions: Sessions,
    pub replay: ReplayCache,
}

/// How the link to one peer is doing, for `centerctl peer list`.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    /// Whether the last attempt to deliver got through.
    pub reachable: Option<bool>,
    /// When an authenticated frame last came from that peer.
    pub last_heard: Option<Timestamp>,
    /// The current retry delay after failures.
    pub backoff: Duration,
}

/// Shared state of every link.
pub struct Links {
    me: PeerId,
    roster: Mutex<Roster>,
    crypto: Mutex<Crypto>,
    store: Mutex<Store>,
    /// Wakes a peer's outbound task: new work, or the peer was heard from.
    wake: Mutex<HashMap<PeerId, Arc<Notify>>>,
    status: Mutex<HashMap<PeerId, LinkStatus>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Links {
    pub fn new(identity: Identity, sessions: Sessions, roster: Roster, store: Store) -> Links {
        Links {
            me: identity.uuid(),
            roster: Mutex::new(roster),
            crypto: Mutex::new(Crypto {
                identity,
                sessions,
                replay: ReplayCache::new(REPLAY_CAPACITY),
            }),
            store: Mutex::new(store),
            wake: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
        }
    }

    pub fn me(&self) -> PeerId {
        self.me
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
    pub fn enqueue(self: &Arc<Self>, peer: PeerId, envelope: &Envelope) -> Result<(), String> {
        let bytes = envelope.canonical_bytes().map_err(|err| err.to_string())?;
        self.store()
            .push(peer, &bytes, envelope.meta.exp)
            .map_err(|err| format!("cannot queue: {err}"))?;
        self.waker(peer).notify_one();
        Ok(())
    }

    /// Starts the outbound tasks of peers that had messages waiting when
    /// dispatchd last stopped.
    pub fn resume(self: &Arc<Self>) -> Result<(), String> {
        let waiting = self
            .store()
            .peers_waiting()
            .map_err(|err| err.to_string())?;
        for peer in waiting.iter().filter_map(|p| p.parse::<PeerId>().ok()) {
            self.waker(peer).notify_one();
        }
        Ok(())
    }

    /// Something authenticated came from `peer`: it is up, so retry now.
    pub fn heard_from(self: &Arc<Self>, peer: PeerId) {
        {
            let mut status = lock(&self.status);
            let entry = status.entry(peer).or_default();
            entry.last_heard = Some(Timestamp::now());
            entry.backoff = Duration::ZERO;
        }
        if let Some(wake) = lock(&self.wake).get(&peer) {
            wake.notify_one();
        }
    }

    /// The status of every link, with its queue depth.
    pub fn status(&self, peer: PeerId) -> (LinkStatus, u64) {
        let status = lock(&self.status).get(&peer).cloned().unwrap_or_default();
        let depth = self.store().depth(peer).unwrap_or(0);
        (status, depth)
    }

    /// The peer's wake-up, spawning its outbound task the first time.
    fn waker(self: &Arc<Self>, peer: PeerId) -> Arc<Notify> {
        let mut wake = lock(&self.wake);
        if let Some(existing) = wake.get(&peer) {
            return existing.clone();
        }
        let notify = Arc::new(Notify::new());
        wake.insert(peer, notify.clone());
        tokio::spawn(outbound::run(self.clone(), peer, notify.clone()));
        notify
    }

    fn set_status(&self, peer: PeerId, reachable: bool, backoff: Duration) {
        let mut status = lock(&self.status);
        let entry = status.entry(peer).or_default();
        entry.reachable = Some(reachable);
        entry.backoff = backoff;
    }
}
