//! The test network itself: the CLI's JSON, outages of one peer,
//! partitions, and `down` leaving no process and no rule behind.

use std::{process::Command, time::Duration};

use serde_json::Value;

use crate::support::{
    Tail, live_processes_mentioning, ok, publish, require_root, roster_entry, set_keepalive,
    wait_until,
};

#[test]
fn cli_up_stop_start_down() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("center-e2e-cli-")
        .tempdir()
        .unwrap();
    let bin = center_testnet::default_bin_dir()
        .unwrap()
        .join("center-testnet");
    let dir_arg = dir.path().to_str().unwrap();
    let output = ok(Command::new(&bin)
        .args(["up", "--peers", "3", "--dir", dir_arg])
        .output()
        .unwrap());
    let doc: Value = serde_json::from_str(&output).unwrap();
    let peers = doc["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3);
    let mut addrs: Vec<&str> = peers.iter().map(|p| p["addr"].as_str().unwrap()).collect();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "distinct addresses");
    for peer in peers {
        for key in [
            "name",
            "uuid",
            "addr",
            "config",
            "bus_socket",
            "state_dir",
            "center_root",
        ] {
            assert!(peer[key].is_string(), "peer lacks {key}: {peer}");
        }
        assert!(peer["addr"].as_str().unwrap().starts_with("127."));
    }
    let net = center_testnet::Testnet::open(dir.path()).unwrap();
    assert_eq!(
        live_processes_mentioning(dir_arg).len(),
        6,
        "one dispatchd and one peerd per peer"
    );

    // An outage of bravo leaves the others working.
    ok(Command::new(&bin)
        .args(["stop", "--dir", dir_arg, "bravo"])
        .output()
        .unwrap());
    let bravo = net.peer("bravo").unwrap();
    assert!(net.daemon_pid(bravo, "dispatchd").is_none());
    let alpha = net.peer("alpha").unwrap();
    let tail = Tail::start(&net, alpha, None, &["x.*", "--count", "1"]);
    publish(&net, alpha, "x.during-outage", "{}");
    assert_eq!(tail.next()["name"], "x.during-outage");
    ok(Command::new(&bin)
        .args(["start", "--dir", dir_arg, "bravo"])
        .output()
        .unwrap());
    let tail = Tail::start(&net, bravo, None, &["x.*", "--count", "1"]);
    publish(&net, bravo, "x.back", "{}");
    assert_eq!(tail.next()["name"], "x.back");
    drop(tail);

    ok(Command::new(&bin)
        .args(["down", "--dir", dir_arg])
        .output()
        .unwrap());
    let left = live_processes_mentioning(dir_arg);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// Whether nftables holds a table whose name contains `needle`.
fn nft_table_named(needle: &str) -> bool {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(needle)
}

#[test]
fn cli_partition_cuts_groups_apart_and_heal_and_down_remove_every_rule() {
    require_root();
    let (dir, net) = crate::support::network(3);
    set_keepalive(&net, 1);
    let bin = center_testnet::default_bin_dir()
        .unwrap()
        .join("center-testnet");
    let dir_arg = dir.path().to_str().unwrap();
    let table = "center_testnet_";
    let [alpha, bravo, charlie] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap());
    // A malformed split changes nothing.
    let refused = Command::new(&bin)
        .args(["partition", "--dir", dir_arg, "alpha,bravo"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!net.partitioned());
    ok(Command::new(&bin)
        .args(["partition", "--dir", dir_arg, "alpha,bravo", "/", "charlie"])
        .output()
        .unwrap());
    assert!(net.partitioned() && nft_table_named(table));
    // Each side sees the other go down, and its own side stay up.
    for (peer, other) in [(alpha, charlie), (charlie, alpha), (bravo, charlie)] {
        wait_until(&format!("{} sees {} down", peer.name, other.name), || {
            roster_entry(&net, peer, other)["state"] == "down"
        });
    }
    assert_eq!(roster_entry(&net, alpha, bravo)["state"], "up");
    // An event made on one side reaches that side only while cut.
    let on_bravo = Tail::start(&net, bravo, None, &["x.*", "--count", "1"]);
    let on_charlie = Tail::start(&net, charlie, None, &["x.*", "--count", "1"]);
    // A feed event (not --local): to every peer.
    ok(crate::support::ctl(
        &net,
        alpha,
        &["bus", "publish", "x.cut", "--data", "{}"],
    ));
    assert_eq!(on_bravo.next()["name"], "x.cut");
    assert!(
        on_charlie.next_within(Duration::from_secs(3)).is_none(),
        "charlie got alpha's event through the partition"
    );
    ok(Command::new(&bin)
        .args(["heal", "--dir", dir_arg])
        .output()
        .unwrap());
    assert!(!net.partitioned());
    assert_eq!(
        on_charlie.next()["name"],
        "x.cut",
        "delivered after the heal"
    );
    // A heal with nothing to heal is no error; `down` removes a partition
    // left in force (as after a crash of whatever made it).
    ok(Command::new(&bin)
        .args(["heal", "--dir", dir_arg])
        .output()
        .unwrap());
    net.partition(&[vec!["alpha".to_owned()], vec!["bravo".to_owned()]])
        .unwrap();
    assert!(net.partitioned());
    ok(Command::new(&bin)
        .args(["down", "--dir", dir_arg])
        .output()
        .unwrap());
    assert!(!net.partitioned(), "down left the partition's rules");
}

#[test]
fn a_peer_s_clock_is_moved_for_its_daemons_and_its_centerctl() {
    require_root();
    let (_dir, net) = crate::support::network(2);
    let [alpha, bravo] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    net.set_clock_offset(&bravo, 200).unwrap();
    net.stop(&bravo.name).unwrap();
    net.start(&bravo.name).unwrap();
    let tail = Tail::start(&net, &alpha, None, &["q.*", "--count", "1"]);
    let before = center_proto::Timestamp::now().as_millis();
    ok(crate::support::ctl(
        &net,
        &bravo,
        &["bus", "publish", "q.skewed", "--data", "{}"],
    ));
    let after = center_proto::Timestamp::now().as_millis();
    let iat = tail.next()["meta"]["iat"].as_u64().unwrap();
    // bravo's dispatchd stamped it 200 s ahead of this clock.
    assert!(
        (before + 190_000..=after + 210_000).contains(&iat),
        "iat {iat} is not 200 s after {before}..{after}"
    );
    net.set_clock_offset(&bravo, 0).unwrap();
    assert_eq!(net.clock_offset(&bravo), 0);
}
