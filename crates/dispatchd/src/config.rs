//! dispatchd's view of the peer configuration: the settings it uses, derived
//! once from the shared `center.toml`.

use std::{path::PathBuf, time::Duration};

use center_config::Config;

use crate::bus::BusLimits;

/// Everything dispatchd needs to run.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// This peer's identity (`centerctl init` made it).
    pub identity_dir: PathBuf,
    /// dispatchd's own state directory (`state_dir/dispatchd`).
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub bus: BusLimits,
    /// Ping after this much silence; close after three times as much.
    pub keepalive: Duration,
    /// Direct messages that may wait for one peer.
    pub max_queued_per_peer: u64,
    /// Budgets and retention of the feeds (CEP 6).
    pub feeds: center_feed::FeedConfig,
    /// Local services full membership waits for (CEP 7).
    pub consumers: Vec<String>,
}

impl DispatchConfig {
    pub fn from_config(config: &Config) -> DispatchConfig {
        DispatchConfig {
            identity_dir: config.paths.identity_dir(),
            state_dir: config.paths.daemon_state("dispatchd"),
            socket: config.bus.socket.clone(),
            socket_mode: config.bus.socket_mode,
            bus: BusLimits {
                max_frame: config.bus.max_frame_bytes,
                queue_depth: config.bus.queue_depth,
                max_connections: config.bus.max_connections,
                hello_timeout: Duration::from_secs(5),
                frame_timeout: Duration::from_secs(10),
            },
            keepalive: config.links.keepalive,
            max_queued_per_peer: config.links.max_queued_per_peer,
            consumers: config.membership.consumers.clone(),
            feeds: center_feed::FeedConfig {
                limits: center_feed::FeedLimits::DEFAULT,
                budget: center_feed::FeedBudget {
                    window: Duration::from_secs(60 * 60),
                    max_events_per_window: config.feeds.max_events_per_hour,
                    max_bytes_per_window: config.feeds.max_bytes_per_hour,
                    max_bytes_per_origin: config.feeds.max_bytes_per_origin,
                    retention_days: config.feeds.retention_days,
                },
            },
        }
    }
}
