//! Peer descriptions: the round trip, and every tampering refused.

use expect_test::{Expect, expect};
use serde_json::Value;
use vodozemac::base64_encode;

use super::fresh;
use crate::{Identity, PeerDescription};

/// The JSON of `identity`'s description.
fn json_of(identity: &Identity) -> Value {
    identity.describe().expect("describe").to_json()
}

/// Reads `value` and renders the refusal, with fingerprints named.
fn check(value: &Value, names: &[(String, &str)], expect: &Expect) {
    let err = PeerDescription::from_json(value.to_string().as_bytes())
        .expect_err("tampered description must be refused");
    let mut text = err.to_string();
    for (fingerprint, name) in names {
        text = text.replace(fingerprint, name);
    }
    expect.assert_eq(&text);
}

fn with(value: &Value, field: &str, new: Value) -> Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.insert(field.to_owned(), new);
    }
    value
}

#[test]
fn description_round_trips_through_json() {
    let (_tmp, alpha) = fresh("alpha");
    let json = json_of(&alpha);
    let mut keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    keys.sort();
    expect![[r#"["address", "binding", "cert", "fingerprint", "name", "olm_curve25519", "olm_ed25519", "uuid"]"#]]
        .assert_eq(&format!("{keys:?}"));

    let read = PeerDescription::from_json(json.to_string().as_bytes()).expect("verifies");
    assert_eq!(read.uuid(), alpha.uuid());
    assert_eq!(read.name(), "alpha");
    assert_eq!(read.address(), "127.0.0.1:7350");
    assert_eq!(read.fingerprint(), alpha.fingerprint());
    assert_eq!(read.olm_curve25519(), alpha.olm_curve25519());
    assert!(
        read.cert()
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );
    assert_eq!(read.to_json(), json);

    // Pretty-printed, reordered JSON is the same description.
    let pretty = serde_json::to_string_pretty(&json).expect("pretty");
    let again = PeerDescription::from_json(pretty.as_bytes()).expect("pretty verifies");
    assert_eq!(again.to_json(), json);
}

#[test]
fn tampered_fields_are_refused() {
    let (_ta, a) = fresh("alpha");
    let (_tb, b) = fresh("beta");
    let ja = json_of(&a);
    let jb = json_of(&b);
    let names = [
        (a.fingerprint(), "$A"),
        (a.fingerprint().to_lowercase(), "$a"),
        (b.fingerprint(), "$B"),
    ];
    let field = |v: &Value, name: &str| v.get(name).cloned().unwrap_or(Value::Null);

    // Each field the binding covers.
    let binding_fails = expect![[
        r#"description binding signature does not verify: signature does not match the message"#
    ]];
    check(
        &with(&ja, "uuid", field(&jb, "uuid")),
        &names,
        &binding_fails,
    );
    check(&with(&ja, "name", "mallory".into()), &names, &binding_fails);
    check(
        &with(&ja, "address", "10.9.9.9:7350".into()),
        &names,
        &binding_fails,
    );
    check(
        &with(&ja, "olm_curve25519", field(&jb, "olm_curve25519")),
        &names,
        &binding_fails,
    );
    check(
        &with(&ja, "olm_ed25519", field(&jb, "olm_ed25519")),
        &names,
        &binding_fails,
    );

    // The fingerprint must be the certificate's.
    check(
        &with(&ja, "fingerprint", field(&jb, "fingerprint")),
        &names,
        &expect![[r#"description fingerprint $B is not the certificate's ($A)"#]],
    );
    check(
        &with(&ja, "fingerprint", a.fingerprint().to_lowercase().into()),
        &names,
        &expect![[r#"description fingerprint $a is not the certificate's ($A)"#]],
    );

    // Another peer's certificate: with A's fingerprint, a mismatch; with B's
    // too, B's certificate did not make A's binding.
    check(
        &with(&ja, "cert", field(&jb, "cert")),
        &names,
        &expect![[r#"description fingerprint $A is not the certificate's ($B)"#]],
    );
    let swapped = with(
        &with(&ja, "cert", field(&jb, "cert")),
        "fingerprint",
        field(&jb, "fingerprint"),
    );
    check(
        &swapped,
        &names,
        &expect![[
            r#"description binding signature does not verify: no signing key of the certificate made this signature (or it was expired or revoked)"#
        ]],
    );

    // B's binding on A's description.
    check(
        &with(&ja, "binding", field(&jb, "binding")),
        &names,
        &expect![[
            r#"description binding signature does not verify: no signing key of the certificate made this signature (or it was expired or revoked)"#
        ]],
    );
}

#[test]
fn malformed_descriptions_are_refused() {
    let (_ta, a) = fresh("alpha");
    let ja = json_of(&a);
    let names = [(a.fingerprint(), "$A")];

    let mut missing = ja.clone();
    if let Some(o) = missing.as_object_mut() {
        o.remove("olm_ed25519");
    }
    check(
        &missing,
        &names,
        &expect![[r#"description is not a peer description: missing field `olm_ed25519`"#]],
    );
    check(
        &with(&ja, "extra", Value::Bool(true)),
        &names,
        &expect![[
            r#"description is not a peer description: unknown field `extra`, expected one of `uuid`, `name`, `address`, `fingerprint`, `cert`, `olm_curve25519`, `olm_ed25519`, `binding`"#
        ]],
    );
    check(
        &with(&ja, "name", Value::from(7)),
        &names,
        &expect![[
            r#"description is not a peer description: invalid type: integer `7`, expected a string"#
        ]],
    );
    check(
        &with(&ja, "uuid", "0B0E7D3C-5B1A-4C57-9A51-3B1F2F6E8D90".into()),
        &names,
        &expect![
            "description field `uuid` is not a lowercase hyphenated uuid: peer id must have a lowercase hex digit at byte 1"
        ],
    );
    check(
        &with(&ja, "name", "".into()),
        &names,
        &expect![[
            r#"description field `name` must be 1 to 63 characters of letters, digits, '.' and '-'"#
        ]],
    );
    check(
        &with(&ja, "address", "nowhere".into()),
        &names,
        &expect![[
            r#"description field `address` must be HOST:PORT (at most 255 printable characters, port 1 to 65535), e.g. 127.0.0.1:7350"#
        ]],
    );
    let padded = format!("{}=", a.olm_curve25519());
    check(
        &with(&ja, "olm_curve25519", padded.into()),
        &names,
        &expect![[
            r#"description field `olm_curve25519` is not a curve25519 key in unpadded base64"#
        ]],
    );
    check(
        &with(&ja, "olm_ed25519", "AAAA".into()),
        &names,
        &expect![[r#"description field `olm_ed25519` is not an ed25519 key in unpadded base64"#]],
    );
    check(
        &with(&ja, "cert", "not a certificate".into()),
        &names,
        &expect!["description certificate does not parse: unexpected EOF"],
    );
    check(
        &with(&ja, "binding", "!!".into()),
        &names,
        &expect![[r#"description field `binding` is not unpadded standard base64"#]],
    );
    check(
        &with(&ja, "binding", base64_encode(b"garbage").into()),
        &names,
        &expect![
            "description binding signature does not verify: signature is not an openpgp signature packet: Malformed packet: Malformed CTB: MSB of ptag (0b01100111) not set."
        ],
    );

    // A duplicate key, which a lenient parser would read as its last value.
    let text = ja.to_string();
    let duplicated = text.replacen('{', "{\"name\":\"mallory\",", 1);
    let err = PeerDescription::from_json(duplicated.as_bytes()).expect_err("duplicate key");
    expect![[
        r#"description is not valid json: duplicate key "name" in the object at the top level"#
    ]]
    .assert_eq(&err.to_string());

    let err = PeerDescription::from_json(&vec![b' '; 64 * 1024 + 1]).expect_err("too large");
    expect![[r#"description is 65537 bytes, more than the 65536 allowed"#]]
        .assert_eq(&err.to_string());
    let err = PeerDescription::from_json(b"[]").expect_err("not an object");
    expect!["description is not a peer description: invalid length 0, expected struct RawDescription with 8 elements"]
        .assert_eq(&err.to_string());
}

#[test]
fn a_certificate_with_secret_keys_is_refused() {
    let (tmp, a) = fresh("alpha");
    let tsk = std::fs::read_to_string(tmp.path().join("identity/cert.asc")).expect("cert.asc");
    let err = PeerDescription::from_json(
        with(&json_of(&a), "cert", tsk.into())
            .to_string()
            .as_bytes(),
    )
    .expect_err("secret keys refused");
    expect![[
        r#"description certificate contains secret key material; give only the public certificate"#
    ]]
    .assert_eq(&err.to_string());
}
