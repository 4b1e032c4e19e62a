//! Olm sessions: both directions, pickles mid-conversation, forgeries
//! dropped with the session kept, replays recognised.

use expect_test::expect;
use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::{fresh, keys_of};
use crate::session::{NORMAL, PRE_KEY};
use crate::{Identity, PeerSession, SessionError};

/// Alice opens a session to Bob with one of Bob's one-time keys; Bob accepts
/// it with Alice's first message. Returns both sessions.
fn pair(alice: &Identity, bob: &mut Identity) -> (PeerSession, PeerSession) {
    let otk = bob.one_time_keys(1).expect("one-time key");
    let otk = otk.first().expect("one key");
    let mut to_bob = alice
        .outbound_session(&keys_of(bob), otk)
        .expect("outbound");
    let first = to_bob.encrypt(b"first").expect("encrypt");
    assert_eq!(first.first(), Some(&PRE_KEY));
    let (to_alice, plaintext) = bob
        .inbound_session(&keys_of(alice), &first)
        .expect("inbound");
    assert_eq!(plaintext, b"first");
    assert_eq!(to_bob.session_id(), to_alice.session_id());
    (to_bob, to_alice)
}

#[test]
fn messages_flow_both_ways() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (mut a, mut b) = pair(&alice, &mut bob);

    // Until Bob answers, Alice's messages stay pre-key messages.
    let second = a.encrypt(b"second").expect("encrypt");
    assert_eq!(second.first(), Some(&PRE_KEY));
    assert_eq!(b.decrypt(&second).expect("decrypt"), b"second");

    let reply = b.encrypt(b"reply").expect("encrypt");
    assert_eq!(reply.first(), Some(&NORMAL));
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"reply");

    let third = a.encrypt(b"third").expect("encrypt");
    assert_eq!(third.first(), Some(&NORMAL));
    assert_eq!(b.decrypt(&third).expect("decrypt"), b"third");

    // Several in a row, delivered out of order.
    let m: Vec<Vec<u8>> = (0..4u8)
        .map(|i| b.encrypt(&[i; 512]).expect("encrypt"))
        .collect();
    for i in [2usize, 0, 3, 1] {
        let ciphertext = m.get(i).expect("message");
        assert_eq!(a.decrypt(ciphertext).expect("decrypt"), vec![i as u8; 512]);
    }
}

#[test]
fn pickled_sessions_carry_on() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (mut a, mut b) = pair(&alice, &mut bob);
    let reply = b.encrypt(b"reply").expect("encrypt");
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"reply");

    // Both sides persist and restart mid-conversation, with a message in flight.
    let in_flight = a.encrypt(b"in flight").expect("encrypt");
    let a_text = a.pickle(alice.pickle_key());
    let b_text = b.pickle(bob.pickle_key());
    assert!(!a_text.contains(&a.session_id()), "the pickle is encrypted");
    drop((a, b));
    let mut a = PeerSession::unpickle(&a_text, alice.pickle_key()).expect("unpickle a");
    let mut b = PeerSession::unpickle(&b_text, bob.pickle_key()).expect("unpickle b");
    assert_eq!(b.decrypt(&in_flight).expect("decrypt"), b"in flight");
    let back = b.encrypt(b"back").expect("encrypt");
    assert_eq!(a.decrypt(&back).expect("decrypt"), b"back");
    let again = a.encrypt(b"again").expect("encrypt");
    assert_eq!(b.decrypt(&again).expect("decrypt"), b"again");

    let err = PeerSession::unpickle(&a_text, bob.pickle_key()).expect_err("wrong key");
    assert!(matches!(err, SessionError::Pickle { .. }), "{err}");
    let err = PeerSession::unpickle("garbage!", alice.pickle_key()).expect_err("garbage");
    assert!(matches!(err, SessionError::Pickle { .. }), "{err}");
}

#[test]
fn a_forged_ciphertext_is_dropped_and_the_session_kept() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (mut a, mut b) = pair(&alice, &mut bob);
    let reply = b.encrypt(b"reply").expect("encrypt");
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"reply");

    let genuine = a.encrypt(b"genuine").expect("encrypt");
    // The last 8 bytes are the truncated MAC.
    let mut forged = genuine.clone();
    if let Some(last) = forged.last_mut() {
        *last ^= 0x01;
    }
    let err = b.decrypt(&forged).expect_err("forged");
    expect![[r#"cannot decrypt: invalid mac; the message is dropped and the session kept"#]]
        .assert_eq(&err.to_string());
    // Every other single-byte change is refused too.
    for i in 0..genuine.len() {
        let mut forged = genuine.clone();
        if let Some(byte) = forged.get_mut(i) {
            *byte ^= 0x40;
        }
        let Err(err) = b.decrypt(&forged) else {
            panic!("byte {i} of {} flipped was accepted", genuine.len());
        };
        assert!(
            matches!(
                err,
                SessionError::Decrypt { .. } | SessionError::Malformed { .. }
            ),
            "byte {i}: {err}"
        );
    }
    assert_eq!(b.decrypt(&genuine).expect("genuine"), b"genuine");
    let next = a.encrypt(b"next").expect("encrypt");
    assert_eq!(b.decrypt(&next).expect("next"), b"next");
}

#[test]
fn a_replayed_ciphertext_is_recognised() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (mut a, mut b) = pair(&alice, &mut bob);
    let reply = b.encrypt(b"reply").expect("encrypt");
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"reply");
    let err = a.decrypt(&reply).expect_err("replay");
    expect![[r#"message key 0 was already used: a replayed or duplicate message"#]]
        .assert_eq(&err.to_string());
    assert!(matches!(err, SessionError::Replay { index: 0 }));

    let m = a.encrypt(b"once").expect("encrypt");
    assert_eq!(b.decrypt(&m).expect("decrypt"), b"once");
    assert!(matches!(b.decrypt(&m), Err(SessionError::Replay { .. })));
}

#[test]
fn garbage_ciphertexts_are_malformed() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (_a, mut b) = pair(&alice, &mut bob);
    let check =
        |b: &mut PeerSession, bytes: &[u8]| b.decrypt(bytes).map(|_| ()).map_err(|e| e.to_string());
    expect![[r#"Err("not an olm message: empty")"#]]
        .assert_eq(&format!("{:?}", check(&mut b, b"")));
    expect![[r#"Err("not an olm message: unknown message type 2")"#]]
        .assert_eq(&format!("{:?}", check(&mut b, b"\x02abc")));
    assert!(check(&mut b, b"\x01").is_err());
    assert!(check(&mut b, b"\x00").is_err());
}

#[test]
fn inbound_sessions_are_checked() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (_tc, carol) = fresh("carol");
    let otk = bob.one_time_keys(1).expect("one-time key");
    let otk = otk.first().expect("one key").clone();
    let mut to_bob = alice
        .outbound_session(&keys_of(&bob), &otk)
        .expect("outbound");
    let first = to_bob.encrypt(b"first").expect("encrypt");

    // Said to come from Carol, but made with Alice's identity key.
    let err = bob
        .inbound_session(&keys_of(&carol), &first)
        .expect_err("wrong peer");
    expect![[
        r#"cannot create the session: the message is from another olm identity key than the peer's"#
    ]]
    .assert_eq(&err.to_string());

    // A forged pre-key message does not use up the one-time key.
    let mut forged = first.clone();
    if let Some(last) = forged.last_mut() {
        *last ^= 0x01;
    }
    let err = bob
        .inbound_session(&keys_of(&alice), &forged)
        .expect_err("forged");
    expect![[r#"cannot decrypt: invalid mac; the message is dropped and the session kept"#]]
        .assert_eq(&err.to_string());
    let (mut b, plaintext) = bob
        .inbound_session(&keys_of(&alice), &first)
        .expect("the genuine message still opens the session");
    assert_eq!(plaintext, b"first");

    // A normal message cannot start a session.
    let normal = b.encrypt(b"reply").expect("encrypt");
    let err = bob
        .inbound_session(&keys_of(&carol), &normal)
        .expect_err("normal message");
    expect![[r#"a session starts with a pre-key message, got a normal message"#]]
        .assert_eq(&err.to_string());

    let err = alice
        .outbound_session(&keys_of(&bob), "not a key")
        .expect_err("bad one-time key");
    expect![[r#"the one-time key is not a curve25519 key in unpadded base64"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn arbitrary_ciphertexts_never_decrypt_nor_disturb_the_session() {
    let (_ta, alice) = fresh("alice");
    let (_tb, mut bob) = fresh("bob");
    let (a, b) = pair(&alice, &mut bob);
    let sessions = RefCell::new((a, b));
    let mut runner = TestRunner::new(ProptestConfig::with_cases(256));
    let inputs = (0u8..3, proptest::collection::vec(any::<u8>(), 0..300));
    let outcome = runner.run(&inputs, |(kind, body)| {
        let mut sessions = sessions.borrow_mut();
        let (a, b) = &mut *sessions;
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&body);
        prop_assert!(b.decrypt(&bytes).is_err());
        let genuine = a.encrypt(&body).expect("encrypt");
        prop_assert_eq!(b.decrypt(&genuine).expect("decrypt"), body);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
