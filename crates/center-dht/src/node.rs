//! The task that owns the libp2p `Swarm`, and the commands it takes.
//!
//! Ownership: `spawn` builds the swarm, waits for its listener, then moves it
//! into one tokio task (`Node::run`). Nothing else touches the swarm; the
//! [`crate::Dht`] handles send [`Command`]s over a bounded mpsc channel and
//! each command carries a oneshot for its answer. The task keeps, per
//! Kademlia query it started for a caller, that caller's oneshot and a
//! deadline (`pending`); a query answers when Kademlia reports its last step
//! or, at the latest, when the once-a-second sweep finds its deadline passed.
//!
//! Shutdown: on `Command::Shutdown`, or when every handle is gone (the channel
//! closes), the loop ends and the swarm is dropped, which closes the listener
//! and every connection; pending callers then see their oneshot dropped
//! ([`DhtError::Stopped`]).
//!
//! Verification: every value is checked by the caller's [`Verifier`] before
//! it enters the store (local publish, remote PutRecord via
//! `StoreInserts::FilterBoth`) and before a lookup returns it (against the key
//! the caller asked for, not the key a remote claims).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{self, GetRecordOk, QueryId, QueryResult, Quorum, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::contact::is_plain_tcp;
use crate::{Contact, DhtConfig, DhtError, PROTOCOL, Verifier};

/// Time a caller waits beyond the query timeout before the sweep answers it.
const GRACE: Duration = Duration::from_secs(2);
/// Time `spawn` waits for the listener to report its address.
const LISTEN_WAIT: Duration = Duration::from_secs(5);
/// Connections idle this long are closed (libp2p's default is 10 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most listen addresses taken from one peer's identify message.
const MAX_ADDRS_PER_PEER: usize = 8;

type Reply<T> = oneshot::Sender<Result<T, DhtError>>;

/// What a [`crate::Dht`] handle asks of the task.
pub(crate) enum Command {
    AddContacts {
        contacts: Vec<(PeerId, Multiaddr)>,
        reply: Reply<()>,
    },
    Publish {
        key: Vec<u8>,
        value: Vec<u8>,
        verify: bool,
        reply: Reply<()>,
    },
    Lookup {
        key: Vec<u8>,
        reply: Reply<Vec<Vec<u8>>>,
    },
    LocalRecord {
        key: Vec<u8>,
        reply: Reply<Option<(Vec<u8>, Option<Instant>)>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
}

/// A caller waiting on a query.
enum Waiter {
    /// `add_contacts` or `publish`: answered `Ok` when the query ends, however it ends.
    Done(Reply<()>),
    Lookup {
        key: Vec<u8>,
        found: Vec<Vec<u8>>,
        reply: Reply<Vec<Vec<u8>>>,
    },
}

impl Waiter {
    fn answer(self) {
        match self {
            Waiter::Done(reply) => {
                let _ = reply.send(Ok(()));
            }
            Waiter::Lookup { found, reply, .. } => {
                let _ = reply.send(Ok(found));
            }
        }
    }
}

struct Pending {
    deadline: Instant,
    waiter: Waiter,
}

struct Node {
    swarm: Swarm<Behaviour>,
    verifier: Arc<dyn Verifier>,
    record_ttl: Duration,
    query_deadline: Duration,
    /// The values this node published, republished on every tick until replaced.
    own: HashMap<RecordKey, Vec<u8>>,
    pending: HashMap<QueryId, Pending>,
}

/// Builds the swarm, starts listening and spawns the task. Returns the
/// command sender and the node's contact.
pub(crate) async fn spawn(
    cfg: DhtConfig,
    keypair: Keypair,
    verifier: Arc<dyn Verifier>,
) -> Result<(mpsc::Sender<Command>, Contact), DhtError> {
    let mut swarm = build_swarm(&cfg, keypair)?;
    let listen = socket_multiaddr(cfg.listen);
    swarm
        .listen_on(listen)
        .map_err(|e| listen_error(cfg.listen, e))?;
    let addr = tokio::time::timeout(LISTEN_WAIT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(listen_error(cfg.listen, error));
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(listen_error(cfg.listen, format!("{reason:?}")));
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| listen_error(cfg.listen, "no listen address reported in time"))??;
    let contact = Contact {
        peer_id: swarm.local_peer_id().to_base58(),
        addr: addr.to_string(),
    };
    info!(contact = %contact, "dht listening");

    let (commands, receiver) = mpsc::channel(64);
    let node = Node {
        swarm,
        verifier,
        record_ttl: cfg.record_ttl,
        query_deadline: cfg.query_timeout + GRACE,
        own: HashMap::new(),
        pending: HashMap::new(),
    };
    tokio::spawn(node.run(receiver, cfg.republish_every));
    Ok((commands, contact))
}

fn build_swarm(cfg: &DhtConfig, keypair: Keypair) -> Result<Swarm<Behaviour>, DhtError> {
    let mut kad_cfg = kad::Config::new(StreamProtocol::new(PROTOCOL));
    kad_cfg
        .set_query_timeout(cfg.query_timeout)
        .set_record_ttl(Some(cfg.record_ttl))
        // Kademlia's republication keeps a record's old expiry; `Node::republish` refreshes it.
        .set_publication_interval(None)
        .set_replication_interval(Some(cfg.republish_every))
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_caching(kad::Caching::Disabled)
        .set_max_packet_size(cfg.max_value_bytes.saturating_add(16 * 1024));
    let store_cfg = MemoryStoreConfig {
        max_records: cfg.max_records,
        max_value_bytes: cfg.max_value_bytes,
        ..MemoryStoreConfig::default()
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| DhtError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            Behaviour {
                kad: kad::Behaviour::with_config(
                    id,
                    MemoryStore::with_config(id, store_cfg),
                    kad_cfg,
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/center/1.0.0".to_owned(),
                    key.public(),
                )),
            }
        })
        .map_err(|e| DhtError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    // Clients do not answer queries, and libp2p stays a client until an
    // external address is confirmed: every node of ours serves.
    swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
    Ok(swarm)
}

impl Node {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, republish_every: Duration) {
        let start = tokio::time::Instant::now();
        let mut republish = tokio::time::interval_at(start + republish_every, republish_every);
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        let shutdown_reply = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.command(command),
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = republish.tick() => self.republish(),
                _ = sweep.tick() => self.sweep(),
            }
        };
        debug!("dht task stopping");
        drop(self);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn kad(&mut self) -> &mut kad::Behaviour<MemoryStore> {
        &mut self.swarm.behaviour_mut().kad
    }

    fn wait(&mut self, id: QueryId, waiter: Waiter) {
        let deadline = Instant::now() + self.query_deadline;
        self.pending.insert(id, Pending { deadline, waiter });
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::AddContacts { contacts, reply } => {
                let local = *self.swarm.local_peer_id();
                for (peer, addr) in contacts {
                    if peer != local {
                        self.kad().add_address(&peer, addr);
                    }
                }
                match self.kad().bootstrap() {
                    Ok(id) => self.wait(id, Waiter::Done(reply)),
                    Err(kad::NoKnownPeers()) => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Command::Publish {
                key,
                value,
                verify,
                reply,
            } => {
                if verify && let Err(reason) = self.verifier.verify(&key, &value) {
                    let _ = reply.send(Err(DhtError::Refused(reason)));
                    return;
                }
                let key = RecordKey::new(&key);
                match self.put(key.clone(), value.clone()) {
                    Ok(id) => {
                        self.own.insert(key, value);
                        self.wait(id, Waiter::Done(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Lookup { key, reply } => {
                let id = self.kad().get_record(RecordKey::new(&key));
                let found = Vec::new();
                self.wait(id, Waiter::Lookup { key, found, reply });
            }
            Command::LocalRecord { key, reply } => {
                let value = self
                    .kad()
                    .store_mut()
                    .get(&RecordKey::new(&key))
                    .map(|r| (r.value.clone(), r.expires));
                let _ = reply.send(Ok(value));
            }
            Command::Shutdown { reply } => {
                // Handled by `run`; kept total.
                let _ = reply.send(());
            }
        }
    }

    /// Stores locally and starts a put with a fresh expiry.
    fn put(&mut self, key: RecordKey, value: Vec<u8>) -> Result<QueryId, DhtError> {
        let mut record = Record::new(key, value);
        record.expires = Some(Instant::now() + self.record_ttl);
        self.kad()
            .put_record(record, Quorum::One)
            .map_err(|e| DhtError::Store(e.to_string()))
    }

    /// Puts every value this node published again, with a fresh expiry,
    /// unless a value the verifier ranks newer has replaced it here.
    fn republish(&mut self) {
        let own: Vec<(RecordKey, Vec<u8>)> = self.own.drain().collect();
        for (key, value) in own {
            let stored = self.kad().store_mut().get(&key).map(|r| r.value.clone());
            if let Some(stored) = stored
                && stored != value
                && !self.verifier.supersedes(key.as_ref(), &stored, &value)
            {
                info!(key = %hex(key.as_ref()), "no longer republishing a value a newer one replaced");
                continue;
            }
            match self.put(key.clone(), value.clone()) {
                Ok(_) => {}
                Err(e) => warn!(key = %hex(key.as_ref()), "cannot republish: {e}"),
            }
            self.own.insert(key, value);
        }
    }

    /// Answers every caller whose query is past its deadline.
    fn sweep(&mut self) {
        let now = Instant::now();
        let late: Vec<QueryId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(mut query) = self.kad().query_mut(&id) {
                query.finish();
            }
            if let Some(p) = self.pending.remove(&id) {
                debug!(?id, "query past its deadline");
                p.waiter.answer();
            }
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.kad_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if !info.protocols.iter().any(|p| p.as_ref() == PROTOCOL) {
                    return;
                }
                for addr in info
                    .listen_addrs
                    .into_iter()
                    .filter(is_plain_tcp)
                    .take(MAX_ADDRS_PER_PEER)
                {
                    debug!(%peer_id, %addr, "learned a listen address");
                    self.kad().add_address(&peer_id, addr);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => debug!(%address, "listening"),
            SwarmEvent::ListenerClosed { reason, .. } => {
                warn!("dht listener closed: {reason:?}");
            }
            _ => {}
        }
    }

    fn kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.inbound_put(source, record),
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => {
                if let QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) = result {
                    self.found(id, found);
                } else if let QueryResult::PutRecord(Err(e)) = &result {
                    info!(key = %hex(e.key().as_ref()), "put reached no node yet: {e}");
                }
                if step.last
                    && let Some(p) = self.pending.remove(&id)
                {
                    p.waiter.answer();
                }
            }
            other => debug!(?other, "kademlia"),
        }
    }

    /// A remote asks us to store a record: only a verified value enters the
    /// store, never replacing one the verifier ranks newer, and never with an
    /// expiry later than now + record_ttl.
    fn inbound_put(&mut self, source: PeerId, mut record: Record) {
        let key = record.key.to_vec();
        if let Err(reason) = self.verifier.verify(&key, &record.value) {
            warn!(%source, key = %hex(&key), "refused a record put: {reason}");
            return;
        }
        let stored = self
            .kad()
            .store_mut()
            .get(&record.key)
            .map(|r| r.value.clone());
        if let Some(stored) = stored
            && stored != record.value
            && !self.verifier.supersedes(&key, &stored, &record.value)
        {
            info!(%source, key = %hex(&key), "kept the stored value over an older one put");
            return;
        }
        let cap = Instant::now() + self.record_ttl;
        record.expires = Some(record.expires.map_or(cap, |e| e.min(cap)));
        if let Err(e) = self.kad().store_mut().put(record) {
            warn!(%source, key = %hex(&key), "cannot store a record put: {e}");
        }
    }

    /// A record found by a lookup: kept if the verifier accepts it under the
    /// key the caller asked for.
    fn found(&mut self, id: QueryId, found: kad::PeerRecord) {
        let Some(Pending {
            waiter: Waiter::Lookup {
                key, found: values, ..
            },
            ..
        }) = self.pending.get_mut(&id)
        else {
            return;
        };
        let value = found.record.value;
        if let Err(reason) = self.verifier.verify(key, &value) {
            let from = found
                .peer
                .map_or("the local store".to_owned(), |p| p.to_base58());
            warn!(%from, key = %hex(key), "dropped a looked-up value: {reason}");
            return;
        }
        if !values.contains(&value) {
            values.push(value);
        }
    }
}

fn socket_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr {
        SocketAddr::V4(a) => Protocol::Ip4(*a.ip()),
        SocketAddr::V6(a) => Protocol::Ip6(*a.ip()),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

fn listen_error(addr: SocketAddr, reason: impl std::fmt::Display) -> DhtError {
    DhtError::Listen {
        addr,
        reason: reason.to_string(),
    }
}

/// Keys in logs: hex of at most the first 16 bytes.
fn hex(bytes: &[u8]) -> String {
    let mut s: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 16 {
        s.push('…');
    }
    s
}
