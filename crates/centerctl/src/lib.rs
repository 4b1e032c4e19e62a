//! `centerctl`: the command line of a center peer, for its sysadmin and its
//! users. It talks to the daemons only through the local bus (`center-bus`),
//! never to their files, so every change goes through the same checks.
//!
//! # Layout
//! - [`cli`]: the grammar.
//! - `peer` (with `init`), `service`, `bus`, `feed`, `status`, `config`,
//!   `user`: one module per noun.
//! - `output`: tables and JSON.

pub mod cli;

mod bus;
mod config;
mod feed;
mod member;
mod output;
mod peer;
mod service;
mod status;
mod user;

#[cfg(test)]
mod tests;

use std::time::Duration;

use center_bus::{Client, ClientConfig};

use crate::cli::{Cli, Command};

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Config(command) => config::run(&cli, command),
        Command::Init { name, address } => peer::init(&cli, name, address),
        Command::Peer(command) => peer::run(&cli, command).await,
        Command::Service(command) => service::run(&cli, command).await,
        Command::Bus(command) => bus::run(&cli, command).await,
        Command::Feed(command) => feed::run(&cli, command).await,
        Command::Status => status::run(&cli).await,
        Command::User(command) => user::run(&cli, command).await,
    }
}

/// Connects to the bus of the peer `cli.config` describes.
async fn connect(cli: &Cli, service: &str, patience: Duration) -> anyhow::Result<Client> {
    let config = center_config::Config::load(&cli.config)?;
    let client = Client::connect(ClientConfig {
        socket: config.bus.socket.clone(),
        service: service.to_owned(),
        reconnect_for: Some(patience),
    })
    .await?;
    Ok(client)
}
