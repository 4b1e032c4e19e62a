//! The OpenPGP side, on top of `sequoia-openpgp`: making this peer's
//! certificate, detached signatures over byte strings, and their strict
//! verification against one known certificate.
//!
//! Verification takes the signature bytes as hostile input: exactly one
//! binary signature packet (no armor, nothing else around it), of type
//! `Binary`, with a creation time and an issuer, acceptable to the
//! [`StandardPolicy`], made by a signing-capable key of the certificate that
//! was alive and not revoked when the signature says it was made, and
//! cryptographically valid. It must also be in canonical form (sequoia's
//! framing, only issuers in the unhashed area, the right digest prefix), so
//! that a valid signature has exactly one byte string: OpenPGP leaves those
//! parts outside the signed data, and a relayed copy could otherwise be
//! altered and still verify. This module knows nothing of peers or files.

use std::fmt::Display;
use std::time::SystemTime;

use sequoia_openpgp as pgp;

use pgp::cert::{CertBuilder, CipherSuite};
use pgp::crypto::KeyPair;
use pgp::crypto::hash::Hash;
use pgp::packet::Signature;
use pgp::packet::signature::SignatureBuilder;
use pgp::packet::signature::subpacket::SubpacketValue;
use pgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};
use pgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use pgp::serialize::MarshalInto;
use pgp::types::{RevocationStatus, SignatureType};
use pgp::{Cert, Packet};

/// The largest signature [`verify`] looks at. An Ed25519 signature is about
/// 190 bytes, an RSA-4096 one about 600.
pub const MAX_SIGNATURE_LEN: usize = 4096;

/// Why a signature does not verify. Each variant is one refused check.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("signature is {len} bytes, more than the {MAX_SIGNATURE_LEN} allowed")]
    TooLong { len: usize },
    #[error("signature is not an openpgp signature packet: {reason}")]
    Parse { reason: String },
    #[error("expected exactly one signature packet, found {found}")]
    Count { found: String },
    #[error("signature type is {found}, expected binary")]
    Type { found: String },
    #[error("signature has no creation time")]
    NoCreationTime,
    #[error("signature expired")]
    Expired,
    #[error("signature names no issuer")]
    NoIssuer,
    #[error("signature is not in canonical form: {reason}")]
    NotCanonical { reason: &'static str },
    #[error("signature refused by policy: {reason}")]
    Policy { reason: String },
    #[error("certificate is not valid when the signature was made: {reason}")]
    CertNotValid { reason: String },
    #[error("certificate is revoked")]
    CertRevoked,
    #[error("no signing key of the certificate made this signature (or it was expired or revoked)")]
    UnknownIssuer,
    #[error("signature does not match the message")]
    Bad,
}

/// How far in the past a new certificate's keys are dated: twice the
/// clock skew every peer allows (CEP 2's five minutes). A key dated now
/// cannot sign at a time before it, so a peer whose clock stepped back
/// after it made its keys (an NTP correction on a new server) could not
/// start, and its signatures would not verify anywhere (CEP 5).
pub const KEY_BACKDATE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Generates this peer's certificate: a Curve25519 certification-only
/// primary key and one signing subkey, dated [`KEY_BACKDATE`] ago, no
/// expiry, one user ID.
pub(crate) fn generate_cert(user_id: String) -> pgp::Result<Cert> {
    let created = std::time::SystemTime::now()
        .checked_sub(KEY_BACKDATE)
        .unwrap_or(std::time::UNIX_EPOCH);
    let (cert, _revocation) = CertBuilder::new()
        .set_creation_time(created)
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(user_id)
        .add_signing_subkey()
        .generate()?;
    Ok(cert)
}

/// The key pair of `cert`'s signing key valid now.
pub(crate) fn signer(cert: &Cert) -> pgp::Result<KeyPair> {
    let policy = StandardPolicy::new();
    let ka = cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .secret()
        .next()
        .ok_or_else(|| pgp::Error::InvalidOperation("no usable secret signing key".to_owned()))?;
    ka.key().clone().into_keypair()
}

/// Whether `cert` has a signing key that is valid, alive and not revoked
/// now, and the certificate itself is alive and not revoked.
pub(crate) fn check_signing_capable(cert: &Cert) -> Result<(), String> {
    let policy = StandardPolicy::new();
    let valid = cert
        .with_policy(&policy, None)
        .map_err(|e| format!("not valid under the standard policy: {e}"))?;
    valid.alive().map_err(|e| format!("not alive: {e}"))?;
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err("revoked".to_owned());
    }
    valid
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .map(|_| ())
        .ok_or_else(|| "has no valid signing key".to_owned())
}

/// A detached signature of type `Binary` over `message`, as packet bytes.
pub(crate) fn sign(signer: &mut KeyPair, message: &[u8]) -> pgp::Result<Vec<u8>> {
    let sig = SignatureBuilder::new(SignatureType::Binary).sign_message(signer, message)?;
    Packet::from(sig).to_vec()
}

/// Parses `bytes` as exactly one binary signature packet.
fn parse_one_signature(bytes: &[u8]) -> Result<Signature, VerifyError> {
    fn parse(e: impl Display) -> VerifyError {
        VerifyError::Parse {
            reason: e.to_string(),
        }
    }
    let mut ppr = PacketParserBuilder::from_bytes(bytes)
        .map_err(parse)?
        .dearmor(Dearmor::Disabled)
        .build()
        .map_err(parse)?;
    let mut found = None;
    let mut count = 0usize;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().map_err(parse)?;
        count += 1;
        match packet {
            Packet::Signature(sig) if count == 1 => found = Some(sig),
            Packet::Unknown(unknown) => {
                return Err(VerifyError::Parse {
                    reason: unknown.error().to_string(),
                });
            }
            _ => {}
        }
        ppr = next;
    }
    match (found, count) {
        (Some(sig), 1) => Ok(sig),
        (_, 0) => Err(VerifyError::Count {
            found: "none".to_owned(),
        }),
        (None, 1) => Err(VerifyError::Count {
            found: "another kind of packet".to_owned(),
        }),
        (_, n) => Err(VerifyError::Count {
            found: format!("{n} packets"),
        }),
    }
}

/// Verifies the detached signature `signature` over `message` against `cert`.
pub(crate) fn verify(cert: &Cert, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    if signature.len() > MAX_SIGNATURE_LEN {
        return Err(VerifyError::TooLong {
            len: signature.len(),
        });
    }
    let sig = parse_one_signature(signature)?;
    if sig.typ() != SignatureType::Binary {
        return Err(VerifyError::Type {
            found: sig.typ().to_string(),
        });
    }
    let created = sig
        .signature_creation_time()
        .ok_or(VerifyError::NoCreationTime)?;
    if let Some(expires) = sig.signature_expiration_time()
        && expires <= SystemTime::now()
    {
        return Err(VerifyError::Expired);
    }
    let issuers = sig.get_issuers();
    if issuers.is_empty() {
        return Err(VerifyError::NoIssuer);
    }
    let policy = StandardPolicy::new();
    policy
        .signature(&sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| VerifyError::Policy {
            reason: e.to_string(),
        })?;

    let valid = cert
        .with_policy(&policy, created)
        .map_err(|e| VerifyError::CertNotValid {
            reason: e.to_string(),
        })?;
    valid.alive().map_err(|e| VerifyError::CertNotValid {
        reason: e.to_string(),
    })?;
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err(VerifyError::CertRevoked);
    }
    let mut candidates = valid
        .keys()
        .key_handles(issuers.iter())
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UnknownIssuer);
    }
    let mut verified_by = None;
    for ka in candidates {
        if sig.verify_message(ka.key(), message).is_ok() {
            verified_by = Some(ka.key().key_handle());
            break;
        }
    }
    let Some(key) = verified_by else {
        return Err(VerifyError::Bad);
    };
    if !issuers.iter().all(|issuer| issuer.aliases(&key)) {
        return Err(VerifyError::NotCanonical {
            reason: "it names an issuer besides the signing key",
        });
    }
    check_canonical(&sig, message, signature)
}

/// Refuses the parts of a signature its cryptography does not cover, so
/// that one signature has one byte string: the packet framing must be the
/// one sequoia writes, the unhashed area may hold only issuer subpackets
/// (checked by the caller to name the signing key), and the two-byte digest
/// prefix must be the digest's.
fn check_canonical(sig: &Signature, message: &[u8], bytes: &[u8]) -> Result<(), VerifyError> {
    let not = |reason| Err(VerifyError::NotCanonical { reason });
    let unhashed_ok = sig.unhashed_area().iter().all(|sp| {
        matches!(
            sp.value(),
            SubpacketValue::Issuer(_) | SubpacketValue::IssuerFingerprint(_)
        )
    });
    if !unhashed_ok {
        return not("its unhashed area holds more than issuers");
    }
    match Packet::from(sig.clone()).to_vec() {
        Ok(canonical) if canonical == bytes => {}
        _ => return not("its packet encoding is not the canonical one"),
    }
    let digest = sig.hash_algo().context().and_then(|builder| {
        let mut ctx = builder.for_signature(sig.version());
        if let Some(salt) = sig.salt() {
            ctx.update(salt);
        }
        ctx.update(message);
        Hash::hash(sig, &mut ctx)?;
        ctx.into_digest()
    });
    match digest {
        Ok(digest) if digest.get(..2) == Some(&sig.digest_prefix()[..]) => Ok(()),
        _ => not("its digest prefix does not match"),
    }
}
