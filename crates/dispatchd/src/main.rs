//! The dispatchd binary: parse arguments, load the config, start tracing,
//! run until SIGTERM or SIGINT, map errors to exit codes.

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CENTER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match start(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("dispatchd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &Args) -> anyhow::Result<()> {
    let config = center_config::Config::load(&args.config)?;
    let config = dispatchd::config::DispatchConfig::from_config(&config);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(dispatchd::run(config, shutdown_signal(), notify_ready))
}

/// Tells systemd (or a test harness) we are ready, and keeps its watchdog fed.
fn notify_ready() {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %err, "cannot notify readiness");
    }
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
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
