//! The envelope every center message travels in, its strict parser, and the
//! canonical JSON used as signing input; it does no I/O and no crypto.
//!
//! CEP 2 (`CEPS/0002-envelope.md`) specifies the envelope and CEP 5 the
//! peer frame around it; the tests read their vectors in `CEPS/vectors/`.
//!
//! # Layout
//!
//! - [`envelope`]: [`Envelope`], [`Meta`], [`Limits`] and the parser's [`EnvelopeError`].
//! - [`name`]: [`EventName`], the grammar of `name`.
//! - [`id`]: [`PeerId`] and [`Destination`] (`meta.from`, `meta.to`).
//! - [`time`]: [`Timestamp`], integer milliseconds (`meta.iat`, `meta.exp`).
//! - [`canonical`]: the canonical JSON encoder and the strict JSON reader.
//! - [`peer_frame`]: [`PeerFrame`], the frame dispatchers exchange over TCP
//!   (the RFC's `NEW`, `GPG`, `GPG+` prefixes), its framing and its signing
//!   input.
//! - [`fuzz`]: the fuzz targets' bodies, run by the tests over the vectors.
//!
//! **Invariant:** nothing here reads a clock implicitly (callers pass `now`),
//! touches a socket or a key, or panics on input: every byte parsed comes
//! from the network.

pub mod canonical;
pub mod envelope;
pub mod fuzz;
pub mod id;
pub mod name;
mod path;
pub mod peer_frame;
pub mod time;

pub use canonical::{CanonicalError, parse_canonical_value, to_canonical};
pub use envelope::{Envelope, EnvelopeError, Limits, Meta};
pub use id::{Destination, PeerId, PeerIdError};
pub use name::{EventName, NameError};
pub use peer_frame::{Auth, FrameDecoder, FrameError, PeerFrame, PeerFrameError, Prefix};
pub use time::Timestamp;
