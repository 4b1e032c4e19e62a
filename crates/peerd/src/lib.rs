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
pub mod locate;
pub mod members;
pub mod messages;
pub mod quorum;
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
    start_dht(&peerd, &config).await?;
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

/// Starts the DHT node (CEP 7): on `[membership] dht_listen`, or this
/// peer's IP and the dispatcher's port + 1; bootstraps from the contacts
/// other peers announced, announces its own, publishes this peer's record,
/// and then, every republish interval, publishes it again and looks up
/// every peer of the roster.
async fn start_dht(peerd: &Arc<Peerd>, config: &center_config::Config) -> anyhow::Result<()> {
    let record = peerd
        .admin_op(center_bus::AdminOp::DhtRecord {})
        .await
        .map_err(anyhow::Error::msg)?
        .value
        .context("dispatchd made no DHT record")?;
    let description = dht::Record::parse(&record)
        .map_err(anyhow::Error::msg)
        .context("dispatchd's DHT record")?
        .description;
    let own = description.fingerprint().to_owned();
    let listen = match config.membership.dht_listen {
        Some(listen) => listen,
        None => {
            let address: std::net::SocketAddr =
                description.address().parse().with_context(|| {
                    format!(
                        "this peer's address {} is not IP:PORT; set [membership] dht_listen",
                        description.address()
                    )
                })?;
            std::net::SocketAddr::new(address.ip(), address.port().wrapping_add(1))
        }
    };
    let trusted = locate::Trusted::default();
    let locator = locate::Locator::start(
        listen,
        &config.paths.daemon_state("peerd"),
        &config.membership,
        trusted,
    )
    .await?;
    let _ = peerd.dht.set(locator);
    let _ = peerd.own_fingerprint.set(own);
    let peers = peerd.refresh_trusted().await.map_err(anyhow::Error::msg)?;
    let Some(locator) = peerd.dht.get() else {
        return Ok(());
    };
    locator.add_contacts(&peerd.saved_contacts()).await;
    // The record first: a peer that looks this one up because its contact
    // changed must find the new address.
    if let Err(err) = locator.publish_own(peerd).await {
        tracing::warn!(error = err.as_str(), "address record not published");
    }
    // At a start whose contact is the one announced before (same key, same
    // address), there is nothing new to tell: the peers have it.
    if peerd.contact_changed()
        && let Err(err) = peerd.send_contact(&peers).await
    {
        tracing::warn!(error = err.as_str(), "DHT contact not sent");
    }
    let every = config.membership.dht_republish;
    let peerd = peerd.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Some(locator) = peerd.dht.get() {
                match peerd.refresh_trusted().await {
                    Ok(peers) => {
                        if let Err(err) = locator.publish_own(&peerd).await {
                            tracing::warn!(error = err.as_str(), "address record not published");
                        }
                        for peer in peers {
                            if let Err(err) = locator.find(&peerd, peer).await {
                                tracing::warn!(%peer, error = err.as_str(), "DHT lookup failed");
                            }
                        }
                    }
                    Err(err) => tracing::warn!(error = err.as_str(), "cannot read the roster"),
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests;
