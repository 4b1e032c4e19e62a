//! userd, the accounts daemon (CEP 8). It keeps this peer's own slapd in
//! step with the account events on every peer's feed: an account made on
//! any peer exists here with the same name, number, password hash and SSH
//! keys.
//!
//! - [`account`]: the account events, read strictly; number blocks; hashing.
//! - [`blocks`]: who holds which number block, on disk.
//! - [`numbers`]: the numbers this peer gave its new accounts, each once.
//! - [`directory`]: slapd over ldapi with SASL EXTERNAL, and CEP 8's entries.
//! - [`apply`]: what each event does.
//! - [`authority`]: whose act a change is (users' own keys, home peers),
//!   and which stated times are believed.
//! - [`names`]: names this peer never makes (local users, reserved).
//! - [`control`]: the socket where a local user changes their own account,
//!   and where root creates one (userd numbers it).
//!
//! userd is a bus service (`userd`) that subscribes to `account.*` from the
//! oldest event this peer holds; the bus acknowledges an event when the
//! next one is asked for, so an event is asked past only once it has been
//! applied (or refused). slapd going away is waited out: the same event is
//! tried again on a new connection, with backoff, until it applies. userd
//! never executes anything an event asks for.

pub mod account;
pub mod apply;
pub mod authority;
pub mod blocks;
pub mod control;
pub mod directory;
pub mod fuzz;
pub mod names;
pub mod numbers;

use std::{future::Future, time::Duration};

use anyhow::Context;
use center_bus::{Client, ClientConfig, Pattern, wire::Start};

use crate::{apply::Userd, blocks::Blocks, directory::Directory};

/// The service name userd speaks for on the bus.
pub const SERVICE: &str = "userd";

/// The grant userd needs (`centerctl service approve userd …`).
pub const RECEIVE: &[&str] = &["account.*"];
pub const SEND: &[&str] = &["account.*"];

/// The organizational unit where this peer's refused requests are kept.
pub const REFUSED_OU: &str = "refused";

/// Longest wait between two attempts to reach slapd.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs userd until `shutdown` completes; `ready` is called once slapd
/// answered and the bus subscription is in place.
pub async fn run(
    config: center_config::Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let client = || ClientConfig {
        socket: config.bus.socket.clone(),
        service: SERVICE.to_owned(),
        reconnect_for: None,
    };
    let state = config.paths.daemon_state(SERVICE);
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let blocks = Blocks::open(&state)?;
    let mut directory = Directory::new(&config.ldap.ldapi, &config.ldap.base);
    for ou in [
        REFUSED_OU,
        directory::NOTICES_OU,
        directory::DELETED_OU,
        directory::BANS_OU,
        directory::DELEGATIONS_OU,
    ] {
        directory
            .ensure_ou(ou)
            .await
            .context("cannot reach this peer's slapd over ldapi")?;
    }
    let deleted = directory
        .deletions()
        .await
        .context("cannot read the deletions from slapd")?
        .into_iter()
        .collect();
    let notices = directory
        .notices()
        .await
        .context("cannot read the notices from slapd")?;
    let records = apply::records_per_origin(&deleted, &notices);
    let mut subscriber = Client::connect(client())
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
        .context("cannot subscribe to the account events")?;
    let bus = Client::connect(client())
        .await
        .context("cannot connect to the bus")?;
    let me = bus.welcome().peer.to_string();
    let (our_block, block) = tokio::sync::watch::channel(blocks.block_of(&me));
    let mut userd = Userd {
        directory,
        blocks,
        our_block,
        me,
        bus,
        claim_pending: false,
        deleted,
        home_prefix: config.accounts.home_prefix.display().to_string(),
        reserved: config.accounts.reserved_names.clone(),
        records,
    };
    userd.claim_block_if_needed().await?;
    let control_bus = Client::connect(client())
        .await
        .context("cannot connect to the bus")?;
    let listener = control::bind(&config.accounts.control_socket)?;
    // The control task has its own bus connection; it ends when run does.
    let control_directory = Directory::new(&config.ldap.ldapi, &config.ldap.base);
    let control = tokio::spawn(control::serve(
        listener,
        control::Control {
            bus: control_bus,
            directory: control_directory,
            me: userd.me.clone(),
            numbers: numbers::Numbers::open(&state)?,
            block,
            reserved: config.accounts.reserved_names.clone(),
        },
    ));
    tracing::info!(peer = %userd.me, block = ?userd.blocks.block_of(&userd.me), "userd up");
    ready();
    let events = async {
        loop {
            let delivery = match subscriber.next_delivery().await {
                Ok(delivery) => delivery,
                Err(err) => return err,
            };
            let mut backoff = Duration::from_millis(100);
            while let Err(err) = userd.handle(&delivery).await {
                tracing::warn!(error = %err, retry_in = ?backoff, "slapd unreachable; the event waits");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    let result = tokio::select! {
        () = shutdown => Ok(()),
        err = events => Err(anyhow::anyhow!("the bus subscription ended: {err}")),
    };
    control.abort();
    let _ = std::fs::remove_file(&config.accounts.control_socket);
    result
}
