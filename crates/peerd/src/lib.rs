//! peerd, the membership daemon (CEP 7). It decides who this peer trusts;
//! dispatchd only carries the messages and keeps the roster.
//!
//! - [`messages`]: the membership messages, read strictly.
//! - [`state`]: invitations, waiting requests, departed peers, on disk.
//! - [`control`]: the Unix socket `centerctl peer …` speaks to.
//! - [`members`]: what each message and each sysadmin command does.
//! - [`dht`]: the signed address record peers look each other up by.
//!
//! peerd is a bus service (`peerd`): it receives `new-peer-server` and
//! `add-peer-server` (handed over by dispatchd), the roster hand-off
//! `peer.roster`, and the feed events `peer.joined`, `peer.leave` and
//! `peer.excommunicate`; it changes the roster with the bus's sysadmin
//! operations.

pub mod control;
pub mod dht;
pub mod fuzz;
pub mod members;
pub mod messages;
pub mod state;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use center_bus::{Client, ClientConfig, Pattern, wire::Start};

pub use members::Peerd;

/// The service name peerd speaks for on the bus.
pub const SERVICE: &str = "peerd";

/// The grant peerd needs (`centerctl service approve peerd …`): what it
/// receives and what it sends.
pub const RECEIVE: &[&str] = &["new-peer-server", "add-peer-server", "peer.*"];
pub const SEND: &[&str] = &["peer.*"];

/// Runs peerd until `shutdown` completes; `ready` is called once the
/// control socket listens and the bus subscription is in place.
pub async fn run(
    config: center_config::Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let client = |service: &str| ClientConfig {
        socket: config.bus.socket.clone(),
        service: service.to_owned(),
        reconnect_for: None,
    };
    let mut subscriber = Client::connect(client(SERVICE))
        .await
        .context("cannot connect to the bus")?;
    let patterns = RECEIVE
        .iter()
        .map(|p| Pattern::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    subscriber
        .subscribe_with(patterns, Start::Oldest)
        .await
        .context("cannot subscribe to the membership events")?;
    let admin = Client::connect(client(SERVICE))
        .await
        .context("cannot connect to the bus")?;
    let me = admin.welcome().peer;
    let state = state::State::open(&config.paths.daemon_state("peerd"))?;
    let peerd = Arc::new(Peerd::new(config.clone(), me, state, admin));
    let listener = control::bind(&config.membership.control_socket)?;
    tracing::info!(peer = %me, control = %config.membership.control_socket.display(), "peerd up");
    ready();
    let control = tokio::spawn(control::serve(listener, peerd.clone()));
    let events = async {
        loop {
            match subscriber.next_delivery().await {
                Ok(delivery) => peerd.handle(delivery).await,
                Err(err) => return err,
            }
        }
    };
    tokio::select! {
        () = shutdown => {}
        err = events => {
            control.abort();
            return Err(anyhow::anyhow!("the bus subscription ended: {err}"));
        }
    }
    control.abort();
    let _ = std::fs::remove_file(&config.membership.control_socket);
    Ok(())
}

#[cfg(test)]
mod tests;
