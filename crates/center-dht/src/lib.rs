//! The Kademlia DHT in which peers find each other's current addresses.
//!
//! A [`Dht`] is one libp2p node: TCP + noise + yamux, Kademlia under the
//! protocol name `/center/kad/1.0.0` (never merged with IPFS) in
//! `Mode::Server` from the start, and identify so nodes learn each other's
//! listen addresses. It stores opaque values under opaque keys. What a value
//! means, and whether it may live under its key, is the caller's business:
//! every value passes the caller's [`Verifier`] before it is stored (a local
//! publish or a remote PutRecord) and before a lookup returns it. peerd keys
//! the DHT by peer UUID and signs each value with the peer's OpenPGP key; this
//! crate knows neither (CEP 7, "DHT").
//!
//! Design:
//! - One tokio task owns the `Swarm` (see `node.rs`). [`Dht`] is a cheap,
//!   cloneable handle holding the sender of that task's command channel;
//!   every call sends a command and waits on a oneshot for the answer.
//! - Every query has a deadline ([`DhtConfig::query_timeout`], enforced by
//!   Kademlia and again by the task), so a call never hangs: a lookup that
//!   finds nothing answers `Ok(vec![])`.
//! - Records carry an explicit expiry of now + [`DhtConfig::record_ttl`].
//!   The task republishes the values it published itself every
//!   [`DhtConfig::republish_every`] with a fresh expiry (Kademlia's own
//!   republication keeps the old expiry, so it is turned off). Stored records
//!   from others are re-replicated on the same period with their expiry.
//! - Memory is bounded: at most [`DhtConfig::max_records`] records of at most
//!   [`DhtConfig::max_value_bytes`] each, and the expiry of a remote record is
//!   capped at now + `record_ttl`.
//!
//! Shutdown: [`Dht::shutdown`] stops the task and closes its listener; the task
//! also stops when the last handle is dropped.
//!
//! What this crate deliberately does not do: persist records (a restarted
//! node learns them again from the network and its caller republishes), pick
//! among several values found for one key (the caller picks the newest), or
//! run any command a record asks for.

mod contact;
pub mod fuzz;
mod keyfile;
mod node;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use contact::Contact;

/// The Kademlia protocol name; a node speaking another one is not part of our DHT.
pub const PROTOCOL: &str = "/center/kad/1.0.0";

/// How a [`Dht`] node runs. [`DhtConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// TCP listen address. Port 0 picks a free port; [`Dht::contact`] reports the real one.
    pub listen: SocketAddr,
    /// The node's libp2p ed25519 secret key (32 raw bytes). Created 0600 if
    /// missing; refused if readable by group or others.
    pub key_file: PathBuf,
    /// Lifetime given to each record at every (re)publication. Default 24 h.
    pub record_ttl: Duration,
    /// How often this node republishes its own records, and re-replicates the
    /// records it stores. Must be well below `record_ttl`. Default 1 h.
    pub republish_every: Duration,
    /// Deadline of every query (lookup, publish, bootstrap). Default 10 s.
    pub query_timeout: Duration,
    /// Most records this node stores (its own included). Default 1024.
    pub max_records: usize,
    /// Largest value this node stores. Default 8 KiB.
    pub max_value_bytes: usize,
}

impl DhtConfig {
    /// A configuration with the default timings and limits.
    pub fn new(listen: SocketAddr, key_file: PathBuf) -> DhtConfig {
        DhtConfig {
            listen,
            key_file,
            record_ttl: Duration::from_secs(24 * 3600),
            republish_every: Duration::from_secs(3600),
            query_timeout: Duration::from_secs(10),
            max_records: 1024,
            max_value_bytes: 8 * 1024,
        }
    }
}

/// The caller's judgement of a value, asked before storing or returning it.
pub trait Verifier: Send + Sync + 'static {
    /// `Ok` if `value` may be stored and returned under `key`; otherwise a
    /// reason, which is logged.
    fn verify(&self, key: &[u8], value: &[u8]) -> Result<(), String>;

    /// Whether a verified `incoming` value may replace the verified value
    /// `stored` under `key` in this node's store (so an old signed value
    /// replayed by anyone cannot push out a newer one). Default: always.
    fn supersedes(&self, key: &[u8], stored: &[u8], incoming: &[u8]) -> bool {
        let _ = (key, stored, incoming);
        true
    }
}

/// Everything that can go wrong in the DHT layer.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    #[error("cannot use key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is readable by group or others (mode {mode:o}); run chmod 600 on it")]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a 32-byte ed25519 secret key: {reason}")]
    KeyFileInvalid { path: PathBuf, reason: String },
    #[error("cannot set up the libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("invalid contact: {0}")]
    InvalidContact(String),
    #[error("the value was refused by the verifier: {0}")]
    Refused(String),
    #[error("cannot store the record: {0}")]
    Store(String),
    #[error("the DHT task has stopped")]
    Stopped,
}

/// A handle on a running DHT node. Clones share the node.
#[derive(Clone)]
pub struct Dht {
    /// Commands to the task that owns the swarm (`node::run`).
    commands: mpsc::Sender<node::Command>,
    contact: Contact,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("contact", &self.contact)
            .finish()
    }
}

impl Dht {
    /// Loads or creates the key, listens, and spawns the task that owns the
    /// swarm. Returns once the listener is up, so [`Dht::contact`] is exact.
    pub async fn start(cfg: DhtConfig, verifier: Arc<dyn Verifier>) -> Result<Dht, DhtError> {
        let keypair = keyfile::load_or_create(&cfg.key_file)?;
        let (commands, contact) = node::spawn(cfg, keypair, verifier).await?;
        Ok(Dht { commands, contact })
    }

    /// How other nodes reach this one: its peer id and its listen address.
    pub fn contact(&self) -> &Contact {
        &self.contact
    }

    /// Adds nodes to the routing table and bootstraps from them. Invalid
    /// contacts are refused as a whole before any is added. Returns once the
    /// bootstrap query has finished or timed out.
    pub async fn add_contacts(&self, contacts: &[Contact]) -> Result<(), DhtError> {
        let mut parsed = Vec::with_capacity(contacts.len());
        for c in contacts {
            parsed.push(c.validate()?);
        }
        self.ask(|reply| node::Command::AddContacts {
            contacts: parsed,
            reply,
        })
        .await
    }

    /// Verifies `value` under `key`, stores it locally, puts it to the nodes
    /// closest to `key` (quorum one) and republishes it every
    /// `republish_every` until another publish under `key` replaces it.
    /// Returns once the put query has finished or timed out; `Ok` with no
    /// remote node reached still means the value is stored here and will be
    /// republished.
    pub async fn publish(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), DhtError> {
        self.ask(|reply| node::Command::Publish {
            key,
            value,
            verify: true,
            reply,
        })
        .await
    }

    /// [`Dht::publish`] without the local verification: lets a test play a
    /// forger. Honest nodes still refuse what it puts.
    #[doc(hidden)]
    pub async fn publish_unverified(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), DhtError> {
        self.ask(|reply| node::Command::Publish {
            key,
            value,
            verify: false,
            reply,
        })
        .await
    }

    /// Every distinct verified value found under `key`, the local store
    /// included; empty when none was found before the query finished or timed
    /// out. The caller picks the newest.
    pub async fn lookup(&self, key: Vec<u8>) -> Result<Vec<Vec<u8>>, DhtError> {
        self.ask(|reply| node::Command::Lookup { key, reply }).await
    }

    /// The raw value this node's store holds under `key`, unverified, with
    /// its expiry: lets a test check what a node accepted and refreshed.
    #[doc(hidden)]
    pub async fn local_record(
        &self,
        key: Vec<u8>,
    ) -> Result<Option<(Vec<u8>, Option<std::time::Instant>)>, DhtError> {
        self.ask(|reply| node::Command::LocalRecord { key, reply })
            .await
    }

    /// Stops the node: the task ends, connections and the listener close.
    /// Returns once the swarm is dropped. Other handles then get
    /// [`DhtError::Stopped`].
    pub async fn shutdown(self) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(node::Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, DhtError>>) -> node::Command,
    ) -> Result<T, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| DhtError::Stopped)?;
        answer.await.map_err(|_| DhtError::Stopped)?
    }
}
