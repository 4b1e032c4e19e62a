//! Unit tests of the pure parts: patterns and wire encoding, as data.

use expect_test::{Expect, expect};

use crate::{FeedPosition, Pattern, Reply, Request, Start, pattern::granted};

fn check_pattern(text: &str, expect: Expect) {
    let actual = match Pattern::parse(text) {
        Ok(p) => format!("ok {p}"),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn pattern_grammar() {
    check_pattern("*", expect!["ok *"]);
    check_pattern("account.*", expect!["ok account.*"]);
    check_pattern("account.created", expect!["ok account.created"]);
    check_pattern("", expect!["pattern `` is empty or longer than 65 bytes"]);
    check_pattern(
        "a*b",
        expect![
            "pattern `a*b` is neither an event name nor a prefix ending in '*': event name has a character other than a-z, 0-9, '.' and '-' at byte 1"
        ],
    );
    check_pattern(
        "Acc*",
        expect!["pattern `Acc*` may only contain a-z, 0-9, '.', '-' and one trailing '*'"],
    );
    check_pattern(
        "**",
        expect!["pattern `**` may only contain a-z, 0-9, '.', '-' and one trailing '*'"],
    );
}

#[test]
fn matching_and_covering() {
    let p = |s: &str| Pattern::parse(s).unwrap();
    let table = [
        ("*", "anything", true),
        ("account.*", "account.created", true),
        ("account.*", "accounts", false),
        ("account.created", "account.created", true),
        ("account.created", "account.created2", false),
    ];
    for (pattern, name, want) in table {
        assert_eq!(p(pattern).matches(name), want, "{pattern} matches {name}");
    }
    let covers = [
        ("*", "account.*", true),
        ("account.*", "account.created", true),
        ("account.*", "account.c*", true),
        ("account.*", "acc*", false),
        ("account.created", "account.*", false),
        ("account.created", "account.created", true),
        ("demo", "demo*", false),
    ];
    for (grant, wanted, want) in covers {
        assert_eq!(
            granted(&[p(grant)], &p(wanted)),
            want,
            "{grant} covers {wanted}"
        );
    }
}

proptest::proptest! {
    /// Whatever a covered pattern matches, the covering pattern matches too.
    #[test]
    fn covering_implies_matching(grant in "[a-c.]{0,3}\\*?", wanted in "[a-c.]{0,3}\\*?", name in "[a-c.]{0,5}") {
        if let (Ok(grant), Ok(wanted)) = (Pattern::parse(&grant), Pattern::parse(&wanted))
            && grant.covers(&wanted)
            && wanted.matches(&name)
        {
                proptest::prop_assert!(grant.matches(&name));
        }
    }
}

#[test]
fn wire_frames_are_tagged_objects() {
    let hello = Request::Hello {
        service: "userd".to_owned(),
        protocol: 1,
    };
    expect![[r#"{"type":"hello","service":"userd","protocol":1}"#]]
        .assert_eq(std::str::from_utf8(&hello.to_bytes()).unwrap());
    let err: Result<Request, _> =
        serde_json::from_str(r#"{"type":"hello","service":"x","protocol":1,"uid":0}"#);
    expect![[r#"unknown field `uid`, expected `service` or `protocol`"#]]
        .assert_eq(&err.unwrap_err().to_string());
    let reply: Reply =
        serde_json::from_str(r#"{"type":"error","code":"queue-full","message":"slow"}"#).unwrap();
    expect![[r#"Error { id: None, code: QueueFull, message: "slow" }"#]]
        .assert_eq(&format!("{reply:?}"));
}

/// Decodes `text` as a request: what it decoded to and how it encodes
/// again, or why it was refused.
fn check_request(text: &str, expect: Expect) {
    let actual = match serde_json::from_str::<Request>(text) {
        Ok(request) => format!(
            "{request:?}\n{}",
            String::from_utf8(request.to_bytes()).unwrap()
        ),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

/// As [`check_request`], for a reply.
fn check_reply(text: &str, expect: Expect) {
    let actual = match serde_json::from_str::<Reply>(text) {
        Ok(reply) => format!(
            "{reply:?}\n{}",
            String::from_utf8(reply.to_bytes()).unwrap()
        ),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn subscribe_says_where_feeds_start_and_omits_the_default() {
    let subscribe = |start| Request::Subscribe {
        id: 1,
        patterns: vec![Pattern::parse("demo.*").unwrap()],
        start,
    };
    expect![[r#"{"type":"subscribe","id":1,"patterns":["demo.*"]}"#]]
        .assert_eq(std::str::from_utf8(&subscribe(Start::Oldest).to_bytes()).unwrap());
    expect![[r#"{"type":"subscribe","id":1,"patterns":["demo.*"],"start":"new"}"#]]
        .assert_eq(std::str::from_utf8(&subscribe(Start::New).to_bytes()).unwrap());
    check_request(
        r#"{"type":"subscribe","id":1,"patterns":[],"start":"oldest"}"#,
        expect![[r#"
            Subscribe { id: 1, patterns: [], start: Oldest }
            {"type":"subscribe","id":1,"patterns":[]}"#]],
    );
    check_request(
        r#"{"type":"subscribe","id":1,"patterns":[],"start":"latest"}"#,
        expect!["unknown variant `latest`, expected `oldest` or `new`"],
    );
    check_request(
        r#"{"type":"subscribe","id":1,"patterns":[],"start":"New"}"#,
        expect!["unknown variant `New`, expected `oldest` or `new`"],
    );
}

#[test]
fn publish_says_local_only_when_it_is() {
    check_request(
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"local":true}"#,
        expect![[r#"
            Publish { id: 2, name: "demo.x", data: Object {}, to: None, ttl_ms: None, local: true }
            {"type":"publish","id":2,"name":"demo.x","data":{},"local":true}"#]],
    );
    check_request(
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"local":false}"#,
        expect![[r#"
            Publish { id: 2, name: "demo.x", data: Object {}, to: None, ttl_ms: None, local: false }
            {"type":"publish","id":2,"name":"demo.x","data":{}}"#]],
    );
    check_request(
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"local":1}"#,
        expect!["invalid type: integer `1`, expected a boolean"],
    );
    check_request(
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"durable":true}"#,
        expect![
            "unknown field `durable`, expected one of `id`, `name`, `data`, `to`, `ttl_ms`, `local`"
        ],
    );
}

#[test]
fn feed_ack_names_origin_and_seq() {
    let ack = Request::FeedAck {
        origin: "0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90".to_owned(),
        seq: 3,
    };
    expect![[r#"{"type":"feed-ack","origin":"0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90","seq":3}"#]]
        .assert_eq(std::str::from_utf8(&ack.to_bytes()).unwrap());
    check_request(
        r#"{"type":"feed-ack","origin":"x","seq":3,"id":1}"#,
        expect!["unknown field `id`, expected `origin` or `seq`"],
    );
    check_request(
        r#"{"type":"feed-ack","seq":3}"#,
        expect!["missing field `origin`"],
    );
    check_request(
        r#"{"type":"admin","id":6,"op":{"op":"feed-status"}}"#,
        expect![[r#"
            Admin { id: 6, op: FeedStatus }
            {"type":"admin","id":6,"op":{"op":"feed-status"}}"#]],
    );
    check_request(
        r#"{"type":"admin","id":6,"op":{"op":"feed-status","origin":"x"}}"#,
        expect!["unknown field `origin`, there are no fields"],
    );
}

#[test]
fn events_carry_their_feed_position() {
    let event = Reply::Event {
        event: serde_json::json!({}),
        seq: None,
        feed: Some(FeedPosition {
            origin: "o".to_owned(),
            seq: 9,
        }),
    };
    expect![[r#"{"type":"event","event":{},"feed":{"origin":"o","seq":9}}"#]]
        .assert_eq(std::str::from_utf8(&event.to_bytes()).unwrap());
    check_reply(
        r#"{"type":"event","event":{},"seq":4}"#,
        expect![[r#"
            Event { event: Object {}, seq: Some(4), feed: None }
            {"type":"event","event":{},"seq":4}"#]],
    );
    check_reply(
        r#"{"type":"event","event":{},"feed":{"origin":"o","seq":9,"hash":"h"}}"#,
        expect!["unknown field `hash`, expected `origin` or `seq`"],
    );
    check_reply(
        r#"{"type":"event","event":{},"feed":{"origin":"o"}}"#,
        expect!["missing field `seq`"],
    );
}

#[test]
fn feed_status_and_equivocated_peers() {
    check_reply(
        r#"{"type":"ok","id":5,"feeds":{"origins":[{"origin":"o","name":"this peer","head_seq":3,"head_hash":"ab","oldest_seq":1,"events":3,"bytes":900,"forked":false,"peers":[{"peer":"p","seq":2,"lag":1,"updated":1795309571000}]}]}}"#,
        expect![[r#"
            Ok { id: 5, grants: None, peers: None, feeds: Some(FeedStatus { origins: [OriginEntry { origin: "o", name: Some("this peer"), head_seq: 3, head_hash: "ab", oldest_seq: 1, events: 3, bytes: 900, forked: false, peers: [PeerAck { peer: "p", name: None, seq: 2, lag: 1, updated: 1795309571000 }], conflicts: [] }] }), value: None, status: None }
            {"type":"ok","id":5,"feeds":{"origins":[{"origin":"o","name":"this peer","head_seq":3,"head_hash":"ab","oldest_seq":1,"events":3,"bytes":900,"forked":false,"peers":[{"peer":"p","seq":2,"lag":1,"updated":1795309571000}]}]}}"#]],
    );
    check_reply(
        r#"{"type":"ok","id":5,"feeds":{"origins":[],"heads":[]}}"#,
        expect!["unknown field `heads`, expected `origins`"],
    );
    check_reply(
        r#"{"type":"ok","id":5,"feeds":{"origins":[{"origin":"o","head_seq":3,"head_hash":"ab","oldest_seq":1,"events":3,"bytes":900,"peers":[]}]}}"#,
        expect!["missing field `forked`"],
    );
    let peer = r#"{"uuid":"u","name":"bravo","address":"a:1","fingerprint":"F","added":1,"queued":0,"backoff_ms":0"#;
    check_reply(
        &format!(r#"{{"type":"ok","id":6,"peers":[{peer},"equivocated":true}}]}}"#),
        expect![[r#"
            Ok { id: 6, grants: None, peers: Some([PeerEntry { uuid: "u", name: "bravo", address: "a:1", fingerprint: "F", added: 1, reachable: None, last_heard: None, state: Down, rtt_ms: None, feed_lag: 0, feed_ahead: 0, queued: 0, backoff_ms: 0, equivocated: true }]), feeds: None, value: None, status: None }
            {"type":"ok","id":6,"peers":[{"uuid":"u","name":"bravo","address":"a:1","fingerprint":"F","added":1,"last_heard":null,"state":"down","feed_lag":0,"feed_ahead":0,"queued":0,"backoff_ms":0,"equivocated":true}]}"#]],
    );
    check_reply(
        &format!(r#"{{"type":"ok","id":6,"peers":[{peer},"equivocated":false}}]}}"#),
        expect![[r#"
            Ok { id: 6, grants: None, peers: Some([PeerEntry { uuid: "u", name: "bravo", address: "a:1", fingerprint: "F", added: 1, reachable: None, last_heard: None, state: Down, rtt_ms: None, feed_lag: 0, feed_ahead: 0, queued: 0, backoff_ms: 0, equivocated: false }]), feeds: None, value: None, status: None }
            {"type":"ok","id":6,"peers":[{"uuid":"u","name":"bravo","address":"a:1","fingerprint":"F","added":1,"last_heard":null,"state":"down","feed_lag":0,"feed_ahead":0,"queued":0,"backoff_ms":0}]}"#]],
    );
}

#[test]
fn fuzz_body_survives_seed_inputs() {
    let mut seeds: Vec<Vec<u8>> = vec![Vec::new(), vec![0, 0, 0], vec![255, 255, 255, 255, 1]];
    for body in [
        r#"{"type":"hello","service":"userd","protocol":1}"#,
        r#"{"type":"subscribe","id":1,"patterns":["account.*","*"]}"#,
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"to":"*"}"#,
        r#"{"type":"admin","id":3,"op":{"op":"list"}}"#,
        r#"{"type":"subscribe","id":1,"patterns":["a*b"]}"#,
        r#"{"type":"subscribe","id":4,"patterns":["demo.*"],"start":"new"}"#,
        r#"{"type":"publish","id":5,"name":"demo.x","data":{"f":0.1},"local":true}"#,
        r#"{"type":"feed-ack","origin":"0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90","seq":3}"#,
        r#"{"type":"admin","id":6,"op":{"op":"feed-status"}}"#,
    ] {
        let mut frame = crate::frame::encode_frame(body.as_bytes()).unwrap();
        seeds.push(frame.clone());
        frame.truncate(frame.len() / 2);
        seeds.push(frame);
    }
    for seed in seeds {
        crate::fuzz::bus_request(&seed);
    }
}

/// Every frame of `CEPS/vectors/0004-bus.json` (CEP 4): a valid frame decodes
/// and encodes back to the same JSON value; an invalid one is refused with the
/// recorded message. The vectors must also show every frame type, every
/// admin operation and every error code.
#[test]
fn cep4_vectors() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0004-bus.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("the vectors file is a JSON list");
    let mut types = std::collections::BTreeSet::new();
    let mut codes = std::collections::BTreeSet::new();
    let mut ops = std::collections::BTreeSet::new();
    for vector in &vectors {
        let name = vector["name"].as_str().expect("every vector has a name");
        let frame = &vector["frame"];
        let decoded = match vector["kind"].as_str() {
            Some("request") => decode_vector::<Request>(frame),
            Some("reply") => decode_vector::<Reply>(frame),
            other => panic!("{name}: kind must be \"request\" or \"reply\", not {other:?}"),
        };
        match (vector["valid"].as_bool(), decoded) {
            (Some(true), Ok(encoded)) => {
                assert_eq!(
                    &encoded, frame,
                    "{name}: does not encode back to the same frame"
                );
                types.insert(format!(
                    "{} {}",
                    vector["kind"].as_str().unwrap_or_default(),
                    frame["type"].as_str().unwrap_or_default()
                ));
                if let Some(code) = frame["code"].as_str() {
                    codes.insert(code.to_owned());
                }
                if let Some(op) = frame["op"]["op"].as_str() {
                    ops.insert(op.to_owned());
                }
            }
            (Some(false), Err(err)) => {
                assert_eq!(Some(err.as_str()), vector["error"].as_str(), "{name}")
            }
            (valid, result) => panic!("{name}: `valid` is {valid:?} but decoding gave {result:?}"),
        }
    }
    expect!["reply error, reply event, reply ok, reply welcome, request ack, request admin, request feed-ack, request hello, request publish, request subscribe"]
        .assert_eq(&types.into_iter().collect::<Vec<_>>().join(", "));
    expect![[r#"bad-event, grant-changed, internal, malformed, not-approved, not-found, not-root, out-of-grant, oversize, protocol, queue-full, timeout, too-many-connections, unreachable"#]]
        .assert_eq(&codes.into_iter().collect::<Vec<_>>().join(", "));
    expect!["approve, dht-record, feed-resolve, feed-status, hand-off-taken, list, peer-add, peer-descriptions, peer-import, peer-join, peer-list, peer-remove, peer-welcome, revoke, rotate-keys, status"]
        .assert_eq(&ops.into_iter().collect::<Vec<_>>().join(", "));
}

/// Decodes one vector frame as `T` and encodes it again.
fn decode_vector<T: serde::de::DeserializeOwned + serde::Serialize>(
    frame: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let decoded: T = serde_json::from_value(frame.clone()).map_err(|err| err.to_string())?;
    Ok(serde_json::to_value(&decoded).expect("a decoded frame encodes"))
}

#[test]
fn ok_replies_carry_the_one_document_they_are_given() {
    use crate::Reply;
    let text = |reply: Reply| String::from_utf8(reply.to_bytes()).unwrap();
    assert_eq!(text(Reply::ok(7)), r#"{"type":"ok","id":7}"#);
    assert_eq!(
        text(Reply::ok(7).with_peers(Vec::new())),
        r#"{"type":"ok","id":7,"peers":[]}"#
    );
    assert_eq!(
        text(Reply::ok(7).with_value(serde_json::json!({"a": 1}))),
        r#"{"type":"ok","id":7,"value":{"a":1}}"#
    );
    // Only an `ok` takes a document.
    let error = Reply::Error {
        id: Some(7),
        code: crate::ErrorCode::Malformed,
        message: "no".to_owned(),
    };
    assert_eq!(error.clone().with_peers(Vec::new()), error);
}
