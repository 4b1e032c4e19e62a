//! Checks `CEPS/vectors/0007-membership.json` (CEP 7) against the readers:
//! the join statement is the canonical object the CEP describes and the
//! request's signature verifies over it with the secret (and not with
//! another); the DHT record verifies with the trusted fingerprint only;
//! each membership message is accepted or refused as recorded.

use center_identity::{PeerKeys, statement};
use center_proto::{Envelope, Limits, Timestamp};
use peerd::{dht::Record, messages};
use serde_json::Value;

fn vectors() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../CEPS/vectors/0007-membership.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn join_request_vector() {
    let v = &vectors()["join"];
    let bytes = v["envelope"].as_str().unwrap().as_bytes();
    let now = Timestamp::from_millis(1_795_309_571_000);
    let envelope = Envelope::parse(bytes, now, &Limits::DEFAULT).unwrap();
    assert_eq!(envelope.name.as_str(), messages::NEW_PEER_SERVER);
    let request = messages::join_request(&envelope.data).unwrap();
    let to = v["to"].as_str().unwrap().parse().unwrap();
    let statement_for = |secret: &str| {
        statement::join_secret(
            envelope.meta.from,
            to,
            &request.admin,
            &request.secret_file,
            secret,
        )
        .unwrap()
    };
    let secret = v["secret"].as_str().unwrap();
    assert_eq!(
        statement_for(secret),
        v["statement"].as_str().unwrap().as_bytes()
    );
    let keys = PeerKeys::from_description(&request.description);
    keys.verify(&statement_for(secret), &request.signature)
        .unwrap();
    assert!(
        keys.verify(
            &statement_for(v["wrong_secret"].as_str().unwrap()),
            &request.signature
        )
        .is_err()
    );
}

#[test]
fn dht_record_vector() {
    let v = &vectors()["dht_record"];
    let record = Record::parse(&v["record"]).unwrap();
    let uuid = v["uuid"].as_str().unwrap().parse().unwrap();
    record
        .verify(uuid, v["fingerprint"].as_str().unwrap())
        .unwrap();
    assert!(record.verify(uuid, &"0".repeat(40)).is_err());
    let expected = statement::dht_record(uuid, &v["record"]["description"], record.issued).unwrap();
    assert_eq!(expected, v["statement"].as_str().unwrap().as_bytes());
}

#[test]
fn message_vectors() {
    for v in vectors()["messages"].as_array().unwrap() {
        let data = &v["data"];
        let result = match v["name"].as_str().unwrap() {
            messages::JOINED => messages::joined(data).map(|_| ()),
            messages::ROSTER => messages::roster(data).map(|_| ()),
            messages::LEAVE => messages::leave(data).map(|_| ()),
            messages::EXCOMMUNICATE => messages::excommunicate(data).map(|_| ()),
            other => panic!("no reader for {other}"),
        };
        match (v["valid"].as_bool().unwrap(), result) {
            (true, Ok(())) => {}
            (false, Err(err)) => assert!(
                err.to_string().contains(v["error"].as_str().unwrap()),
                "{}: {err}",
                v["name"]
            ),
            (valid, result) => panic!("{}: expected valid={valid}, got {result:?}", v["name"]),
        }
    }
}
