//! Unit tests of the membership readers and the DHT record.

use center_identity::{Identity, IdentityPaths, statement};
use serde_json::{Value, json};

use crate::{dht::Record, messages};

fn identity(dir: &tempfile::TempDir, name: &str) -> Identity {
    Identity::create(
        &IdentityPaths::new(dir.path().join(name)),
        name,
        "127.0.0.1:7350",
    )
    .unwrap()
}

fn record(identity: &Identity, issued: u64) -> Value {
    let description = identity.describe().unwrap().to_json();
    let message = statement::dht_record(identity.uuid(), &description, issued).unwrap();
    json!({
        "description": description,
        "issued": issued,
        "signature": statement::base64_encode(identity.sign(&message).unwrap()),
    })
}

#[test]
fn a_join_request_is_read_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let newcomer = identity(&dir, "newcomer");
    let good = json!({
        "admin": "alice",
        "secret_file": "center-join-0a1b",
        "signature": statement::base64_encode(b"not checked here"),
        "description": newcomer.describe().unwrap().to_json(),
    });
    let read = messages::join_request(&good).unwrap();
    assert_eq!(read.admin, "alice");
    assert_eq!(read.description.uuid(), newcomer.uuid());
    crate::fuzz::membership(&serde_json::to_vec(&good).unwrap());

    let with = |key: &str, value: Value| {
        let mut bad = good.clone();
        bad[key] = value;
        messages::join_request(&bad).unwrap_err().to_string()
    };
    assert!(with("admin", json!("../root")).contains("admin"));
    assert!(with("secret_file", json!("../../etc/shadow")).contains("secret_file"));
    assert!(with("secret_file", json!(".hidden")).contains("secret_file"));
    assert!(with("signature", json!("%%%")).contains("base64"));
    assert!(with("extra", json!(1)).contains("unknown member"));
    let mut description = good["description"].clone();
    description["name"] = json!("someone-else");
    assert!(with("description", description).contains("description"));
    assert!(messages::join_request(&json!([])).is_err());
}

#[test]
fn dht_records_verify_only_with_the_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    let peer = identity(&dir, "peer");
    let other = identity(&dir, "other");
    let fingerprint = peer.fingerprint();
    let good = record(&peer, 1000);
    let read = Record::parse(&good).unwrap();
    read.verify(peer.uuid(), &fingerprint).unwrap();
    assert_eq!(read.issued, 1000);
    crate::fuzz::membership(&serde_json::to_vec(&good).unwrap());

    // Another peer's record under this uuid, or signed by another key.
    let foreign = Record::parse(&record(&other, 1000)).unwrap();
    assert!(
        foreign
            .verify(peer.uuid(), &fingerprint)
            .unwrap_err()
            .contains("not of")
    );
    assert!(
        foreign
            .verify(other.uuid(), &fingerprint)
            .unwrap_err()
            .contains("not by")
    );
    // A changed time breaks the signature.
    let mut replayed = good.clone();
    replayed["issued"] = json!(2000);
    let replayed = Record::parse(&replayed).unwrap();
    assert!(
        replayed
            .verify(peer.uuid(), &fingerprint)
            .unwrap_err()
            .contains("bad signature")
    );
    // Unsigned.
    let mut unsigned = good.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert!(Record::parse(&unsigned).is_err());
}

#[test]
fn a_roster_hand_off_is_taken_once_after_the_welcome_only() {
    use crate::state::Joining;
    let joining = |welcomed: Option<u64>, handed_over: Option<u64>| Joining {
        address: "127.0.0.1:7350".to_owned(),
        fingerprint: "0".repeat(40),
        asked: 1,
        welcomed,
        handed_over,
    };
    let table = [
        // Not a peer this peer asked to join through.
        (None, false),
        // Asked, not yet welcomed.
        (Some(joining(None, None)), false),
        // Welcomed, no hand-off yet: the one taken.
        (Some(joining(Some(2), None)), true),
        // The hand-off was taken: no other, nor the same again.
        (Some(joining(Some(2), Some(3))), false),
        (Some(joining(None, Some(3))), false),
    ];
    for (state, taken) in table {
        assert_eq!(
            Joining::hand_off_refusal(state.as_ref()).is_none(),
            taken,
            "{state:?}"
        );
    }
}

#[test]
fn a_sponsor_adds_a_bounded_number_of_peers_per_day() {
    use crate::state::{DAY_MS, sponsor_may_add};
    let now = 10 * DAY_MS;
    // (times its peers were trusted, limit, one more allowed)
    let table: [(&[u64], usize, bool); 6] = [
        (&[], 4, true),
        (&[now - 1, now - 2, now - 3], 4, true),
        (&[now - 1, now - 2, now - 3, now - 4], 4, false),
        // Older than a day: no longer counted.
        (&[now - DAY_MS, now - 2 * DAY_MS, now - 3, now - 4], 4, true),
        (&[now], 1, false),
        (&[now - DAY_MS - 1], 1, true),
    ];
    for (times, limit, allowed) in table {
        assert_eq!(
            sponsor_may_add(times, now, limit),
            allowed,
            "{times:?} {limit}"
        );
    }
}
