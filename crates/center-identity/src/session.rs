//! [`PeerSession`]: one Olm (Double Ratchet) session with one peer, its
//! ciphertext encoding and its encrypted pickle.
//!
//! # Ciphertext encoding
//!
//! One byte of Olm message type, then the Olm message itself:
//!
//! | byte 0 | rest                                             |
//! |--------|--------------------------------------------------|
//! | `0x00` | a pre-key message (the session is not yet confirmed by a reply) |
//! | `0x01` | a normal message                                 |
//!
//! The rest is vodozemac's binary encoding of that message (`to_parts`),
//! Olm v1: AES-256-CBC with an HMAC-SHA-256 truncated to 8 bytes. Only that
//! exact encoding is accepted: a ciphertext that decodes to a message whose
//! encoding differs (an unknown field added, a field renumbered) is refused
//! as malformed, so one message has one byte string.
//!
//! # State
//!
//! Every [`PeerSession::encrypt`] advances the sending chain: persist the
//! pickle after encrypting and before sending. A successful
//! [`PeerSession::decrypt`] advances the receiving side: persist before
//! acknowledging. A failed decrypt leaves the session as it was (vodozemac
//! works on a copy and commits only after the MAC checks), so the message
//! is dropped and the session kept. Who holds the session and where its
//! pickle lives is the caller's: this module does no I/O.

use vodozemac::olm::{DecryptionError, OlmMessage, Session, SessionPickle};

/// The type byte of a pre-key message.
pub const PRE_KEY: u8 = 0;
/// The type byte of a normal message.
pub const NORMAL: u8 = 1;

/// One Olm session with one peer.
pub struct PeerSession {
    session: Session,
}

impl std::fmt::Debug for PeerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSession")
            .field("session_id", &self.session.session_id())
            .finish_non_exhaustive()
    }
}

/// Why a session could not be created or a message not be encrypted or
/// decrypted.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not an olm message: {reason}")]
    Malformed { reason: String },
    #[error("a session starts with a pre-key message, got a normal message")]
    NotPreKey,
    #[error("the one-time key is not a curve25519 key in unpadded base64")]
    OneTimeKey,
    #[error("cannot create the session: {reason}")]
    Create { reason: String },
    #[error("cannot decrypt: {reason}; the message is dropped and the session kept")]
    Decrypt { reason: &'static str },
    #[error("message key {index} was already used: a replayed or duplicate message")]
    Replay { index: u64 },
    #[error("cannot encrypt: {reason}")]
    Encrypt { reason: String },
    #[error("cannot read the session pickle (wrong key or damaged): {reason}")]
    Pickle { reason: String },
    #[error("cannot save the account after creating the session: {0}")]
    Persist(#[source] Box<crate::IdentityError>),
}

impl From<DecryptionError> for SessionError {
    fn from(e: DecryptionError) -> SessionError {
        let reason = match e {
            DecryptionError::MissingMessageKey(index) => return SessionError::Replay { index },
            DecryptionError::InvalidMAC(_) => "invalid mac",
            DecryptionError::InvalidMACLength(..) => "invalid mac length",
            DecryptionError::InvalidPadding(_) => "invalid padding",
            DecryptionError::NonContributoryKey => "non-contributory ratchet key",
            DecryptionError::TooBigMessageGap(..) => "too many skipped messages",
        };
        SessionError::Decrypt { reason }
    }
}

/// Encodes `message` as [`PeerSession::encrypt`] returns it.
fn encode(message: &OlmMessage) -> Vec<u8> {
    let (kind, body) = message.to_parts();
    let kind = match kind {
        0 => PRE_KEY,
        _ => NORMAL,
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(kind);
    out.extend_from_slice(&body);
    out
}

/// Decodes a ciphertext in this module's encoding.
pub(crate) fn decode(ciphertext: &[u8]) -> Result<OlmMessage, SessionError> {
    let Some((&kind, body)) = ciphertext.split_first() else {
        return Err(SessionError::Malformed {
            reason: "empty".to_owned(),
        });
    };
    if kind != PRE_KEY && kind != NORMAL {
        return Err(SessionError::Malformed {
            reason: format!("unknown message type {kind}"),
        });
    }
    let message =
        OlmMessage::from_parts(usize::from(kind), body).map_err(|e| SessionError::Malformed {
            reason: e.to_string(),
        })?;
    // vodozemac's decoder skips unknown fields and checks the MAC over its
    // own re-encoding, so other byte strings can carry the same message;
    // only the canonical one is accepted, as with signatures.
    if encode(&message) != ciphertext {
        return Err(SessionError::Malformed {
            reason: "not in canonical encoding".to_owned(),
        });
    }
    Ok(message)
}

impl PeerSession {
    pub(crate) fn new(session: Session) -> PeerSession {
        PeerSession { session }
    }

    /// Identifies the session; both sides compute the same id.
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// Whether a message from the other side was ever decrypted with this
    /// session (until then it sends pre-key messages).
    pub fn has_received_message(&self) -> bool {
        self.session.has_received_message()
    }

    /// Encrypts `plaintext`. Advances the session: persist it before sending.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SessionError> {
        let message = self
            .session
            .encrypt(plaintext)
            .map_err(|e| SessionError::Encrypt {
                reason: e.to_string(),
            })?;
        Ok(encode(&message))
    }

    /// Decrypts `ciphertext` from the peer. On success persist the session
    /// before acknowledging; on failure it is unchanged.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, SessionError> {
        let message = decode(ciphertext)?;
        Ok(self.session.decrypt(&message)?)
    }

    /// The session, encrypted with `key`.
    pub fn pickle(&self, key: &[u8; 32]) -> String {
        self.session.pickle().encrypt(key)
    }

    /// Reads a session written by [`PeerSession::pickle`].
    pub fn unpickle(text: &str, key: &[u8; 32]) -> Result<PeerSession, SessionError> {
        let pickle =
            SessionPickle::from_encrypted(text, key).map_err(|e| SessionError::Pickle {
                reason: e.to_string(),
            })?;
        Ok(PeerSession::new(Session::from_pickle(pickle)))
    }
}
