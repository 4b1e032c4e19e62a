//! [`PeerKeys`]: the public keys of one verified peer, what the roster keeps
//! to check that peer's signatures and to open Olm sessions with it.

use center_proto::PeerId;
use sequoia_openpgp::Cert;
use vodozemac::Curve25519PublicKey;

use crate::description::PeerDescription;
use crate::openpgp::{self, VerifyError};

/// A verified peer's keys. Made only from a [`PeerDescription`], whose
/// binding signature tied the Olm key to the certificate.
#[derive(Clone, Debug)]
pub struct PeerKeys {
    uuid: PeerId,
    cert: Cert,
    curve25519: Curve25519PublicKey,
}

impl PeerKeys {
    pub fn from_description(d: &PeerDescription) -> PeerKeys {
        PeerKeys {
            uuid: d.uuid,
            cert: d.cert.clone(),
            curve25519: d.olm_curve25519,
        }
    }

    pub fn uuid(&self) -> PeerId {
        self.uuid
    }

    /// The OpenPGP fingerprint, uppercase hex.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    pub(crate) fn curve25519(&self) -> Curve25519PublicKey {
        self.curve25519
    }

    /// Verifies a detached OpenPGP signature (packet bytes, as made by
    /// [`crate::Identity::sign`]) over `message`.
    ///
    /// `signature` is hostile: it must be exactly one signature packet of
    /// type binary, with a creation time and an issuer, acceptable to the
    /// standard policy, made by a signing key of this certificate that was
    /// alive and not revoked at the signature's creation time, and valid.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        openpgp::verify(&self.cert, message, signature)
    }
}
