//! Snapshots of the small grammars and their error messages: event names,
//! peer ids, destinations, timestamps, and canonical encoding of values
//! built in code.

use std::time::Duration;

use center_proto::{Destination, EventName, PeerId, Timestamp, to_canonical};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

fn check_name(input: &str, expect: Expect) {
    let got = match EventName::parse(input) {
        Ok(name) => format!("ok {name}"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn event_names() {
    check_name("new-peer-server", expect!["ok new-peer-server"]);
    check_name("account.created", expect!["ok account.created"]);
    check_name("a", expect!["ok a"]);
    check_name("feed.v2.x-9", expect!["ok feed.v2.x-9"]);
    check_name("", expect!["error: event name must not be empty"]);
    check_name(
        "Account",
        expect!["error: event name must start with a lowercase ascii letter"],
    );
    check_name(
        "-a",
        expect!["error: event name must start with a lowercase ascii letter"],
    );
    check_name(
        "a b",
        expect!["error: event name has a character other than a-z, 0-9, '.' and '-' at byte 1"],
    );
    check_name(
        "a.-b",
        expect![
            "error: event name has a '.' or '-' at byte 2 that is not between two letters or digits"
        ],
    );
    check_name(
        "a.",
        expect![
            "error: event name has a '.' or '-' at byte 1 that is not between two letters or digits"
        ],
    );
    check_name(
        "caf\u{e9}",
        expect!["error: event name has a character other than a-z, 0-9, '.' and '-' at byte 3"],
    );
    check_name(
        &"a".repeat(64),
        expect!["ok aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    );
    check_name(
        &"a".repeat(65),
        expect!["error: event name is 65 bytes long, over the maximum of 64"],
    );
}

fn check_peer(input: &str, expect: Expect) {
    let got = match input.parse::<PeerId>() {
        Ok(id) => format!("ok {id}"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn peer_ids() {
    check_peer(
        "0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90",
        expect!["ok 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90"],
    );
    check_peer(
        "00000000-0000-0000-0000-000000000000",
        expect!["ok 00000000-0000-0000-0000-000000000000"],
    );
    check_peer(
        "0B0E7D3C-5B1A-4C57-9A51-3B1F2F6E8D90",
        expect!["error: peer id must have a lowercase hex digit at byte 1"],
    );
    check_peer(
        "0b0e7d3c5b1a4c579a513b1f2f6e8d90",
        expect!["error: peer id must be 36 bytes long (a lowercase hyphenated uuid), found 32"],
    );
    check_peer(
        "0b0e7d3c-5b1a-4c57-9a51+3b1f2f6e8d90",
        expect!["error: peer id must have '-' at byte 23"],
    );
    check_peer(
        "0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d9g",
        expect!["error: peer id must have a lowercase hex digit at byte 35"],
    );
    check_peer(
        "0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d\u{e9}",
        expect!["error: peer id must have a lowercase hex digit at byte 34"],
    );
}

#[test]
fn peer_ids_print_as_they_parse() {
    let id = PeerId::new_random();
    let text = id.to_string();
    assert_eq!(text.len(), 36);
    assert_eq!(text.parse::<PeerId>(), Ok(id));
    assert_eq!(id.as_uuid().get_version_num(), 4);
}

#[test]
fn destinations() {
    let show = |input: &str| match input.parse::<Destination>() {
        Ok(Destination::Broadcast) => "broadcast".to_owned(),
        Ok(Destination::Peer(id)) => format!("peer {id}"),
        Err(e) => format!("error: {e}"),
    };
    expect!["broadcast"].assert_eq(&show("*"));
    expect!["peer 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90"]
        .assert_eq(&show("0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90"));
    expect!["error: peer id must be 36 bytes long (a lowercase hyphenated uuid), found 2"]
        .assert_eq(&show("**"));

    let me = PeerId::new_random();
    assert!(Destination::Broadcast.includes(me));
    assert!(Destination::Peer(me).includes(me));
    assert!(!Destination::Peer(PeerId::new_random()).includes(me));
}

#[test]
fn timestamps_clamp_to_the_canonical_range() {
    let max = Timestamp::MAX.as_millis();
    assert_eq!(max, (1 << 53) - 1);
    assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
    assert_eq!(
        Timestamp::MAX.saturating_add(Duration::from_millis(1)),
        Timestamp::MAX
    );
    assert_eq!(
        Timestamp::from_millis(1_000).saturating_add(Duration::from_secs(2)),
        Timestamp::from_millis(3_000)
    );
    assert_eq!(Timestamp::from_millis(42).to_string(), "42");
    // Any clock this code runs under is after 2020 and far below the maximum.
    let now = Timestamp::now().as_millis();
    assert!(now > 1_577_836_800_000 && now < max, "{now}");
}

fn check_canonical(value: Value, expect: Expect) {
    let got = match to_canonical(&value) {
        Ok(bytes) => String::from_utf8(bytes).expect("canonical json is utf-8"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn canonical_encoding_of_values_built_in_code() {
    check_canonical(
        json!({"b": 1, "a": [true, null, "x"]}),
        expect![[r#"{"a":[true,null,"x"],"b":1}"#]],
    );
    check_canonical(
        json!("\u{0}\u{1f}\"\\/\u{e9}"),
        expect![[r#""\u0000\u001f\"\\/é""#]],
    );
    // DEL and the line separators are not escaped either.
    let raw = to_canonical(&json!("\u{7f}\u{2028}\u{2029}")).map(String::from_utf8);
    assert_eq!(raw, Ok(Ok("\"\u{7f}\u{2028}\u{2029}\"".to_owned())));
    check_canonical(
        json!({"price": 1.5}),
        expect!["error: number at `price` is not a plain integer (no fraction, exponent or -0)"],
    );
    check_canonical(
        json!({"list": [0, 1.0]}),
        expect!["error: number at `list[1]` is not a plain integer (no fraction, exponent or -0)"],
    );
    check_canonical(
        json!({"big": u64::MAX}),
        expect!["error: integer at `big` is outside -(2^53-1) to 2^53-1"],
    );
    check_canonical(
        json!({"small": i64::MIN}),
        expect!["error: integer at `small` is outside -(2^53-1) to 2^53-1"],
    );
    check_canonical(
        json!({"big": 1e300}),
        expect!["error: integer at `big` is outside -(2^53-1) to 2^53-1"],
    );
    check_canonical(
        json!({"odd key\n": {"x": 0.5}}),
        expect![[
            r#"error: number at `["odd key\n"].x` is not a plain integer (no fraction, exponent or -0)"#
        ]],
    );
}
