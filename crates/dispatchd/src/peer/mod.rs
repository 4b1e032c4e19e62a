//! Sealing and opening the frames dispatchers exchange (CEP 5): `GPG`
//! frames for session setup, `GPG+` frames for everything else, and the
//! receiver's checks in the CEP's order.
//!
//! [`open`] takes a frame body from a connection and either returns a
//! [`Verified`] envelope, the only thing that may reach local services, or a
//! [`Refusal`] that says what failed and whether the connection must close.
//! Nothing a known peer did not sign is decrypted or parsed beyond the frame.
//!
//! This module does no networking: the connection layer feeds it bodies and
//! sends what it seals. It never executes anything a frame carries.

mod replay;
mod sessions;

use center_identity::{Identity, PeerKeys, SessionError};
use center_proto::{
    Envelope, Limits, PeerId, Timestamp,
    peer_frame::{
        Auth, OpenPgpSignature, PayloadError, PeerFrame, Prefix, encode_batch, open_envelope,
        open_envelopes, signing_input,
    },
};

pub use replay::ReplayCache;
pub use sessions::Sessions;

/// Asks the peer for a one-time key so an Olm session can be started:
/// `{"request": HEX}`. Only the peer with the lower UUID starts sessions.
pub const KEY_REQUEST: &str = "session.key-request";
/// A one-time key: `{"one_time_key": BASE64, "request": HEX | null}`, the
/// answer to [`KEY_REQUEST`], or (with `null`) offered unasked by the peer
/// with the higher UUID when it needs a session.
pub const KEY_ANSWER: &str = "session.key";
/// Opens every connection, both ways: `{"nonce": HEX}`. The dialer sends it
/// first; the listener answers with its own.
pub const HELLO: &str = "session.hello";
/// The heartbeat, sent every keepalive interval whatever else flows:
/// `{"nonce": HEX}`; answered with [`PONG`]. Also the first message on a
/// new Olm session, so the other side learns the session at once.
pub const PING: &str = "session.ping";
/// Answers a [`PING`], echoing its nonce: `{"nonce": HEX}`, so the pinger
/// measures the round-trip time (CEP 7).
pub const PONG: &str = "session.pong";
/// What a peer holds of the feeds (CEP 6): `{"heads": {ORIGIN: SEQ, ...},
/// "pages": N}`, N the `session.events` pages it received on this
/// connection.
pub const FRONTIER: &str = "session.frontier";
/// A page of feed events (CEP 6): `{"events": [EVENT, ...]}`, oldest first.
pub const EVENTS: &str = "session.events";
/// Acknowledges direct messages: `{"received": [DIGEST, ...]}`, the SHA-256
/// (lower-case hex) of each envelope's canonical bytes.
pub const ACK: &str = "session.ack";
/// Event names dispatchers keep for themselves; local services may not
/// publish them.
pub const RESERVED_PREFIX: &str = "session.";
/// The RFC's answer to an approved join; signed, not encrypted.
pub const ADD_PEER_SERVER: &str = "add-peer-server";
/// The RFC's join request; only ever in a `NEW` frame.
pub const NEW_PEER_SERVER: &str = "new-peer-server";

/// An envelope that passed every check of CEP 5 for the frame it came in.
#[derive(Debug)]
pub struct Verified {
    pub prefix: Prefix,
    /// The envelope, or the first of a batch (CEP 5 "Batches").
    pub envelope: Envelope,
    /// The rest of a batch, in order; empty for one envelope.
    pub rest: Vec<Envelope>,
    /// The frame started a new inbound Olm session.
    pub new_session: bool,
}

/// Why a frame was refused (CEP 5 "Receiving a frame").
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("bad frame: {0}")]
    Body(#[from] center_proto::PeerFrameError),
    #[error("frame is for {to}, not for this peer")]
    NotForMe { to: PeerId },
    #[error("frame is from {from}, which is not in the roster")]
    UnknownPeer { from: PeerId },
    #[error("frame is from {from}, but this connection belongs to {expected}")]
    NotConnectionPeer { from: PeerId, expected: PeerId },
    #[error("a NEW frame is handled by the join path, not here")]
    New,
    #[error("signature of {from} does not verify: {reason}")]
    Signature { from: PeerId, reason: String },
    #[error("cannot decrypt the message from {from}: {source}")]
    Decrypt { from: PeerId, source: SessionError },
    #[error("envelope refused: {0}")]
    Envelope(#[from] center_proto::peer_frame::PayloadError),
    #[error("`{name}` may not travel in a {prefix} frame")]
    WrongPrefix { name: String, prefix: Prefix },
    #[error("replayed frame from {from}, already accepted")]
    Replay { from: PeerId },
    #[error("cannot store session state: {0}")]
    Store(String),
}

impl Refusal {
    /// Whether the connection must be closed (steps 1 to 5: the sender is not
    /// who it claims, or the bytes cannot be trusted); later refusals drop
    /// the frame and keep the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Refusal::Body(_)
                | Refusal::NotForMe { .. }
                | Refusal::UnknownPeer { .. }
                | Refusal::NotConnectionPeer { .. }
                | Refusal::New
                | Refusal::Signature { .. }
        )
    }
}

/// Why a frame could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("cannot encode the envelope: {0}")]
    Encode(String),
    #[error("cannot encrypt: {0}")]
    Encrypt(#[from] SessionError),
    #[error("frame refused by the codec: {0}")]
    Frame(#[from] center_proto::PeerFrameError),
    #[error("no Olm session with {0} yet; ask for a one-time key first")]
    NoSession(PeerId),
    #[error("cannot store session state: {0}")]
    Store(String),
}

/// What the receiver needs to open frames.
pub struct Receiver<'a> {
    pub identity: &'a mut Identity,
    /// The roster's keys for a peer, if trusted.
    pub keys: &'a dyn Fn(&PeerId) -> Option<PeerKeys>,
    pub sessions: &'a mut Sessions,
    pub replay: &'a mut ReplayCache,
    pub limits: &'a Limits,
    /// When to save the Olm session after a decryption.
    pub save: SaveSessions,
}

/// When a decryption's new session state goes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveSessions {
    /// Before `open` returns.
    Now,
    /// Later: the caller saves before it acknowledges anything it opened
    /// (the connection layer does, when it seals the acknowledgement, which
    /// saves the peer's sessions). A crash before that only means the sender
    /// sends again what the older state can still decrypt.
    BeforeAcknowledging,
}

/// Signs `envelope` into a `GPG` frame (session setup, `add-peer-server`).
pub fn seal_gpg(
    identity: &Identity,
    to: PeerId,
    envelope: &Envelope,
) -> Result<PeerFrame, SealError> {
    let payload = envelope
        .canonical_bytes()
        .map_err(|err| SealError::Encode(err.to_string()))?;
    signed(identity, Prefix::Gpg, to, payload)
}

/// Encrypts `envelope` with the session to `to` and signs the ciphertext
/// into a `GPG+` frame. The session state is on disk before this returns,
/// so a frame is never sent from a ratchet state a crash could roll back.
pub fn seal_gpg_plus(
    identity: &Identity,
    sessions: &mut Sessions,
    to: PeerId,
    envelope: &Envelope,
) -> Result<PeerFrame, SealError> {
    let plaintext = envelope
        .canonical_bytes()
        .map_err(|err| SealError::Encode(err.to_string()))?;
    let payload = sessions.encrypt(to, &plaintext)?;
    signed(identity, Prefix::GpgPlus, to, payload)
}

/// Seals envelopes for `to` into one `GPG+` frame carrying them as a batch
/// (CEP 5 "Batches"): one signature and one encryption for all of them. The
/// session is saved before the frame is returned (so it can never be sent
/// from a state a crash would roll back). The caller keeps the batch within
/// [`MAX_BATCH`](center_proto::peer_frame::MAX_BATCH) envelopes and the
/// payload limit.
pub fn seal_gpg_plus_batch(
    identity: &Identity,
    sessions: &mut Sessions,
    to: PeerId,
    envelopes: &[Envelope],
) -> Result<PeerFrame, SealError> {
    let plaintext = match envelopes {
        [one] => one.canonical_bytes(),
        many => encode_batch(many),
    }
    .map_err(|err| SealError::Encode(err.to_string()))?;
    let payload = sessions.encrypt(to, &plaintext)?;
    signed(identity, Prefix::GpgPlus, to, payload)
}

/// Signs the frame's signing input and builds the frame.
fn signed(
    identity: &Identity,
    prefix: Prefix,
    to: PeerId,
    payload: Vec<u8>,
) -> Result<PeerFrame, SealError> {
    let input = signing_input(prefix, identity.uuid(), to, &payload);
    let sig = OpenPgpSignature::new(
        identity
            .sign(&input)
            .map_err(|err| SealError::Sign(err.to_string()))?,
    )?;
    let auth = match prefix {
        Prefix::GpgPlus => Auth::GpgPlus(sig),
        _ => Auth::Gpg(sig),
    };
    Ok(PeerFrame::new(identity.uuid(), to, auth, payload)?)
}

/// Opens one frame body received on a connection. `connection_peer` is the
/// peer this connection already belongs to, if any. Steps as in CEP 5.
pub fn open(
    receiver: &mut Receiver<'_>,
    body: &[u8],
    connection_peer: Option<PeerId>,
    now: Timestamp,
) -> Result<Verified, Refusal> {
    let me = receiver.identity.uuid();
    // 2. Body.
    let frame = PeerFrame::parse(body)?;
    // 3. `to` is me.
    if frame.to() != me {
        return Err(Refusal::NotForMe { to: frame.to() });
    }
    // 4. `from`: a known peer, the connection's peer.
    let from = frame.from();
    let sig = match frame.auth() {
        Auth::New => return Err(Refusal::New),
        Auth::Gpg(sig) | Auth::GpgPlus(sig) => sig,
    };
    if let Some(expected) = connection_peer
        && expected != from
    {
        return Err(Refusal::NotConnectionPeer { from, expected });
    }
    let keys = (receiver.keys)(&from).ok_or(Refusal::UnknownPeer { from })?;
    // 5. Signature, over the exact signing input.
    keys.verify(&frame.signing_input(), sig.as_bytes())
        .map_err(|err| Refusal::Signature {
            from,
            reason: err.to_string(),
        })?;
    // 6. Decrypt (GPG+). Replays of GPG frames are caught by digest; Olm
    // refuses a reused message key by itself.
    let prefix = frame.prefix();
    let (plaintext, new_session) = match prefix {
        Prefix::GpgPlus => receiver
            .sessions
            .decrypt(receiver.identity, &keys, frame.payload(), receiver.save)
            .map_err(|source| match source {
                sessions::DecryptFailure::Session(SessionError::Replay { .. }) => {
                    Refusal::Replay { from }
                }
                sessions::DecryptFailure::Session(source) => Refusal::Decrypt { from, source },
                sessions::DecryptFailure::Store(reason) => Refusal::Store(reason),
            })?,
        _ => (frame.payload().to_vec(), false),
    };
    // 7-9. Envelope (or batch, in GPG+), binding, time.
    let mut envelopes = match prefix {
        Prefix::GpgPlus => open_envelopes(from, me, &plaintext, now, receiver.limits)?,
        _ => vec![open_envelope(from, me, &plaintext, now, receiver.limits)?],
    };
    for envelope in &envelopes {
        let name = envelope.name.as_str();
        let allowed = match prefix {
            Prefix::Gpg => {
                [HELLO, PING, PONG, KEY_REQUEST, KEY_ANSWER, ADD_PEER_SERVER].contains(&name)
            }
            Prefix::GpgPlus => name != NEW_PEER_SERVER,
            Prefix::New => false,
        };
        if !allowed {
            return Err(Refusal::WrongPrefix {
                name: name.to_owned(),
                prefix,
            });
        }
    }
    if envelopes.is_empty() {
        return Err(Refusal::Envelope(PayloadError::BatchSize(0)));
    }
    let envelope = envelopes.remove(0);
    let rest = envelopes;
    // 10. Replay (GPG frames; GPG+ frames were checked by Olm).
    if prefix == Prefix::Gpg
        && !receiver
            .replay
            .first_time(from, &frame.signing_input(), envelope.meta.exp, now)
    {
        return Err(Refusal::Replay { from });
    }
    Ok(Verified {
        prefix,
        envelope,
        rest,
        new_session,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
