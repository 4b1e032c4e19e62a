//! Unit tests, as data: what the command line parses to (or why it is
//! refused), and how events and feed status print for humans and scripts.

use center_bus::{
    Delivery, Envelope, FeedConflict, FeedPosition, FeedStatus, OriginEntry, PeerAck,
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
