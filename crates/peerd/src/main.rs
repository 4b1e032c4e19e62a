//! The peerd binary: its arguments; the rest is `center_daemon::main`
//! (logging, readiness, SIGTERM, exit codes).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// The center membership daemon: joins, removal, the DHT of addresses.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The peer's configuration file.
    #[arg(long, default_value = center_config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    center_daemon::main("peerd", |shutdown, ready| async move {
        let config = center_config::Config::load(&args.config)?;
        peerd::run(config, shutdown, ready).await
    })
}
