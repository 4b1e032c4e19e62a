//! Checks `CEPS/vectors/0006-feed-events.json` against the parser, the
//! hash, the signing input, verification and the store, so that CEP 6 and
//! the code cannot drift apart. The vectors are made by
//! `cargo run -p center-feed --example feed_vectors`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use center_feed::{FeedBudget, FeedEvent, FeedLimits, Outcome, Refusal};
use center_identity::{PeerDescription, PeerKeys};
use center_proto::PeerId;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{NOW, Store};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors")
}

/// The vectors file.
pub fn load() -> Value {
    let path = vectors_dir().join("0006-feed-events.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (regenerate with `cargo run -p center-feed --example feed_vectors`)",
            path.display()
        )
    });
    let doc: Value = serde_json::from_str(&text).expect("the vectors file is json");
    let members: BTreeSet<&str> = doc
        .as_object()
        .expect("the vectors file is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        BTreeSet::from([
            "bad_signature",
            "chain",
            "equivocation",
            "invalid",
            "keys",
            "origin"
        ])
    );
    doc
}

/// Every event string of the file, valid or not: the fuzz seeds.
pub fn all_events(doc: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for list in ["chain", "bad_signature", "invalid"] {
        for v in list_of(doc, list) {
            out.push(str_of(v, "event").into_bytes());
        }
    }
    out.push(str_of(&doc["equivocation"], "event").into_bytes());
    out
}

fn list_of<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is a list"))
}

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector member {key} is not a string: {v}"))
        .to_owned()
}

fn keys(doc: &Value) -> PeerKeys {
    let path = vectors_dir().join(str_of(doc, "keys"));
    let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let description = PeerDescription::from_json(&json).expect("alpha's description verifies");
    let keys = PeerKeys::from_description(&description);
    assert_eq!(keys.uuid().to_string(), str_of(doc, "origin"));
    keys
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a valid vector and checks its bytes, hash, signing input and signature.
fn check_valid(v: &Value, keys: &PeerKeys) -> FeedEvent {
    let name = str_of(v, "name");
    let text = str_of(v, "event");
    let event = FeedEvent::parse(text.as_bytes(), &FeedLimits::DEFAULT)
        .unwrap_or_else(|e| panic!("{name} is refused: {e}"));
    assert_eq!(
        event.as_bytes(),
        text.as_bytes(),
        "{name} re-encodes to itself"
    );
    let input = event.signing_input();
    assert_eq!(
        hex(&input),
        str_of(v, "signing_input_hex"),
        "{name}: signing input"
    );
    assert!(
        input.starts_with(b"center-feed-event-v1\n"),
        "{name}: context"
    );
    assert_eq!(
        hex(&Sha256::digest(&input)),
        str_of(v, "hash"),
        "{name}: hash"
    );
    assert_eq!(event.hash().to_hex(), str_of(v, "hash"), "{name}: hash");
    event
        .verify(keys)
        .unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
    event
}

fn roster(keys: &PeerKeys) -> impl Fn(&PeerId) -> Option<center_feed::OriginKeys> + use<> {
    let keys = keys.clone();
    move |id| (*id == keys.uuid()).then(|| keys.clone().into())
}

#[test]
fn the_chain_verifies_and_links() {
    let doc = load();
    let keys = keys(&doc);
    let chain: Vec<FeedEvent> = list_of(&doc, "chain")
        .iter()
        .map(|v| check_valid(v, &keys))
        .collect();
    assert_eq!(chain.len(), 3);
    for (i, event) in chain.iter().enumerate() {
        assert_eq!(event.seq(), i as u64 + 1);
        assert_eq!(event.origin(), keys.uuid());
        let prev = i
            .checked_sub(1)
            .map_or("0".repeat(64), |j| chain[j].hash().to_hex());
        assert_eq!(event.prev().to_hex(), prev, "event {} chains", i + 1);
    }

    let mut s = Store::new(FeedBudget::DEFAULT);
    let alone = s
        .store
        .accept(&[chain[2].as_bytes()], roster(&keys), NOW)
        .expect("accept");
    assert_eq!(
        alone,
        [Outcome::Gap {
            origin: keys.uuid(),
            seq: 3,
            have: 0
        }]
    );
    let all: Vec<&[u8]> = chain.iter().map(FeedEvent::as_bytes).collect();
    let stored = s.store.accept(&all, roster(&keys), NOW).expect("accept");
    assert!(
        stored.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{stored:?}"
    );
}

#[test]
fn the_equivocating_event_verifies_and_is_detected() {
    let doc = load();
    let keys = keys(&doc);
    let chain: Vec<FeedEvent> = list_of(&doc, "chain")
        .iter()
        .map(|v| check_valid(v, &keys))
        .collect();
    let v = &doc["equivocation"];
    let other = check_valid(v, &keys);
    let conflicts = list_of(&doc, "chain")
        .iter()
        .position(|c| c["name"] == v["conflicts_with"])
        .expect("conflicts_with names a chain vector");
    assert_eq!(other.seq(), chain[conflicts].seq());
    assert_ne!(other.hash(), chain[conflicts].hash());

    let mut s = Store::new(FeedBudget::DEFAULT);
    let all: Vec<&[u8]> = chain.iter().map(FeedEvent::as_bytes).collect();
    s.store.accept(&all, roster(&keys), NOW).expect("accept");
    let got = s
        .store
        .accept(&[other.as_bytes()], roster(&keys), NOW)
        .expect("accept");
    assert_eq!(
        got,
        [Outcome::Equivocation {
            origin: keys.uuid(),
            seq: other.seq()
        }]
    );
    let evidence = s.store.equivocations().expect("evidence");
    assert_eq!(
        (evidence[0].first_hash, evidence[0].second_hash),
        (chain[conflicts].hash(), other.hash())
    );
}

#[test]
fn events_with_a_bad_signature_are_refused_with_their_message() {
    let doc = load();
    let keys = keys(&doc);
    let vectors = list_of(&doc, "bad_signature");
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = str_of(v, "name");
        let event = FeedEvent::parse(str_of(v, "event").as_bytes(), &FeedLimits::DEFAULT)
            .unwrap_or_else(|e| panic!("{name} is well-formed, but refused: {e}"));
        assert_eq!(event.hash().to_hex(), str_of(v, "hash"), "{name}: hash");
        let got = event.verify(&keys).map_err(|e| e.to_string());
        assert_eq!(got, Err(str_of(v, "error")), "{name}");

        // After its predecessors, the store refuses it at the signature.
        let mut s = Store::new(FeedBudget::DEFAULT);
        let before = usize::try_from(event.seq() - 1).expect("small");
        let mut page: Vec<Vec<u8>> = list_of(&doc, "chain")[..before]
            .iter()
            .map(|c| str_of(c, "event").into_bytes())
            .collect();
        page.push(event.as_bytes().to_vec());
        let outcomes = s.store.accept(&page, roster(&keys), NOW).expect("accept");
        assert!(
            matches!(
                outcomes.last(),
                Some(Outcome::Refused(Refusal::BadSignature { .. }))
            ),
            "{name}: {outcomes:?}"
        );
    }
}

#[test]
fn each_invalid_event_is_refused_with_its_message() {
    let doc = load();
    let vectors = list_of(&doc, "invalid");
    let names: BTreeSet<String> = vectors.iter().map(|v| str_of(v, "name")).collect();
    assert_eq!(names.len(), vectors.len(), "vector names are unique");
    let mut failures = Vec::new();
    for v in vectors {
        let got = match FeedEvent::parse(str_of(v, "event").as_bytes(), &FeedLimits::DEFAULT) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        if got != str_of(v, "error") {
            failures.push(format!("{}: got {got}", str_of(v, "name")));
        }
    }
    assert!(
        failures.is_empty(),
        "vectors not refused with their message:\n{}",
        failures.join("\n")
    );
}
