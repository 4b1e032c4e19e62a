//! Benchmark of feeds (CEP 6) on a 5-peer test network: how long a feed
//! event takes from its publication on one peer until a subscriber on
//! every one of the 5 peers has it (p50, p99, max), idle and under a load
//! of 1,000 events/s; and how long a peer that missed 10,000 events takes
//! to catch up once it is back. It prints one JSON document on stdout, with
//! the targets next to the figures (p99 < 250 ms idle, catch-up <
//! 10 s), and asserts nothing.
//!
//! Run it as root with daemons built in the same profile: `cargo build
//! --release --workspace --bins && cargo bench -p center-e2e --bench feeds`
//! (or `--profile dev` after `cargo build --workspace --bins`).
//! `CENTER_BENCH_KEEP=1` keeps the network's directory.
//!
//! - Idle: 200 events, one at a time: each is published when the one
//!   before reached all 5 subscribers.
//! - Under load: 5,000 events published at 1,000 events/s (paced by a
//!   1 ms tick from four services); each event's latency is measured
//!   the same way.
//! - Catch-up: echo (the fifth peer) is stopped, alpha publishes 10,000
//!   events, bravo has them all; echo starts, and the time runs from its
//!   start until a new subscriber there has received all 10,000.
//!
//! Started by `cargo test` (without `--bench`), it only says how to run it.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use center_bus::{Client, ClientConfig, Pattern, Publish, Start};
use center_testnet::{Formation, Options, PeerInfo, Testnet, default_bin_dir};
use serde_json::{Value, json};

const PEERS: usize = 5;
const IDLE_EVENTS: u64 = 200;
const LOAD_EVENTS: u64 = 5_000;
const LOAD_RATE: u64 = 1_000;
const CATCH_UP_EVENTS: u64 = 10_000;
const STALL: Duration = Duration::from_secs(120);

fn main() {
    center_e2e::bench::main(
        "feeds",
        "cargo build --release --workspace --bins && cargo bench -p center-e2e --bench feeds",
        run,
    );
}

/// When each subscriber received each event: seq → arrival per peer.
type Arrivals = Arc<Mutex<HashMap<u64, Vec<Instant>>>>;

fn run() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run it as root: the test network acts as the sysadmin");
    }
    let bin_dir = default_bin_dir()?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let dir = tempfile::Builder::new().prefix("center-bench-").tempdir()?;
    let net = Testnet::up(&Options {
        dir: dir.path().to_owned(),
        peers: PEERS,
        bin_dir,
        formation: Formation::Wired,
        ldap: None,
    })
    .context("cannot start the test network")?;
    // The rate budget would refuse a benchmark's worth of events per hour.
    for peer in net.peers() {
        net.stop(&peer.name)?;
        let mut config = std::fs::read_to_string(&peer.config)?;
        config.push_str("\n[feeds]\nmax_events_per_hour = 0\nmax_bytes_per_hour = 0\n");
        std::fs::write(&peer.config, config)?;
        net.start(&peer.name)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(measure(&net, dir.path()));
    if result.is_err() || std::env::var_os("CENTER_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        eprintln!("feeds: the network's directory is kept: {}", kept.display());
    }
    let report = result?;
    let report = json!({
        "bench": "feeds",
        "profile": profile,
        "peers": PEERS,
        "idle": report.idle,
        "under_load": report.load,
        "catch_up": report.catch_up,
        "targets": { "idle_p99_ms": 250, "catch_up_s": 10 },
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    println!("{report}");
    Ok(())
}

struct Report {
    idle: Value,
    load: Value,
    catch_up: Value,
}

async fn measure(net: &Testnet, _dir: &Path) -> anyhow::Result<Report> {
    let alpha = net.peer("alpha")?.clone();
    let arrivals: Arrivals = Arc::default();
    // Subscribed before anything is published (new events only).
    let mut receivers = Vec::new();
    for peer in net.peers() {
        let mut subscriber = client(peer, "bench-sub").await?;
        subscriber
            .subscribe_with(vec![Pattern::parse("bench.*")?], Start::New)
            .await?;
        receivers.push(tokio::spawn(receive(subscriber, arrivals.clone())));
    }
    let mut publisher = client(&alpha, "bench-pub").await?;
    // Warm-up: every connection and session is up once this reaches all.
    let mut seq = 0;
    seq += 1;
    publisher.publish(event(seq)).await?;
    wait_all(&arrivals, seq).await?;
    eprintln!("feeds: network warm; idle run");

    let mut idle = Vec::new();
    for _ in 0..IDLE_EVENTS {
        seq += 1;
        let sent = Instant::now();
        publisher.publish(event(seq)).await?;
        let last = wait_all(&arrivals, seq).await?;
        idle.push(last.duration_since(sent));
    }
    eprintln!("feeds: under load");

    let first = seq + 1;
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut publishers = Vec::new();
    for k in 0..4u64 {
        let (alpha, sent_at) = (alpha.clone(), sent_at.clone());
        publishers.push(tokio::spawn(async move {
            let mut publisher = client(&alpha, "bench-pub").await?;
            let start = Instant::now();
            for i in (k..LOAD_EVENTS).step_by(4) {
                // Paced: event i goes out at i ms.
                tokio::time::sleep_until(
                    (start + Duration::from_millis(i * 1000 / LOAD_RATE)).into(),
                )
                .await;
                if let Ok(mut sent) = sent_at.lock() {
                    sent.insert(first + i, Instant::now());
                }
                publisher.publish(event(first + i)).await?;
            }
            anyhow::Ok(())
        }));
    }
    let load_start = Instant::now();
    for task in publishers {
        task.await??;
    }
    let publish_rate = LOAD_EVENTS as f64 / load_start.elapsed().as_secs_f64();
    seq = first + LOAD_EVENTS - 1;
    let mut load = Vec::new();
    for s in first..=seq {
        let last = wait_all(&arrivals, s).await?;
        let sent = sent_at
            .lock()
            .ok()
            .and_then(|sent| sent.get(&s).copied())
            .context("a publication time is missing")?;
        load.push(last.duration_since(sent));
    }
    for receiver in receivers {
        receiver.abort();
    }
    eprintln!("feeds: catch-up");

    let echo = net.peer("echo")?.clone();
    let bravo = net.peer("bravo")?.clone();
    net.stop("echo")?;
    let before = head(net, &bravo, &alpha)?;
    let mut publishers = Vec::new();
    for k in 0..4u64 {
        let alpha = alpha.clone();
        publishers.push(tokio::spawn(async move {
            let mut publisher = client(&alpha, "bench-pub").await?;
            for i in (k..CATCH_UP_EVENTS).step_by(4) {
                publisher.publish(event(1_000_000 + i)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in publishers {
        task.await??;
    }
    let want = before + CATCH_UP_EVENTS;
    let deadline = Instant::now() + STALL;
    while head(net, &bravo, &alpha)? < want {
        if Instant::now() > deadline {
            bail!("bravo did not get alpha's events");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    net.start("echo")?;
    let started = start.elapsed();
    let mut late = client(&echo, "bench-late").await?;
    late.subscribe_with(vec![Pattern::parse("bench.*")?], Start::Oldest)
        .await?;
    let mut received = 0u64;
    while received < want {
        let delivery = tokio::time::timeout(STALL, late.next_delivery())
            .await
            .context("echo's subscriber stalled")??;
        if delivery.feed.is_some() {
            received += 1;
        }
    }
    let caught_up = start.elapsed();
    Ok(Report {
        idle: summary(&mut idle),
        load: {
            let mut summary = summary(&mut load);
            summary["publish_rate_per_s"] = json!(round(publish_rate, 1));
            summary
        },
        catch_up: json!({
            "events": CATCH_UP_EVENTS,
            "held_by_echo_before": want - CATCH_UP_EVENTS,
            "seconds": round(caught_up.as_secs_f64(), 3),
            "daemon_start_seconds": round(started.as_secs_f64(), 3),
        }),
    })
}

/// Records when every feed event arrives at a subscriber.
async fn receive(mut subscriber: Client, arrivals: Arrivals) -> anyhow::Result<()> {
    loop {
        let delivery = subscriber.next_delivery().await?;
        let at = Instant::now();
        let Some(seq) = delivery.envelope.data["seq"].as_u64() else {
            continue;
        };
        if let Ok(mut arrivals) = arrivals.lock() {
            arrivals.entry(seq).or_default().push(at);
        }
    }
}

/// Waits until all peers have `seq`; when the last got it.
async fn wait_all(arrivals: &Arrivals, seq: u64) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + STALL;
    loop {
        if let Some(last) = arrivals.lock().ok().and_then(|a| {
            a.get(&seq)
                .filter(|at| at.len() >= PEERS)
                .and_then(|at| at.iter().max().copied())
        }) {
            return Ok(last);
        }
        if Instant::now() > deadline {
            bail!("event {seq} did not reach all {PEERS} peers");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn summary(latencies: &mut [Duration]) -> Value {
    latencies.sort();
    let quantile = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(index)
            .map_or(0.0, |d| round(d.as_secs_f64() * 1e3, 2))
    };
    json!({
        "events": latencies.len(),
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "max_ms": quantile(1.0),
    })
}

/// `of`'s head as `peer` holds it.
fn head(net: &Testnet, peer: &PeerInfo, of: &PeerInfo) -> anyhow::Result<u64> {
    let output = net
        .centerctl(peer)
        .args(["--json", "feed", "status"])
        .output()?;
    if !output.status.success() {
        bail!(
            "feed status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status: Value = serde_json::from_slice(&output.stdout)?;
    Ok(status["origins"]
        .as_array()
        .and_then(|origins| {
            origins
                .iter()
                .find(|o| o["origin"] == of.uuid.to_string())
                .and_then(|o| o["head_seq"].as_u64())
        })
        .unwrap_or(0))
}

fn event(seq: u64) -> Publish {
    Publish {
        name: "bench.feed".into(),
        data: json!({ "seq": seq }),
        to: None,
        ttl: None,
        local: false,
    }
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

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
