//! The peer's configuration file: one TOML file per peer, read by every daemon
//! and by `centerctl`.
//!
//! Parsing is strict (`deny_unknown_fields`), then [`Config::validate`]-style
//! checks turn the raw file into a [`Config`] whose invariants hold: every path
//! is absolute, numbers are in range. Who the peer is (its UUID, name,
//! address and keys) is not configuration: `centerctl init` makes that
//! identity once and keeps it in the state directory. Nothing here
//! opens sockets or creates directories; the daemons do that.
//!
//! The file format is documented in `etc/center.toml`, the example shipped
//! with the package. [`durable`] is how every daemon replaces a small state
//! file under the state directory.

pub mod durable;

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where packages and units expect the file.
pub const DEFAULT_PATH: &str = "/etc/center/center.toml";

/// A validated peer configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where this configuration was read from (for messages).
    pub source: PathBuf,
    pub paths: Paths,
    pub bus: Bus,
    pub links: Links,
    pub feeds: Feeds,
    pub ldap: Ldap,
    pub membership: Membership,
    pub accounts: Accounts,
}

/// Accounts (userd, CEP 8).
#[derive(Debug, Clone)]
pub struct Accounts {
    /// The Unix socket where any local user asks userd to change their own
    /// account (`centerctl user passwd|key add` run by a user).
    pub control_socket: PathBuf,
    /// Where this peer puts its users' homes: an account `NAME` lives in
    /// `home_prefix/NAME` here, whatever other peers chose (CEP 8, "Names").
    pub home_prefix: PathBuf,
    /// Names this peer never makes an account for, besides the built-in
    /// reserved list and the names its own system already has (CEP 8).
    pub reserved_names: Vec<String>,
}

/// Membership (peerd, CEP 7): joins, the DHT, who is trusted.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The Unix socket `centerctl peer …` talks to peerd on (root only).
    pub control_socket: PathBuf,
    /// What to do with a peer another trusted peer announces as joined.
    pub policy: Policy,
    /// How long an invitation (`centerctl peer invite`) stays valid.
    pub invite_ttl: std::time::Duration,
    /// Where peerd's DHT node listens; `None`: this peer's IP, the
    /// dispatcher's port + 1.
    pub dht_listen: Option<std::net::SocketAddr>,
    /// How often this peer's DHT record is published again.
    pub dht_republish: std::time::Duration,
    /// How long a DHT record is kept after it was published.
    pub dht_record_ttl: std::time::Duration,
    /// Local services (bus service names) that must have handled every
    /// feed event this peer holds before it counts as a full member, e.g.
    /// `userd`: a new peer is a member once every account is in its slapd.
    pub consumers: Vec<String>,
    /// How many distinct members' `peer.excommunicate` votes remove a peer
    /// here (CEP 7); `None`: a majority of the members that may vote.
    pub excommunicate_quorum: Option<usize>,
    /// How many peers one sponsor (the origin of `peer.joined`) may add
    /// here per day under `policy = "auto"`; more wait for the sysadmin.
    pub max_announced_per_day: usize,
}

/// What peerd does with a peer announced by a trusted peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Trust it at once.
    Auto,
    /// Queue it for `centerctl peer approve`.
    Manual,
}

/// Filesystem locations. All absolute.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Root of all durable state; each daemon uses `state_dir/<daemon>`.
    pub state_dir: PathBuf,
    /// The `/center` tree (CEP 3).
    pub center_root: PathBuf,
}

impl Paths {
    /// The state directory of one daemon, e.g. `/var/lib/center/dispatchd`.
    pub fn daemon_state(&self, daemon: &str) -> PathBuf {
        self.state_dir.join(daemon)
    }

    /// This peer's identity (keys; dispatchd's, mode 0700), made by
    /// `centerctl init`.
    pub fn identity_dir(&self) -> PathBuf {
        self.daemon_state("dispatchd").join("identity")
    }

    /// This peer's public description (what `centerctl peer whoami` prints),
    /// readable by every local user.
    pub fn description_file(&self) -> PathBuf {
        self.daemon_state("dispatchd").join("description.json")
    }
}

/// The local bus (CEP 4).
#[derive(Debug, Clone)]
pub struct Bus {
    /// The Unix socket `dispatchd` listens on and clients connect to.
    pub socket: PathBuf,
    /// Permission bits given to the socket when `dispatchd` creates it itself
    /// (under systemd, `center-bus.socket` creates it instead).
    pub socket_mode: u32,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame_bytes: u32,
    /// Frames queued for one subscriber before it is disconnected as too slow.
    pub queue_depth: usize,
    /// Simultaneous bus connections; more are refused with an error frame.
    pub max_connections: usize,
}

/// Connections to other peers (CEP 5).
#[derive(Debug, Clone)]
pub struct Links {
    /// Silence after which a side sends a ping; a connection silent for
    /// three times this is closed as dead.
    pub keepalive: std::time::Duration,
    /// Direct messages that may wait for one peer; more are refused to the
    /// publisher, so a peer that is down cannot fill the disk.
    pub max_queued_per_peer: u64,
}

/// Feeds (CEP 6): what this peer accepts from each origin and keeps.
/// A limit of 0 is no limit.
#[derive(Debug, Clone)]
pub struct Feeds {
    /// Events accepted from one origin per hour.
    pub max_events_per_hour: u64,
    /// Bytes accepted from one origin per hour.
    pub max_bytes_per_hour: u64,
    /// Bytes kept per origin; the oldest events beyond it are pruned.
    pub max_bytes_per_origin: u64,
    /// Days an event is kept after it was made; 0 keeps it forever.
    pub retention_days: u32,
}

/// This peer's own OpenLDAP directory (slapd), as `scripts/ldap-init` set it
/// up. Only where it is and how to trust it; what lives inside is CEP 8's.
#[derive(Debug, Clone)]
pub struct Ldap {
    /// The TLS listener (`ldap_uri`), always `ldaps://HOST:PORT/`.
    pub uri: String,
    /// The directory suffix (`ldap_base`), e.g. `dc=tilde,dc=test`; users
    /// live at `uid=NAME,ou=people,<base>`.
    pub base: String,
    /// The CA certificate that verifies this slapd (`ldap_ca`); absolute.
    pub ca: PathBuf,
    /// The local socket for SASL EXTERNAL management (`ldapi`); absolute.
    pub ldapi: PathBuf,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: `{field}` {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `source` is only used in messages.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: source.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        raw.validate(source)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    paths: RawPaths,
    #[serde(default)]
    bus: RawBus,
    #[serde(default)]
    links: RawLinks,
    #[serde(default)]
    feeds: RawFeeds,
    #[serde(default)]
    ldap: RawLdap,
    #[serde(default)]
    membership: RawMembership,
    #[serde(default)]
    accounts: RawAccounts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAccounts {
    control_socket: PathBuf,
    home_prefix: PathBuf,
    reserved_names: Vec<String>,
}

impl Default for RawAccounts {
    fn default() -> RawAccounts {
        RawAccounts {
            control_socket: PathBuf::from("/run/center-userd/control.sock"),
            home_prefix: PathBuf::from("/home"),
            reserved_names: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMembership {
    control_socket: PathBuf,
    policy: String,
    invite_hours: u64,
    dht_listen: Option<String>,
    dht_republish_seconds: u64,
    dht_record_ttl_seconds: u64,
    consumers: Vec<String>,
    excommunicate_quorum: u64,
    max_announced_per_day: u64,
}

impl Default for RawMembership {
    fn default() -> RawMembership {
        RawMembership {
            control_socket: PathBuf::from("/run/center-peerd/control.sock"),
            policy: "auto".to_owned(),
            invite_hours: 168,
            dht_listen: None,
            dht_republish_seconds: 3600,
            dht_record_ttl_seconds: 86_400,
            consumers: Vec::new(),
            excommunicate_quorum: 0,
            max_announced_per_day: 4,
        }
    }
}

/// The defaults match `scripts/ldap-init --dir /var/lib/center/ldap`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLdap {
    ldap_uri: String,
    ldap_base: String,
    ldap_ca: PathBuf,
    ldapi: PathBuf,
}

impl Default for RawLdap {
    fn default() -> RawLdap {
        RawLdap {
            ldap_uri: "ldaps://127.0.0.1:636/".to_owned(),
            ldap_base: "dc=center".to_owned(),
            ldap_ca: PathBuf::from("/var/lib/center/ldap/tls/ca.crt"),
            ldapi: PathBuf::from("/var/lib/center/ldap/run/ldapi"),
        }
    }
}

impl RawLdap {
    fn validate(
        self,
        invalid: impl Fn(&'static str, String) -> ConfigError,
    ) -> Result<Ldap, ConfigError> {
        let authority = self
            .ldap_uri
            .strip_prefix("ldaps://")
            .ok_or_else(|| {
                invalid(
                    "ldap.ldap_uri",
                    format!(
                        "must be an ldaps:// URL (TLS only), got {:?}",
                        self.ldap_uri
                    ),
                )
            })?
            .trim_end_matches('/');
        let port_ok = authority.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok || authority.contains('/') {
            return Err(invalid(
                "ldap.ldap_uri",
                format!("must be ldaps://HOST:PORT/, got {:?}", self.ldap_uri),
            ));
        }
        let dn_ok = !self.ldap_base.is_empty()
            && self.ldap_base.split(',').all(|rdn| {
                rdn.split_once('=').is_some_and(|(attr, value)| {
                    !value.is_empty()
                        && !attr.is_empty()
                        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
            });
        if !dn_ok {
            return Err(invalid(
                "ldap.ldap_base",
                format!(
                    "must be a DN such as \"dc=tilde,dc=test\", got {:?}",
                    self.ldap_base
                ),
            ));
        }
        for (field, path) in [("ldap.ldap_ca", &self.ldap_ca), ("ldap.ldapi", &self.ldapi)] {
            if !path.is_absolute() {
                return Err(invalid(
                    field,
                    format!("must be an absolute path, got {}", path.display()),
                ));
            }
        }
        if self.ldapi.as_os_str().len() > 107 {
            return Err(invalid(
                "ldap.ldapi",
                "is longer than the 107 bytes a Unix socket path may have".to_owned(),
            ));
        }
        Ok(Ldap {
            uri: self.ldap_uri,
            base: self.ldap_base,
            ca: self.ldap_ca,
            ldapi: self.ldapi,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeeds {
    max_events_per_hour: u64,
    max_bytes_per_hour: u64,
    max_bytes_per_origin: u64,
    retention_days: u32,
}

impl Default for RawFeeds {
    fn default() -> RawFeeds {
        RawFeeds {
            max_events_per_hour: 20_000,
            max_bytes_per_hour: 64 << 20,
            max_bytes_per_origin: 1 << 30,
            retention_days: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    #[serde(default = "default_keepalive_seconds")]
    keepalive_seconds: u64,
    #[serde(default = "default_max_queued_per_peer")]
    max_queued_per_peer: u64,
}

impl Default for RawLinks {
    fn default() -> RawLinks {
        RawLinks {
            keepalive_seconds: default_keepalive_seconds(),
            max_queued_per_peer: default_max_queued_per_peer(),
        }
    }
}

const fn default_max_queued_per_peer() -> u64 {
    100_000
}

const fn default_keepalive_seconds() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    state_dir: PathBuf,
    center_root: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    #[serde(default = "default_socket")]
    socket: PathBuf,
    #[serde(default = "default_socket_mode")]
    socket_mode: String,
    #[serde(default = "default_max_frame_bytes")]
    max_frame_bytes: u32,
    #[serde(default = "default_queue_depth")]
    queue_depth: usize,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
}

impl Default for RawBus {
    fn default() -> RawBus {
        RawBus {
            socket: default_socket(),
            socket_mode: default_socket_mode(),
            max_frame_bytes: default_max_frame_bytes(),
            queue_depth: default_queue_depth(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/center/bus.sock")
}
fn default_socket_mode() -> String {
    "0666".to_owned()
}
const fn default_max_frame_bytes() -> u32 {
    1 << 20
}
const fn default_queue_depth() -> usize {
    1024
}
const fn default_max_connections() -> usize {
    512
}

/// Bounds on the bus numbers: small enough that a typo cannot exhaust memory.
const MAX_FRAME_RANGE: std::ops::RangeInclusive<u32> = 1024..=(16 << 20);
const QUEUE_DEPTH_RANGE: std::ops::RangeInclusive<usize> = 1..=65_536;
const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=65_536;
const KEEPALIVE_RANGE: std::ops::RangeInclusive<usize> = 1..=3_600;
const MAX_QUEUED_RANGE: std::ops::RangeInclusive<usize> = 1..=10_000_000;

impl RawConfig {
    fn validate(self, source: &Path) -> Result<Config, ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            path: source.to_owned(),
            field,
            reason,
        };
        for (field, path) in [
            ("paths.state_dir", &self.paths.state_dir),
            ("paths.center_root", &self.paths.center_root),
            ("bus.socket", &self.bus.socket),
        ] {
            if !path.is_absolute() {
                return Err(invalid(
                    field,
                    format!("must be an absolute path, got {}", path.display()),
                ));
            }
        }
        // sockaddr_un holds 108 bytes including the terminating NUL.
        if self.bus.socket.as_os_str().len() > 107 {
            return Err(invalid(
                "bus.socket",
                "is longer than the 107 bytes a Unix socket path may have".to_owned(),
            ));
        }
        let socket_mode = u32::from_str_radix(&self.bus.socket_mode, 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                invalid(
                    "bus.socket_mode",
                    "must be octal permission bits such as \"0660\"".to_owned(),
                )
            })?;
        let in_range = |field, value: usize, range: std::ops::RangeInclusive<usize>| {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(invalid(
                    field,
                    format!(
                        "must be between {} and {}, got {value}",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };
        if !MAX_FRAME_RANGE.contains(&self.bus.max_frame_bytes) {
            return Err(invalid(
                "bus.max_frame_bytes",
                format!(
                    "must be between {} and {}, got {}",
                    MAX_FRAME_RANGE.start(),
                    MAX_FRAME_RANGE.end(),
                    self.bus.max_frame_bytes
                ),
            ));
        }
        let queue_depth = in_range("bus.queue_depth", self.bus.queue_depth, QUEUE_DEPTH_RANGE)?;
        let max_connections = in_range(
            "bus.max_connections",
            self.bus.max_connections,
            MAX_CONNECTIONS_RANGE,
        )?;
        let keepalive = in_range(
            "links.keepalive_seconds",
            usize::try_from(self.links.keepalive_seconds).unwrap_or(usize::MAX),
            KEEPALIVE_RANGE,
        )?;
        let max_queued_per_peer = in_range(
            "links.max_queued_per_peer",
            usize::try_from(self.links.max_queued_per_peer).unwrap_or(usize::MAX),
            MAX_QUEUED_RANGE,
        )?;
        let membership = self.membership.validate(&invalid)?;
        let accounts = &self.accounts.control_socket;
        if !accounts.is_absolute() || accounts.as_os_str().len() > 107 {
            return Err(invalid(
                "accounts.control_socket",
                format!(
                    "must be an absolute path of at most 107 bytes, got {}",
                    accounts.display()
                ),
            ));
        }
        let prefix = &self.accounts.home_prefix;
        let prefix_ok = prefix.is_absolute()
            && prefix.as_os_str().len() <= 200
            && prefix.to_str().is_some_and(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
                    && !p.split('/').any(|part| part == "..")
            });
        if !prefix_ok {
            return Err(invalid(
                "accounts.home_prefix",
                format!(
                    "must be an absolute path of at most 200 bytes of letters, digits, '/', '.', '_', '-' without '..', got {}",
                    prefix.display()
                ),
            ));
        }
        if let Some(bad) = self.accounts.reserved_names.iter().find(|n| {
            !(2..=32).contains(&n.len())
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }) {
            return Err(invalid(
                "accounts.reserved_names",
                format!("`{bad}` is not an account name (^[a-z][a-z0-9]{{1,31}}$)"),
            ));
        }
        let ldap = self.ldap.validate(invalid)?;
        Ok(Config {
            source: source.to_owned(),
            paths: Paths {
                state_dir: self.paths.state_dir,
                center_root: self.paths.center_root,
            },
            bus: Bus {
                socket: self.bus.socket,
                socket_mode,
                max_frame_bytes: self.bus.max_frame_bytes,
                queue_depth,
                max_connections,
            },
            links: Links {
                keepalive: std::time::Duration::from_secs(keepalive as u64),
                max_queued_per_peer: max_queued_per_peer as u64,
            },
            feeds: Feeds {
                max_events_per_hour: self.feeds.max_events_per_hour,
                max_bytes_per_hour: self.feeds.max_bytes_per_hour,
                max_bytes_per_origin: self.feeds.max_bytes_per_origin,
                retention_days: self.feeds.retention_days,
            },
            ldap,
            membership,
            accounts: Accounts {
                control_socket: self.accounts.control_socket,
                home_prefix: self.accounts.home_prefix,
                reserved_names: self.accounts.reserved_names,
            },
        })
    }
}

impl RawMembership {
    fn validate(
        self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<Membership, ConfigError> {
        if !self.control_socket.is_absolute() || self.control_socket.as_os_str().len() > 107 {
            return Err(invalid(
                "membership.control_socket",
                format!(
                    "must be an absolute path of at most 107 bytes, got {}",
                    self.control_socket.display()
                ),
            ));
        }
        let policy = match self.policy.as_str() {
            "auto" => Policy::Auto,
            "manual" => Policy::Manual,
            other => {
                return Err(invalid(
                    "membership.policy",
                    format!("must be \"auto\" or \"manual\", got {other:?}"),
                ));
            }
        };
        if !(1..=24 * 365).contains(&self.invite_hours) {
            return Err(invalid(
                "membership.invite_hours",
                format!("must be between 1 and 8760, got {}", self.invite_hours),
            ));
        }
        let dht_listen = match self.dht_listen {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                invalid(
                    "membership.dht_listen",
                    format!("must be an IP:PORT address, got {text:?}"),
                )
            })?),
        };
        if !(1..=7 * 86_400).contains(&self.dht_republish_seconds) {
            return Err(invalid(
                "membership.dht_republish_seconds",
                format!(
                    "must be between 1 and 604800, got {}",
                    self.dht_republish_seconds
                ),
            ));
        }
        if self.dht_record_ttl_seconds <= self.dht_republish_seconds
            || self.dht_record_ttl_seconds > 30 * 86_400
        {
            return Err(invalid(
                "membership.dht_record_ttl_seconds",
                format!(
                    "must be longer than dht_republish_seconds and at most 30 days, got {}",
                    self.dht_record_ttl_seconds
                ),
            ));
        }
        if let Some(err) = self
            .consumers
            .iter()
            .find_map(|name| center_proto::name::check_service_name(name).err())
        {
            return Err(invalid("membership.consumers", err));
        }
        if self.excommunicate_quorum > 1000 {
            return Err(invalid(
                "membership.excommunicate_quorum",
                format!(
                    "must be between 0 (a majority) and 1000, got {}",
                    self.excommunicate_quorum
                ),
            ));
        }
        if !(1..=1000).contains(&self.max_announced_per_day) {
            return Err(invalid(
                "membership.max_announced_per_day",
                format!(
                    "must be between 1 and 1000, got {}",
                    self.max_announced_per_day
                ),
            ));
        }
        Ok(Membership {
            control_socket: self.control_socket,
            policy,
            invite_ttl: std::time::Duration::from_secs(self.invite_hours * 3600),
            dht_listen,
            dht_republish: std::time::Duration::from_secs(self.dht_republish_seconds),
            dht_record_ttl: std::time::Duration::from_secs(self.dht_record_ttl_seconds),
            consumers: self.consumers,
            excommunicate_quorum: usize::try_from(self.excommunicate_quorum)
                .ok()
                .filter(|n| *n > 0),
            max_announced_per_day: usize::try_from(self.max_announced_per_day).unwrap_or(1000),
        })
    }
}

#[cfg(test)]
mod tests;
