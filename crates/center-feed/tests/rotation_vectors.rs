//! Checks `CEPS/vectors/0007-rotation.json` (CEP 7) against the store: the
//! chain with its rotation is stored with only the old keys known, the old
//! key after the rotation and the new key before it are refused with the
//! messages the file gives; and runs the `rotation` fuzz body over the
//! rotation's data and its truncations. The vectors are made by
//! `cargo run -p center-feed --example rotation_vectors`.

use std::path::PathBuf;

use center_feed::{FeedBudget, FeedEvent, FeedLimits, OriginKeys, Outcome, Rotation, fuzz};
use center_identity::{PeerDescription, PeerKeys};
use center_proto::PeerId;
use serde_json::Value;

use crate::support::{NOW, Store};

fn load() -> (Value, PeerKeys) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("0007-rotation.json")).unwrap()).unwrap();
    let keys_path = dir.join(doc["keys"].as_str().unwrap());
    let description = PeerDescription::from_json(&std::fs::read(keys_path).unwrap()).unwrap();
    (doc, PeerKeys::from_description(&description))
}

fn event(v: &Value) -> Vec<u8> {
    v["event"].as_str().unwrap().as_bytes().to_vec()
}

#[test]
fn the_rotation_vectors_verify_by_seq() {
    let (doc, old) = load();
    let origin: PeerId = doc["origin"].as_str().unwrap().parse().unwrap();
    let keys: OriginKeys = old.into();
    let roster = move |id: &PeerId| (*id == origin).then(|| keys.clone());
    let chain: Vec<Vec<u8>> = doc["chain"].as_array().unwrap().iter().map(event).collect();
    let rotate = FeedEvent::parse(&chain[1], &FeedLimits::DEFAULT).unwrap();
    let rotation = Rotation::from_event(&rotate).unwrap().unwrap();
    assert_eq!(rotation.description().fingerprint(), doc["new_fingerprint"]);
    fuzz::rotation(&center_proto::to_canonical(rotate.data()).unwrap());

    for refused in doc["refused"].as_array().unwrap() {
        let mut s = Store::new(FeedBudget::DEFAULT);
        let upto = match refused["after"].as_str().unwrap() {
            "rotate-2" => 2,
            _ => 1,
        };
        let mut page = chain[..upto].to_vec();
        page.push(event(refused));
        let outcomes = s.store.accept(&page, &roster, NOW).unwrap();
        match outcomes.last().unwrap() {
            Outcome::Refused(refusal) => {
                assert_eq!(refusal.to_string(), refused["error"].as_str().unwrap())
            }
            other => panic!("{}: {other:?}", refused["name"]),
        }
    }
    let mut s = Store::new(FeedBudget::DEFAULT);
    let outcomes = s.store.accept(&chain, &roster, NOW).unwrap();
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{outcomes:?}"
    );
}

#[test]
fn the_rotation_fuzz_body_takes_truncated_and_altered_data() {
    let (doc, _) = load();
    let rotate = event(&doc["chain"][1]);
    let rotate = FeedEvent::parse(&rotate, &FeedLimits::DEFAULT).unwrap();
    let data = center_proto::to_canonical(rotate.data()).unwrap();
    for end in 0..data.len() {
        fuzz::rotation(&data[..end]);
    }
    let text = String::from_utf8(data).unwrap();
    for altered in [
        text.replace("\"old_fingerprint\"", "\"old\""),
        text.replace("\"name\":\"vector-alpha\"", "\"name\":\"vector-beta\""),
    ] {
        fuzz::rotation(altered.as_bytes());
    }
}
