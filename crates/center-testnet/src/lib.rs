//! `center-testnet`: a whole network of center peers on one machine, for
//! tests and demos. Each peer gets its own 127.x.y.z address, config, state
//! directory, `/center` root, bus socket and daemons, all under one directory.
//!
//! The library is what integration tests use; the `center-testnet` binary
//! wraps it for scripts (`up`, `stop`, `start`, `down`). State needed to find
//! the processes again is kept in `DIR/testnet.json` and pid files, so `down`
//! works from a different process than `up`.
//!
//! Readiness is awaited through `READY=1` on a notify socket, never by
//! sleeping (see `process`).

mod clock;
mod ldap;
mod membership;
mod partition;
mod process;
mod userd;

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Mutex,
};

use anyhow::{Context, bail};
use center_proto::PeerId;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

pub use ldap::{LDAP_BASE, LDAP_PORT, LdapOptions, PeerLdap};
pub use membership::{Invitation, TEST_ADMIN};
pub use partition::parse_groups;
pub use process::DaemonFiles;
pub use userd::USERD;

/// The daemons every peer runs, in start order.
pub const DAEMONS: &[&str] = &["dispatchd", "peerd"];

/// How the peers come to trust each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formation {
    /// Every sysadmin adds every other's description by hand (`peer add`):
    /// quick, for tests of other things.
    Wired,
    /// The RFC's join flow: every peer joins through the first one
    /// (`peer invite`, `peer join`, `peer approve`), the others add it when
    /// it is announced.
    Joined,
    /// Nobody trusts anybody yet; the test forms the network itself.
    Alone,
}

/// The dispatcher port; peers differ by address, not port.
pub const PORT: u16 = 7350;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Everything lives under here; created if missing.
    pub dir: PathBuf,
    /// How many peers.
    pub peers: usize,
    /// Where the daemon binaries are; see [`default_bin_dir`].
    pub bin_dir: PathBuf,
    pub formation: Formation,
    /// One slapd per peer, set up as an installer would (see `ldap`).
    pub ldap: Option<LdapOptions>,
}

/// One peer as the test network set it up.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub name: String,
    pub uuid: PeerId,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub bus_socket: PathBuf,
    pub state_dir: PathBuf,
    pub center_root: PathBuf,
    pub log_dir: PathBuf,
    /// Its public description (`centerctl peer whoami --json`).
    pub description: PathBuf,
}

/// A running (or partly stopped) test network.
pub struct Testnet {
    dir: PathBuf,
    bin_dir: PathBuf,
    peers: Vec<PeerInfo>,
    /// One slapd per peer, or none; see `ldap`.
    ldap: Vec<PeerLdap>,
    /// Daemons started by this process, kept so they are reaped when they
    /// exit. Empty after [`Testnet::detach`] or in a network opened with
    /// [`Testnet::open`]; those are found through pid files.
    children: Mutex<Vec<Child>>,
    /// Whether dropping this handle takes the network down.
    owned: bool,
}

const NAMES: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

/// The binaries next to the running executable: `target/debug` for both the
/// `center-testnet` binary and test executables in `target/debug/deps`.
/// `CENTER_BIN_DIR` overrides it.
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CENTER_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_owned();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    Ok(dir)
}

impl Testnet {
    /// Creates and starts a network; returns once every daemon is ready.
    /// Dropping the handle takes it down again.
    pub fn up(options: &Options) -> anyhow::Result<Testnet> {
        if options.peers == 0 || options.peers > 200 {
            bail!("--peers must be between 1 and 200");
        }
        fs::create_dir_all(&options.dir)
            .with_context(|| format!("cannot create {}", options.dir.display()))?;
        let dir = options.dir.canonicalize()?;
        if dir.join("testnet.json").exists() {
            bail!(
                "{} already holds a test network; run `center-testnet down --dir {}` first",
                dir.display(),
                dir.display()
            );
        }
        // Users other than the caller (tests run some clients as another uid)
        // must be able to reach the bus sockets inside.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        // A random 127.x.y.0/24 per network, so networks started side by side
        // (parallel tests) never share an address.
        let x: u8 = rand::random_range(16..=250);
        let y: u8 = rand::random();
        let mut peers = Vec::new();
        for index in 0..options.peers {
            let name = NAMES
                .get(index)
                .map_or_else(|| format!("peer{}", index + 1), |n| (*n).to_owned());
            let host = u8::try_from(index + 1).context("too many peers")?;
            let addr = SocketAddr::from((Ipv4Addr::new(127, x, y, host), PORT));
            // With accounts, a peer is a member once userd applied them all.
            let consumers: &[&str] = if options.ldap.is_some() {
                &["userd"]
            } else {
                &[]
            };
            peers.push(write_peer(&dir, &name, addr, &options.bin_dir, consumers)?);
        }
        let ldap = match &options.ldap {
            Some(ldap_options) => ldap::init_all(&peers, ldap_options)?,
            None => Vec::new(),
        };
        let net = Testnet {
            dir,
            bin_dir: options.bin_dir.clone(),
            peers,
            ldap,
            children: Mutex::new(Vec::new()),
            owned: true,
        };
        fs::write(
            net.dir.join("testnet.json"),
            serde_json::to_vec_pretty(&net.to_json())?,
        )?;
        for ldap in &net.ldap {
            ldap::start(ldap)?;
        }
        for peer in &net.peers {
            net.start(&peer.name)?;
        }
        match options.formation {
            Formation::Wired => net.wire_rosters()?,
            Formation::Joined => net.join_all()?,
            Formation::Alone => {}
        }
        Ok(net)
    }

    /// Makes every peer trust every other, the way two sysadmins would by
    /// hand: `centerctl peer add --from` with the other's description. (The
    /// RFC's join flow replaces this when membership exists.)
    fn wire_rosters(&self) -> anyhow::Result<()> {
        for peer in &self.peers {
            for other in self.peers.iter().filter(|o| o.uuid != peer.uuid) {
                let output = self
                    .centerctl(peer)
                    .args(["peer", "add", "--from"])
                    .arg(&other.description)
                    .output()?;
                if !output.status.success() {
                    bail!(
                        "peer {}: adding {} to the roster failed: {}",
                        peer.name,
                        other.name,
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
            }
        }
        Ok(())
    }

    /// Finds a network started earlier (by another process) in `dir`.
    /// Dropping this handle leaves the network running.
    pub fn open(dir: &Path) -> anyhow::Result<Testnet> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no test network in {}", dir.display()))?;
        let doc: Value = serde_json::from_slice(
            &fs::read(dir.join("testnet.json"))
                .with_context(|| format!("no test network in {}", dir.display()))?,
        )?;
        let bin_dir = PathBuf::from(
            doc["bin_dir"]
                .as_str()
                .context("testnet.json lacks bin_dir")?,
        );
        let mut peers = Vec::new();
        for peer in doc["peers"]
            .as_array()
            .context("testnet.json lacks peers")?
        {
            let text = |key: &str| -> anyhow::Result<String> {
                Ok(peer[key]
                    .as_str()
                    .with_context(|| format!("testnet.json: peer lacks {key}"))?
                    .to_owned())
            };
            let name = text("name")?;
            let info = peer_info(&dir, &name, text("uuid")?.parse()?, text("addr")?.parse()?);
            peers.push(info);
        }
        let ldap = ldap::from_doc(&doc)?;
        Ok(Testnet {
            dir,
            bin_dir,
            peers,
            ldap,
            children: Mutex::new(Vec::new()),
            owned: false,
        })
    }

    /// Keeps the network running after this handle is dropped (the CLI's `up`).
    pub fn detach(mut self) {
        self.owned = false;
        // The children outlive us; whoever stops them waits on their pidfd.
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn peers(&self) -> &[PeerInfo] {
        &self.peers
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> anyhow::Result<&PeerInfo> {
        self.peers.iter().find(|p| p.name == name).with_context(|| {
            let names: Vec<&str> = self.peers.iter().map(|p| p.name.as_str()).collect();
            format!(
                "no peer `{name}` in this network (peers: {})",
                names.join(", ")
            )
        })
    }

    /// The run-time files of one daemon of one peer.
    pub fn daemon_files(&self, peer: &PeerInfo, daemon: &str) -> DaemonFiles {
        let run = peer.dir.join("run");
        DaemonFiles {
            binary: self.bin_dir.join(daemon),
            config: peer.config.clone(),
            pid_file: run.join(format!("{daemon}.pid")),
            notify_socket: run.join(format!("notify-{daemon}.sock")),
            log: peer.log_dir.join(format!("{daemon}.log")),
        }
    }

    /// Starts every daemon of a peer that is not running; waits for each.
    pub fn start(&self, name: &str) -> anyhow::Result<()> {
        let peer = self.peer(name)?;
        for daemon in DAEMONS {
            self.start_daemon(peer, daemon)?;
        }
        self.start_userd(peer)
    }

    /// Starts one daemon if it is not running, and waits until it is ready.
    pub fn start_daemon(&self, peer: &PeerInfo, daemon: &str) -> anyhow::Result<()> {
        let files = self.daemon_files(peer, daemon);
        if process::running_pid(&files).is_some() {
            return Ok(());
        }
        if daemon == "peerd" {
            self.approve_peerd(peer)?;
        }
        let child = process::spawn_ready(&files, &self.skew_vars(peer))
            .with_context(|| format!("peer {}: {daemon} did not start", peer.name))?;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child);
        Ok(())
    }

    /// Stops every daemon of a peer (SIGTERM, then SIGKILL if it lingers).
    pub fn stop(&self, name: &str) -> anyhow::Result<()> {
        let peer = self.peer(name)?;
        self.stop_userd(peer)?;
        for daemon in DAEMONS.iter().rev() {
            self.signal_daemon(peer, daemon, Signal::SIGTERM)?;
        }
        Ok(())
    }

    /// Sends a signal to one daemon and waits for it to exit (kill -9 tests).
    pub fn signal_daemon(
        &self,
        peer: &PeerInfo,
        daemon: &str,
        signal: Signal,
    ) -> anyhow::Result<()> {
        process::signal_and_wait(&self.daemon_files(peer, daemon), signal)?;
        self.reap();
        Ok(())
    }

    /// The pid of a running daemon.
    pub fn daemon_pid(&self, peer: &PeerInfo, daemon: &str) -> Option<i32> {
        process::running_pid(&self.daemon_files(peer, daemon)).map(|pid| pid.as_raw())
    }

    /// Stops everything and removes `testnet.json`; leaves logs and state.
    pub fn down(&self) -> anyhow::Result<()> {
        let mut first_error = None;
        if self.partitioned()
            && let Err(err) = self.heal()
        {
            first_error.get_or_insert(err);
        }
        for peer in &self.peers {
            if let Err(err) = self.stop(&peer.name) {
                first_error.get_or_insert(err);
            }
        }
        for ldap in &self.ldap {
            if let Err(err) = ldap::stop(ldap) {
                first_error.get_or_insert(err);
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        let _ = fs::remove_file(self.dir.join("testnet.json"));
        Ok(())
    }

    /// A `centerctl` command aimed at a peer (`--config` already given).
    pub fn centerctl(&self, peer: &PeerInfo) -> Command {
        let mut command = Command::new(self.bin_dir.join("centerctl"));
        command.arg("--config").arg(&peer.config);
        self.skew(peer, &mut command);
        command
    }

    /// The path of a workspace binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The document `center-testnet up` prints.
    pub fn to_json(&self) -> Value {
        let mut peers: Vec<Value> = self
            .peers
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "uuid": p.uuid.to_string(),
                    "addr": p.addr.to_string(),
                    "config": p.config,
                    "bus_socket": p.bus_socket,
                    "state_dir": p.state_dir,
                    "center_root": p.center_root,
                    "log_dir": p.log_dir,
                    "description": p.description,
                })
            })
            .collect();
        ldap::annotate(&mut peers, &self.ldap);
        json!({ "dir": self.dir, "bin_dir": self.bin_dir, "peers": peers })
    }

    /// Reaps children that have exited.
    fn reap(&self) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.owned
            && let Err(err) = self.down()
        {
            eprintln!("center-testnet: taking the network down failed: {err:#}");
        }
        for mut child in self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if self.owned {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn peer_info(dir: &Path, name: &str, uuid: PeerId, addr: SocketAddr) -> PeerInfo {
    let peer_dir = dir.join(name);
    PeerInfo {
        name: name.to_owned(),
        uuid,
        addr,
        config: peer_dir.join("center.toml"),
        bus_socket: peer_dir.join("run/bus.sock"),
        state_dir: peer_dir.join("state"),
        center_root: peer_dir.join("center"),
        log_dir: peer_dir.join("log"),
        description: peer_dir.join("state/dispatchd/description.json"),
        dir: peer_dir,
    }
}

/// Creates a peer's directories, config file and identity (`centerctl init`).
fn write_peer(
    dir: &Path,
    name: &str,
    addr: SocketAddr,
    bin_dir: &Path,
    consumers: &[&str],
) -> anyhow::Result<PeerInfo> {
    // The UUID is the identity's; a placeholder until init has made it.
    let mut info = peer_info(dir, name, PeerId::from(uuid::Uuid::nil()), addr);
    for sub in [
        &info.dir,
        &info.dir.join("run"),
        &info.state_dir,
        &info.center_root,
        &info.log_dir,
    ] {
        fs::create_dir_all(sub)?;
        fs::set_permissions(sub, fs::Permissions::from_mode(0o755))?;
    }
    let config = format!(
        "# Written by center-testnet for peer {name}.\n\
         [paths]\nstate_dir = {state}\ncenter_root = {center}\n\n\
         [bus]\nsocket = {socket}\nsocket_mode = \"0666\"\n\n\
         [membership]\ncontrol_socket = {control}\n\
         dht_republish_seconds = 15\ndht_record_ttl_seconds = 300\n\
         consumers = {consumers}\n\n\
         [accounts]\ncontrol_socket = {accounts}\nhome_prefix = {homes}\n",
        control = toml_string(&info.dir.join("run/peerd.sock")),
        accounts = toml_string(&info.dir.join("run/userd.sock")),
        // Each peer its own home tree, as on separate machines (CEP 8).
        homes = toml_string(&info.dir.join("home")),
        state = toml_string(&info.state_dir),
        center = toml_string(&info.center_root),
        socket = toml_string(&info.bus_socket),
        consumers = Value::from(consumers.to_vec()),
    );
    fs::write(&info.config, config)?;
    let centerctl = bin_dir.join("centerctl");
    let output = Command::new(&centerctl)
        .arg("--config")
        .arg(&info.config)
        .args(["--json", "init", "--name", name, "--address"])
        .arg(addr.to_string())
        .output()
        .with_context(|| format!("cannot run {}", centerctl.display()))?;
    if !output.status.success() {
        bail!(
            "peer {name}: centerctl init failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let description: Value =
        serde_json::from_slice(&output.stdout).context("centerctl init printed no description")?;
    info.uuid = description["uuid"]
        .as_str()
        .context("description lacks uuid")?
        .parse()?;
    Ok(info)
}

/// A path as a TOML basic string (JSON string escaping is valid TOML).
fn toml_string(path: &Path) -> String {
    Value::String(path.to_string_lossy().into_owned()).to_string()
}
