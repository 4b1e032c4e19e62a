//! Peer identities and message destinations as they appear in `meta`.
//!
//! A peer is named by the UUID it generated when it was set up. On the wire
//! it has exactly one spelling, the lowercase hyphenated 36-character form
//! (`0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90`), so that two byte strings name
//! the same peer exactly when they are equal; braces, `urn:uuid:`, uppercase
//! and the unhyphenated form are refused. A destination is one peer or the
//! string `"*"`, every peer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The identity of a peer server.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(Uuid);

/// Why a string is not a peer id.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PeerIdError {
    #[error("peer id must be 36 bytes long (a lowercase hyphenated uuid), found {len}")]
    Length { len: usize },
    #[error("peer id must have {expected} at byte {index}")]
    Char {
        index: usize,
        expected: &'static str,
    },
}

impl PeerId {
    /// A fresh random (version 4) peer id.
    pub fn new_random() -> PeerId {
        PeerId(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for PeerId {
    fn from(uuid: Uuid) -> PeerId {
        PeerId(uuid)
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<PeerId, PeerIdError> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(PeerIdError::Length { len: bytes.len() });
        }
        for (index, &b) in bytes.iter().enumerate() {
            let hyphen_here = matches!(index, 8 | 13 | 18 | 23);
            let ok = if hyphen_here {
                b == b'-'
            } else {
                matches!(b, b'0'..=b'9' | b'a'..=b'f')
            };
            if !ok {
                let expected = if hyphen_here {
                    "'-'"
                } else {
                    "a lowercase hex digit"
                };
                return Err(PeerIdError::Char { index, expected });
            }
        }
        // The form is checked above, so this cannot fail; map it anyway rather than panic.
        Uuid::try_parse(s)
            .map(PeerId)
            .map_err(|_| PeerIdError::Length { len: bytes.len() })
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who a message is for: `meta.to`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Destination {
    /// Every peer; `"*"` on the wire.
    Broadcast,
    Peer(PeerId),
}

impl Destination {
    /// The wire spelling of [`Destination::Broadcast`].
    pub const BROADCAST: &'static str = "*";

    /// Whether a message with this destination is addressed to `peer`.
    pub fn includes(&self, peer: PeerId) -> bool {
        match self {
            Destination::Broadcast => true,
            Destination::Peer(id) => *id == peer,
        }
    }
}

impl FromStr for Destination {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Destination, PeerIdError> {
        if s == Destination::BROADCAST {
            return Ok(Destination::Broadcast);
        }
        s.parse().map(Destination::Peer)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Broadcast => f.write_str(Destination::BROADCAST),
            Destination::Peer(id) => fmt::Display::fmt(id, f),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Destination, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
