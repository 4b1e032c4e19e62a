//! What every center daemon binary (dispatchd, peerd, userd) does around
//! its own `run`: log to stderr with the `CENTER_LOG` filter, build the
//! runtime, tell systemd (or the test harness) when it is ready and keep
//! its watchdog fed, stop on SIGTERM or SIGINT, and turn an error into a
//! logged line and exit code 1.
//!
//! A daemon's `main` parses its own arguments (its `--help` is its own)
//! and hands [`main`] the function that runs it:
//!
//! ```text
//! center_daemon::main("userd", |shutdown, ready| async move {
//!     let config = center_config::Config::load(&args.config)?;
//!     userd::run(config, shutdown, ready).await
//! })
//! ```

use std::{future::Future, process::ExitCode};

/// Runs `daemon` to the end: `run` gets a future that completes on SIGTERM
/// or SIGINT, and the function to call once it serves.
pub fn main<F, Fut>(daemon: &str, run: F) -> ExitCode
where
    F: FnOnce(Shutdown, fn()) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_tracing();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(Box::pin(shutdown_signal()), notify_ready)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("{daemon}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes when the daemon is asked to stop.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Logs to stderr (journald takes it under systemd), filtered by
/// `CENTER_LOG` (an `EnvFilter`; `info` when unset), in colour only on a
/// terminal.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CENTER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Tells systemd (or a test harness) the daemon is ready, and keeps its
/// watchdog fed when the unit sets `WatchdogSec`. Called on the runtime.
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
