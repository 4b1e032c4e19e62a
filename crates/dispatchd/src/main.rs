//! The dispatchd binary: its arguments; the rest is `center_daemon::main`
//! (logging, readiness, SIGTERM, exit codes).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// The center dispatcher: hosts the local bus of this peer.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The peer's configuration file.
    #[arg(long, default_value = center_config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    center_daemon::main("dispatchd", |shutdown, ready| async move {
        let config = center_config::Config::load(&args.config)?;
        let config = dispatchd::config::DispatchConfig::from_config(&config);
        dispatchd::run(config, shutdown, ready).await
    })
}
