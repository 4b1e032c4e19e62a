//! Connections between peers (CEP 5 "Connections"): one per pair even when
//! both dial at once, one Olm session even when both need one at once, kept
//! alive by pings, and closed and replaced when it goes silent.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::Barrier,
    time::{Duration, Instant},
};

use center_testnet::{PeerInfo, Testnet};
use nix::sys::signal::{Signal, kill};
use serde_json::Value;

use crate::support::{
    PATIENCE, Tail, ctl, network, ok, roster_entry, wait_until, wait_until_drained,
};

#[test]
fn peers_that_dial_each_other_at_once_keep_one_connection_and_one_session() {
    const N: usize = 20;
    let (_dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    let count = N.to_string();
    let tails = [
        Tail::start(&net, alpha, None, &["race.*", "--count", &count]),
        Tail::start(&net, bravo, None, &["race.*", "--count", &count]),
    ];
    // Neither has a connection or a session yet; both start sending at once.
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        for (from, to) in [(alpha, bravo), (bravo, alpha)] {
            let (net, start) = (&net, &start);
            scope.spawn(move || {
                start.wait();
                for n in 0..N {
                    ok(ctl(
                        net,
                        from,
                        &[
                            "bus",
                            "publish",
                            "race.direct",
                            "--data",
                            &format!("{{\"n\":{n}}}"),
                            "--to",
                            &to.uuid.to_string(),
                        ],
                    ));
                }
            });
        }
    });
    for (tail, from) in tails.iter().zip([bravo, alpha]) {
        let mut seen = BTreeSet::new();
        for _ in 0..N {
            let event = tail.next();
            assert_eq!(event["meta"]["from"], from.uuid.to_string(), "{event}");
            assert!(seen.insert(event["data"]["n"].as_u64().unwrap()), "{event}");
        }
    }
    // Whatever raced, one connection remains between the two...
    let deadline = Instant::now() + PATIENCE;
    while established_between(alpha, bravo) != 1 {
        assert!(
            Instant::now() < deadline,
            "{} connections between alpha and bravo",
            established_between(alpha, bravo)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ... and each side holds one Olm session with the other.
    for (peer, other) in [(alpha, bravo), (bravo, alpha)] {
        let file = peer
            .state_dir
            .join(format!("dispatchd/sessions/{}.json", other.uuid));
        let sessions: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            sessions.len(),
            1,
            "{} sessions in {}",
            sessions.len(),
            file.display()
        );
    }
}

#[test]
fn a_connection_is_kept_alive_and_a_silent_one_is_closed_and_replaced() {
    let (_dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    // Pings every second; three silent seconds close a connection.
    for peer in [alpha, bravo] {
        net.stop(&peer.name).unwrap();
        let mut config = std::fs::read_to_string(&peer.config).unwrap();
        config.push_str("\n[links]\nkeepalive_seconds = 1\n");
        std::fs::write(&peer.config, config).unwrap();
        net.start(&peer.name).unwrap();
    }
    let tail = Tail::start(&net, bravo, None, &["keep.*", "--count", "2"]);
    send(&net, alpha, bravo, "keep.first");
    assert_eq!(tail.next()["name"], "keep.first");
    let alpha_log = alpha.log_dir.join("dispatchd.log");
    // The connection that carried it (the peers keep one from the start).
    let before = std::fs::read_to_string(&alpha_log).unwrap().len();

    // Pings keep it up: bravo is heard from long after the message, over
    // more than three keepalive intervals, on the same connection.
    let since = center_proto::Timestamp::now().as_millis();
    let deadline = Instant::now() + PATIENCE;
    while roster_entry(&net, alpha, bravo)["last_heard"]
        .as_u64()
        .unwrap_or(0)
        < since + 4_000
    {
        assert!(
            Instant::now() < deadline,
            "alpha stopped hearing from bravo"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&alpha_log).unwrap();
    let since_message = log.get(before..).unwrap_or_default();
    assert!(!since_message.contains("peer connection"), "{log}");
    assert!(!log.contains("idle for"), "{log}");
    assert_eq!(established_between(alpha, bravo), 1);

    // Bravo freezes: its socket stays open but says nothing. Alpha notices
    // and closes the connection.
    let frozen = nix::unistd::Pid::from_raw(net.daemon_pid(bravo, "dispatchd").unwrap());
    kill(frozen, Signal::SIGSTOP).unwrap();
    wait_for_log(&alpha_log, "idle for 3s");
    kill(frozen, Signal::SIGCONT).unwrap();
    // The next message makes a new connection and gets through.
    send(&net, alpha, bravo, "keep.second");
    let Some(event) = tail.next_within(PATIENCE) else {
        panic!(
            "keep.second did not arrive.\nalpha:\n{}\nbravo:\n{}",
            std::fs::read_to_string(&alpha_log).unwrap_or_default(),
            std::fs::read_to_string(bravo.log_dir.join("dispatchd.log")).unwrap_or_default()
        )
    };
    assert_eq!(event["name"], "keep.second");
    assert_eq!(tail.wait(), Some(0));
}

#[test]
fn a_peer_that_lost_its_sessions_gets_a_new_one_and_loses_no_message() {
    let (_dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    let tails = [
        Tail::start(&net, alpha, None, &["lost.*", "--count", "2"]),
        Tail::start(&net, bravo, None, &["lost.*", "--count", "2"]),
    ];
    // A first exchange both ways sets up the session.
    send(&net, alpha, bravo, "lost.first");
    assert_eq!(tails[1].next()["name"], "lost.first");
    send(&net, bravo, alpha, "lost.first");
    assert_eq!(tails[0].next()["name"], "lost.first");
    // Each side in turn loses its session state (a restored backup); one of
    // them has the lower UUID, so both ways of asking again are exercised.
    for (victim, other, tail) in [(bravo, alpha, &tails[1]), (alpha, bravo, &tails[0])] {
        // Everything sent so far is acknowledged, so the victim has nothing
        // of its own to send when it comes back: the other side's message,
        // sealed with the lost session, is what reveals the loss.
        wait_until_drained(&net, victim, other);
        wait_until_drained(&net, other, victim);
        net.stop(&victim.name).unwrap();
        let file = victim
            .state_dir
            .join(format!("dispatchd/sessions/{}.json", other.uuid));
        std::fs::remove_file(&file).unwrap();
        net.start(&victim.name).unwrap();
        send(&net, other, victim, "lost.second");
        let Some(event) = tail.next_within(PATIENCE) else {
            panic!(
                "{} did not get its message after losing its session:\n{}",
                victim.name,
                std::fs::read_to_string(victim.log_dir.join("dispatchd.log")).unwrap_or_default()
            )
        };
        assert_eq!(event["name"], "lost.second");
        assert_eq!(event["meta"]["from"], other.uuid.to_string());
        // A new session was made with the peer that lost its own.
        let log = std::fs::read_to_string(victim.log_dir.join("dispatchd.log")).unwrap();
        let restarted = log.rfind("bus and peer listener up").unwrap_or(0);
        let since = log.get(restarted..).unwrap_or_default();
        assert!(since.contains("olm session started"), "{log}");
    }
    for tail in tails {
        assert_eq!(tail.wait(), Some(0));
    }
}

fn send(net: &Testnet, from: &PeerInfo, to: &PeerInfo, name: &str) {
    ok(ctl(
        net,
        from,
        &["bus", "publish", name, "--to", &to.uuid.to_string()],
    ));
}

/// Waits until `log` contains `needle`.
fn wait_for_log(log: &Path, needle: &str) {
    wait_until(&format!("no `{needle}` in {}", log.display()), || {
        std::fs::read_to_string(log).is_ok_and(|text| text.contains(needle))
    });
}

/// Established TCP connections between the two peers' addresses, counted
/// at `a`'s end, from the kernel's table.
fn established_between(a: &PeerInfo, b: &PeerInfo) -> usize {
    let (a, b) = (hex_ip(a), hex_ip(b));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ip = |field: &str| field.split(':').next().unwrap_or("").to_owned();
            fields.len() > 3 && ip(fields[1]) == a && ip(fields[2]) == b && fields[3] == "01"
        })
        .count()
}

/// An IPv4 address as /proc/net/tcp writes it (host byte order, hex).
fn hex_ip(peer: &PeerInfo) -> String {
    let std::net::IpAddr::V4(ip) = peer.addr.ip() else {
        panic!("the test network uses IPv4")
    };
    let o = ip.octets();
    format!("{:02X}{:02X}{:02X}{:02X}", o[3], o[2], o[1], o[0])
}

/// A connection to `peer` from `source`, an address of the loopback range
/// (std cannot bind before it connects; tokio's `TcpSocket` can).
fn connect_from(source: std::net::Ipv4Addr, peer: &PeerInfo) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(source.into(), 0))?;
            socket.connect(peer.addr).await?.into_std()
        })
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Hosts that never say who they are hold at most 192 of a peer's 256
/// connection slots (8 per address): the 193rd is closed at once, and
/// roster peers still connect and deliver (CEP 5, "Bounds").
#[test]
fn unauthenticated_hosts_leave_slots_for_roster_peers() {
    use std::io::Read;
    let (_dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    let tail = Tail::start(&net, bravo, None, &["slots.*", "--count", "1"]);
    // 24 addresses, 8 silent connections each: 192, every unproved slot.
    let held: Vec<std::net::TcpStream> = (1..=24u8)
        .flat_map(|host| {
            (0..8).map(move |_| connect_from(std::net::Ipv4Addr::new(127, 0, 9, host), bravo))
        })
        .collect();
    // The listener accepts in order, so the next is counted after them.
    let mut extra = connect_from(std::net::Ipv4Addr::new(127, 0, 9, 25), bravo);
    let mut buf = [0u8; 1];
    let started = Instant::now();
    let read = extra.read(&mut buf);
    // Closed (end of stream or reset), not kept waiting for a hello.
    let closed = match &read {
        Ok(n) => *n == 0,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the 193rd unproved connection was kept: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed late");
    // A roster peer's traffic still flows while they hold their slots.
    send(&net, alpha, bravo, "slots.ok");
    assert_eq!(tail.next()["name"], "slots.ok");
    drop(held);
}
