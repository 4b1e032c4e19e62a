//! Events on their own: signing, the strict parser and each of its
//! refusals, the signing input and hash as CEP 6 specifies them, and
//! verification.

use center_feed::{
    EventBody, EventHash, FeedError, FeedEvent, FeedLimits, SIGNING_CONTEXT, VerifyEventError,
};
use center_identity::VerifyError;
use center_proto::{EventName, to_canonical};
use expect_test::{Expect, expect};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{NOW, Peer};

#[test]
fn a_signed_event_parses_back_and_verifies() {
    let alpha = Peer::new("alpha");
    let event = alpha.event(
        1,
        EventHash::ZERO,
        json!({ "text": "héllo", "list": [1, 2] }),
    );
    let parsed = FeedEvent::parse(event.as_bytes(), &FeedLimits::DEFAULT).expect("parses");
    assert_eq!(parsed, event);
    assert_eq!(parsed.origin(), alpha.id());
    assert_eq!(parsed.seq(), 1);
    assert_eq!(parsed.prev(), EventHash::ZERO);
    assert_eq!(parsed.name().as_str(), "test.event");
    assert_eq!(parsed.iat(), NOW);
    assert_eq!(parsed.data(), &json!({ "list": [1, 2], "text": "héllo" }));
    parsed.verify(&alpha.keys).expect("verifies");
}

#[test]
fn signing_input_and_hash_are_the_context_and_the_canonical_body() {
    let alpha = Peer::new("alpha");
    let event = alpha.event(1, EventHash::ZERO, json!({ "b": 1, "a": "x" }));
    let body = json!({
        "data": { "a": "x", "b": 1 },
        "iat": NOW.as_millis(),
        "name": "test.event",
        "origin": alpha.id().to_string(),
        "prev": "0".repeat(64),
        "seq": 1,
    });
    let mut input = b"center-feed-event-v1\n".to_vec();
    input.extend(to_canonical(&body).expect("canonical"));
    assert_eq!(SIGNING_CONTEXT, b"center-feed-event-v1\n");
    assert_eq!(event.signing_input(), input);
    let digest: [u8; 32] = Sha256::digest(&input).into();
    assert_eq!(event.hash(), EventHash::from_bytes(digest));
    assert_eq!(event.hash().to_hex().len(), 64);

    // The event is the body with `sig` added, and the signature covers the input.
    let mut whole = body;
    whole["sig"] = Value::String(center_proto::peer_frame::base64::encode(event.signature()));
    assert_eq!(event.as_bytes(), to_canonical(&whole).expect("canonical"));
    alpha
        .keys
        .verify(&input, event.signature())
        .expect("the signature covers exactly the signing input");
}

#[test]
fn altered_data_no_longer_verifies() {
    let alpha = Peer::new("alpha");
    let event = alpha.event(1, EventHash::ZERO, json!({ "amount": 10 }));
    let text = String::from_utf8(event.as_bytes().to_vec()).expect("utf-8");
    let forged = text.replace(r#""amount":10"#, r#""amount":99"#);
    let forged =
        FeedEvent::parse(forged.as_bytes(), &FeedLimits::DEFAULT).expect("still well-formed");
    assert_ne!(forged.hash(), event.hash());
    assert_eq!(
        forged.verify(&alpha.keys),
        Err(VerifyEventError::Signature(VerifyError::Bad))
    );
}

#[test]
fn another_peers_keys_do_not_verify() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let event = alpha.event(1, EventHash::ZERO, json!({}));
    assert_eq!(
        event.verify(&bravo.keys),
        Err(VerifyEventError::WrongKeys {
            origin: alpha.id(),
            keys: bravo.id()
        })
    );
}

#[test]
fn sign_refuses_what_parse_would() {
    let alpha = Peer::new("alpha");
    let body = |seq, prev, data| EventBody {
        origin: alpha.id(),
        seq,
        prev,
        name: EventName::parse("test.event").expect("name"),
        iat: NOW,
        data,
    };
    let other = EventHash::digest(b"other");
    let cases = [
        (
            body(0, EventHash::ZERO, json!({})),
            "cannot make the event: `seq` must be at least 1",
        ),
        (
            body(1, other, json!({})),
            "cannot make the event: `prev` of event 1 must be 64 zeros",
        ),
        (
            body(2, EventHash::ZERO, json!({})),
            "cannot make the event: `prev` of event 2 is 64 zeros, which only event 1 may have",
        ),
        (
            body(1, EventHash::ZERO, json!([1])),
            "cannot make the event: `data` must be a json object",
        ),
        (
            body(1, EventHash::ZERO, json!({ "x": 1.5 })),
            "cannot make the event: number at `data.x` is not a plain integer (no fraction, exponent or -0)",
        ),
        (
            body(1 << 53, other, json!({})),
            "cannot make the event: integer at `seq` is outside -(2^53-1) to 2^53-1",
        ),
    ];
    for (body, expected) in cases {
        let got = FeedEvent::sign(body, |m| alpha.identity.sign(m));
        assert_eq!(
            got.map(|_| ()).map_err(|e| e.to_string()),
            Err(expected.to_owned())
        );
    }
}

/// Parses `input` and shows the result: `ok` or the refusal.
fn check(input: &str, expect: Expect) {
    let got = match FeedEvent::parse(input.as_bytes(), &FeedLimits::DEFAULT) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    expect.assert_eq(&got);
}

/// A valid event's text with `from` replaced by `to` (which must occur once).
fn mutate(valid: &str, from: &str, to: &str) -> String {
    assert_eq!(
        valid.matches(from).count(),
        1,
        "{from} occurs once in {valid}"
    );
    valid.replacen(from, to, 1)
}

#[test]
fn every_malformed_event_is_refused_with_its_reason() {
    let alpha = Peer::new("alpha");
    let event = alpha.event(2, EventHash::digest(b"one"), json!({ "k": "v" }));
    let valid = String::from_utf8(event.as_bytes().to_vec()).expect("utf-8");
    let origin = alpha.id().to_string();
    let prev = event.prev().to_hex();
    let m = |from: &str, to: &str| mutate(&valid, from, to);

    check(&valid, expect!["ok"]);
    check(
        "",
        expect!["event is not valid json: EOF while parsing a value at line 1 column 0"],
    );
    check("[1]", expect!["event is not a json object"]);
    check(
        &m("{\"data\"", "{\"a\":1,\"data\""),
        expect![[r#"event has an unknown member "a""#]],
    );
    check(
        &m(r#","name":"test.event""#, ""),
        expect!["event has no `name` member"],
    );
    check(
        &m(",\"sig\"", ",\"zz\":0,\"sig\""),
        expect![[r#"event has an unknown member "zz""#]],
    );
    check(
        &m(r#""data":{"k":"v"}"#, r#""data":[]"#),
        expect!["`data` must be a json object"],
    );
    check(
        &m(r#""seq":2"#, r#""seq":0"#),
        expect!["`seq` must be at least 1"],
    );
    check(
        &m(r#""seq":2"#, r#""seq":-2"#),
        expect!["`seq` must be a positive integer"],
    );
    check(
        &m(r#""seq":2"#, r#""seq":"2""#),
        expect!["`seq` must be a positive integer"],
    );
    check(
        &m(r#""seq":2"#, r#""seq":1"#),
        expect!["`prev` of event 1 must be 64 zeros"],
    );
    check(
        &m(&prev, &"0".repeat(64)),
        expect!["`prev` of event 2 is 64 zeros, which only event 1 may have"],
    );
    check(
        &m(&prev, &prev.to_uppercase()),
        expect![
            "invalid `prev`: an event hash is 64 lowercase hex digits, found another byte at 4"
        ],
    );
    check(
        &m(&prev, &prev[..62]),
        expect!["invalid `prev`: an event hash is 64 lowercase hex digits, found 62 bytes"],
    );
    check(
        &m(&origin, "0B0E7D3C-5B1A-4C57-9A51-3B1F2F6E8D90"),
        expect!["invalid `origin`: peer id must have a lowercase hex digit at byte 1"],
    );
    check(
        &m(r#""test.event""#, r#""Test""#),
        expect!["invalid `name`: event name must start with a lowercase ascii letter"],
    );
    check(
        &m(r#""iat":"#, r#""iat":-"#),
        expect!["`iat` must be a non-negative integer (milliseconds since the unix epoch)"],
    );
    check(
        &m(r#""k":"v""#, r#""k":1.5"#),
        expect!["number at `data.k` is not a plain integer (no fraction, exponent or -0)"],
    );
    check(
        &m(r#""k":"v""#, r#""k":9007199254740992"#),
        expect!["integer at `data.k` is outside -(2^53-1) to 2^53-1"],
    );
    check(
        &m(r#""k":"v""#, r#""k":"v","k":"w""#),
        expect![[r#"duplicate key "k" in the object at `data`"#]],
    );
    let sig_text = valid
        .rsplit("\"sig\":\"")
        .next()
        .unwrap_or_default()
        .trim_end_matches("\"}");
    check(
        &m(sig_text, "!!!!"),
        expect!["`sig` is not canonical base64: byte 0 is not in the standard base64 alphabet"],
    );
    check(
        &m(sig_text, "QR=="),
        expect!["`sig` is not canonical base64: the unused low bits of byte 1 are not zero"],
    );
    check(
        &m(sig_text, ""),
        expect!["`sig` is 0 bytes once decoded; a signature is 1 to 4096 bytes"],
    );
    check(
        &m(",\"sig\":\"", ",\"sig\":"),
        expect!["event is not valid json: expected value at line 1 column 195"],
    );
    // Not canonical: white space, key order, escapes.
    check(
        &m(r#""seq":2"#, r#""seq": 2"#),
        expect![
            "event is not in canonical form (first difference at byte 186); send the canonical encoding of CEP 2"
        ],
    );
    assert_eq!(
        FeedEvent::parse(format!("{valid} ").as_bytes(), &FeedLimits::DEFAULT),
        Err(FeedError::NotCanonical {
            offset: valid.len()
        })
    );
    check(
        &m(r#""k":"v""#, r#""k":"\u0076""#),
        expect![
            "event is not in canonical form (first difference at byte 14); send the canonical encoding of CEP 2"
        ],
    );
    let reordered = m(r#","name":"test.event""#, "");
    let reordered = reordered.replacen('{', r#"{"name":"test.event","#, 1);
    check(
        &reordered,
        expect![
            "event is not in canonical form (first difference at byte 2); send the canonical encoding of CEP 2"
        ],
    );
}

#[test]
fn an_event_over_the_size_limit_is_refused_before_parsing() {
    let alpha = Peer::new("alpha");
    let big = "x".repeat(70 * 1024);
    let event = alpha.event(1, EventHash::ZERO, json!({ "big": big }));
    let len = event.as_bytes().len();
    assert_eq!(
        FeedEvent::parse(event.as_bytes(), &FeedLimits::DEFAULT),
        Err(FeedError::TooLarge {
            len,
            max: 64 * 1024
        })
    );
    let roomy = FeedLimits {
        max_event_bytes: 128 * 1024,
    };
    assert!(FeedEvent::parse(event.as_bytes(), &roomy).is_ok());
}
