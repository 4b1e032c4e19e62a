//! Benchmark of one peer under a flood (issue 13): the honest traffic's
//! latency to a victim peer, idle and while a hostile member and 1,000
//! unauthenticated connections flood it, side by side, with the flood's
//! counts and the victim's disk use before and after. It prints one JSON
//! document on stdout and human notes on stderr, and asserts nothing.
//!
//! Run it as root (the test network acts as the sysadmin), with daemons
//! built in the same profile: `cargo build --workspace --bins && cargo bench
//! -p center-e2e --bench flood --profile dev`, or `cargo build --release
//! --workspace --bins && cargo bench -p center-e2e --bench flood`.
//! `CENTER_BENCH_N` sets how many honest messages each run measures
//! (default 200, half direct messages, half feed events), and
//! `CENTER_BENCH_KEEP=1` keeps the network's directory afterwards.
//!
//! - The network: alpha, bravo and charlie, wired by hand; charlie is the
//!   victim. A grant on charlie receives `flood.*`, so the member's direct
//!   messages are kept (up to the inbox quota) rather than dropped.
//! - Honest traffic: a root service on alpha publishes, one at a time, a
//!   direct message to charlie or a feed event (alternately), at most one
//!   per 100 ms; each latency runs from the publish until a subscriber on
//!   charlie has it.
//! - The hostile member: bravo's root publishes as fast as its bus takes
//!   them, from four services, direct messages of 1 KiB to charlie and
//!   feed events of 1 KiB, until the flooded run ends.
//! - The unauthenticated host: 1,000 connections to charlie's peer port,
//!   10 from each of 100 loopback addresses (127.253.0.1 to .100; the
//!   client socket is bound before it connects). Half hold silently, a
//!   quarter send a garbage frame, a quarter a `NEW` join request, and
//!   hold on; each connection, once closed by charlie, is made again a
//!   second later, until the flooded run ends.
//!
//! Everything stays on loopback and stops by itself: the flood ends with
//! the flooded run, which ends after its messages or [`FLOODED_LIMIT`].
//!
//! Started by `cargo test` (without `--bench`), it only says how to run it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use center_bus::{BusError, Client, ClientConfig, Pattern, PeerId, Publish, Start};
use center_proto::{
    Destination, Envelope, EventName, Meta, Timestamp,
    peer_frame::{Auth, PeerFrame},
};
use center_testnet::{Formation, Options, PeerInfo, Testnet, default_bin_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Honest messages per run when `CENTER_BENCH_N` is not set.
const DEFAULT_N: usize = 200;
/// Unauthenticated connections held open (or tried) at once.
const CONNECTIONS: usize = 1_000;
/// Source addresses they come from (127.253.0.1 onwards).
const SOURCES: usize = 100;
/// Services on bravo publishing the member's flood.
const FLOODERS: usize = 4;
/// The flood's payload pad.
const FLOOD_BYTES: usize = 1024;
/// Honest messages go out one at a time, at most one per this, so a run
/// lasts longer than the victim's hello deadline and held connections
/// cycle.
const HONEST_INTERVAL: Duration = Duration::from_millis(100);
/// How long one honest message may take before it counts as lost.
const STALL: Duration = Duration::from_secs(30);
/// The flooded run ends after this even if messages are still missing.
const FLOODED_LIMIT: Duration = Duration::from_secs(180);
/// A connection closed within this of its opening, before it sent
/// anything, was refused (charlie accepts and closes at once when its
/// slots are taken).
const REFUSED_WITHIN: Duration = Duration::from_millis(300);
/// A closed connection is made again after this.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

fn main() {
    center_e2e::bench::main(
        "flood",
        "cargo build --workspace --bins && cargo bench -p center-e2e --bench flood --profile dev",
        run,
    );
}

fn run() -> anyhow::Result<()> {
    let n = center_e2e::bench::env_count("CENTER_BENCH_N", DEFAULT_N, 2..=usize::MAX)
        .map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("run it as root: the test network acts as the sysadmin");
    }
    let bin_dir = default_bin_dir()?;
    for binary in ["centerctl", "dispatchd"] {
        if !bin_dir.join(binary).is_file() {
            bail!(
                "{} is missing: build the daemons in the same profile first (`cargo build --workspace --bins` for the dev profile, or set CENTER_BIN_DIR)",
                bin_dir.join(binary).display()
            );
        }
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "flood: {n} honest messages per run, {profile} build, daemons from {}",
        bin_dir.display()
    );
    let dir = tempfile::Builder::new().prefix("center-bench-").tempdir()?;
    let net = Testnet::up(&Options {
        dir: dir.path().to_owned(),
        peers: 3,
        bin_dir,
        formation: Formation::Wired,
        ldap: None,
    })
    .context("cannot start the test network")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(measure(&net, n));
    if result.is_err() || std::env::var_os("CENTER_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        eprintln!(
            "flood: the network's directory is kept: {} (logs in <peer>/log/)",
            kept.display()
        );
    }
    let mut report = result?;
    if let Some(object) = report.as_object_mut() {
        object.insert("profile".into(), json!(profile));
        object.insert(
            "cpus".into(),
            json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
        );
    }
    println!("{report}");
    Ok(())
}

async fn measure(net: &Testnet, n: usize) -> anyhow::Result<Value> {
    let alpha = net.peer("alpha")?.clone();
    let bravo = net.peer("bravo")?.clone();
    let charlie = net.peer("charlie")?.clone();
    // A grant that receives the member's direct messages: kept, not dropped.
    let approved = net
        .centerctl(&charlie)
        .args([
            "service",
            "approve",
            "inbox",
            "--user",
            "60001",
            "--receive",
            "flood.*",
            "--send",
            "flood.*",
        ])
        .output()?;
    if !approved.status.success() {
        bail!(
            "service approve on charlie failed: {}",
            String::from_utf8_lossy(&approved.stderr)
        );
    }

    let mut receiver = client(&charlie, "bench").await?;
    receiver
        .subscribe_with(vec![Pattern::parse("bench.*")?], Start::New)
        .await?;
    let mut sender = client(&alpha, "bench").await?;
    // Warm-up: connections, the Olm session and the feed sync are set up.
    let mut seq = 0;
    for _ in 0..2 {
        if honest(&mut sender, &mut receiver, charlie.uuid, seq)
            .await?
            .is_none()
        {
            bail!("the warm-up message {seq} did not arrive");
        }
        seq += 1;
    }
    let disk_before = disk_use(&charlie.state_dir);
    let rss_before = rss_kib(net, &charlie);
    eprintln!("flood: warm; idle run");

    let idle = run_honest(&mut sender, &mut receiver, charlie.uuid, &mut seq, n, None).await?;
    eprintln!("flood: starting the flood");

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut flood = Vec::new();
    for k in 0..FLOODERS {
        let (bravo, stop, counts) = (bravo.clone(), stop.clone(), counts.clone());
        let to = (k % 2 == 0).then_some(charlie.uuid);
        flood.push(tokio::spawn(async move {
            member_flood(&bravo, to, &stop, &counts).await
        }));
    }
    for i in 0..CONNECTIONS {
        let (stop, counts) = (stop.clone(), counts.clone());
        let (addr, victim) = (charlie.addr, charlie.uuid);
        flood.push(tokio::spawn(async move {
            unauthenticated(i, addr, victim, &stop, &counts).await;
            Ok(())
        }));
    }
    // The flooded run starts once every connection was tried once and
    // either held or refused.
    let ramp = Instant::now();
    while counts.settled.load(Ordering::Relaxed) < CONNECTIONS as u64 {
        if ramp.elapsed() > STALL {
            eprintln!("flood: not every connection was tried within {STALL:?}; measuring anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ramp_s = ramp.elapsed().as_secs_f64();
    eprintln!("flood: {CONNECTIONS} connections tried after {ramp_s:.2} s; flooded run");
    let flood_start = Instant::now();
    let flooded = run_honest(
        &mut sender,
        &mut receiver,
        charlie.uuid,
        &mut seq,
        n,
        Some(FLOODED_LIMIT),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let flood_s = flood_start.elapsed().as_secs_f64();
    for task in flood {
        task.await??;
    }
    eprintln!("flood: flood over after {flood_s:.1} s");
    let disk_after = disk_use(&charlie.state_dir);
    let rss_after = rss_kib(net, &charlie);
    let inbox = inbox_rows(&charlie, &[&alpha, &bravo]);

    let c = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    Ok(json!({
        "bench": "flood",
        "peers": 3,
        "victim": "charlie",
        "honest_messages_per_run": n,
        "honest_interval_ms": HONEST_INTERVAL.as_millis() as u64,
        "idle": idle,
        "flooded": flooded,
        "flood_seconds": round(flood_s, 2),
        "ramp_seconds": round(ramp_s, 2),
        "hostile_member": {
            "peer": "bravo",
            "services": FLOODERS,
            "payload_pad_bytes": FLOOD_BYTES,
            "direct_published": c(&counts.direct_ok),
            "feed_published": c(&counts.feed_ok),
            "publishes_refused": c(&counts.publish_refused),
            "publish_errors": c(&counts.publish_errors),
        },
        "unauthenticated": {
            "connections": CONNECTIONS,
            "source_addresses": SOURCES,
            "attempts": c(&counts.attempts),
            "connect_failed": c(&counts.connect_failed),
            "refused_at_once": c(&counts.refused),
            "accepted": c(&counts.accepted),
            "closed_by_victim_after_accept": c(&counts.closed_after_accept),
            "garbage_frames_sent": c(&counts.garbage),
            "new_frames_sent": c(&counts.new_frames),
        },
        "victim_state_dir": {
            "bytes_before": disk_before.0,
            "bytes_after": disk_after.0,
            "allocated_bytes_before": disk_before.1,
            "allocated_bytes_after": disk_after.1,
        },
        "victim_dispatchd_rss_kib": { "before": rss_before, "after": rss_after },
        "victim_inbox_rows_after": inbox,
        "quotas": { "inbox_per_peer": 10_000, "new_kept": 256, "connections": 256, "per_address": 8 },
    }))
}

/// The flood's counters, shared by its tasks.
#[derive(Default)]
struct Counts {
    direct_ok: AtomicU64,
    feed_ok: AtomicU64,
    publish_refused: AtomicU64,
    publish_errors: AtomicU64,
    attempts: AtomicU64,
    /// Attempts refused, accepted or failed (the ramp waits for them).
    settled: AtomicU64,
    connect_failed: AtomicU64,
    refused: AtomicU64,
    accepted: AtomicU64,
    closed_after_accept: AtomicU64,
    garbage: AtomicU64,
    new_frames: AtomicU64,
}

/// Bravo's root publishing as fast as its bus takes it: direct messages to
/// `to`, or feed events when `to` is `None`, until `stop`.
async fn member_flood(
    bravo: &PeerInfo,
    to: Option<PeerId>,
    stop: &AtomicBool,
    counts: &Counts,
) -> anyhow::Result<()> {
    let mut publisher = client(bravo, "flood").await?;
    let pad = "x".repeat(FLOOD_BYTES);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let publish = Publish {
            name: if to.is_some() {
                "flood.direct"
            } else {
                "flood.feed"
            }
            .to_owned(),
            data: json!({ "i": i, "pad": pad }),
            to,
            ttl: None,
            local: false,
        };
        match publisher.publish(publish).await {
            Ok(()) if to.is_some() => counts.direct_ok.fetch_add(1, Ordering::Relaxed),
            Ok(()) => counts.feed_ok.fetch_add(1, Ordering::Relaxed),
            Err(err) => {
                let counter = if matches!(err, BusError::Refused { .. }) {
                    &counts.publish_refused
                } else {
                    &counts.publish_errors
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // A refusal (full outbox, budget) comes back at once: do
                // not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
                0
            }
        };
    }
    Ok(())
}

/// Connection `i` of the unauthenticated host, made again after each close
/// until `stop`.
async fn unauthenticated(
    i: usize,
    victim: SocketAddr,
    victim_id: PeerId,
    stop: &AtomicBool,
    counts: &Counts,
) {
    // Consecutive connections share an address, so each address has
    // connections of every kind.
    let per_source = CONNECTIONS / SOURCES;
    let source = Ipv4Addr::new(127, 253, 0, 1 + (i / per_source) as u8);
    while !stop.load(Ordering::Relaxed) {
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        let connected = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((source, 0)))?;
            tokio::time::timeout(Duration::from_secs(5), socket.connect(victim))
                .await
                .map_err(std::io::Error::other)?
        }
        .await;
        let Ok(mut stream) = connected else {
            counts.connect_failed.fetch_add(1, Ordering::Relaxed);
            counts.settled.fetch_add(1, Ordering::Relaxed);
            pause(stop).await;
            continue;
        };
        let mut buf = [0u8; 256];
        // Closed at once, before anything was sent: refused.
        match tokio::time::timeout(REFUSED_WITHIN, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                counts.settled.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                pause(stop).await;
                continue;
            }
            _ => {
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                counts.settled.fetch_add(1, Ordering::Relaxed);
            }
        }
        let sent = match i % 4 {
            2 => stream
                .write_all(b"\x00\x00\x00\x10garbage garbage!")
                .await
                .map(|()| &counts.garbage),
            3 => stream
                .write_all(&join_request(victim_id))
                .await
                .map(|()| &counts.new_frames),
            _ => Err(std::io::ErrorKind::Other.into()),
        };
        if let Ok(counter) = sent {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // Held until charlie closes it or the flood ends.
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
            {
                counts.closed_after_accept.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        drop(stream);
        pause(stop).await;
    }
}

/// Waits [`RECONNECT_AFTER`], less if the flood ends sooner.
async fn pause(stop: &AtomicBool) {
    let until = Instant::now() + RECONNECT_AFTER;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A well-formed `NEW` frame (a join request from a random newcomer), with
/// its length prefix.
fn join_request(victim: PeerId) -> Vec<u8> {
    let newcomer = PeerId::new_random();
    let iat = Timestamp::now();
    let envelope = Envelope {
        name: EventName::parse("new-peer-server").expect("a valid name"),
        meta: Meta {
            from: newcomer,
            to: Destination::Peer(victim),
            iat,
            exp: iat.saturating_add(Duration::from_secs(600)),
        },
        data: json!({ "admin": "flood", "server": "flood.example:127.0.0.9", "pad": "x".repeat(FLOOD_BYTES) }),
    };
    envelope
        .canonical_bytes()
        .ok()
        .and_then(|payload| PeerFrame::new(newcomer, victim, Auth::New, payload).ok())
        .map(|frame| frame.to_frame())
        .unwrap_or_default()
}

/// `n` honest messages from alpha to charlie, one at a time, alternately a
/// direct message and a feed event; their latencies, split by kind. With a
/// `limit`, the run ends after it even if messages remain.
async fn run_honest(
    sender: &mut Client,
    receiver: &mut Client,
    to: PeerId,
    seq: &mut u64,
    n: usize,
    limit: Option<Duration>,
) -> anyhow::Result<Value> {
    let start = Instant::now();
    let (mut direct, mut feed, mut lost) = (Vec::new(), Vec::new(), 0u64);
    for k in 0..n {
        if limit.is_some_and(|limit| start.elapsed() > limit) {
            eprintln!("flood: the run reached its time limit after {k} messages");
            break;
        }
        tokio::time::sleep_until((start + HONEST_INTERVAL * k as u32).into()).await;
        match honest(sender, receiver, to, *seq).await? {
            Some(latency) if seq.is_multiple_of(2) => direct.push(latency),
            Some(latency) => feed.push(latency),
            None => lost += 1,
        }
        *seq += 1;
    }
    Ok(json!({
        "direct_message_latency_ms": summary(direct),
        "feed_event_latency_ms": summary(feed),
        "lost_after_30s": lost,
        "seconds": round(start.elapsed().as_secs_f64(), 2),
    }))
}

/// Publishes honest message `seq` on alpha (a direct message to `to` if
/// `seq` is even, a feed event otherwise) and waits for it on charlie; its
/// latency, or `None` after [`STALL`].
async fn honest(
    sender: &mut Client,
    receiver: &mut Client,
    to: PeerId,
    seq: u64,
) -> anyhow::Result<Option<Duration>> {
    let (name, to) = if seq.is_multiple_of(2) {
        ("bench.direct", Some(to))
    } else {
        ("bench.feed", None)
    };
    let sent = Instant::now();
    sender
        .publish(Publish {
            name: name.to_owned(),
            data: json!({ "seq": seq }),
            to,
            ttl: None,
            local: false,
        })
        .await?;
    let deadline = sent + STALL;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = tokio::time::timeout(left, receiver.next_event()).await else {
            return Ok(None);
        };
        let event = event?;
        if event.name.as_str() == name && event.data["seq"].as_u64() == Some(seq) {
            return Ok(Some(sent.elapsed()));
        }
    }
}

/// p50, p99 and max in milliseconds, and how many.
fn summary(mut latencies: Vec<Duration>) -> Value {
    latencies.sort();
    let quantile = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(index)
            .map_or(0.0, |d| round(d.as_secs_f64() * 1e3, 2))
    };
    json!({
        "n": latencies.len(),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": quantile(1.0),
    })
}

/// Bytes of the files under `dir`: their lengths, and what they take on
/// disk (512-byte blocks).
fn disk_use(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            let (len, blocks) = disk_use(&entry.path());
            total = (total.0 + len, total.1 + blocks);
        } else {
            total = (total.0 + meta.len(), total.1 + meta.blocks() * 512);
        }
    }
    total
}

/// Resident memory of the victim's dispatchd, in KiB.
fn rss_kib(net: &Testnet, peer: &PeerInfo) -> Option<u64> {
    let pid = net.daemon_pid(peer, "dispatchd")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Rows in the victim's inbox per sender (named when it is one of
/// `peers`), read with `sqlite3`; null if it cannot be read.
fn inbox_rows(victim: &PeerInfo, peers: &[&PeerInfo]) -> Value {
    let Ok(out) = std::process::Command::new("sqlite3")
        .arg("-cmd")
        .arg(".timeout 5000")
        .arg(victim.state_dir.join("dispatchd/links.sqlite3"))
        .arg("SELECT peer, COUNT(*) FROM inbox GROUP BY peer")
        .output()
    else {
        return Value::Null;
    };
    if !out.status.success() {
        return Value::Null;
    }
    let mut rows = serde_json::Map::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((peer, count)) = line.split_once('|') else {
            continue;
        };
        let name = peers
            .iter()
            .find(|p| p.uuid.to_string() == peer)
            .map_or(peer, |p| p.name.as_str());
        rows.insert(name.to_owned(), json!(count.parse::<u64>().unwrap_or(0)));
    }
    Value::Object(rows)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

async fn client(peer: &PeerInfo, service: &str) -> anyhow::Result<Client> {
    let config = ClientConfig {
        socket: peer.bus_socket.clone(),
        service: service.into(),
        reconnect_for: Some(Duration::from_secs(30)),
    };
    Client::connect(config)
        .await
        .with_context(|| format!("cannot connect to {}'s bus", peer.name))
}
