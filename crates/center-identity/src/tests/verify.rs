//! Detached signatures: what verifies, and every forgery or damage refused
//! without a panic.

use std::io::Write;
use std::time::{Duration, SystemTime};

use expect_test::expect;
use proptest::prelude::*;
use sequoia_openpgp as pgp;

use pgp::Packet;
use pgp::cert::{CertBuilder, CertRevocationBuilder, CipherSuite};
use pgp::packet::signature::SignatureBuilder;
use pgp::packet::signature::subpacket::{
    NotationData, NotationDataFlags, Subpacket, SubpacketValue,
};
use pgp::parse::Parse;
use pgp::serialize::MarshalInto;
use pgp::types::{ReasonForRevocation, SignatureType};

use super::{fresh, keys_of};
use crate::openpgp::{self, VerifyError};

#[test]
fn a_signature_verifies_against_its_signer_only() {
    let (_ta, a) = fresh("alpha");
    let (_tb, b) = fresh("beta");
    let message = b"{\"name\":\"test\"}";
    let signature = a.sign(message).expect("sign");
    keys_of(&a)
        .verify(message, &signature)
        .expect("A's signature verifies with A");

    let err = keys_of(&b)
        .verify(message, &signature)
        .expect_err("A's signature is not B's");
    expect![[
        r#"no signing key of the certificate made this signature (or it was expired or revoked)"#
    ]]
    .assert_eq(&err.to_string());
    let from_b = b.sign(message).expect("sign");
    keys_of(&a)
        .verify(message, &from_b)
        .expect_err("B's signature against A");
}

#[test]
fn a_flipped_byte_in_the_message_or_the_signature_is_refused() {
    let (_ta, a) = fresh("alpha");
    let keys = keys_of(&a);
    let message = b"a message of some length, signed once".to_vec();
    let signature = a.sign(&message).expect("sign");

    for i in 0..message.len() {
        let mut m = message.clone();
        if let Some(byte) = m.get_mut(i) {
            *byte ^= 0x01;
        }
        assert_eq!(
            keys.verify(&m, &signature),
            Err(VerifyError::Bad),
            "message byte {i}"
        );
    }
    let mut longer = message.clone();
    longer.push(b'!');
    assert_eq!(keys.verify(&longer, &signature), Err(VerifyError::Bad));

    // Every byte of the signature, every bit pattern that changes it: never
    // accepted, never a panic. (Bytes of the unhashed area, such as the
    // issuer, change what is looked up, not what is signed; flipping them is
    // refused because the issuer no longer names a key of the cert.)
    for i in 0..signature.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut s = signature.clone();
            if let Some(byte) = s.get_mut(i) {
                *byte ^= flip;
            }
            assert!(
                keys.verify(&message, &s).is_err(),
                "signature byte {i} flipped with {flip:#04x} was accepted"
            );
        }
    }
    keys.verify(&message, &signature)
        .expect("the genuine one still verifies");
}

#[test]
fn garbage_signatures_are_refused() {
    let (_ta, a) = fresh("alpha");
    let keys = keys_of(&a);
    let message = b"message";
    let signature = a.sign(message).expect("sign");
    let check = |bytes: &[u8]| keys.verify(message, bytes).map_err(|e| e.to_string());

    expect![[r#"Err("expected exactly one signature packet, found none")"#]]
        .assert_eq(&format!("{:?}", check(b"")));
    expect![[r#"Err("signature is 4097 bytes, more than the 4096 allowed")"#]]
        .assert_eq(&format!("{:?}", check(&[0u8; 4097])));
    let twice = [signature.as_slice(), signature.as_slice()].concat();
    expect![[r#"Err("expected exactly one signature packet, found 2 packets")"#]]
        .assert_eq(&format!("{:?}", check(&twice)));
    for end in 0..signature.len() {
        assert!(
            check(signature.get(..end).unwrap_or_default()).is_err(),
            "prefix {end}"
        );
    }
    let armored = {
        let mut writer =
            pgp::armor::Writer::new(Vec::new(), pgp::armor::Kind::Signature).expect("armor writer");
        writer.write_all(&signature).expect("write");
        writer.finalize().expect("finalize")
    };
    assert!(check(&armored).is_err(), "armor is refused");
    let public = a.describe().expect("describe");
    assert!(
        check(public.cert().as_bytes()).is_err(),
        "a certificate is not a signature"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        crate::fuzz::signature(&bytes);
    }
}

#[test]
fn only_binary_signatures_are_accepted() {
    let (_ta, a) = fresh("alpha");
    let keys = keys_of(&a);
    let mut signer = openpgp::signer(a.cert_with_secrets()).expect("signer");
    let text = SignatureBuilder::new(SignatureType::Text)
        .sign_message(&mut signer, b"message")
        .expect("sign");
    let bytes = Packet::from(text).to_vec().expect("serialize");
    let err = keys.verify(b"message", &bytes).expect_err("text signature");
    expect![[r#"signature type is Text, expected binary"#]].assert_eq(&err.to_string());
}

#[test]
fn revocation_is_judged_at_the_signature_creation_time() {
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(now - 3 * hour)
        .add_userid("revoked")
        .add_signing_subkey()
        .generate()
        .expect("generate");
    let mut signer = openpgp::signer(&cert).expect("signer");
    let sign_at = |signer: &mut pgp::crypto::KeyPair, at: SystemTime| {
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(at)
            .expect("time")
            .sign_message(signer, b"message")
            .expect("sign");
        Packet::from(sig).to_vec().expect("serialize")
    };
    let before = sign_at(&mut signer, now - 2 * hour);
    let after = sign_at(&mut signer, now);

    let mut primary = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .expect("secret")
        .into_keypair()
        .expect("keypair");
    // A soft revocation (superseded) an hour ago: older signatures stand.
    let soft = CertRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::KeySuperseded, b"rotated")
        .expect("reason")
        .set_signature_creation_time(now - hour)
        .expect("time")
        .build(&mut primary, &cert, None)
        .expect("revoke");
    let (soft_cert, _) = cert.clone().insert_packets(soft).expect("insert");
    let soft_cert = soft_cert.strip_secret_key_material();
    openpgp::verify(&soft_cert, b"message", &before).expect("made before the revocation");
    assert_eq!(
        openpgp::verify(&soft_cert, b"message", &after),
        Err(VerifyError::CertRevoked)
    );

    // A hard revocation (compromised) voids every signature.
    let hard = CertRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"stolen")
        .expect("reason")
        .build(&mut primary, &cert, None)
        .expect("revoke");
    let (hard_cert, _) = cert.insert_packets(hard).expect("insert");
    assert_eq!(
        openpgp::verify(&hard_cert, b"message", &before),
        Err(VerifyError::CertRevoked)
    );

    // A signature claiming a time before the key existed.
    let early = sign_at(&mut signer, now - 4 * hour);
    let err = openpgp::verify(&soft_cert, b"message", &early).expect_err("before the key");
    assert!(matches!(err, VerifyError::CertNotValid { .. }), "{err}");
}

/// Where the two-byte digest prefix sits in a v4 signature packet with a
/// one-byte new-format length header.
fn digest_prefix_index(signature: &[u8]) -> usize {
    let byte = |i: usize| usize::from(*signature.get(i).expect("long enough"));
    let hashed = byte(6) << 8 | byte(7);
    let unhashed_at = 8 + hashed;
    let unhashed = byte(unhashed_at) << 8 | byte(unhashed_at + 1);
    unhashed_at + 2 + unhashed
}

#[test]
fn only_the_canonical_bytes_of_a_signature_verify() {
    let (_ta, a) = fresh("alpha");
    let (_tb, b) = fresh("beta");
    let keys = keys_of(&a);
    let message = b"message";
    let signature = a.sign(message).expect("sign");
    keys.verify(message, &signature).expect("genuine");
    let check = |bytes: &[u8]| keys.verify(message, bytes).map_err(|e| e.to_string());

    // The digest prefix is not covered by the signature's cryptography.
    let at = digest_prefix_index(&signature);
    let mut prefix = signature.clone();
    if let Some(byte) = prefix.get_mut(at) {
        *byte ^= 0x01;
    }
    expect![[r#"Err("signature is not in canonical form: its digest prefix does not match")"#]]
        .assert_eq(&format!("{:?}", check(&prefix)));

    // The same packet with an old-format header.
    assert_eq!(
        signature.first(),
        Some(&0xc2),
        "new-format signature packet"
    );
    let mut old = vec![0x88u8];
    old.extend_from_slice(signature.get(1..).unwrap_or_default());
    expect![[
        r#"Err("signature is not in canonical form: its packet encoding is not the canonical one")"#
    ]]
    .assert_eq(&format!("{:?}", check(&old)));

    // Subpackets added to the unhashed area.
    let parsed = || match pgp::Packet::from_bytes(&signature).expect("parse") {
        pgp::Packet::Signature(sig) => sig,
        other => panic!("not a signature: {other:?}"),
    };
    let serialize = |sig: pgp::packet::Signature| Packet::from(sig).to_vec().expect("serialize");
    let mut notation = parsed();
    notation
        .unhashed_area_mut()
        .add(
            Subpacket::new(
                SubpacketValue::NotationData(NotationData::new(
                    "note@example.org",
                    b"unsigned",
                    NotationDataFlags::empty(),
                )),
                false,
            )
            .expect("subpacket"),
        )
        .expect("add");
    expect![[
        r#"Err("signature is not in canonical form: its unhashed area holds more than issuers")"#
    ]]
    .assert_eq(&format!("{:?}", check(&serialize(notation))));

    let b_keyid = b.describe().expect("describe").cert.keyid();
    let mut issuer = parsed();
    issuer
        .unhashed_area_mut()
        .add(Subpacket::new(SubpacketValue::Issuer(b_keyid), false).expect("subpacket"))
        .expect("add");
    expect![[
        r#"Err("signature is not in canonical form: it names an issuer besides the signing key")"#
    ]]
    .assert_eq(&format!("{:?}", check(&serialize(issuer))));
}

#[test]
fn new_keys_sign_for_a_clock_stepped_back_within_the_allowed_skew() {
    let cert = crate::openpgp::generate_cert("backdated".to_owned()).unwrap();
    let policy = pgp::policy::StandardPolicy::new();
    // CEP 2 allows five minutes of skew; the keys are dated before it.
    let earlier = SystemTime::now() - Duration::from_secs(5 * 60);
    let signing = cert
        .keys()
        .with_policy(&policy, Some(earlier))
        .alive()
        .revoked(false)
        .for_signing()
        .count();
    assert_eq!(signing, 1, "no key can sign five minutes ago");
    let too_early = SystemTime::now() - crate::openpgp::KEY_BACKDATE - Duration::from_secs(60);
    assert!(cert.with_policy(&policy, Some(too_early)).is_err());
}
