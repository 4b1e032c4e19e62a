//! [`EventHash`]: the SHA-256 that names a feed event and chains it to the
//! one before, and its one spelling on the wire, 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 of an event's signing input (CEP 6, "Hashing").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventHash([u8; 32]);

/// Why a string is not an event hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum HashError {
    #[error("an event hash is 64 lowercase hex digits, found {len} bytes")]
    Length { len: usize },
    #[error("an event hash is 64 lowercase hex digits, found another byte at {index}")]
    Char { index: usize },
}

impl EventHash {
    /// The `prev` of every seq-1 event: 64 zeros.
    pub const ZERO: EventHash = EventHash([0; 32]);

    /// The SHA-256 of `bytes`.
    pub fn digest(bytes: &[u8]) -> EventHash {
        EventHash(Sha256::digest(bytes).into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> EventHash {
        EventHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl FromStr for EventHash {
    type Err = HashError;

    /// Strict: exactly 64 digits from `0-9a-f`.
    fn from_str(s: &str) -> Result<EventHash, HashError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(HashError::Length { len: bytes.len() });
        }
        let mut out = [0u8; 32];
        for (index, (pair, byte)) in bytes.chunks_exact(2).zip(out.iter_mut()).enumerate() {
            let digit = |offset: usize| {
                pair.get(offset)
                    .and_then(|&c| nibble(c))
                    .ok_or(HashError::Char {
                        index: 2 * index + offset,
                    })
            };
            *byte = (digit(0)? << 4) | digit(1)?;
        }
        Ok(EventHash(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({self})")
    }
}
