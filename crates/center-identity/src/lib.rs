//! This peer's identity and the cryptography of peer sessions: keys on disk,
//! OpenPGP signatures, Olm sessions. It does no networking and defines no
//! frames; the wire prefixes `GPG` and `GPG+` are built from it elsewhere.
//!
//! # Layout
//!
//! - [`identity`]: [`Identity`] (uuid, name, address, OpenPGP certificate
//!   with secret keys, Olm account, pickle key), created and loaded from
//!   [`IdentityPaths`]; signs, describes itself, opens sessions.
//! - [`files`]: the identity directory, atomic writes, mode checks.
//! - [`description`]: [`PeerDescription`], the public description a peer
//!   prints and another adds to its roster, and its strict reader.
//! - [`keys`]: [`PeerKeys`], a verified peer's public keys; verifies its
//!   signatures.
//! - [`session`]: [`PeerSession`], one Olm session, its ciphertext encoding
//!   and its pickle.
//! - `openpgp`: the sequoia calls, private.
//! - [`fuzz`]: the fuzz targets' bodies, run by the tests over seeds.
//!
//! **Invariant:** nothing read from disk or from another peer (a
//! description, a signature, a ciphertext, a pickle) can make this crate
//! panic, and no secret is logged or shown by `Debug`.

pub mod address;
pub mod description;
pub mod files;
pub mod fuzz;
pub mod identity;
pub mod keys;
mod openpgp;
pub mod session;
pub mod statement;

#[cfg(test)]
mod tests;

pub use description::{DescriptionError, PeerDescription};
pub use files::IdentityPaths;
pub use identity::{Identity, IdentityError, PreparedRotation};
pub use keys::PeerKeys;
pub use openpgp::{MAX_SIGNATURE_LEN, VerifyError};
pub use session::{PeerSession, SessionError};
