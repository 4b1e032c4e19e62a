//! The state and membership rules as tables: each case is a few heads and
//! observations, and the expected outcome written out.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use center_proto::PeerId;
use expect_test::{Expect, expect};

use super::{Heads, Lag, Observed, lag, peer_state, progress};

/// Peer ids that read as hex letters: `a` is 0…0a.
fn id(letter: char) -> PeerId {
    format!("00000000-0000-4000-8000-00000000000{letter}")
        .parse()
        .unwrap()
}

fn name(peer: &PeerId) -> char {
    peer.to_string().chars().last().unwrap()
}

/// `"a3 b1"`: origin a at seq 3, origin b at seq 1.
fn heads(text: &str) -> Heads {
    text.split_whitespace()
        .map(|item| {
            let mut chars = item.chars();
            let origin = id(chars.next().unwrap());
            (origin, chars.as_str().parse().unwrap())
        })
        .collect()
}

fn set(text: &str) -> BTreeSet<PeerId> {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(id)
        .collect()
}

fn check_lag(ours: &str, theirs: &str, frozen: &str, expected: Expect) {
    let Lag { behind, ahead } = lag(&heads(ours), &heads(theirs), &set(frozen));
    expected.assert_eq(&format!("behind {behind}, ahead {ahead}"));
}

#[test]
fn lag_counts_what_each_side_lacks_per_origin() {
    check_lag("a3 b2", "a3 b2", "", expect!["behind 0, ahead 0"]);
    // It lacks 2 of a; we lack 4 of b: both at once, not netted.
    check_lag("a5 b1", "a3 b5", "", expect!["behind 2, ahead 4"]);
    // An origin one side has never heard of counts from 0.
    check_lag("a5", "b7", "", expect!["behind 5, ahead 7"]);
    check_lag("", "", "", expect!["behind 0, ahead 0"]);
    // A frozen origin moves neither way, so it does not count.
    check_lag("a5 b1", "a3 b9", "b", expect!["behind 2, ahead 0"]);
}

#[test]
fn lag_saturates_instead_of_overflowing() {
    let huge = format!("a{} b{}", u64::MAX, u64::MAX);
    check_lag(
        &huge,
        "",
        "",
        expect!["behind 18446744073709551615, ahead 0"],
    );
}

fn check_state(
    connected: bool,
    silent_for: Option<u64>,
    frontier_on_connection: bool,
    (behind, ahead): (u64, u64),
    expected: Expect,
) {
    let state = peer_state(&Observed {
        connected,
        silent_for: silent_for.map(Duration::from_secs),
        keepalive: Duration::from_secs(30),
        frontier_on_connection,
        lag: Lag { behind, ahead },
    });
    expected.assert_eq(state.as_str());
}

#[test]
fn peer_state_follows_connection_silence_and_feeds() {
    check_state(true, Some(1), true, (0, 0), expect!["up"]);
    // Silent for exactly three keepalive intervals is still heard...
    check_state(true, Some(90), true, (0, 0), expect!["up"]);
    // ...one second more is down, connected or not.
    check_state(true, Some(91), true, (0, 0), expect!["down"]);
    check_state(false, Some(1), true, (0, 0), expect!["down"]);
    check_state(true, None, true, (0, 0), expect!["down"]);
    // Up, but either side lacks events: syncing.
    check_state(true, Some(1), true, (3, 0), expect!["syncing"]);
    check_state(true, Some(1), true, (0, 3), expect!["syncing"]);
    // Up, but its frontier has not come on this connection yet.
    check_state(true, Some(1), false, (0, 0), expect!["syncing"]);
    // Down wins over a difference in the feeds.
    check_state(false, Some(1), true, (3, 3), expect!["down"]);
}

/// `frontiers`: `"b: a3 b2; c: a1"`, what each peer last reported.
fn check_progress(
    ours: &str,
    roster: &str,
    frontiers: &str,
    heard: &str,
    frozen: &str,
    expected: Expect,
) {
    let frontiers: BTreeMap<PeerId, Heads> = frontiers
        .split(';')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (peer, list) = part.split_once(':').unwrap();
            (id(peer.trim().chars().next().unwrap()), heads(list))
        })
        .collect();
    let roster: Vec<PeerId> = set(roster).into_iter().collect();
    let progress = progress(&heads(ours), &roster, &frontiers, &set(heard), &set(frozen));
    let origins: Vec<String> = progress
        .origins
        .iter()
        .map(|(origin, held, known)| format!("{}:{held}/{known}", name(origin)))
        .collect();
    let waiting: String = progress.waiting_for.iter().map(name).collect();
    expected.assert_eq(&format!(
        "{} {}/{} [{}] waiting [{waiting}]",
        if progress.member { "member" } else { "syncing" },
        progress.held,
        progress.known,
        origins.join(" "),
    ));
}

#[test]
fn a_peer_without_peers_is_a_member() {
    check_progress("", "", "", "", "", expect!["member 0/0 [] waiting []"]);
    check_progress(
        "a4",
        "",
        "",
        "",
        "",
        expect!["member 4/4 [a:4/4] waiting []"],
    );
}

#[test]
fn membership_waits_for_every_roster_peer_frontier() {
    // c has not spoken since we started: syncing, even though b's frontier
    // (and c's old one) show nothing we lack.
    check_progress(
        "a4 b2",
        "b c",
        "b: a4 b2; c: a4 b2",
        "b",
        "",
        expect!["syncing 6/6 [a:4/4 b:2/2] waiting [c]"],
    );
    check_progress(
        "a4 b2",
        "b c",
        "b: a4 b2; c: a4 b2",
        "b c",
        "",
        expect!["member 6/6 [a:4/4 b:2/2] waiting []"],
    );
}

#[test]
fn membership_needs_every_event_any_peer_holds() {
    // c holds more of b than we do, and an origin we have never seen.
    check_progress(
        "a4 b2",
        "b c",
        "b: a4 b2; c: b5 d3",
        "b c",
        "",
        expect!["syncing 6/12 [a:4/4 b:2/5 d:0/3] waiting []"],
    );
    // Peers behind us do not hold us back.
    check_progress(
        "a4 b5",
        "b c",
        "b: a1; c: b2",
        "b c",
        "",
        expect!["member 9/9 [a:4/4 b:5/5] waiting []"],
    );
}

#[test]
fn membership_ignores_frozen_origins_and_peers_outside_the_roster() {
    check_progress(
        "a4 b2",
        "b",
        "b: a4 b9; f: a99",
        "b f",
        "b",
        expect!["member 4/4 [a:4/4] waiting []"],
    );
}
