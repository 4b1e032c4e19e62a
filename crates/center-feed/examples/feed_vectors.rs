//! Writes CEP 6's vectors, `CEPS/vectors/0006-feed-events.json`: a chain of
//! three events signed by the published TEST key of `vector-alpha`
//! (`CEPS/vectors/0005/alpha`), a validly signed second event 2, events
//! whose signature does not verify, and malformed events, each with the
//! reference implementation's message.
//!
//! Run from anywhere in the workspace:
//!
//! ```text
//! cargo run -p center-feed --example feed_vectors
//! ```
//!
//! OpenPGP signatures carry their creation time, so every run writes new
//! signatures and hashes; the tests read whatever the file holds.

use std::error::Error;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use center_feed::{EventBody, EventHash, FeedEvent, FeedLimits};
use center_identity::{Identity, IdentityPaths, PeerDescription, PeerKeys};
use center_proto::{EventName, Timestamp};
use serde_json::{Value, json};

/// 2026-11-22T00:00:00Z, the `now` of the other CEPs' vectors.
const NOW: u64 = 1_795_305_600_000;

fn main() -> Result<(), Box<dyn Error>> {
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors");
    let alpha = vectors.join("0005/alpha");
    let state = tempfile::tempdir()?;
    copy_private(&alpha.join("identity"), &state.path().join("identity"))?;
    let identity = Identity::load(&IdentityPaths::new(state.path().join("identity")))?;
    let description = PeerDescription::from_json(&fs::read(alpha.join("description.json"))?)?;
    let keys = PeerKeys::from_description(&description);
    if keys.uuid() != identity.uuid() {
        return Err("alpha's description and identity disagree".into());
    }

    let make = |seq: u64, prev: EventHash, name: &str, data: Value| {
        let body = EventBody {
            origin: identity.uuid(),
            seq,
            prev,
            name: EventName::parse(name)?,
            iat: Timestamp::from_millis(NOW + seq * 1000),
            data,
        };
        let event = FeedEvent::sign(body, |m| identity.sign(m))?;
        event.verify(&keys)?;
        Ok::<_, Box<dyn Error>>(event)
    };
    let one = make(
        1,
        EventHash::ZERO,
        "account.created",
        json!({ "user": "ada", "shell": "/bin/sh", "groups": ["tilde", "center"] }),
    )?;
    let two = make(
        2,
        one.hash(),
        "account.updated",
        json!({ "user": "ada", "note": "café ☕ \"quoted\"\n", "n": -42 }),
    )?;
    let three = make(3, two.hash(), "vector.empty", json!({}))?;
    let other_two = make(
        2,
        one.hash(),
        "account.updated",
        json!({ "user": "ada", "note": "another story", "n": 7 }),
    )?;

    let valid = |name: &str, e: &FeedEvent| {
        json!({
            "name": name,
            "event": text(e.as_bytes()),
            "hash": e.hash().to_hex(),
            "signing_input_hex": hex(&e.signing_input()),
        })
    };
    let mut equivocation = valid("equivocating-2", &other_two);
    equivocation["conflicts_with"] = json!("chain-2");

    let bad_signature = [
        (
            "altered-data",
            text(one.as_bytes()).replace(r#""user":"ada""#, r#""user":"eve""#),
        ),
        (
            "signature-of-another-event",
            splice_sig(&text(three.as_bytes()), &two),
        ),
    ]
    .into_iter()
    .map(|(name, event)| {
        let parsed = FeedEvent::parse(event.as_bytes(), &FeedLimits::DEFAULT)?;
        let error = match parsed.verify(&keys) {
            Ok(()) => return Err(format!("{name} verifies").into()),
            Err(e) => e.to_string(),
        };
        Ok::<_, Box<dyn Error>>(json!({
            "name": name,
            "event": event,
            "hash": parsed.hash().to_hex(),
            "error": error,
        }))
    })
    .collect::<Result<Vec<_>, _>>()?;

    let invalid = invalid_events(&text(two.as_bytes()), &one)
        .into_iter()
        .map(|(name, event)| {
            let error = match FeedEvent::parse(event.as_bytes(), &FeedLimits::DEFAULT) {
                Ok(_) => return Err(format!("{name} is accepted").into()),
                Err(e) => e.to_string(),
            };
            Ok::<_, Box<dyn Error>>(json!({ "name": name, "event": event, "error": error }))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let doc = json!({
        "origin": identity.uuid().to_string(),
        "keys": "0005/alpha/description.json",
        "chain": [valid("chain-1", &one), valid("chain-2", &two), valid("chain-3", &three)],
        "equivocation": equivocation,
        "bad_signature": bad_signature,
        "invalid": invalid,
    });
    let path = vectors.join("0006-feed-events.json");
    fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Malformed variants of `valid` (event 2 of the chain): one fault each.
fn invalid_events(valid: &str, one: &FeedEvent) -> Vec<(&'static str, String)> {
    let prev = one.hash().to_hex();
    let origin = one.origin().to_string();
    let m = |from: &str, to: &str| valid.replacen(from, to, 1);
    vec![
        ("not-json", "{\"data\":".to_owned()),
        ("not-an-object", "[]".to_owned()),
        ("unknown-member", m("{", "{\"exp\":1,")),
        ("missing-sig", cut_sig(valid)),
        (
            "data-not-object",
            m(r#""data":{"#, r#""data":[{"#).replacen("},\"iat\"", "}],\"iat\"", 1),
        ),
        ("seq-zero", m(r#""seq":2"#, r#""seq":0"#)),
        ("seq-1-with-prev", m(r#""seq":2"#, r#""seq":1"#)),
        ("zero-prev-after-1", m(&prev, &"0".repeat(64))),
        ("prev-uppercase", m(&prev, &prev.to_uppercase())),
        ("prev-short", m(&prev, prev.get(..63).unwrap_or_default())),
        ("origin-uppercase", m(&origin, &origin.to_uppercase())),
        (
            "bad-name",
            m(r#""name":"account.updated""#, r#""name":"Account""#),
        ),
        ("float", m(r#""n":-42"#, r#""n":-4.2"#)),
        ("duplicate-key", m(r#""n":-42"#, r#""n":-42,"n":-42"#)),
        ("sig-not-base64", m(r#""sig":""#, r#""sig":"*"#)),
        ("sig-empty", format!("{},\"sig\":\"\"}}", body_part(valid))),
        ("whitespace", m(r#""seq":2"#, r#""seq": 2"#)),
        (
            "keys-out-of-order",
            m(r#","name":"account.updated""#, "").replacen('{', r#"{"name":"account.updated","#, 1),
        ),
        (
            "escaped-letter",
            m(r#""user":"ada""#, r#""user":"\u0061da""#),
        ),
    ]
}

/// `event` up to its `sig` member, without the closing brace.
fn body_part(event: &str) -> &str {
    event
        .rfind(",\"sig\":")
        .and_then(|at| event.get(..at))
        .unwrap_or(event)
}

/// `event` with its `sig` member removed.
fn cut_sig(event: &str) -> String {
    format!("{}}}", body_part(event))
}

/// `event` with the signature of `other`.
fn splice_sig(event: &str, other: &FeedEvent) -> String {
    let sig = center_proto::peer_frame::base64::encode(other.signature());
    format!("{},\"sig\":\"{sig}\"}}", body_part(event))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the files of `from` into `to` with a state directory's modes
/// (git keeps none, and `Identity::load` refuses readable secrets).
fn copy_private(from: &Path, to: &Path) -> Result<(), Box<dyn Error>> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target)?;
        let mode = if entry.file_name() == "identity.json" {
            0o644
        } else {
            0o600
        };
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
