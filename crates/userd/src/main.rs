//! The userd binary: its arguments; the rest is `center_daemon::main`
//! (logging, readiness, SIGTERM, exit codes).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// The center accounts daemon: account events into this peer's slapd.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The peer's configuration file.
    #[arg(long, default_value = center_config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    center_daemon::main("userd", |shutdown, ready| async move {
        let config = center_config::Config::load(&args.config)?;
        userd::run(config, shutdown, ready).await
    })
}
