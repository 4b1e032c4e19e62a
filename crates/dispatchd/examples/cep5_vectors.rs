//! Regenerates CEP 5's end-to-end vectors in `CEPS/vectors/0005/`: two
//! throwaway peers, `vector-alpha` and `vector-bravo`, set up an Olm session
//! and exchange one direct message, and every frame is written as its exact
//! body, with the state each receiver needs to open it.
//!
//! THE KEYS WRITTEN HERE ARE TEST KEYS, PUBLISHED ON PURPOSE. Never use them
//! for a real peer.
//!
//! `cargo run -p dispatchd --example cep5_vectors [OUT_DIR]`
//!
//! Every envelope has the same `iat`, the next midnight UTC after the run,
//! and lives 30 days less 1 ms; the receivers' clock (`now` in
//! `frames.json`) is 1 s after `iat`. The exchange, in order:
//!
//! 1. frame 1: alpha → bravo, `GPG`, `session.key-request`;
//! 2. bravo generates one one-time key (its account is saved), and its
//!    identity directory is copied to `bravo/identity/` *now*, before it
//!    opens anything encrypted: that account still holds the one-time key;
//! 3. frame 2: bravo → alpha, `GPG`, `session.key` with that one-time key;
//! 4. frame 3: alpha starts its outbound session and sends `GPG+` (a
//!    pre-key Olm message) `demo.vector`; right after sealing it, alpha's
//!    identity directory and sessions directory are copied to
//!    `alpha/identity/` and `alpha/sessions/`: that session decrypts
//!    bravo's reply;
//! 5. frame 4: bravo opens frame 3 (its inbound session uses the one-time
//!    key up) and answers `GPG+` (a normal Olm message) `session.ack`,
//!    acknowledging the SHA-256 of the message's canonical bytes.
//!
//! The test `dispatchd::peer::vectors` opens the frames from those copies.
//! Regenerating makes new keys and new frames; the test reads whatever is
//! there.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use center_identity::{Identity, IdentityPaths, PeerDescription, PeerKeys};
use center_proto::{Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp};
use dispatchd::{
    link::store::digest,
    peer::{
        ACK, KEY_ANSWER, KEY_REQUEST, Receiver, ReplayCache, Sessions, Verified, open, seal_gpg,
        seal_gpg_plus,
    },
};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// The longest lifetime CEP 2 allows, less 1 ms.
const LIFETIME: Duration = Duration::from_millis(30 * 24 * 60 * 60 * 1000 - 1);
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The id of alpha's key request (any 32 hex digits do).
const REQUEST_ID: &str = "000102030405060708090a0b0c0d0e0f";

/// One side of the exchange, in a temporary state directory laid out like
/// `state_dir/dispatchd`.
struct Peer {
    label: &'static str,
    /// The receivers' clock.
    now: Timestamp,
    state: PathBuf,
    identity: Identity,
    sessions: Sessions,
    replay: ReplayCache,
    description: PeerDescription,
}

impl Peer {
    fn create(
        root: &Path,
        label: &'static str,
        address: &str,
        now: Timestamp,
    ) -> Result<Peer, Error> {
        let state = root.join(label);
        let identity = Identity::create(
            &IdentityPaths::new(state.join("identity")),
            &format!("vector-{label}"),
            address,
        )?;
        let sessions = Sessions::open(state.join("sessions"), *identity.pickle_key())?;
        // One description, made once: its binding is salted, so every
        // `describe()` differs. The other side's roster reads it back.
        let json = serde_json::to_string_pretty(&identity.describe()?.to_json())? + "\n";
        let description = PeerDescription::from_json(json.as_bytes())?;
        Ok(Peer {
            label,
            now,
            state,
            identity,
            sessions,
            replay: ReplayCache::new(16, 16),
            description,
        })
    }

    fn uuid(&self) -> PeerId {
        self.identity.uuid()
    }

    fn open(&mut self, other: &PeerDescription, body: &[u8]) -> Result<Verified, Error> {
        let peer = PeerKeys::from_description(other);
        let keys = move |id: &PeerId| (*id == peer.uuid()).then(|| peer.clone());
        let mut receiver = Receiver {
            identity: &mut self.identity,
            keys: &keys,
            sessions: &mut self.sessions,
            replay: &mut self.replay,
            limits: &Limits::DEFAULT,
            save: dispatchd::peer::SaveSessions::Now,
        };
        Ok(open(&mut receiver, body, None, self.now)?)
    }
}

fn envelope(
    name: &str,
    iat: Timestamp,
    from: PeerId,
    to: PeerId,
    data: Value,
) -> Result<Envelope, Error> {
    Ok(Envelope {
        name: EventName::parse(name)?,
        meta: Meta {
            from,
            to: Destination::Peer(to),
            iat,
            exp: iat.saturating_add(LIFETIME),
        },
        data,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the regular files of `from` into `to` (made 0700), keeping their
/// modes; the creation lock and temporary files are left out.
fn snapshot(from: &Path, to: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if !entry.file_type()?.is_file() || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let mode = entry.metadata()?.permissions().mode() & 0o777;
        let target = to.join(&name);
        fs::copy(entry.path(), &target)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// One frame of the index.
struct Recorded {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    body: Vec<u8>,
    envelope: Value,
}

fn main() -> Result<(), Error> {
    let out = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0005"),
    };
    // `iat` of every envelope: the next midnight UTC, so that the keys
    // (dated 60 s before they are made) and every signature are older than
    // the receivers' clock, 1 s after `iat`. A verifier that checks them at
    // that clock rather than at the real one accepts them too.
    let iat = Timestamp::from_millis((Timestamp::now().as_millis() / DAY_MS + 1) * DAY_MS);
    let now = Timestamp::from_millis(iat.as_millis() + 1000);
    let tmp = tempfile::tempdir()?;
    let staging = tmp.path().join("out");
    // The peers' directories are public; their `identity/` and `sessions/`
    // are 0700, as in a real state directory.
    fs::create_dir_all(staging.join("alpha"))?;
    fs::create_dir_all(staging.join("bravo"))?;
    // Sessions are started by the peer with the lower UUID (CEP 5), so
    // alpha, which starts this one, must have it: draw pairs until it does.
    let (mut alpha, mut bravo) = {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let root = tmp.path().join(format!("attempt-{attempt}"));
            let alpha = Peer::create(&root, "alpha", "alpha.invalid:7350", now)?;
            let bravo = Peer::create(&root, "bravo", "bravo.invalid:7350", now)?;
            if alpha.uuid() < bravo.uuid() {
                break (alpha, bravo);
            }
        }
    };
    let mut frames = Vec::new();

    // 1. alpha asks bravo for a one-time key.
    let request = envelope(
        KEY_REQUEST,
        iat,
        alpha.uuid(),
        bravo.uuid(),
        json!({ "request": REQUEST_ID }),
    )?;
    let frame = seal_gpg(&alpha.identity, bravo.uuid(), &request)?;
    let opened = bravo.open(&alpha.description, &frame.to_body())?;
    assert_eq!(opened.envelope, request);
    frames.push(Recorded {
        file: "frame-1-key-request.json",
        from: alpha.label,
        to: bravo.label,
        body: frame.to_body(),
        envelope: opened.envelope.to_value(),
    });

    // 2. bravo makes the key (the account is saved before it returns) and is
    // captured in that state, before it answers.
    let otk = bravo.identity.one_time_keys(1)?.remove(0);
    snapshot(
        &bravo.state.join("identity"),
        &staging.join("bravo/identity"),
    )?;

    // 3. bravo answers.
    let answer = envelope(
        KEY_ANSWER,
        iat,
        bravo.uuid(),
        alpha.uuid(),
        json!({ "one_time_key": otk, "request": REQUEST_ID }),
    )?;
    let frame = seal_gpg(&bravo.identity, alpha.uuid(), &answer)?;
    let opened = alpha.open(&bravo.description, &frame.to_body())?;
    assert_eq!(opened.envelope, answer);
    frames.push(Recorded {
        file: "frame-2-key.json",
        from: bravo.label,
        to: alpha.label,
        body: frame.to_body(),
        envelope: opened.envelope.to_value(),
    });

    // 4. alpha starts the session and sends its first message, a pre-key
    // message; it is captured right after sealing it.
    let otk = opened.envelope.data["one_time_key"]
        .as_str()
        .ok_or("the key answer has no one_time_key")?;
    alpha.sessions.start_outbound(
        &alpha.identity,
        &PeerKeys::from_description(&bravo.description),
        otk,
    )?;
    let message = envelope(
        "demo.vector",
        iat,
        alpha.uuid(),
        bravo.uuid(),
        json!({ "text": "hello bravo" }),
    )?;
    let frame = seal_gpg_plus(&alpha.identity, &mut alpha.sessions, bravo.uuid(), &message)?;
    snapshot(
        &alpha.state.join("identity"),
        &staging.join("alpha/identity"),
    )?;
    snapshot(
        &alpha.state.join("sessions"),
        &staging.join("alpha/sessions"),
    )?;
    let opened = bravo.open(&alpha.description, &frame.to_body())?;
    assert_eq!(opened.envelope, message);
    let received = digest(&opened.envelope.canonical_bytes()?);
    frames.push(Recorded {
        file: "frame-3-message.json",
        from: alpha.label,
        to: bravo.label,
        body: frame.to_body(),
        envelope: opened.envelope.to_value(),
    });

    // 5. bravo acknowledges it on its new inbound session.
    let ack = envelope(
        ACK,
        iat,
        bravo.uuid(),
        alpha.uuid(),
        json!({ "received": [received] }),
    )?;
    let frame = seal_gpg_plus(&bravo.identity, &mut bravo.sessions, alpha.uuid(), &ack)?;
    let opened = alpha.open(&bravo.description, &frame.to_body())?;
    assert_eq!(opened.envelope, ack);
    frames.push(Recorded {
        file: "frame-4-ack.json",
        from: bravo.label,
        to: alpha.label,
        body: frame.to_body(),
        envelope: opened.envelope.to_value(),
    });

    // Descriptions, frame bodies (exact bytes, no newline) and the index.
    for peer in [&alpha, &bravo] {
        let json = serde_json::to_string_pretty(&peer.description.to_json())? + "\n";
        fs::write(staging.join(peer.label).join("description.json"), json)?;
    }
    let mut index = Vec::new();
    for frame in &frames {
        fs::write(staging.join(frame.file), &frame.body)?;
        let parsed = center_proto::peer_frame::PeerFrame::parse(&frame.body)?;
        index.push(json!({
            "file": frame.file,
            "from": frame.from,
            "to": frame.to,
            "prefix": parsed.prefix().as_str(),
            "signing_input_hex": hex(&parsed.signing_input()),
            "envelope": frame.envelope,
        }));
    }
    let index = json!({ "now": now.as_millis(), "frames": index });
    fs::write(
        staging.join("frames.json"),
        serde_json::to_string_pretty(&index)? + "\n",
    )?;

    // Replace what the generator owns; README.md and the rest stay.
    fs::create_dir_all(&out)?;
    for entry in fs::read_dir(&staging)? {
        let entry = entry?;
        let target = out.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if target.exists() {
                fs::remove_dir_all(&target)?;
            }
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    println!("wrote {}", out.canonicalize()?.display());
    Ok(())
}

/// Copies a directory tree, keeping every mode.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let mode = fs::metadata(from)?.permissions().mode() & 0o777;
    fs::DirBuilder::new().mode(0o700).create(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            let file_mode = entry.metadata()?.permissions().mode() & 0o777;
            fs::copy(entry.path(), &target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(file_mode))?;
        }
    }
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}
