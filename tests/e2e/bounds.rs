//! Disk use under a hostile member's flood (issue 13, CEP 5 "Bounds"): a
//! trusted peer past its inbox quota and a flood of join requests (`NEW`)
//! from many addresses leave the victim's link store within its quotas,
//! measured in rows per sender and in bytes of its state directory, while
//! an honest peer still delivers to it.

use std::{net::Ipv4Addr, os::unix::fs::MetadataExt, path::Path, time::Duration};

use center_proto::{
    Destination, Envelope, EventName, Meta, PeerId, Timestamp,
    peer_frame::{Auth, PeerFrame},
};
use center_testnet::{PeerInfo, Testnet};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    direct::{fill_inbox, links_sql},
    mallory::Mallory,
    support::{STRANGER, Tail, approve, ctl, network, ok, wait_until},
};

/// Messages kept from one peer, at most (dispatchd's `MAX_INBOX_PER_PEER`).
const INBOX_QUOTA: u64 = 10_000;
/// Join requests kept at once, at most (dispatchd's `MAX_NEW_KEPT`).
const NEW_QUOTA: u64 = 256;
/// `NEW` frames accepted per source address per hour.
const NEW_PER_ADDRESS: usize = 5;
/// Direct messages the member sends past its quota, and their padding.
const OVER_QUOTA: usize = 48;
const OVER_QUOTA_PAD: usize = 400 * 1024;
/// Source addresses of the join requests, and their padding.
const NEW_SOURCES: u8 = 64;
const NEW_PAD: usize = 2 * 1024;
/// What sqlite may add besides the rows themselves (index pages, pages
/// left part empty), with the write-ahead log checkpointed.
const SQLITE_SLACK: u64 = 1 << 20;

#[test]
fn a_hostile_members_flood_stays_within_the_quotas() {
    let (dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    approve(&net, bravo, "inbox", STRANGER, "demo.*", "demo.*");
    let mallory = Mallory::create(dir.path(), &net, &[bravo]);
    let mut hostile = Mallory::connect(&mallory, bravo);
    let sender = hostile.uuid().to_string();
    let rows = |peer: &str| -> u64 {
        links_sql(
            bravo,
            &format!("SELECT COUNT(*) FROM inbox WHERE peer = '{peer}'"),
        )
        .parse()
        .unwrap()
    };

    // The member fills its quota: one message sent, the rest written
    // straight into the store (as many messages would have been).
    hostile.send_direct("demo.first", json!({}));
    fill_inbox(bravo, &sender, INBOX_QUOTA - 1);
    assert_eq!(rows(&sender), INBOX_QUOTA);
    let before = state_bytes(bravo);

    // Then sends far more, each as large as a frame carries: none is kept
    // nor acknowledged.
    let pad = "x".repeat(OVER_QUOTA_PAD);
    for i in 0..OVER_QUOTA {
        let acked = hostile.send_direct_within(
            "demo.over",
            json!({ "i": i, "pad": pad }),
            Duration::from_millis(300),
        );
        assert!(!acked, "message {i} past the quota was acknowledged");
        assert_eq!(rows(&sender), INBOX_QUOTA, "after message {i}");
    }
    let offered_direct = (OVER_QUOTA * OVER_QUOTA_PAD) as u64;
    // An honest peer still delivers, while the member's connection stands.
    honest_delivery(&net, alpha, bravo, "demo.during");

    // Join requests from many addresses, each within its per-address
    // limit: more than are kept at once.
    let frames = usize::from(NEW_SOURCES) * NEW_PER_ADDRESS;
    assert!(frames as u64 > NEW_QUOTA + 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut offered_new = 0;
    for k in 0..frames {
        let source = Ipv4Addr::new(127, 252, 0, 1 + (k % usize::from(NEW_SOURCES)) as u8);
        let frame = join_request(bravo.uuid);
        offered_new += frame.len() as u64;
        runtime.block_on(send_from(source, bravo, &frame));
        if k % 32 == 0 {
            assert!(rows("NEW") <= NEW_QUOTA, "after join request {k}");
        }
    }
    let log = bravo.log_dir.join("dispatchd.log");
    wait_until("the join requests past the cap were not refused", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("join request (NEW) refused: as many as are kept wait already")
    });
    assert_eq!(rows("NEW"), NEW_QUOTA);
    assert_eq!(rows(&sender), INBOX_QUOTA);
    honest_delivery(&net, alpha, bravo, "demo.after");

    // The bytes: what the quotas let in (the kept join requests, twice
    // for sqlite's pages, and the honest messages) and sqlite's slack, far
    // less than was offered.
    let after = state_bytes(bravo);
    let grown = after.saturating_sub(before);
    let kept_new: u64 = links_sql(
        bravo,
        "SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM inbox WHERE peer = 'NEW'",
    )
    .parse()
    .unwrap();
    let allowed = 2 * kept_new + SQLITE_SLACK;
    eprintln!(
        "bounds: state {before} -> {after} bytes (+{grown}, allowed {allowed}); offered {} bytes past the quotas",
        offered_direct + offered_new
    );
    assert!(
        grown <= allowed,
        "bravo's state grew by {grown} bytes (from {before} to {after}), past the {allowed} its quotas allow; {} bytes were offered",
        offered_direct + offered_new
    );
    assert!(
        offered_direct + offered_new > 2 * allowed,
        "the flood offered too little to tell"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("the peer's inbox quota is full"), "{text}");
}

/// Alpha publishes `name` to bravo, and a tail on bravo gets it.
fn honest_delivery(net: &Testnet, alpha: &PeerInfo, bravo: &PeerInfo, name: &str) {
    let tail = Tail::start(net, bravo, None, &["demo.*", "--count", "1"]);
    let to = bravo.uuid.to_string();
    ok(ctl(net, alpha, &["bus", "publish", name, "--to", &to]));
    assert_eq!(tail.next()["name"], name);
    assert_eq!(tail.wait(), Some(0));
}

/// A join request for `victim` from a random newcomer, as a frame.
fn join_request(victim: PeerId) -> Vec<u8> {
    let newcomer = PeerId::new_random();
    let iat = Timestamp::now();
    let envelope = Envelope {
        name: EventName::parse("new-peer-server").unwrap(),
        meta: Meta {
            from: newcomer,
            to: Destination::Peer(victim),
            iat,
            exp: iat.saturating_add(Duration::from_secs(30 * 24 * 3600)),
        },
        data: json!({
            "admin": "flood",
            "server": "flood.example:127.0.0.9",
            "pad": "x".repeat(NEW_PAD),
        }),
    };
    PeerFrame::new(
        newcomer,
        victim,
        Auth::New,
        envelope.canonical_bytes().unwrap(),
    )
    .unwrap()
    .to_frame()
}

/// Connects to `peer` from `source`, sends `frame` and waits until the
/// peer closes the connection.
async fn send_from(source: Ipv4Addr, peer: &PeerInfo, frame: &[u8]) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let mut stream = socket.connect(peer.addr).await.unwrap();
    let _ = stream.write_all(frame).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(crate::support::PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the peer did not close the connection in time"
    );
}

/// Bytes of `peer`'s state directory, as allocated on disk, once the link
/// store's write-ahead log is checkpointed into it (the log's size is
/// sqlite's, bounded by its checkpoints, not by what peers send).
fn state_bytes(peer: &PeerInfo) -> u64 {
    links_sql(peer, "PRAGMA wal_checkpoint(TRUNCATE)");
    dir_bytes(&peer.state_dir)
}

/// Bytes of the files under `dir`, as allocated on disk (a file that
/// vanishes while it is read, such as a journal, counts nothing).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.path().symlink_metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
