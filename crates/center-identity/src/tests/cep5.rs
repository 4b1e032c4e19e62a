//! Checks `CEPS/vectors/0005-description.json` against the description
//! reader, so CEP 5's "Identity and roster" and the code cannot drift apart.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use vodozemac::base64_decode;

use crate::{PeerDescription, PeerKeys, fuzz};

struct Invalid {
    name: String,
    description: Value,
    error: String,
}

struct Vectors {
    valid: Value,
    invalid: Vec<Invalid>,
}

fn load() -> Vectors {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0005-description.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the vectors file is json");
    let members: BTreeSet<&str> = doc
        .as_object()
        .expect("the vectors file is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        BTreeSet::from(["invalid", "valid"]),
        "the vectors file has exactly `valid` and `invalid`"
    );
    let str_of = |v: &Value, key: &str| -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key} is not a string: {v}"))
            .to_owned()
    };
    let invalid = doc["invalid"]
        .as_array()
        .expect("`invalid` is a list")
        .iter()
        .map(|v| {
            assert!(
                v["description"].is_object(),
                "vector {v} has no description object"
            );
            Invalid {
                name: str_of(v, "name"),
                description: v["description"].clone(),
                error: str_of(v, "error"),
            }
        })
        .collect();
    Vectors {
        valid: doc["valid"].clone(),
        invalid,
    }
}

/// The bytes a vector's description is read from: the object as JSON.
fn bytes_of(description: &Value) -> Vec<u8> {
    serde_json::to_vec(description).expect("a value always serializes")
}

#[test]
fn the_valid_description_verifies() {
    let vectors = load();
    let read = PeerDescription::from_json(&bytes_of(&vectors.valid))
        .unwrap_or_else(|e| panic!("the valid vector is refused: {e}"));
    // It reads back to itself, member for member.
    assert_eq!(read.to_json(), vectors.valid);
    // It is the crate's fixture, whose secret keys were thrown away.
    let fixture: Value = serde_json::from_slice(fuzz::DESCRIPTION).expect("fixture is json");
    assert_eq!(vectors.valid, fixture);
    // And what it binds can verify the fixture's signature.
    let keys = PeerKeys::from_description(&read);
    keys.verify(fuzz::MESSAGE, fuzz::SIGNATURE)
        .expect("the fixture signature verifies with the vector's keys");

    // The binding verifies over the signing input as CEP 5 writes it:
    // the canonical JSON of the members it covers and `purpose`, built
    // here by hand rather than by the crate.
    let member = |key: &str| {
        vectors.valid[key]
            .as_str()
            .unwrap_or_else(|| panic!("valid vector lacks {key}"))
            .to_owned()
    };
    let input = format!(
        concat!(
            r#"{{"address":"{}","name":"{}","olm_curve25519":"{}","#,
            r#""olm_ed25519":"{}","purpose":"center peer description binding v1","#,
            r#""uuid":"{}"}}"#
        ),
        member("address"),
        member("name"),
        member("olm_curve25519"),
        member("olm_ed25519"),
        member("uuid"),
    );
    assert_eq!(input.len(), 258, "the length CEP 5 gives for this input");
    let binding = base64_decode(member("binding")).expect("binding is base64");
    keys.verify(input.as_bytes(), &binding)
        .expect("the binding verifies over the input CEP 5 specifies");
    let mut other = input.into_bytes();
    other.push(b'\n');
    assert!(
        keys.verify(&other, &binding).is_err(),
        "the binding verifies over its exact input only"
    );
}

#[test]
fn each_invalid_description_fails_with_its_message() {
    let vectors = load();
    assert!(!vectors.invalid.is_empty());
    let names: BTreeSet<&str> = vectors.invalid.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names.len(),
        vectors.invalid.len(),
        "vector names are unique"
    );
    let mut failures = Vec::new();
    for v in &vectors.invalid {
        let got = match PeerDescription::from_json(&bytes_of(&v.description)) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        if got != v.error {
            failures.push(serde_json::json!({ "name": v.name, "got": got }));
        }
    }
    assert!(
        failures.is_empty(),
        "vectors not refused with their recorded message:\n{}",
        failures
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
