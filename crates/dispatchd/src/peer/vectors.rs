//! Checks CEP 5's end-to-end vectors, `CEPS/vectors/0005/`, against
//! [`open`]: two published test identities, the state each receiver had, and
//! the four frames of a session setup and one direct message, each of which
//! must open to exactly the recorded envelope. So the CEP's bytes and the
//! code cannot drift apart. The vectors are made by
//! `cargo run -p dispatchd --example cep5_vectors`.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use center_identity::{Identity, IdentityPaths, PeerDescription, PeerKeys};
use center_proto::{
    Limits, PeerId, Timestamp,
    peer_frame::{Auth, OpenPgpSignature, PeerFrame, Prefix},
};
use serde_json::Value;

use super::{Receiver, Refusal, ReplayCache, Sessions, Verified, open};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0005")
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (regenerate with `cargo run -p dispatchd --example cep5_vectors`)",
            path.display()
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the regular files of `from` into `to`, with the modes a real
/// state directory has: git keeps none, and [`Identity::load`] refuses
/// secrets that group or others can read.
fn copy_private(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target).unwrap();
        let mode = if entry.file_name() == "identity.json" {
            0o644
        } else {
            0o600
        };
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// One receiver, loaded from a copy of its fixture.
struct Side {
    _state: tempfile::TempDir,
    identity: Identity,
    sessions: Sessions,
    replay: ReplayCache,
    /// The other side, the only entry of this side's roster.
    roster: PeerKeys,
}

impl Side {
    fn load(fixture: &Path, other: &PeerDescription) -> Side {
        let state = tempfile::tempdir().unwrap();
        copy_private(&fixture.join("identity"), &state.path().join("identity"));
        if fixture.join("sessions").is_dir() {
            copy_private(&fixture.join("sessions"), &state.path().join("sessions"));
        }
        let identity = Identity::load(&IdentityPaths::new(state.path().join("identity")))
            .unwrap_or_else(|e| panic!("fixture {}: {e}", fixture.display()));
        let sessions =
            Sessions::open(state.path().join("sessions"), *identity.pickle_key()).unwrap();
        Side {
            _state: state,
            identity,
            sessions,
            replay: ReplayCache::new(16, 16),
            roster: PeerKeys::from_description(other),
        }
    }

    fn open(&mut self, body: &[u8], now: Timestamp) -> Result<Verified, Refusal> {
        let peer = self.roster.clone();
        let keys = move |id: &PeerId| (*id == peer.uuid()).then(|| peer.clone());
        let mut receiver = Receiver {
            identity: &mut self.identity,
            keys: &keys,
            sessions: &mut self.sessions,
            replay: &mut self.replay,
            limits: &Limits::DEFAULT,
            save: super::SaveSessions::Now,
        };
        open(&mut receiver, body, None, now)
    }
}

fn description(dir: &Path, side: &str) -> PeerDescription {
    let path = dir.join(side).join("description.json");
    PeerDescription::from_json(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same frame with the last byte of its signature flipped.
fn with_flipped_signature(frame: &PeerFrame) -> Vec<u8> {
    let (Auth::Gpg(sig) | Auth::GpgPlus(sig)) = frame.auth() else {
        panic!("a vector frame is signed");
    };
    let mut bad = sig.as_bytes().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let bad = OpenPgpSignature::new(bad).unwrap();
    let auth = match frame.prefix() {
        Prefix::GpgPlus => Auth::GpgPlus(bad),
        _ => Auth::Gpg(bad),
    };
    PeerFrame::new(frame.from(), frame.to(), auth, frame.payload().to_vec())
        .unwrap()
        .to_body()
}

#[test]
fn the_cep5_exchange_opens_to_the_recorded_envelopes() {
    let dir = vectors_dir();
    let index: Value = serde_json::from_slice(&read(&dir.join("frames.json"))).unwrap();
    let members: BTreeSet<&str> = index
        .as_object()
        .expect("frames.json is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(members, BTreeSet::from(["frames", "now"]));
    let now = Timestamp::from_millis(index["now"].as_u64().expect("`now` is milliseconds"));

    let descriptions = [description(&dir, "alpha"), description(&dir, "bravo")];
    let mut alpha = Side::load(&dir.join("alpha"), &descriptions[1]);
    let mut bravo = Side::load(&dir.join("bravo"), &descriptions[0]);
    assert_eq!(alpha.identity.uuid(), descriptions[0].uuid());
    assert_eq!(bravo.identity.uuid(), descriptions[1].uuid());
    assert_eq!(alpha.identity.name(), "vector-alpha");
    assert_eq!(bravo.identity.name(), "vector-bravo");
    let uuid_of = |side: &str| match side {
        "alpha" => descriptions[0].uuid(),
        "bravo" => descriptions[1].uuid(),
        other => panic!("unknown side {other:?}"),
    };

    let frames = index["frames"].as_array().expect("`frames` is a list");
    assert_eq!(frames.len(), 4, "key request, key, message, ack");
    let mut opened = Vec::new();
    for entry in frames {
        let members: BTreeSet<&str> = entry
            .as_object()
            .expect("a frame entry is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            members,
            BTreeSet::from([
                "envelope",
                "file",
                "from",
                "prefix",
                "signing_input_hex",
                "to"
            ])
        );
        let name = entry["file"].as_str().unwrap();
        let body = read(&dir.join(name));
        let (from, to) = (
            entry["from"].as_str().unwrap(),
            entry["to"].as_str().unwrap(),
        );

        // The body is canonical and says what the index says.
        let frame = PeerFrame::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.to_body(), body, "{name} is not canonical");
        assert_eq!(frame.prefix().as_str(), entry["prefix"], "{name}");
        assert_eq!(frame.from(), uuid_of(from), "{name}");
        assert_eq!(frame.to(), uuid_of(to), "{name}");
        assert_eq!(
            hex(&frame.signing_input()),
            entry["signing_input_hex"],
            "{name}: signing input"
        );
        // The signature covers exactly those bytes.
        let sender = PeerKeys::from_description(if from == "alpha" {
            &descriptions[0]
        } else {
            &descriptions[1]
        });
        let sig = frame.auth().signature().expect("signed");
        sender
            .verify(&frame.signing_input(), sig.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let receiver = if to == "alpha" {
            &mut alpha
        } else {
            &mut bravo
        };
        // A bad signature is refused before anything is decrypted, so the
        // genuine frame still opens after it.
        let refusal = receiver
            .open(&with_flipped_signature(&frame), now)
            .unwrap_err();
        assert!(
            matches!(refusal, Refusal::Signature { .. }),
            "{name} with a flipped signature byte: {refusal}"
        );
        let verified = receiver
            .open(&body, now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.prefix, frame.prefix(), "{name}");
        assert_eq!(
            verified.envelope.to_value(),
            entry["envelope"],
            "{name}: envelope"
        );
        match frame.prefix() {
            // A GPG payload is the envelope's canonical bytes, in clear.
            Prefix::Gpg => assert_eq!(
                verified.envelope.canonical_bytes().unwrap(),
                frame.payload(),
                "{name}"
            ),
            // A GPG+ payload is not.
            _ => assert_ne!(
                verified.envelope.canonical_bytes().unwrap(),
                frame.payload(),
                "{name}"
            ),
        }
        // Opened twice: the replay cache (GPG) or Olm (GPG+) refuses it.
        let refusal = receiver.open(&body, now).unwrap_err();
        assert!(
            matches!(refusal, Refusal::Replay { .. }),
            "{name} opened twice: {refusal}"
        );
        opened.push((frame, verified));
    }

    // The exchange of CEP 5 "Olm session establishment", in order.
    let names: Vec<&str> = opened
        .iter()
        .map(|(_, v)| v.envelope.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "session.key-request",
            "session.key",
            "demo.vector",
            "session.ack"
        ]
    );
    // The message is a pre-key message, the answer to it a normal one.
    assert_eq!(
        opened[2].0.payload()[0],
        0x00,
        "frame 3 is a pre-key message"
    );
    assert_eq!(
        opened[3].0.payload()[0],
        0x01,
        "frame 4 is a normal message"
    );
    // The ack names the message by the SHA-256 of its canonical bytes.
    let message = opened[2].1.envelope.canonical_bytes().unwrap();
    assert_eq!(
        opened[3].1.envelope.data,
        serde_json::json!({ "received": [crate::link::store::digest(&message)] })
    );
}
