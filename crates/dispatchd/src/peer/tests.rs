//! Sealing and opening frames between real identities: session setup over
//! `GPG`, messages over `GPG+`, and every refusal of CEP 5's receive order.

use std::{collections::HashMap, time::Duration};

use center_identity::{Identity, IdentityPaths, PeerKeys};
use center_proto::{
    Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp,
    peer_frame::{Auth, OpenPgpSignature, PeerFrame, Prefix, signing_input},
};
use serde_json::json;

use super::{
    KEY_ANSWER, KEY_REQUEST, PING, PONG, Receiver, Refusal, ReplayCache, Sessions, Verified, open,
    seal_gpg, seal_gpg_plus,
};

struct Party {
    _dir: tempfile::TempDir,
    identity: Identity,
    sessions: Sessions,
    replay: ReplayCache,
    roster: HashMap<PeerId, PeerKeys>,
}

impl Party {
    fn new(name: &str) -> Party {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::create(
            &IdentityPaths::new(dir.path().join("identity")),
            name,
            "127.0.0.1:7350",
        )
        .unwrap();
        let sessions = Sessions::open(dir.path().join("sessions"), *identity.pickle_key()).unwrap();
        Party {
            _dir: dir,
            identity,
            sessions,
            replay: ReplayCache::new(1000, 1000),
            roster: HashMap::new(),
        }
    }

    fn keys(&self) -> PeerKeys {
        PeerKeys::from_description(&self.identity.describe().unwrap())
    }

    fn uuid(&self) -> PeerId {
        self.identity.uuid()
    }

    /// Opens a frame as it arrived, on a connection of `connection_peer`.
    fn open_on(
        &mut self,
        frame: &PeerFrame,
        connection_peer: Option<PeerId>,
    ) -> Result<Verified, Refusal> {
        let roster = self.roster.clone();
        let keys = move |peer: &PeerId| roster.get(peer).cloned();
        let mut receiver = Receiver {
            identity: &mut self.identity,
            keys: &keys,
            sessions: &mut self.sessions,
            replay: &mut self.replay,
            limits: &Limits::DEFAULT,
            save: super::SaveSessions::Now,
        };
        open(
            &mut receiver,
            &frame.to_body(),
            connection_peer,
            Timestamp::now(),
        )
    }

    fn open(&mut self, frame: &PeerFrame) -> Result<Verified, Refusal> {
        self.open_on(frame, None)
    }
}

fn envelope(name: &str, from: PeerId, to: PeerId, data: serde_json::Value) -> Envelope {
    let iat = Timestamp::now();
    Envelope {
        name: EventName::parse(name).unwrap(),
        meta: Meta {
            from,
            to: Destination::Peer(to),
            iat,
            exp: iat.saturating_add(Duration::from_secs(60)),
        },
        data,
    }
}

/// Three peers that trust each other, A with a session to B.
fn network() -> (Party, Party, Party) {
    let (mut a, mut b, mut c) = (
        Party::new("alpha"),
        Party::new("bravo"),
        Party::new("charlie"),
    );
    let (ka, kb, kc) = (a.keys(), b.keys(), c.keys());
    for (party, keys) in [
        (&mut a, [&kb, &kc]),
        (&mut b, [&ka, &kc]),
        (&mut c, [&ka, &kb]),
    ] {
        for k in keys {
            party.roster.insert(k.uuid(), k.clone());
        }
    }
    // A asks B for a one-time key over GPG; B answers; A starts the session.
    let request = seal_gpg(
        &a.identity,
        b.uuid(),
        &envelope(KEY_REQUEST, a.uuid(), b.uuid(), json!({})),
    )
    .unwrap();
    assert_eq!(
        b.open(&request).unwrap().envelope.name.as_str(),
        KEY_REQUEST
    );
    let otk = b.identity.one_time_keys(1).unwrap().remove(0);
    let answer = seal_gpg(
        &b.identity,
        a.uuid(),
        &envelope(
            KEY_ANSWER,
            b.uuid(),
            a.uuid(),
            json!({ "one_time_key": otk }),
        ),
    )
    .unwrap();
    let answered = a.open(&answer).unwrap();
    let otk = answered.envelope.data["one_time_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_keys = b.keys();
    a.sessions
        .start_outbound(&a.identity, &b_keys, &otk)
        .unwrap();
    (a, b, c)
}

fn direct(a: &mut Party, to: PeerId, name: &str, n: u64) -> PeerFrame {
    let env = envelope(name, a.uuid(), to, json!({ "n": n }));
    seal_gpg_plus(&a.identity, &mut a.sessions, to, &env).unwrap()
}

#[test]
fn messages_flow_both_ways_and_survive_a_restart() {
    let (mut a, mut b, _c) = network();
    for n in 0..3 {
        let frame = direct(&mut a, b.uuid(), "demo.hello", n);
        assert_eq!(frame.prefix(), Prefix::GpgPlus);
        let opened = b.open(&frame).unwrap();
        assert_eq!(opened.envelope.data, json!({ "n": n }));
        assert_eq!(opened.envelope.meta.from, a.uuid());
    }
    // B answers on the session A started.
    let reply = direct(&mut b, a.uuid(), "demo.reply", 7);
    assert_eq!(a.open(&reply).unwrap().envelope.data, json!({ "n": 7 }));
    // B restarts: its sessions come back from disk and keep decrypting.
    b.sessions = Sessions::open(b._dir.path().join("sessions"), *b.identity.pickle_key()).unwrap();
    let frame = direct(&mut a, b.uuid(), "demo.after-restart", 8);
    assert_eq!(
        b.open(&frame).unwrap().envelope.name.as_str(),
        "demo.after-restart"
    );
}

#[test]
fn forged_signatures_and_impostors_are_refused_and_close_the_connection() {
    let (mut a, mut b, c) = network();
    let genuine = direct(&mut a, b.uuid(), "demo.x", 1);

    // A flipped signature byte.
    let Auth::GpgPlus(sig) = genuine.auth() else {
        panic!("GPG+")
    };
    let mut bad = sig.as_bytes().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let forged = PeerFrame::new(
        a.uuid(),
        b.uuid(),
        Auth::GpgPlus(OpenPgpSignature::new(bad).unwrap()),
        genuine.payload().to_vec(),
    )
    .unwrap();
    let refusal = b.open(&forged).unwrap_err();
    assert!(
        matches!(refusal, Refusal::Signature { .. }) && refusal.closes_connection(),
        "{refusal}"
    );

    // C signs a frame that claims to be from A.
    let payload = genuine.payload().to_vec();
    let input = signing_input(Prefix::GpgPlus, a.uuid(), b.uuid(), &payload);
    let by_c = c.identity.sign(&input).unwrap();
    let impostor = PeerFrame::new(
        a.uuid(),
        b.uuid(),
        Auth::GpgPlus(OpenPgpSignature::new(by_c).unwrap()),
        payload,
    )
    .unwrap();
    assert!(matches!(
        b.open(&impostor).unwrap_err(),
        Refusal::Signature { .. }
    ));

    // The genuine frame still opens: nothing above touched the session.
    assert_eq!(b.open(&genuine).unwrap().envelope.data, json!({ "n": 1 }));
}

#[test]
fn frames_for_others_or_from_strangers_are_refused() {
    let (mut a, mut b, mut c) = network();
    // A frame for C delivered to B.
    let for_c = seal_gpg(
        &a.identity,
        c.uuid(),
        &envelope(KEY_REQUEST, a.uuid(), c.uuid(), json!({})),
    )
    .unwrap();
    assert!(matches!(
        b.open(&for_c).unwrap_err(),
        Refusal::NotForMe { .. }
    ));
    assert!(c.open(&for_c).is_ok());
    // On a connection that belongs to C, a frame from A.
    let frame = direct(&mut a, b.uuid(), "demo.x", 1);
    let refusal = b.open_on(&frame, Some(c.uuid())).unwrap_err();
    assert!(matches!(refusal, Refusal::NotConnectionPeer { .. }) && refusal.closes_connection());
    // A peer B does not trust.
    b.roster.remove(&a.uuid());
    assert!(matches!(
        b.open(&frame).unwrap_err(),
        Refusal::UnknownPeer { .. }
    ));
}

#[test]
fn replays_are_dropped_without_closing_the_connection() {
    let (mut a, mut b, _c) = network();
    let request = seal_gpg(
        &a.identity,
        b.uuid(),
        &envelope(KEY_REQUEST, a.uuid(), b.uuid(), json!({})),
    )
    .unwrap();
    b.open(&request).unwrap();
    let refusal = b.open(&request).unwrap_err();
    assert!(
        matches!(refusal, Refusal::Replay { .. }) && !refusal.closes_connection(),
        "{refusal}"
    );

    let frame = direct(&mut a, b.uuid(), "demo.once", 1);
    b.open(&frame).unwrap();
    let refusal = b.open(&frame).unwrap_err();
    assert!(
        matches!(refusal, Refusal::Replay { .. }) && !refusal.closes_connection(),
        "{refusal}"
    );
}

#[test]
fn a_ciphertext_that_fails_to_decrypt_is_dropped_and_the_session_kept() {
    let (mut a, mut b, _c) = network();
    b.open(&direct(&mut a, b.uuid(), "demo.first", 0)).unwrap();
    // A signs a damaged ciphertext: the signature holds, decryption fails.
    let genuine = direct(&mut a, b.uuid(), "demo.second", 1);
    let mut damaged = genuine.payload().to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let sig = a
        .identity
        .sign(&signing_input(
            Prefix::GpgPlus,
            a.uuid(),
            b.uuid(),
            &damaged,
        ))
        .unwrap();
    let forged = PeerFrame::new(
        a.uuid(),
        b.uuid(),
        Auth::GpgPlus(OpenPgpSignature::new(sig).unwrap()),
        damaged,
    )
    .unwrap();
    let refusal = b.open(&forged).unwrap_err();
    assert!(
        matches!(refusal, Refusal::Decrypt { .. }) && !refusal.closes_connection(),
        "{refusal}"
    );
    assert_eq!(
        b.open(&genuine).unwrap().envelope.name.as_str(),
        "demo.second"
    );
}

#[test]
fn envelopes_that_do_not_match_their_frame_are_refused() {
    let (mut a, mut b, c) = network();
    // Expired.
    let mut old = envelope("demo.old", a.uuid(), b.uuid(), json!({}));
    old.meta.iat = Timestamp::from_millis(Timestamp::now().as_millis() - 7_200_000);
    old.meta.exp = Timestamp::from_millis(Timestamp::now().as_millis() - 3_600_000);
    let frame = seal_gpg_plus(&a.identity, &mut a.sessions, b.uuid(), &old).unwrap();
    assert!(matches!(b.open(&frame).unwrap_err(), Refusal::Envelope(_)));
    // `meta.from` is not the frame's sender.
    let lying = envelope("demo.lie", c.uuid(), b.uuid(), json!({}));
    let frame = seal_gpg_plus(&a.identity, &mut a.sessions, b.uuid(), &lying).unwrap();
    assert!(matches!(b.open(&frame).unwrap_err(), Refusal::Envelope(_)));
    // An ordinary event in a GPG frame (unencrypted): refused.
    let plain = seal_gpg(
        &a.identity,
        b.uuid(),
        &envelope("demo.secret", a.uuid(), b.uuid(), json!({})),
    )
    .unwrap();
    assert!(matches!(
        b.open(&plain).unwrap_err(),
        Refusal::WrongPrefix { .. }
    ));
    // A join request inside a session: refused.
    let join_env = envelope("new-peer-server", a.uuid(), b.uuid(), json!({}));
    let join = seal_gpg_plus(&a.identity, &mut a.sessions, b.uuid(), &join_env).unwrap();
    assert!(matches!(
        b.open(&join).unwrap_err(),
        Refusal::WrongPrefix { .. }
    ));
    // The session survived all of it.
    assert!(b.open(&direct(&mut a, b.uuid(), "demo.fine", 2)).is_ok());
}

#[test]
fn heartbeats_travel_signed_without_a_session() {
    // C has no session with A: its ping and A's pong are GPG frames (CEP 7).
    let (mut a, _b, c) = network();
    for name in [PING, PONG] {
        let frame = seal_gpg(
            &c.identity,
            a.uuid(),
            &envelope(name, c.uuid(), a.uuid(), json!({"nonce": "00ff"})),
        )
        .unwrap();
        let opened = a.open(&frame).unwrap();
        assert_eq!(opened.envelope.name.as_str(), name);
        assert_eq!(opened.envelope.data["nonce"], "00ff");
    }
}

#[test]
fn sealing_without_a_session_says_what_to_do() {
    let (a, _b, mut c) = network();
    let env = envelope("demo.x", c.uuid(), a.uuid(), json!({}));
    let err = seal_gpg_plus(&c.identity, &mut c.sessions, a.uuid(), &env).unwrap_err();
    assert!(err.to_string().contains("no Olm session with"), "{err}");
}

#[test]
fn the_replay_cache_is_bounded_and_forgets_what_expired() {
    let peer = PeerId::new_random();
    let mut cache = ReplayCache::new(2, 2);
    let now = Timestamp::from_millis(1_000);
    let soon = Timestamp::from_millis(2_000);
    assert!(cache.first_time(peer, b"one", soon, now));
    assert!(!cache.first_time(peer, b"one", soon, now));
    assert!(cache.first_time(peer, b"two", soon, now));
    // Full of live entries: refused (fail closed), not grown.
    assert!(!cache.first_time(PeerId::new_random(), b"three", soon, now));
    assert_eq!(cache.len(), 2);
    // Once they expired, room again.
    assert!(cache.first_time(peer, b"three", soon, Timestamp::from_millis(2_000)));
    assert_eq!(cache.len(), 1);
}

#[test]
fn one_sender_fills_only_its_share_of_the_replay_cache() {
    let (noisy, quiet) = (PeerId::new_random(), PeerId::new_random());
    let mut cache = ReplayCache::new(10, 3);
    let now = Timestamp::from_millis(1_000);
    let soon = Timestamp::from_millis(2_000);
    for n in 0..3u8 {
        assert!(cache.first_time(noisy, &[n], soon, now));
    }
    // The noisy sender is at its share: its next frame is refused...
    assert!(!cache.first_time(noisy, b"more", soon, now));
    // ...and everyone else's still gets in.
    assert!(cache.first_time(quiet, b"hello", soon, now));
    // Its entries expire and its share is free again.
    let later = Timestamp::from_millis(2_000);
    assert!(cache.first_time(noisy, b"more", Timestamp::from_millis(3_000), later));
}
