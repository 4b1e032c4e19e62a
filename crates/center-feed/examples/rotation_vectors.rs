//! Writes the key rotation vectors of CEP 7, `CEPS/vectors/0007-rotation.json`:
//! `vector-alpha` (the published TEST key of `CEPS/vectors/0005/alpha`)
//! writes event 1, rotates at seq 2 (a `peer.rotate` event signed by its
//! TEST key), and writes event 3 with its new key; plus event 3 signed
//! with the old key and event 2 signed with the new one, which a receiver
//! refuses, each with the reference implementation's message.
//!
//! Run from anywhere in the workspace:
//!
//! ```text
//! cargo run -p center-feed --example rotation_vectors
//! ```
//!
//! The new keys are made afresh on every run (in a temporary copy of
//! alpha's identity: the TEST key on disk is never changed); only their
//! public description is written, inside the rotation event.

use std::error::Error;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use center_feed::{
    EventBody, EventHash, FeedBudget, FeedConfig, FeedEvent, FeedStore, OriginKeys, Outcome,
    rotation_data,
};
use center_identity::{Identity, IdentityPaths, PeerDescription, PeerKeys};
use center_proto::{EventName, PeerId, Timestamp};
use serde_json::{Value, json};

/// 2026-11-22T00:00:00Z, the `now` of the other CEPs' vectors.
const NOW: u64 = 1_795_305_600_000;

fn main() -> Result<(), Box<dyn Error>> {
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors");
    let alpha = vectors.join("0005/alpha");
    let state = tempfile::tempdir()?;
    copy_private(&alpha.join("identity"), &state.path().join("identity"))?;
    let mut identity = Identity::load(&IdentityPaths::new(state.path().join("identity")))?;
    let description = PeerDescription::from_json(&fs::read(alpha.join("description.json"))?)?;
    let old_keys = PeerKeys::from_description(&description);
    if old_keys.uuid() != identity.uuid() {
        return Err("alpha's description and identity disagree".into());
    }
    let make = |identity: &Identity, seq: u64, prev: EventHash, name: &str, data: Value| {
        let body = EventBody {
            origin: identity.uuid(),
            seq,
            prev,
            name: EventName::parse(name)?,
            iat: Timestamp::from_millis(NOW + seq * 1000),
            data,
        };
        Ok::<_, Box<dyn Error>>(FeedEvent::sign(body, |m| identity.sign(m))?)
    };
    let one = make(
        &identity,
        1,
        EventHash::ZERO,
        "notes.posted",
        json!({ "n": 1 }),
    )?;
    let prepared = identity.prepare_rotation()?;
    let new_description = prepared.description().clone();
    let data = rotation_data(&new_description, description.fingerprint());
    let rotate = make(&identity, 2, one.hash(), "peer.rotate", data)?;
    let old_three = make(
        &identity,
        3,
        rotate.hash(),
        "notes.posted",
        json!({ "n": 3 }),
    )?;
    identity.commit_rotation(prepared)?;
    let three = make(
        &identity,
        3,
        rotate.hash(),
        "notes.posted",
        json!({ "n": 3 }),
    )?;
    let new_two = make(&identity, 2, one.hash(), "notes.posted", json!({ "n": 2 }))?;

    // The reference implementation's answers.
    let store_dir = tempfile::tempdir()?;
    let mut store = FeedStore::open(
        &store_dir.path().join("feeds.sqlite3"),
        FeedConfig {
            budget: FeedBudget::DEFAULT,
            ..FeedConfig::default()
        },
    )?;
    let keys: OriginKeys = old_keys.into();
    let roster = move |id: &PeerId| (*id == keys.current().uuid()).then(|| keys.clone());
    let now = Timestamp::from_millis(NOW);
    let page: Vec<&[u8]> = vec![one.as_bytes(), rotate.as_bytes(), old_three.as_bytes()];
    let outcomes = store.accept(&page, &roster, now)?;
    let refused = |outcome: &Outcome| match outcome {
        Outcome::Refused(refusal) => Ok(refusal.to_string()),
        other => Err(format!("not refused: {other:?}")),
    };
    let old_error = refused(&outcomes[2])?;
    let fresh_dir = tempfile::tempdir()?;
    let mut fresh = FeedStore::open(&fresh_dir.path().join("f.sqlite3"), FeedConfig::default())?;
    let early = fresh.accept(&[one.as_bytes(), new_two.as_bytes()], &roster, now)?;
    let new_error = refused(&early[1])?;

    let event = |name: &str, event: &FeedEvent| json!({ "name": name, "event": text(event.as_bytes()), "hash": event.hash().to_hex() });
    let doc = json!({
        "origin": identity.uuid().to_string(),
        "keys": "0005/alpha/description.json",
        "new_fingerprint": new_description.fingerprint(),
        "chain": [event("chain-1", &one), event("rotate-2", &rotate), event("new-key-3", &three)],
        "refused": [
            { "name": "old-key-after-rotation-3", "event": text(old_three.as_bytes()),
              "after": "rotate-2", "error": old_error },
            { "name": "new-key-before-rotation-2", "event": text(new_two.as_bytes()),
              "after": "chain-1", "error": new_error },
        ],
    });
    let path = vectors.join("0007-rotation.json");
    fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
