//! The center-testnet binary: `up`, `stop`, `start`, `down` for scripts and
//! the demo. `up` prints one JSON document describing the network.

use std::{path::PathBuf, process::ExitCode};

use center_testnet::{Formation, LdapOptions, Options, Testnet, default_bin_dir};
use clap::{Parser, Subcommand};

/// Run a network of center peers on this machine (127.x.y.z addresses).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and start N peers under DIR; print the network as JSON.
    Up {
        #[arg(long, default_value_t = 3)]
        peers: usize,
        #[arg(long)]
        dir: PathBuf,
        /// Where dispatchd and friends are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Form the network with the RFC's join flow (every peer joins
        /// through the first) instead of adding descriptions by hand.
        #[arg(long, conflicts_with = "alone")]
        join: bool,
        /// Start the peers trusting nobody: form the network yourself
        /// (`centerctl peer invite|join|approve`).
        #[arg(long)]
        alone: bool,
        /// Also run one slapd per peer (scripts/ldap-init); its `ldap_*`
        /// keys appear in the JSON and in each peer's center.toml.
        #[arg(long)]
        ldap: bool,
        /// With --ldap: failed binds that lock an account.
        #[arg(long, default_value_t = 5, requires = "ldap")]
        ldap_max_failure: u32,
        /// With --ldap: how long such a lock lasts.
        #[arg(long, default_value_t = 300, requires = "ldap")]
        ldap_lockout_seconds: u32,
    },
    /// Stop every daemon of one peer (an outage).
    Stop {
        #[arg(long)]
        dir: PathBuf,
        peer: String,
    },
    /// Start a stopped peer again and wait until it is ready.
    Start {
        #[arg(long)]
        dir: PathBuf,
        peer: String,
    },
    /// Cut groups of peers from each other (nftables rules on their
    /// addresses; as root): `partition --dir DIR alpha,bravo / charlie`.
    /// Replaces any partition in force; peers in no group are cut from
    /// nobody.
    Partition {
        #[arg(long)]
        dir: PathBuf,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        groups: Vec<String>,
    },
    /// Remove the partition's rules (`down` does too).
    Heal {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop everything the network started.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the network: a table, or JSON with --json.
    Show {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("center-testnet: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Up {
            peers,
            dir,
            bin_dir,
            join,
            alone,
            ldap,
            ldap_max_failure,
            ldap_lockout_seconds,
        } => {
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => default_bin_dir()?,
            };
            let net = Testnet::up(&Options {
                dir,
                peers,
                bin_dir,
                formation: if join {
                    Formation::Joined
                } else if alone {
                    Formation::Alone
                } else {
                    Formation::Wired
                },
                ldap: ldap.then_some(LdapOptions {
                    max_failure: ldap_max_failure,
                    lockout_seconds: ldap_lockout_seconds,
                }),
            })?;
            println!("{}", serde_json::to_string_pretty(&net.to_json())?);
            net.detach();
        }
        Cmd::Stop { dir, peer } => Testnet::open(&dir)?.stop(&peer)?,
        Cmd::Start { dir, peer } => Testnet::open(&dir)?.start(&peer)?,
        Cmd::Partition { dir, groups } => {
            let groups = center_testnet::parse_groups(&groups)?;
            Testnet::open(&dir)?.partition(&groups)?;
        }
        Cmd::Heal { dir } => Testnet::open(&dir)?.heal()?,
        Cmd::Down { dir } => Testnet::open(&dir)?.down()?,
        Cmd::Show { dir, json: true } => println!(
            "{}",
            serde_json::to_string_pretty(&Testnet::open(&dir)?.to_json())?
        ),
        Cmd::Show { dir, json: false } => {
            let net = Testnet::open(&dir)?;
            println!(
                "{:<8}  {:<36}  {:<20}  {:<7}  BUS",
                "NAME", "UUID", "ADDRESS", "STATE"
            );
            for peer in net.peers() {
                let state = if net.daemon_pid(peer, "dispatchd").is_some() {
                    "up"
                } else {
                    "down"
                };
                println!(
                    "{:<8}  {:<36}  {:<20}  {:<7}  {}",
                    peer.name,
                    peer.uuid,
                    peer.addr,
                    state,
                    peer.bus_socket.display()
                );
            }
        }
    }
    Ok(())
}
