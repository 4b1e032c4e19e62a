//! Unit tests, as data: what the command line parses to (or why it is
//! refused), and how events, feed status, the roster and this peer's status
//! print for humans and scripts.

use center_bus::{
    ConsumerProgress, Delivery, Envelope, FeedConflict, FeedPosition, FeedStatus, FeedSummary,
    Membership, MembershipState, OriginEntry, OriginProgress, PeerAck, PeerCounts, PeerEntry,
    PeerState, StatusReport,
};
use clap::Parser;
use expect_test::{Expect, expect};

use crate::cli::Cli;

const UUID: &str = "9762e948-070f-41b0-ab51-70fc4820064c";

/// Parses `centerctl ARGS`: the command, or clap's error as printed.
fn check_cli(args: &[&str], expect: Expect) {
    let actual = match Cli::try_parse_from(std::iter::once("centerctl").chain(args.iter().copied()))
    {
        Ok(cli) => format!("{:?}", cli.command),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn publish_is_a_feed_event_unless_local_or_direct() {
    check_cli(
        &["bus", "publish", "demo.x"],
        expect![[
            r#"Bus(Publish { name: "demo.x", data: "{}", to: None, ttl: None, local: false, speaker: Speaker { service: "centerctl" } })"#
        ]],
    );
    check_cli(
        &["bus", "publish", "demo.x", "--local", "--data", "{}"],
        expect![[
            r#"Bus(Publish { name: "demo.x", data: "{}", to: None, ttl: None, local: true, speaker: Speaker { service: "centerctl" } })"#
        ]],
    );
    check_cli(
        &["bus", "publish", "demo.x", "--to", UUID],
        expect![[
            r#"Bus(Publish { name: "demo.x", data: "{}", to: Some("9762e948-070f-41b0-ab51-70fc4820064c"), ttl: None, local: false, speaker: Speaker { service: "centerctl" } })"#
        ]],
    );
    check_cli(
        &["bus", "publish", "demo.x", "--local", "--to", UUID],
        expect![[r#"
            error: the argument '--local' cannot be used with '--to <TO>'

            Usage: centerctl bus publish --local <NAME>

            For more information, try '--help'.
        "#]],
    );
}

#[test]
fn tail_starts_at_new_events_unless_from_start() {
    check_cli(
        &["bus", "tail", "demo.*"],
        expect![[
            r#"Bus(Tail { patterns: ["demo.*"], count: None, from_start: false, speaker: Speaker { service: "centerctl" } })"#
        ]],
    );
    check_cli(
        &["bus", "tail", "demo.*", "*", "--from-start", "--count", "2"],
        expect![[
            r#"Bus(Tail { patterns: ["demo.*", "*"], count: Some(2), from_start: true, speaker: Speaker { service: "centerctl" } })"#
        ]],
    );
}

#[test]
fn feed_status_parses() {
    check_cli(&["--json", "feed", "status"], expect!["Feed(Status)"]);
}

fn delivery(feed: Option<u64>) -> Delivery {
    let envelope = Envelope::from_value(
        serde_json::json!({
            "name": "notes.posted",
            "meta": {"from": UUID, "to": "*", "iat": 1795309570069u64, "exp": 1797901570069u64},
            "data": {"text": "hi"},
        }),
        center_bus::Timestamp::from_millis(1795309570069),
        &center_proto::Limits::DEFAULT,
    )
    .unwrap();
    Delivery {
        envelope,
        feed: feed.map(|seq| FeedPosition {
            origin: UUID.to_owned(),
            seq,
        }),
    }
}

#[test]
fn tail_shows_where_a_feed_event_sits() {
    expect![[r#"
        1795309570069 notes.posted from 9762e948-070f-41b0-ab51-70fc4820064c#7 to * {"text":"hi"}
    "#]]
    .assert_eq(&crate::bus::delivery_line(&delivery(Some(7))));
    expect![[r#"
        1795309570069 notes.posted from 9762e948-070f-41b0-ab51-70fc4820064c to * {"text":"hi"}
    "#]]
    .assert_eq(&crate::bus::delivery_line(&delivery(None)));
    expect![[r#"{"data":{"text":"hi"},"feed":{"origin":"9762e948-070f-41b0-ab51-70fc4820064c","seq":7},"meta":{"exp":1797901570069,"from":"9762e948-070f-41b0-ab51-70fc4820064c","iat":1795309570069,"to":"*"},"name":"notes.posted"}"#]].assert_eq(&crate::bus::delivery_json(&delivery(Some(7))).to_string());
    expect![[r#"{"data":{"text":"hi"},"meta":{"exp":1797901570069,"from":"9762e948-070f-41b0-ab51-70fc4820064c","iat":1795309570069,"to":"*"},"name":"notes.posted"}"#]].assert_eq(&crate::bus::delivery_json(&delivery(None)).to_string());
}

#[test]
fn feed_status_for_humans() {
    let origin = |origin: &str, name: Option<&str>, forked, peers| OriginEntry {
        origin: origin.to_owned(),
        name: name.map(str::to_owned),
        head_seq: 12,
        head_hash: "ab".repeat(32),
        oldest_seq: 1,
        events: 12,
        bytes: 5120,
        forked,
        peers,
        conflicts: if forked {
            vec![FeedConflict {
                seq: 3,
                held: "ab".repeat(32),
                other: "cd".repeat(32),
                resolved: false,
            }]
        } else {
            Vec::new()
        },
    };
    let status = FeedStatus {
        origins: vec![
            origin(
                "03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c",
                Some("this peer"),
                false,
                vec![
                    PeerAck {
                        peer: UUID.to_owned(),
                        name: Some("bravo".to_owned()),
                        seq: 10,
                        lag: 2,
                        updated: 1_000_000 - 3_000,
                    },
                    PeerAck {
                        peer: "7c9e6679-7425-40de-944b-e07fc1f90ae7".to_owned(),
                        name: None,
                        seq: 12,
                        lag: 0,
                        updated: 1_000_000,
                    },
                ],
            ),
            origin(UUID, None, true, Vec::new()),
        ],
    };
    expect![[r#"
        this peer (03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c): head 12, oldest 1, 12 events, 5120 bytes
          PEER                                  SEQ  LAG  UPDATED
          bravo                                 10   2    3s ago
          7c9e6679-7425-40de-944b-e07fc1f90ae7  12   0    0s ago

        9762e948-070f-41b0-ab51-70fc4820064c: head 12, oldest 1, 12 events, 5120 bytes, FORKED: frozen until the sysadmin resolves the fork
          conflict at seq 3: held abababababababababababababababababababababababababababababababab, other cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd; keep one with `centerctl feed resolve ORIGIN --keep HASH`
          no peer has said how far it holds this feed
    "#]].assert_eq(&crate::feed::render_status(&status, 1_000_000));
    expect![[r#"
        no feed events yet: none published here, none received
    "#]]
    .assert_eq(&crate::feed::render_status(
        &FeedStatus {
            origins: Vec::new(),
        },
        0,
    ));
}

#[test]
fn status_parses() {
    check_cli(&["status"], expect!["Status"]);
    check_cli(&["--json", "status"], expect!["Status"]);
}

fn peer(name: &str, state: PeerState, heard: Option<u64>, rtt: Option<u64>, lag: u64) -> PeerEntry {
    PeerEntry {
        uuid: UUID.to_owned(),
        name: name.to_owned(),
        address: "127.0.0.2:7350".to_owned(),
        fingerprint: "AB".repeat(20),
        added: 0,
        reachable: Some(state != PeerState::Down),
        last_heard: heard,
        state,
        rtt_ms: rtt,
        feed_lag: lag,
        feed_ahead: 0,
        queued: 0,
        backoff_ms: 0,
        equivocated: false,
    }
}

#[test]
fn peer_list_for_humans() {
    let peers = [
        peer("bravo", PeerState::Up, Some(999_000), Some(2), 0),
        peer("charlie", PeerState::Syncing, Some(1_000_000), Some(14), 7),
        peer("delta", PeerState::Down, None, None, 3),
    ];
    expect![[r#"
        NAME     UUID                                  STATE    LAST HEARD  RTT   LAG  AHEAD  QUEUED  FEED
        bravo    9762e948-070f-41b0-ab51-70fc4820064c  up       1s ago      2ms   0    0      0       -
        charlie  9762e948-070f-41b0-ab51-70fc4820064c  syncing  0s ago      14ms  7    0      0       -
        delta    9762e948-070f-41b0-ab51-70fc4820064c  down     never       -     3    0      0       -
    "#]]
    .assert_eq(&crate::peer::render_list(&peers, 1_000_000));
}

fn report(state: MembershipState, held: u64, waiting_for: Vec<String>) -> StatusReport {
    StatusReport {
        uuid: "03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c".to_owned(),
        name: "alpha".to_owned(),
        address: "127.0.0.1:7350".to_owned(),
        fingerprint: "AB".repeat(20),
        membership: Membership {
            state,
            held: held + 4,
            known: 14,
            origins: vec![
                OriginProgress {
                    origin: "03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c".to_owned(),
                    name: Some("this peer".to_owned()),
                    held: 4,
                    known: 4,
                },
                OriginProgress {
                    origin: UUID.to_owned(),
                    name: Some("bravo".to_owned()),
                    held,
                    known: 10,
                },
            ],
            waiting_for,
            consumers: vec![ConsumerProgress {
                service: "userd".to_owned(),
                connected: true,
                in_flight: if state == MembershipState::Member {
                    0
                } else {
                    3
                },
                pending: if state == MembershipState::Member {
                    0
                } else {
                    40
                },
                caught_up: state == MembershipState::Member,
            }],
        },
        peers: PeerCounts {
            total: 3,
            up: 1,
            syncing: 1,
            down: 1,
        },
        feeds: FeedSummary {
            origins: 2,
            events: held + 4,
            bytes: 4096,
            forked: 0,
            conflicts: 0,
        },
        bus_clients: 2,
        started: 0,
        uptime_ms: 93_784_000,
    }
}

#[test]
fn status_for_humans() {
    expect![[r#"
        alpha (03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c)
          address      127.0.0.1:7350
          fingerprint  ABABABABABABABABABABABABABABABABABABABAB
          membership   member: holds 14 of 14 feed events known to exist
          applied by   userd: every event
          peers        3 in the roster: 1 up, 1 syncing, 1 down
          feeds        2 origins, 14 events, 4096 bytes
          bus          2 clients connected
          uptime       1d 2h 3m 4s
    "#]]
    .assert_eq(&crate::status::render(&report(
        MembershipState::Member,
        10,
        Vec::new(),
    )));
    expect![[r#"
        alpha (03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c)
          address      127.0.0.1:7350
          fingerprint  ABABABABABABABABABABABABABABABABABABABAB
          membership   syncing: holds 7 of 14 feed events known to exist (50%)
          waiting for  the feed frontier of 7c9e6679-7425-40de-944b-e07fc1f90ae7
          applied by   userd: working: 3 events in hand, at most 40 more to look at
          peers        3 in the roster: 1 up, 1 syncing, 1 down
          feeds        2 origins, 7 events, 4096 bytes
          bus          2 clients connected
          uptime       1d 2h 3m 4s

          ORIGIN  HELD  KNOWN
          bravo   3     10
    "#]]
    .assert_eq(&crate::status::render(&report(
        MembershipState::Syncing,
        3,
        vec!["7c9e6679-7425-40de-944b-e07fc1f90ae7".to_owned()],
    )));
    expect!["0s, 59s, 1m 0s, 1h 0m 1s"].assert_eq(
        &[0, 59_999, 60_000, 3_601_000]
            .map(crate::status::duration)
            .join(", "),
    );
}
