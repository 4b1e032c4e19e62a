//! Inputs built to hurt: deep nesting, invalid UTF-8, huge keys. The parser
//! must answer with an error, never a crash.

use center_proto::canonical::{CanonicalError, MAX_DEPTH};
use center_proto::{Envelope, EnvelopeError, Limits, fuzz, parse_canonical_value, to_canonical};
use serde_json::{Value, json};

#[test]
fn very_deep_arrays_are_refused_without_recursing() {
    let text = "[".repeat(1_000_000);
    let got = parse_canonical_value(text.as_bytes());
    assert!(
        matches!(got, Err(CanonicalError::TooDeep { .. })),
        "{got:?}"
    );
    let got = Envelope::parse(text.as_bytes(), fuzz::NOW, &Limits::DEFAULT);
    assert!(matches!(got, Err(EnvelopeError::TooDeep { .. })), "{got:?}");
}

#[test]
fn very_deep_objects_are_refused_without_recursing() {
    let text = r#"{"a":"#.repeat(1_000_000);
    let got = parse_canonical_value(text.as_bytes());
    assert!(
        matches!(got, Err(CanonicalError::TooDeep { .. })),
        "{got:?}"
    );
}

#[test]
fn depth_cap_counts_the_outermost_container_as_one() {
    let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert!(parse_canonical_value(nested(MAX_DEPTH).as_bytes()).is_ok());
    assert!(parse_canonical_value(nested(MAX_DEPTH + 1).as_bytes()).is_err());
}

#[test]
fn deep_values_built_in_code_do_not_encode() {
    let mut value = json!(0);
    for _ in 0..1_000 {
        value = Value::Array(vec![value]);
    }
    let got = to_canonical(&value);
    assert!(
        matches!(got, Err(CanonicalError::TooDeep { .. })),
        "{got:?}"
    );
}

#[test]
fn invalid_utf8_is_not_json() {
    let got = parse_canonical_value(b"{\"a\":\"\xff\"}");
    assert!(matches!(got, Err(CanonicalError::Syntax(_))), "{got:?}");
    let got = Envelope::parse(b"\xfe\xff{}", fuzz::NOW, &Limits::DEFAULT);
    assert!(matches!(got, Err(EnvelopeError::NotJson(_))), "{got:?}");
}

#[test]
fn huge_keys_are_cut_in_messages() {
    let key = "k".repeat(100_000);
    let text = format!(r#"{{"{key}":1,"{key}":2}}"#);
    let got = parse_canonical_value(text.as_bytes()).map_err(|e| e.to_string());
    let message = got.expect_err("duplicate keys are refused");
    assert!(message.len() < 200, "{message}");
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    for bytes in [
        &b""[..],
        b"\0",
        b"\"",
        b"\"\\u",
        b"-",
        b"1e99999",
        b"-1e99999",
        b"123456789012345678901234567890",
        b"{\"data\":{}}",
        b"[[[[]]]]",
    ] {
        fuzz::envelope(bytes);
    }
}
