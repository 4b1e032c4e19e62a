//! Test support: start a network, run `centerctl` as root or as another uid,
//! follow a `bus tail` until it says it is subscribed, and speak raw frames.
//!
//! Everything waits on a signal (READY=1, a line of output, a frame), with a
//! deadline so a broken daemon fails the test instead of hanging it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{net::UnixStream, process::CommandExt},
    process::{Child, ChildStdout, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use center_testnet::{Formation, LdapOptions, Options, PeerInfo, Testnet, default_bin_dir};
use serde_json::{Value, json};

/// The deadline for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A uid no account on the test machine uses; the "other user" of the tests.
pub const STRANGER: u32 = 60_001;

/// A network of `peers` peers in a fresh temporary directory, wired by
/// hand (`peer add`), for tests of everything but membership.
pub fn network(peers: usize) -> (tempfile::TempDir, Testnet) {
    network_with(peers, Formation::Wired, None)
}

/// A network of `peers` peers formed as `formation` says.
pub fn network_formed(peers: usize, formation: Formation) -> (tempfile::TempDir, Testnet) {
    network_with(peers, formation, None)
}

/// A network formed as `formation` says, with one slapd per peer when
/// `ldap` is given.
pub fn network_with(
    peers: usize,
    formation: Formation,
    ldap: Option<LdapOptions>,
) -> (tempfile::TempDir, Testnet) {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("center-e2e-")
        .tempdir()
        .expect("temp dir");
    let bin_dir = default_bin_dir().expect("bin dir");
    let net = Testnet::up(&Options {
        dir: dir.path().to_owned(),
        peers,
        bin_dir,
        formation,
        ldap,
    })
    .expect("test network up");
    (dir, net)
}

/// These tests create processes under other uids and approve services: the
/// sysadmin's job, so they run as root (scripts/test does).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests act as the sysadmin and as other users: run them as root (scripts/test does)"
    );
}

/// `centerctl --config <peer> ARGS` as root; returns its output.
pub fn ctl(net: &Testnet, peer: &PeerInfo, args: &[&str]) -> Output {
    net.centerctl(peer)
        .args(args)
        .output()
        .expect("run centerctl")
}

/// The same, as uid/gid `uid` (no supplementary groups).
pub fn ctl_as(net: &Testnet, peer: &PeerInfo, uid: u32, args: &[&str]) -> Output {
    net.centerctl(peer)
        .args(args)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run centerctl as another uid")
}

/// `centerctl service approve SERVICE --user UID --receive R --send S` as root.
pub fn approve(net: &Testnet, peer: &PeerInfo, service: &str, uid: u32, receive: &str, send: &str) {
    let uid = uid.to_string();
    let args = [
        "service",
        "approve",
        service,
        "--user",
        &uid,
        "--receive",
        receive,
        "--send",
        send,
    ];
    ok(ctl(net, peer, &args));
}

/// Asserts success and returns stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}): stdout {} stderr {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts exit code 1 and returns stderr.
pub fn refused(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a refusal; stdout {} stderr {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `centerctl bus tail`, ready (subscribed) when returned.
pub struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    /// Starts `centerctl bus tail ARGS --json` (as `uid` if given) and waits
    /// for its `subscribed` line.
    pub fn start(net: &Testnet, peer: &PeerInfo, uid: Option<u32>, args: &[&str]) -> Tail {
        let mut command = net.centerctl(peer);
        command
            .args(["bus", "tail", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        let mut child = command.spawn().expect("spawn tail");
        let stderr = child.stderr.take().expect("stderr");
        let mut first = String::new();
        BufReader::new(stderr)
            .read_line(&mut first)
            .expect("read tail stderr");
        assert!(
            first.starts_with("subscribed to "),
            "tail did not subscribe: {first}"
        );
        let stdout = child.stdout.take().expect("stdout");
        Tail {
            child,
            lines: forward_lines(stdout),
        }
    }

    /// The next event printed, parsed.
    pub fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("an event within the deadline");
        serde_json::from_str(&line).expect("tail prints JSON")
    }

    /// The next event if one comes within `wait`.
    pub fn next_within(&self, wait: Duration) -> Option<Value> {
        self.lines
            .recv_timeout(wait)
            .ok()
            .map(|line| serde_json::from_str(&line).expect("tail prints JSON"))
    }

    /// Waits for the process to exit; its status code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().expect("wait tail").code()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A raw bus connection that speaks frames by hand, to send what a correct
/// client never would.
pub struct Raw {
    pub stream: UnixStream,
}

impl Raw {
    pub fn connect(peer: &PeerInfo) -> Raw {
        let stream = UnixStream::connect(&peer.bus_socket).expect("connect to bus");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Raw { stream }
    }

    /// Connects and completes hello as `service`; returns the welcome.
    pub fn hello(peer: &PeerInfo, service: &str) -> (Raw, Value) {
        let mut raw = Raw::connect(peer);
        raw.send(&json!({"type": "hello", "service": service, "protocol": 1}));
        let welcome = raw.recv().expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (raw, welcome)
    }

    pub fn send(&mut self, frame: &Value) {
        self.send_bytes(&serde_json::to_vec(frame).expect("json"));
    }

    pub fn send_bytes(&mut self, body: &[u8]) {
        let len = u32::try_from(body.len()).expect("small frame");
        self.stream
            .write_all(&len.to_be_bytes())
            .expect("write prefix");
        self.stream.write_all(body).expect("write body");
    }

    /// The next frame, or `None` once the broker closed the connection.
    pub fn recv(&mut self) -> Option<Value> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(serde_json::from_slice(&body).expect("broker sends JSON"))
    }
}

/// Publishes a local broadcast (kept nowhere, not a feed event) as root
/// through `centerctl`.
pub fn publish(net: &Testnet, peer: &PeerInfo, name: &str, data: &str) {
    ok(ctl(
        net,
        peer,
        &["bus", "publish", name, "--data", data, "--local"],
    ));
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Whether any live (non-zombie) process mentions `needle` on its command line.
pub fn live_processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(path.join("stat"))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if cmdline.contains(needle) && !zombie {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// A bus client of `peer` speaking for `service`, reconnecting for up to
/// `patience` if dispatchd goes away.
pub async fn bus_client(peer: &PeerInfo, service: &str, patience: Duration) -> center_bus::Client {
    center_bus::Client::connect(center_bus::ClientConfig {
        socket: peer.bus_socket.clone(),
        service: service.into(),
        reconnect_for: Some(patience),
    })
    .await
    .expect("connect")
}

/// `other` as `peer list --json` on `peer` shows it (null if absent).
pub fn roster_entry(net: &Testnet, peer: &PeerInfo, other: &PeerInfo) -> Value {
    let list: Value =
        serde_json::from_str(&ok(ctl(net, peer, &["--json", "peer", "list"]))).unwrap();
    list.as_array()
        .and_then(|peers| {
            peers
                .iter()
                .find(|p| p["uuid"] == other.uuid.to_string())
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// Polls `done` until it holds, failing with `what` after [`PATIENCE`]. For
/// state only a query shows (a peer's outbox, its feeds), not for events,
/// which the tests receive.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until nothing from `from` waits for `to`.
pub fn wait_until_drained(net: &Testnet, from: &PeerInfo, to: &PeerInfo) {
    wait_until(
        &format!("{}'s outbox for {} did not drain", from.name, to.name),
        || roster_entry(net, from, to)["queued"] == 0,
    );
}

/// Restarts every peer with a heartbeat every `seconds`: a peer cut off is
/// then `down` within three of them.
pub fn set_keepalive(net: &Testnet, seconds: u64) {
    for peer in net.peers() {
        net.stop(&peer.name).unwrap();
        let mut config = std::fs::read_to_string(&peer.config).unwrap();
        config.push_str(&format!("\n[links]\nkeepalive_seconds = {seconds}\n"));
        std::fs::write(&peer.config, config).unwrap();
        net.start(&peer.name).unwrap();
    }
}
