//! A peer's public description: what `centerctl peer whoami --json` prints
//! and `centerctl peer add --from FILE` reads, and its strict reader.
//!
//! ```json
//! {"address":"127.0.0.1:7350","binding":"<base64>","cert":"-----BEGIN PGP PUBLIC KEY BLOCK-----…",
//!  "fingerprint":"<40 uppercase hex>","name":"alpha","olm_curve25519":"<base64>",
//!  "olm_ed25519":"<base64>","uuid":"<uuid>"}
//! ```
//!
//! `binding` is a detached OpenPGP signature (packet bytes, unpadded
//! standard base64) by the certificate over the canonical JSON of
//! `{"address","name","olm_curve25519","olm_ed25519","purpose","uuid"}`,
//! where `purpose` is [`BINDING_PURPOSE`]: it binds the Olm identity keys,
//! the uuid, the name and the address to the OpenPGP certificate, and the
//! purpose keeps it from being mistaken for any other signed object.
//!
//! A [`PeerDescription`] exists only if every check passed, so holding one
//! is proof; its fields are read through getters. It does no I/O.

use center_proto::{PeerId, parse_canonical_value, to_canonical};
use sequoia_openpgp as pgp;

use pgp::Cert;
use pgp::parse::Parse;
use serde::Deserialize;
use serde_json::{Value, json};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, base64_decode, base64_encode};

use crate::openpgp::{self, VerifyError};

/// The largest description [`PeerDescription::from_json`] reads.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;

/// The `purpose` member of the signed binding object.
pub const BINDING_PURPOSE: &str = "center peer description binding v1";

/// A peer's verified public description.
#[derive(Clone, Debug)]
pub struct PeerDescription {
    pub(crate) uuid: PeerId,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) fingerprint: String,
    /// The armored public certificate, as it was read or written.
    pub(crate) cert_armored: String,
    pub(crate) cert: Cert,
    pub(crate) olm_curve25519: Curve25519PublicKey,
    pub(crate) olm_ed25519: Ed25519PublicKey,
    pub(crate) binding: String,
}

/// Why a description is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("description is {len} bytes, more than the {MAX_DESCRIPTION_LEN} allowed")]
    TooLarge { len: usize },
    #[error("description is not valid json: {0}")]
    Json(#[from] center_proto::CanonicalError),
    #[error("description is not a peer description: {0}")]
    Shape(String),
    #[error("description field `{field}` {reason}")]
    Field { field: &'static str, reason: String },
    #[error("description certificate {0}")]
    Cert(String),
    #[error(
        "description certificate contains secret key material; give only the public certificate"
    )]
    SecretKeyMaterial,
    #[error("description fingerprint {claimed} is not the certificate's ({actual})")]
    FingerprintMismatch { claimed: String, actual: String },
    #[error("description binding signature does not verify: {0}")]
    Binding(#[from] VerifyError),
}

/// The members of a description, as read, before any check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescription {
    uuid: String,
    name: String,
    address: String,
    fingerprint: String,
    cert: String,
    olm_curve25519: String,
    olm_ed25519: String,
    binding: String,
}

/// Checks a peer name: 1 to 63 letters, digits, '.' and '-' (as in
/// center-config).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err("must be 1 to 63 characters of letters, digits, '.' and '-'".to_owned());
    }
    Ok(())
}

/// Checks a peer address: `HOST:PORT`, at most 255 bytes of printable ASCII
/// with no spaces, a non-empty host and a port from 1 to 65535.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    let refuse = || {
        Err("must be HOST:PORT (at most 255 printable characters, port 1 to 65535), e.g. 127.0.0.1:7350".to_owned())
    };
    if address.len() > 255 || !address.bytes().all(|b| b.is_ascii_graphic()) {
        return refuse();
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return refuse();
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u16>().is_ok();
    if host.is_empty() || !port_ok {
        return refuse();
    }
    Ok(())
}

/// The canonical bytes the binding signature is made over.
pub(crate) fn binding_message(
    uuid: PeerId,
    name: &str,
    address: &str,
    olm_curve25519: &Curve25519PublicKey,
    olm_ed25519: &Ed25519PublicKey,
) -> Result<Vec<u8>, center_proto::CanonicalError> {
    let object = json!({
        "address": address,
        "name": name,
        "olm_curve25519": olm_curve25519.to_base64(),
        "olm_ed25519": olm_ed25519.to_base64(),
        "purpose": BINDING_PURPOSE,
        "uuid": uuid.to_string(),
    });
    // Only strings, so this cannot fail; if it did, nothing is signed or
    // verified rather than some default.
    to_canonical(&object)
}

impl PeerDescription {
    pub fn uuid(&self) -> PeerId {
        self.uuid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The OpenPGP fingerprint, uppercase hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The armored public certificate.
    pub fn cert(&self) -> &str {
        &self.cert_armored
    }

    /// The Olm Curve25519 identity key, unpadded base64.
    pub fn olm_curve25519(&self) -> String {
        self.olm_curve25519.to_base64()
    }

    /// The Olm Ed25519 identity key, unpadded base64.
    pub fn olm_ed25519(&self) -> String {
        self.olm_ed25519.to_base64()
    }

    /// The binding signature, unpadded base64.
    pub fn binding(&self) -> &str {
        &self.binding
    }

    /// The description as JSON; [`PeerDescription::from_json`] reads it back.
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid.to_string(),
            "name": self.name,
            "address": self.address,
            "fingerprint": self.fingerprint,
            "cert": self.cert_armored,
            "olm_curve25519": self.olm_curve25519(),
            "olm_ed25519": self.olm_ed25519(),
            "binding": self.binding,
        })
    }

    /// Reads and verifies a description.
    ///
    /// Strict: unknown, missing or duplicate members are refused; the
    /// certificate must parse, hold no secret key material and have a valid
    /// signing key under the standard policy; the fingerprint must be the
    /// certificate's; the keys must be in their canonical spelling; and the
    /// binding signature must verify with the certificate.
    pub fn from_json(bytes: &[u8]) -> Result<PeerDescription, DescriptionError> {
        if bytes.len() > MAX_DESCRIPTION_LEN {
            return Err(DescriptionError::TooLarge { len: bytes.len() });
        }
        let value = parse_canonical_value(bytes)?;
        let raw: RawDescription =
            serde_json::from_value(value).map_err(|e| DescriptionError::Shape(e.to_string()))?;
        let field =
            |field: &'static str| move |reason: String| DescriptionError::Field { field, reason };

        let uuid: PeerId = raw
            .uuid
            .parse()
            .map_err(|e| field("uuid")(format!("is not a lowercase hyphenated uuid: {e}")))?;
        check_name(&raw.name).map_err(field("name"))?;
        check_address(&raw.address).map_err(field("address"))?;
        let olm_curve25519 = Curve25519PublicKey::from_base64(&raw.olm_curve25519)
            .ok()
            .filter(|k| k.to_base64() == raw.olm_curve25519)
            .ok_or_else(|| {
                field("olm_curve25519")("is not a curve25519 key in unpadded base64".to_owned())
            })?;
        let olm_ed25519 = Ed25519PublicKey::from_base64(&raw.olm_ed25519)
            .ok()
            .filter(|k| k.to_base64() == raw.olm_ed25519)
            .ok_or_else(|| {
                field("olm_ed25519")("is not an ed25519 key in unpadded base64".to_owned())
            })?;

        let cert = Cert::from_bytes(raw.cert.as_bytes())
            .map_err(|e| DescriptionError::Cert(format!("does not parse: {e}")))?;
        if cert.is_tsk() {
            return Err(DescriptionError::SecretKeyMaterial);
        }
        openpgp::check_signing_capable(&cert).map_err(DescriptionError::Cert)?;
        let actual = cert.fingerprint().to_hex();
        if raw.fingerprint != actual {
            return Err(DescriptionError::FingerprintMismatch {
                claimed: raw.fingerprint,
                actual,
            });
        }

        let binding = base64_decode(&raw.binding)
            .ok()
            .filter(|b| base64_encode(b) == raw.binding)
            .ok_or_else(|| field("binding")("is not unpadded standard base64".to_owned()))?;
        let message =
            binding_message(uuid, &raw.name, &raw.address, &olm_curve25519, &olm_ed25519)?;
        openpgp::verify(&cert, &message, &binding)?;

        Ok(PeerDescription {
            uuid,
            name: raw.name,
            address: raw.address,
            fingerprint: actual,
            cert_armored: raw.cert,
            cert,
            olm_curve25519,
            olm_ed25519,
            binding: raw.binding,
        })
    }
}
