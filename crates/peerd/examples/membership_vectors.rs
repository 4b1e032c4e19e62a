//! Writes CEP 7's vectors, `CEPS/vectors/0007-membership.json`: a join
//! request with its secret and signature, a DHT record, and membership
//! messages valid and not, each with what a reader says of it. Keys are
//! fresh on every run, so the file changes; `tests/vectors.rs` checks
//! whatever it holds against the readers.
//!
//! `cargo run -p peerd --example membership_vectors`

use center_identity::{Identity, IdentityPaths, statement};
use center_proto::{Destination, Envelope, EventName, Meta, Timestamp};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let make = |name: &str, address: &str| {
        Identity::create(&IdentityPaths::new(dir.path().join(name)), name, address)
    };
    let existing = make("alpha", "192.0.2.1:7350")?;
    let newcomer = make("delta", "192.0.2.4:7350")?;
    let (admin, file) = ("alice", "center-join-0123456789ab");
    let secret = "5e".repeat(32);
    let message = statement::join_secret(newcomer.uuid(), existing.uuid(), admin, file, &secret)?;
    let signature = statement::base64_encode(newcomer.sign(&message)?);
    let iat = Timestamp::from_millis(1_795_309_571_000);
    let request = Envelope {
        name: EventName::parse("new-peer-server")?,
        meta: Meta {
            from: newcomer.uuid(),
            to: Destination::Peer(existing.uuid()),
            iat,
            exp: iat.saturating_add(std::time::Duration::from_secs(7 * 24 * 3600)),
        },
        data: json!({
            "admin": admin,
            "secret_file": file,
            "signature": signature,
            "description": newcomer.describe()?.to_json(),
        }),
    };
    let description = existing.describe()?.to_json();
    let issued = 1_795_309_571_000u64;
    let record_message = statement::dht_record(existing.uuid(), &description, issued)?;
    let record = json!({
        "description": description,
        "issued": issued,
        "signature": statement::base64_encode(existing.sign(&record_message)?),
    });
    let newcomer_description = newcomer.describe()?.to_json();
    let vectors = json!({
        "join": {
            "to": existing.uuid().to_string(),
            "secret": secret,
            "statement": String::from_utf8(message)?,
            "envelope": String::from_utf8(request.canonical_bytes()?)?,
            "wrong_secret": "00".repeat(32),
        },
        "dht_record": {
            "uuid": existing.uuid().to_string(),
            "fingerprint": existing.fingerprint(),
            "statement": String::from_utf8(record_message)?,
            "record": record,
        },
        "messages": [
            message_vector("peer.joined", json!({ "description": newcomer_description }), None),
            message_vector(
                "peer.roster",
                json!({ "peers": [{ "description": newcomer_description }] }),
                None,
            ),
            message_vector(
                "peer.roster",
                json!({ "peers": [newcomer_description] }),
                Some("unknown member"),
            ),
            message_vector("peer.leave", json!({ "reason": "retired" }), None),
            message_vector(
                "peer.excommunicate",
                json!({ "peer": newcomer.uuid().to_string(), "reason": "decided by vote" }),
                None,
            ),
            message_vector(
                "peer.excommunicate",
                json!({ "peer": newcomer.uuid().to_string(), "reason": "decided by vote", "until": 42 }),
                None,
            ),
            message_vector(
                "peer.excommunicate",
                json!({ "peer": newcomer.uuid().to_string(), "reason": "x", "until": -1 }),
                Some("`until`"),
            ),
            message_vector("peer.leave", json!({}), Some("`data` lacks `reason`")),
            message_vector(
                "peer.excommunicate",
                json!({ "peer": "not-a-uuid", "reason": "x" }),
                Some("`peer`"),
            ),
            message_vector(
                "peer.joined",
                json!({ "description": newcomer_description, "via": "x" }),
                Some("unknown member `via`"),
            ),
        ],
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../CEPS/vectors/0007-membership.json");
    std::fs::write(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&vectors)?),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

fn message_vector(name: &str, data: Value, error: Option<&str>) -> Value {
    match error {
        None => json!({ "name": name, "data": data, "valid": true }),
        Some(error) => json!({ "name": name, "data": data, "valid": false, "error": error }),
    }
}
