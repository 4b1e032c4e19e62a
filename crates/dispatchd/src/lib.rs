//! `dispatchd`: the dispatcher of a center peer. It hosts the local bus (a
//! Unix socket) that every daemon and service talks through, and carries
//! direct messages to and from the peers in its roster over signed and
//! encrypted frames (CEP 5), and keeps and replicates the signed feeds
//! (CEP 6).
//!
//! The dispatcher delivers; it never executes anything a message asks for.
//!
//! # Layout
//! - [`config`]: the settings dispatchd derives from `center.toml`.
//! - [`listener`]: the bus socket, from systemd or bound here.
//! - [`grants`]: the sysadmin's service grants, persisted atomically.
//! - [`roster`]: the peers this peer trusts, verified descriptions.
//! - [`peer`]: sealing and opening frames between dispatchers (CEP 5): Olm
//!   sessions, the receive checks in order, replay protection.
//! - [`link`]: direct messages to and from other peers: the durable outbox,
//!   one outbound task per peer, the TCP listener.
//! - [`health`]: the rules for peer states and this peer's membership
//!   (CEP 7).
//! - [`bus`]: the broker and its connections.

pub mod bus;
pub mod config;
pub mod fuzz;
use center_config::durable;
pub mod grants;
pub mod health;
pub mod link;
pub mod listener;
pub mod peer;
pub mod roster;
pub mod slots;

use std::{future::Future, sync::Arc};

use anyhow::Context;

use center_identity::{Identity, IdentityPaths};

use crate::{
    bus::Broker,
    config::DispatchConfig,
    grants::GrantStore,
    link::{Links, store::Store},
    peer::Sessions,
    roster::Roster,
};

/// Runs dispatchd until `shutdown` completes. `ready` is called once the bus
/// accepts connections (main sends `READY=1` there).
pub async fn run(
    config: DispatchConfig,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create state directory {}",
            config.state_dir.display()
        )
    })?;
    let mut identity = load_identity(&config)?;
    let peer = identity.uuid();
    let grants = GrantStore::open(&config.state_dir)?;
    let mut roster = Roster::open(&config.state_dir, peer)?;
    let mut sessions = Sessions::open(config.state_dir.join("sessions"), *identity.pickle_key())
        .map_err(anyhow::Error::msg)
        .context("cannot load the Olm sessions")?;
    let store_path = config.state_dir.join("links.sqlite3");
    let store = Store::open(&store_path)
        .with_context(|| format!("cannot open {}", store_path.display()))?;
    let address = identity.address().to_owned();
    let name = identity.name().to_owned();
    let feeds_path = config.state_dir.join("feeds.sqlite3");
    let feeds = center_feed::FeedStore::open(&feeds_path, config.feeds)
        .with_context(|| format!("cannot open {}", feeds_path.display()))?;
    let rotations = link::reconcile(&mut identity, &mut sessions, &mut roster, &feeds)?;
    // The proofs a roster hand-off carries for retired keys (CEP 7).
    match roster.attach_rotation_proofs(&feeds) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            proofs = n,
            "rotation proofs kept with the roster's retired keys"
        ),
        Err(err) => tracing::warn!(error = %err, "rotation proofs not kept with the roster"),
    }
    let links = Arc::new(
        Links::new(identity, sessions, roster, store, feeds, config.keepalive)
            .map_err(anyhow::Error::msg)?
            .with_max_queued(config.max_queued_per_peer)
            .with_joins(link::join::Pending::open(&config.state_dir).map_err(anyhow::Error::msg)?)
            .with_rotations(&rotations, config.state_dir.join("description.json")),
    );
    let socket = listener::open(&config.socket, config.socket_mode)?;
    socket
        .listener
        .set_nonblocking(true)
        .context("cannot make the bus socket non-blocking")?;
    let listener = tokio::net::UnixListener::from_std(socket.listener)
        .context("cannot register the bus socket")?;
    let broker = Arc::new(
        Broker::new(config.bus.clone(), grants, links.clone())
            .with_consumers(config.consumers.clone()),
    );
    links.attach(&broker);
    let peer_listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen for peers on {address}"))?;
    links
        .resume()
        .map_err(anyhow::Error::msg)
        .context("cannot read the outbox")?;
    tracing::info!(socket = %config.socket.display(), %peer, name, peers = address, "bus and peer listener up");
    ready();
    let retention = tokio::spawn(link::prune_periodically(links.clone()));
    // The peer listener lives as long as the bus; it ends when the bus does.
    let peers = tokio::spawn(link::serve(
        peer_listener,
        links,
        broker.clone(),
        std::future::pending(),
    ));
    bus::serve(listener, broker, shutdown).await;
    peers.abort();
    retention.abort();
    if let Some(path) = socket.owned_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("dispatchd stopped");
    Ok(())
}

/// This peer's identity; without one dispatchd cannot start.
fn load_identity(config: &DispatchConfig) -> anyhow::Result<Identity> {
    let paths = IdentityPaths::new(&config.identity_dir);
    if !paths.identity_json().exists() {
        anyhow::bail!(
            "this peer has no identity in {}; create it with `centerctl init --name NAME --address HOST:PORT`",
            config.identity_dir.display()
        );
    }
    Identity::load(&paths).context("cannot load this peer's identity")
}
