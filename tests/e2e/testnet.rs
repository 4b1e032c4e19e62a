//! The test network itself: the CLI's JSON, outages of one peer, and `down`
//! leaving no process behind.

use std::process::Command;

use serde_json::Value;

use crate::support::{Tail, live_processes_mentioning, ok, publish, require_root};

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
