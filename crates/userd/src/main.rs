//! The userd binary: parse arguments, load the config, start tracing, run
//! until SIGTERM or SIGINT.

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CENTER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let result = center_config::Config::load(&args.config)
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(userd::run(config, shutdown_signal(), notify_ready))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("userd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tells systemd (or a test harness) we are ready.
fn notify_ready() {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %err, "cannot notify readiness");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping only on SIGKILL");
            std::future::pending::<()>().await;
        }
    }
    tracing::info!("shutting down");
}
