//! Heartbeats, peer states and `centerctl status` (CEP 7) on real
//! processes: peers that hear each other are `up` with a round-trip time; a
//! frozen one turns `down` and comes back `up`; a peer that was away catches
//! up and is a `member` again only once it has every peer's frontier and
//! every event they hold.

use center_testnet::{PeerInfo, Testnet};
use nix::sys::signal::{Signal, kill};
use serde_json::Value;

use crate::support::{
    STRANGER, approve, ctl, ctl_as, network, ok, refused, roster_entry, set_keepalive, wait_until,
};

/// `centerctl --json status` on `peer`.
fn status(net: &Testnet, peer: &PeerInfo) -> Value {
    serde_json::from_str(&ok(ctl(net, peer, &["--json", "status"]))).unwrap()
}

/// `other`'s state as `peer list` on `peer` shows it.
fn state(net: &Testnet, peer: &PeerInfo, other: &PeerInfo) -> String {
    roster_entry(net, peer, other)["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `peer` shows `other` in `wanted` state.
fn wait_for_state(net: &Testnet, peer: &PeerInfo, other: &PeerInfo, wanted: &str) {
    wait_until(
        &format!(
            "{} does not show {} {wanted}: {}",
            peer.name,
            other.name,
            roster_entry(net, peer, other)
        ),
        || state(net, peer, other) == wanted,
    );
}

/// What `peer` holds of `origin`'s feed by its own status (0 if nothing).
fn held_of(report: &Value, origin: &PeerInfo) -> u64 {
    report["membership"]["origins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["origin"] == origin.uuid.to_string())
        .and_then(|o| o["held"].as_u64())
        .unwrap_or(0)
}

#[test]
fn peers_are_up_with_a_round_trip_time_and_a_frozen_one_goes_down_and_comes_back() {
    let (_dir, net) = network(3);
    set_keepalive(&net, 1);
    let peers = net.peers();
    for peer in peers {
        for other in peers.iter().filter(|o| o.uuid != peer.uuid) {
            wait_for_state(&net, peer, other, "up");
            let entry = roster_entry(&net, peer, other);
            assert!(entry["rtt_ms"].as_u64().is_some(), "{entry}");
            assert!(entry["last_heard"].as_u64().is_some(), "{entry}");
            assert_eq!(entry["feed_lag"], 0, "{entry}");
        }
    }
    let (alpha, bravo, charlie) = (&peers[0], &peers[1], &peers[2]);
    // The table for humans has the state, when heard and the round trip.
    let table = ok(ctl(&net, alpha, &["peer", "list"]));
    assert!(
        table.starts_with("NAME ") && table.contains("STATE") && table.contains("LAST HEARD"),
        "{table}"
    );
    assert!(table.contains("  up  ") && table.contains("ms "), "{table}");

    // Charlie freezes: its sockets stay open but it says nothing; the
    // others see it down within a few heartbeats, and each other still up.
    let frozen = nix::unistd::Pid::from_raw(net.daemon_pid(charlie, "dispatchd").unwrap());
    kill(frozen, Signal::SIGSTOP).unwrap();
    wait_for_state(&net, alpha, charlie, "down");
    wait_for_state(&net, bravo, charlie, "down");
    assert_eq!(state(&net, alpha, bravo), "up");
    let report = status(&net, alpha);
    assert_eq!(report["peers"]["down"], 1, "{report}");
    assert_eq!(report["peers"]["up"], 1, "{report}");

    kill(frozen, Signal::SIGCONT).unwrap();
    wait_for_state(&net, alpha, charlie, "up");
    wait_for_state(&net, bravo, charlie, "up");
    wait_for_state(&net, charlie, alpha, "up");
    let report = status(&net, alpha);
    assert_eq!(report["peers"]["total"], 2, "{report}");
    assert_eq!(report["peers"]["up"], 2, "{report}");

    // Status is the sysadmin's, like the other admin operations, even for
    // a user allowed on the bus.
    approve(&net, alpha, "centerctl", STRANGER, "x", "x");
    let err = refused(ctl_as(&net, alpha, STRANGER, &["status"]));
    assert!(
        err.contains("(not-root)") && err.contains("status refused"),
        "{err}"
    );
}

#[test]
fn a_peer_that_was_away_catches_up_and_is_a_member_once_it_has_every_frontier() {
    const EVENTS: u64 = 20;
    let (_dir, net) = network(3);
    let peers = net.peers();
    let (alpha, bravo, charlie) = (&peers[0], &peers[1], &peers[2]);
    for peer in peers {
        wait_until(&format!("{} is not a member", peer.name), || {
            status(&net, peer)["membership"]["state"] == "member"
        });
    }
    let report = status(&net, alpha);
    assert_eq!(report["uuid"], alpha.uuid.to_string(), "{report}");
    assert_eq!(report["name"], "alpha", "{report}");
    assert_eq!(report["address"], alpha.addr.to_string(), "{report}");
    assert!(report["uptime_ms"].as_u64().is_some(), "{report}");
    assert!(report["bus_clients"].as_u64() >= Some(1), "{report}");
    let screen = ok(ctl(&net, alpha, &["status"]));
    assert!(screen.contains("membership   member"), "{screen}");

    // Charlie stops: the others see it down at once (its connections close).
    net.stop(&charlie.name).unwrap();
    wait_for_state(&net, alpha, charlie, "down");
    wait_for_state(&net, bravo, charlie, "down");
    let err = refused(ctl(&net, charlie, &["status"]));
    assert!(err.contains("is dispatchd running?"), "{err}");

    // Alpha publishes while charlie is away; bravo gets everything.
    for n in 0..EVENTS {
        ok(ctl(
            &net,
            alpha,
            &[
                "bus",
                "publish",
                "notes.posted",
                "--data",
                &format!("{{\"n\":{n}}}"),
            ],
        ));
    }
    wait_until("bravo did not get alpha's events", || {
        held_of(&status(&net, bravo), alpha) == EVENTS
    });

    // Bravo stops too; charlie comes back and catches up from alpha, but
    // stays syncing: bravo may hold events nobody else has, and charlie has
    // not heard its frontier since it started.
    net.stop(&bravo.name).unwrap();
    net.start(&charlie.name).unwrap();
    wait_until("charlie did not catch up from alpha", || {
        held_of(&status(&net, charlie), alpha) == EVENTS
    });
    let report = status(&net, charlie);
    let membership = &report["membership"];
    assert_eq!(membership["state"], "syncing", "{report}");
    assert_eq!(
        membership["waiting_for"],
        serde_json::json!([bravo.uuid.to_string()]),
        "{report}"
    );
    assert_eq!(membership["held"], membership["known"], "{report}");
    assert_eq!(report["peers"]["down"], 1, "{report}");
    let screen = ok(ctl(&net, charlie, &["status"]));
    assert!(screen.contains("membership   syncing"), "{screen}");
    assert!(screen.contains("waiting for"), "{screen}");

    // Bravo is back: charlie hears its frontier and is a member again.
    net.start(&bravo.name).unwrap();
    wait_until("charlie did not become a member again", || {
        status(&net, charlie)["membership"]["state"] == "member"
    });
    let report = status(&net, charlie);
    let membership = &report["membership"];
    assert_eq!(membership["held"], membership["known"], "{report}");
    assert!(membership["held"].as_u64() >= Some(EVENTS), "{report}");
    assert_eq!(membership["waiting_for"], serde_json::json!([]), "{report}");
    for peer in [alpha, bravo] {
        wait_until(
            &format!("{} does not show charlie up and level", peer.name),
            || {
                let entry = roster_entry(&net, peer, charlie);
                entry["state"] == "up" && entry["feed_lag"] == 0 && entry["feed_ahead"] == 0
            },
        );
    }
}
