//! `dispatchd`: the dispatcher of a center peer. Today it hosts the local bus
//! (a Unix socket) that every daemon and service talks through; the wire
//! protocol to other peers and the feeds join it in later CEPs.
//!
//! The dispatcher delivers; it never executes anything a message asks for.
//!
//! # Layout
//! - [`config`]: the settings dispatchd derives from `center.toml`.
//! - [`listener`]: the bus socket, from systemd or bound here.
//! - [`grants`]: the sysadmin's service grants, persisted atomically.
//! - [`roster`]: the peers this peer trusts, verified descriptions.
//! - [`peer`]: sealing and opening frames between dispatchers (CEP 5): Olm
//!   sessions, the receive checks in order, replay protection. Not yet wired
//!   to a TCP listener.
//! - [`bus`]: the broker and its connections.

pub mod bus;
pub mod config;
mod durable;
pub mod grants;
pub mod listener;
pub mod peer;
pub mod roster;

use std::{future::Future, sync::Arc};

use anyhow::Context;

use center_identity::{Identity, IdentityPaths};

use crate::{bus::Broker, config::DispatchConfig, grants::GrantStore, roster::Roster};

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
    let identity = load_identity(&config)?;
    let peer = identity.uuid();
    let grants = GrantStore::open(&config.state_dir)?;
    let roster = Roster::open(&config.state_dir, peer)?;
    let socket = listener::open(&config.socket, config.socket_mode)?;
    socket
        .listener
        .set_nonblocking(true)
        .context("cannot make the bus socket non-blocking")?;
    let listener = tokio::net::UnixListener::from_std(socket.listener)
        .context("cannot register the bus socket")?;
    let broker = Arc::new(Broker::new(peer, config.bus.clone(), grants, roster));
    tracing::info!(socket = %config.socket.display(), %peer, name = identity.name(), "bus listening");
    ready();
    bus::serve(listener, broker, shutdown).await;
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
