//! The peer wire frame (CEP 5): the bytes two dispatchers exchange on TCP,
//! carrying the RFC's three prefixes `NEW`, `GPG` and `GPG+`, and the exact
//! bytes a frame's signature covers.
//!
//! On the stream a frame is a 4-byte big-endian length, then a body of at
//! most [`MAX_FRAME`] bytes. The body is a JSON object with exactly five
//! string members, sent in canonical form (CEP 2):
//!
//! ```text
//! {"from":PEER,"payload":BASE64,"prefix":"NEW"|"GPG"|"GPG+","sig":SIG,"to":PEER}
//! ```
//!
//! For `NEW` the `sig` is the RFC's literal string of 64 `'0'` characters
//! ([`NEW_SIGNATURE`]); for `GPG` and `GPG+` it is the standard base64, with
//! padding, of one OpenPGP signature packet over [`signing_input`]. The
//! types say which: a frame's [`Auth`] is either `New` or carries an
//! [`OpenPgpSignature`].
//!
//! This module does no crypto and no I/O. Another crate signs and verifies
//! (OpenPGP) and encrypts and decrypts (Olm); the caller reads the socket
//! and pushes what it read into a [`FrameDecoder`], which is synchronous
//! and so cannot lose bytes when an `async` read is cancelled.
//!
//! It contains its own strict base64 ([`base64`]), since the crate has no
//! base64 dependency.

use std::fmt;

use serde_json::{Map, Value};

use crate::canonical::{self, CanonicalError, write_json_string};
use crate::envelope::{Envelope, EnvelopeError, Limits};
use crate::id::{Destination, PeerId, PeerIdError};
use crate::name::EventName;
use crate::path::{self, Segment, quote};
use crate::time::Timestamp;

/// The largest frame body, in bytes (1 MiB); the length prefix is not counted.
pub const MAX_FRAME: usize = 1 << 20;

/// The largest OpenPGP signature a `GPG` or `GPG+` frame carries, in bytes.
pub const MAX_SIGNATURE: usize = 4096;

/// The largest payload of a `GPG` or `GPG+` frame, in bytes (760 KiB): the
/// most that fits, base64-encoded next to a [`MAX_SIGNATURE`] signature, in
/// a [`MAX_FRAME`] body.
pub const MAX_PAYLOAD: usize = 760 * 1024;

/// The largest payload of a `NEW` frame, in bytes (64 KiB). `NEW` is the one
/// unauthenticated input, so it gets a smaller cap than the others.
pub const MAX_NEW_PAYLOAD: usize = 64 * 1024;

/// The `sig` of every `NEW` frame: RFC 3's "string of 64 zeros", literally.
pub const NEW_SIGNATURE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The most envelopes one `GPG+` frame may carry as a batch.
pub const MAX_BATCH: usize = 64;

/// The first line of every [`signing_input`]: names this format and its
/// version, so that a signature over a frame is never valid as anything else.
pub const SIGNING_CONTEXT: &[u8] = b"center-peer-frame/1\n";

/// The only event a `NEW` frame may carry.
pub const NEW_PEER_SERVER: &str = "new-peer-server";

/// The longest body [`PeerFrame::to_body`] can produce.
const MAX_BODY: usize = r#"{"from":"","payload":"","prefix":"","sig":"","to":""}"#.len()
    + 2 * 36
    + "GPG+".len()
    + base64::encoded_len(MAX_SIGNATURE)
    + base64::encoded_len(MAX_PAYLOAD);
const _: () = assert!(
    MAX_BODY <= MAX_FRAME,
    "a valid frame must always fit the cap"
);
const _: () = assert!(MAX_NEW_PAYLOAD <= MAX_PAYLOAD);

// ---------------------------------------------------------------------------
// Framing.

/// What went wrong splitting a byte stream into frames.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FrameError {
    /// A length prefix, or a body to encode, is over the cap. Nothing of the
    /// body was read or allocated; the stream cannot be resynchronized.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    /// The caller pushed more than [`FrameDecoder::remaining_capacity`].
    /// Nothing was taken; take frames with `next_frame` or push less.
    #[error(
        "decoder holds {held} bytes and cannot take {pushed} more (capacity {capacity}); \
         take frames with next_frame or push less"
    )]
    BufferFull {
        held: usize,
        pushed: usize,
        capacity: usize,
    },
    /// The stream ended inside a frame (see [`FrameDecoder::finish`]).
    #[error("stream ended in the middle of a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
}

/// The frame that carries `body`: its length as a big-endian `u32`, then
/// `body`. Refuses a body over [`MAX_FRAME`].
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::Oversize {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    Ok(frame_unchecked(body))
}

/// `body` framed; the caller has checked `body.len() <= MAX_FRAME`.
fn frame_unchecked(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a byte stream into frame bodies, incrementally.
///
/// The caller owns the socket: it reads whatever arrives, [`push`]es it,
/// then calls [`next_frame`] until it returns `Ok(None)`. Both are
/// synchronous, so an `async` read that is cancelled between them loses
/// nothing (the bytes are either in the caller's buffer or in the decoder).
/// At end of stream, [`finish`] says whether the stream stopped cleanly
/// between frames.
///
/// The decoder never holds more than its limit plus 4 bytes: a read of at
/// most [`remaining_capacity`] bytes always fits, and after `next_frame`
/// has returned `Ok(None)` that is at least one byte. A length prefix over
/// the limit fails at once, before any of its body is buffered; after that
/// failure, every call returns the same error (the stream has lost its
/// framing and the connection must close).
///
/// [`push`]: FrameDecoder::push
/// [`next_frame`]: FrameDecoder::next_frame
/// [`finish`]: FrameDecoder::finish
/// [`remaining_capacity`]: FrameDecoder::remaining_capacity
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes pushed; `buf[start..]` have not been returned yet.
    buf: Vec<u8>,
    start: usize,
    /// The largest body accepted.
    max: usize,
    /// Set once a length prefix was over `max`; sticky.
    failed: Option<FrameError>,
}

/// A decoder that has just returned a frame larger than this gives its
/// buffer back to the allocator rather than keeping it for the connection.
const KEEP_BUFFER: usize = 64 * 1024;

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts bodies up to [`MAX_FRAME`].
    pub fn new() -> FrameDecoder {
        FrameDecoder::with_limit(MAX_FRAME)
    }

    /// A decoder that accepts bodies up to `max` bytes, at most
    /// [`MAX_FRAME`]: for a connection that should carry only small frames.
    pub fn with_limit(max: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max: max.min(MAX_FRAME),
            failed: None,
        }
    }

    /// The largest body this decoder accepts.
    pub fn limit(&self) -> usize {
        self.max
    }

    /// The most bytes the decoder ever holds: the limit plus the prefix.
    pub fn capacity(&self) -> usize {
        self.max + 4
    }

    /// Bytes pushed and not yet returned as part of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many bytes [`FrameDecoder::push`] takes now.
    pub fn remaining_capacity(&self) -> usize {
        self.capacity() - self.buffered()
    }

    /// Appends bytes read from the stream.
    ///
    /// Fails, taking nothing, when the bytes would not fit (see
    /// [`FrameDecoder::remaining_capacity`]) or once a prefix was oversize.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let held = self.buffered();
        if bytes.len() > self.remaining_capacity() {
            // An oversize prefix at the head is the better diagnosis.
            let mut head = [0u8; 4];
            let live = self.buf.get(self.start..).unwrap_or_default();
            for (slot, &b) in head.iter_mut().zip(live.iter().chain(bytes)) {
                *slot = b;
            }
            if held + bytes.len() >= 4 {
                self.judge_prefix(head)?;
            }
            return Err(FrameError::BufferFull {
                held,
                pushed: bytes.len(),
                capacity: self.capacity(),
            });
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.check_prefix()
    }

    /// The next complete frame body, `Ok(None)` when more bytes are needed,
    /// or an error when the next length prefix is over the limit.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.check_prefix()?;
        let Some(len) = self.pending_len() else {
            return Ok(None);
        };
        let body_start = self.start + 4;
        let Some(body) = self.buf.get(body_start..body_start + len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.start = body_start + len;
        if self.start == self.buf.len() {
            self.start = 0;
            if self.buf.capacity() > KEEP_BUFFER {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
        Ok(Some(body))
    }

    /// Called at end of stream: `Ok` when the stream stopped between
    /// frames, [`FrameError::Truncated`] when it stopped inside one.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let got = self.buffered();
        if got == 0 {
            return Ok(());
        }
        let want = self.pending_len().map_or(4, |len| 4 + len);
        Err(FrameError::Truncated { got, want })
    }

    /// The length in the next prefix, if all four bytes of it are here.
    fn pending_len(&self) -> Option<usize> {
        let prefix = self.buf.get(self.start..self.start + 4)?;
        let prefix: [u8; 4] = prefix.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(prefix)).ok()
    }

    fn check_prefix(&mut self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(prefix) = self.buf.get(self.start..self.start + 4) else {
            return Ok(());
        };
        let prefix: [u8; 4] = prefix.try_into().unwrap_or([0xff; 4]);
        self.judge_prefix(prefix)
    }

    /// Fails, for good, when `prefix` announces a body over the limit.
    fn judge_prefix(&mut self, prefix: [u8; 4]) -> Result<(), FrameError> {
        let len = u32::from_be_bytes(prefix);
        // Saturates only where usize is narrower than 32 bits.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max {
            let e = FrameError::Oversize { len, max: self.max };
            self.failed = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The body.

/// A frame's prefix code, as RFC 3 names them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Prefix {
    /// `NEW`: unauthenticated; only a `new-peer-server` request.
    New,
    /// `GPG`: signed with the sender's OpenPGP key; the payload is an envelope.
    Gpg,
    /// `GPG+`: signed, and the payload is an Olm message.
    GpgPlus,
}

impl Prefix {
    pub const ALL: [Prefix; 3] = [Prefix::New, Prefix::Gpg, Prefix::GpgPlus];

    /// The wire spelling: `NEW`, `GPG` or `GPG+`.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::New => "NEW",
            Prefix::Gpg => "GPG",
            Prefix::GpgPlus => "GPG+",
        }
    }

    /// The prefix spelled `s` on the wire, exactly (case matters).
    pub fn from_wire(s: &str) -> Option<Prefix> {
        Prefix::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The largest payload a frame with this prefix carries.
    pub fn max_payload(self) -> usize {
        match self {
            Prefix::New => MAX_NEW_PAYLOAD,
            Prefix::Gpg | Prefix::GpgPlus => MAX_PAYLOAD,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bytes of one OpenPGP signature packet, 1 to [`MAX_SIGNATURE`] long.
/// Whether they are a signature at all is the verifier's business.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OpenPgpSignature(Vec<u8>);

impl OpenPgpSignature {
    pub fn new(bytes: Vec<u8>) -> Result<OpenPgpSignature, PeerFrameError> {
        if bytes.is_empty() || bytes.len() > MAX_SIGNATURE {
            return Err(PeerFrameError::SignatureSize { len: bytes.len() });
        }
        Ok(OpenPgpSignature(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for OpenPgpSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenPgpSignature({} bytes)", self.0.len())
    }
}

/// How a frame is authenticated: its prefix together with its signature,
/// so that a `NEW` frame cannot carry a signature nor a `GPG` frame lack one.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Auth {
    /// `NEW`, whose `sig` is [`NEW_SIGNATURE`] on the wire.
    New,
    /// `GPG`, signed over [`signing_input`].
    Gpg(OpenPgpSignature),
    /// `GPG+`, signed over [`signing_input`]; the payload is ciphertext.
    GpgPlus(OpenPgpSignature),
}

impl Auth {
    pub fn prefix(&self) -> Prefix {
        match self {
            Auth::New => Prefix::New,
            Auth::Gpg(_) => Prefix::Gpg,
            Auth::GpgPlus(_) => Prefix::GpgPlus,
        }
    }

    /// The signature to verify; `None` for `NEW`.
    pub fn signature(&self) -> Option<&OpenPgpSignature> {
        match self {
            Auth::New => None,
            Auth::Gpg(sig) | Auth::GpgPlus(sig) => Some(sig),
        }
    }
}

/// One frame body, checked: the peers differ, the signature and payload are
/// within their sizes, and a `NEW` frame has the zero signature.
///
/// Built by [`PeerFrame::parse`] from the network or [`PeerFrame::new`]
/// in code; either way [`PeerFrame::to_body`] encodes it within
/// [`MAX_FRAME`] and parses back to the same frame.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerFrame {
    from: PeerId,
    to: PeerId,
    auth: Auth,
    payload: Vec<u8>,
}

/// Why a frame body is refused.
///
/// When a body has several faults, which one is reported is not part of the
/// contract.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PeerFrameError {
    #[error("frame body is {len} bytes, over the maximum of {MAX_FRAME}")]
    TooLarge { len: usize },
    #[error("frame body is not strict json: {0}")]
    NotJson(CanonicalError),
    #[error("frame body is not a json object")]
    NotObject,
    #[error("frame has no `{field}` field")]
    MissingField { field: &'static str },
    #[error("frame has an unknown field `{field}`")]
    UnknownField { field: String },
    #[error("`{field}` must be a string")]
    WrongType { field: &'static str },
    #[error("`prefix` must be \"NEW\", \"GPG\" or \"GPG+\", found {found}")]
    BadPrefix { found: String },
    #[error("invalid `{field}`: {reason}")]
    BadPeerId {
        field: &'static str,
        reason: PeerIdError,
    },
    #[error("`{field}` is not canonical base64: {reason}")]
    BadBase64 {
        field: &'static str,
        reason: base64::Base64Error,
    },
    #[error("the `sig` of a NEW frame must be 64 '0' characters, the rfc's empty signature")]
    NewSignature,
    #[error("`sig` must be an OpenPGP signature of 1 to {MAX_SIGNATURE} bytes, found {len}")]
    SignatureSize { len: usize },
    #[error("`payload` of a {prefix} frame must be 1 to {max} bytes, found {len}")]
    PayloadSize {
        prefix: Prefix,
        len: usize,
        max: usize,
    },
    #[error("`from` and `to` are both {peer}; a peer never sends frames to itself")]
    SamePeer { peer: PeerId },
}

impl From<CanonicalError> for PeerFrameError {
    fn from(e: CanonicalError) -> PeerFrameError {
        PeerFrameError::NotJson(e)
    }
}

/// The body's members, in canonical (sorted) order.
const FIELDS: [&str; 5] = ["from", "payload", "prefix", "sig", "to"];

impl PeerFrame {
    /// A frame built in code, with the same checks as [`PeerFrame::parse`].
    pub fn new(
        from: PeerId,
        to: PeerId,
        auth: Auth,
        payload: Vec<u8>,
    ) -> Result<PeerFrame, PeerFrameError> {
        if from == to {
            return Err(PeerFrameError::SamePeer { peer: from });
        }
        let prefix = auth.prefix();
        let max = prefix.max_payload();
        if payload.is_empty() || payload.len() > max {
            return Err(PeerFrameError::PayloadSize {
                prefix,
                len: payload.len(),
                max,
            });
        }
        Ok(PeerFrame {
            from,
            to,
            auth,
            payload,
        })
    }

    /// Strict parse of a frame body from the network.
    ///
    /// The body must be strict JSON (CEP 2: no duplicate keys, nesting
    /// capped) but need not be canonical; see [`PeerFrame::to_body`]. Nothing
    /// here verifies the signature or looks inside the payload.
    pub fn parse(body: &[u8]) -> Result<PeerFrame, PeerFrameError> {
        if body.len() > MAX_FRAME {
            return Err(PeerFrameError::TooLarge { len: body.len() });
        }
        let Value::Object(mut object) = canonical::parse_canonical_value(body)? else {
            return Err(PeerFrameError::NotObject);
        };
        if let Some(key) = object
            .keys()
            .filter(|k| !FIELDS.contains(&k.as_str()))
            .min()
        {
            return Err(PeerFrameError::UnknownField {
                field: path::render(&[Segment::Key(key.as_str().into())]),
            });
        }
        // Checked in wire order of meaning: prefix first, since it decides `sig`.
        let prefix = take_string(&mut object, "prefix")?;
        let from = take_string(&mut object, "from")?;
        let to = take_string(&mut object, "to")?;
        let sig = take_string(&mut object, "sig")?;
        let payload = take_string(&mut object, "payload")?;

        let prefix = Prefix::from_wire(&prefix).ok_or_else(|| PeerFrameError::BadPrefix {
            found: quote(&prefix),
        })?;
        let from = peer_id(&from, "from")?;
        let to = peer_id(&to, "to")?;
        let auth = match prefix {
            Prefix::New if sig == NEW_SIGNATURE => Auth::New,
            Prefix::New => return Err(PeerFrameError::NewSignature),
            Prefix::Gpg => Auth::Gpg(OpenPgpSignature::new(decode(&sig, "sig")?)?),
            Prefix::GpgPlus => Auth::GpgPlus(OpenPgpSignature::new(decode(&sig, "sig")?)?),
        };
        let payload = decode(&payload, "payload")?;
        PeerFrame::new(from, to, auth, payload)
    }

    pub fn prefix(&self) -> Prefix {
        self.auth.prefix()
    }

    /// The sending peer, as the frame claims it: authenticated only once the
    /// signature verifies against that peer's certificate.
    pub fn from(&self) -> PeerId {
        self.from
    }

    /// The peer the frame is for.
    pub fn to(&self) -> PeerId {
        self.to
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The payload: an envelope's canonical bytes (`NEW`, `GPG`) or an Olm
    /// message (`GPG+`). Not to be parsed before the signature verifies.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The bytes the sender signs and the receiver verifies; see the free
    /// function [`signing_input`].
    pub fn signing_input(&self) -> Vec<u8> {
        signing_input(self.prefix(), self.from, self.to, &self.payload)
    }

    /// The canonical body: the members sorted, no white space, base64 with
    /// padding. Always at most [`MAX_FRAME`] bytes.
    pub fn to_body(&self) -> Vec<u8> {
        let sig = match self.auth.signature() {
            None => NEW_SIGNATURE.to_owned(),
            Some(sig) => base64::encode(sig.as_bytes()),
        };
        let members = [
            ("from", self.from.to_string()),
            ("payload", base64::encode(&self.payload)),
            ("prefix", self.prefix().as_str().to_owned()),
            ("sig", sig),
            ("to", self.to.to_string()),
        ];
        let mut out = Vec::with_capacity(MAX_BODY.min(256 + 2 * self.payload.len()));
        out.push(b'{');
        for (index, (key, value)) in members.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, key);
            out.push(b':');
            write_json_string(&mut out, value);
        }
        out.push(b'}');
        out
    }

    /// The frame on the stream: length prefix and [`PeerFrame::to_body`].
    pub fn to_frame(&self) -> Vec<u8> {
        frame_unchecked(&self.to_body())
    }

    /// The `new-peer-server` envelope a `NEW` frame carries, checked: the
    /// payload is an envelope (CEP 2, against `now` and `limits`), named
    /// `new-peer-server`, from the frame's sender to its receiver, and not
    /// expired. The caller still rate-limits and hands it to the bus; it
    /// proves nothing about who sent it.
    pub fn new_peer_request(
        &self,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Envelope, PayloadError> {
        let prefix = self.prefix();
        if prefix != Prefix::New {
            return Err(PayloadError::NotNew { prefix });
        }
        let envelope =
            Envelope::parse(&self.payload, now, limits).map_err(PayloadError::Envelope)?;
        if envelope.name.as_str() != NEW_PEER_SERVER {
            return Err(PayloadError::NotNewPeerServer {
                name: envelope.name,
            });
        }
        check_binding(self.from, self.to, envelope, now)
    }
}

impl fmt::Debug for PeerFrame {
    /// Sizes rather than bytes: a frame is up to a megabyte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerFrame")
            .field("prefix", &self.prefix())
            .field("from", &self.from)
            .field("to", &self.to)
            .field("sig", &self.auth.signature())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The bytes a frame's signature covers:
///
/// ```text
/// "center-peer-frame/1\n" || prefix || "\n" || from || "\n" || to || "\n" || payload
/// ```
///
/// with `prefix` as on the wire (`GPG+`), the peer ids in their one
/// spelling, and the payload's raw (decoded) bytes. Binding the prefix, the
/// sender and the receiver means a signed frame cannot be replayed to a
/// third peer, nor re-sent under another prefix. Signers call this before
/// the frame exists; [`PeerFrame::signing_input`] is the same for a frame.
pub fn signing_input(prefix: Prefix, from: PeerId, to: PeerId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNING_CONTEXT.len() + 80 + payload.len());
    out.extend_from_slice(SIGNING_CONTEXT);
    out.extend_from_slice(prefix.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(from.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(to.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// Why the envelope in a frame is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("a new-peer-server request travels only in a NEW frame, not {prefix}")]
    NotNew { prefix: Prefix },
    #[error("payload is not a valid envelope: {0}")]
    Envelope(EnvelopeError),
    #[error("a NEW frame carries only `new-peer-server`, found `{name}`")]
    NotNewPeerServer { name: EventName },
    #[error("envelope `meta.from` is {envelope} but the frame is from {frame}")]
    FromMismatch { frame: PeerId, envelope: PeerId },
    #[error(
        "envelope `meta.to` is {envelope} but the frame is to {frame}; \
         a frame carries only a message addressed to its receiver"
    )]
    ToMismatch {
        frame: PeerId,
        envelope: Destination,
    },
    #[error("envelope expired at {exp}, and the receiver's clock reads {now}")]
    Expired { exp: Timestamp, now: Timestamp },
    #[error("a batch carries 1 to {MAX_BATCH} envelopes, found {0}")]
    BatchSize(usize),
    #[error("batch is not json: {0}")]
    Batch(CanonicalError),
}

/// Parses the plaintext of a verified and decrypted `GPG+` frame from
/// `from` to `to`: one envelope (a JSON object), or a batch (CEP 5
/// "Batches"): a canonical JSON array of 1 to [`MAX_BATCH`] envelopes, each
/// checked as [`open_envelope`] checks one. Any envelope refused refuses the
/// whole frame.
pub fn open_envelopes(
    from: PeerId,
    to: PeerId,
    bytes: &[u8],
    now: Timestamp,
    limits: &Limits,
) -> Result<Vec<Envelope>, PayloadError> {
    if bytes.first() != Some(&b'[') {
        return open_envelope(from, to, bytes, now, limits).map(|envelope| vec![envelope]);
    }
    let items = match canonical::parse_canonical_value(bytes).map_err(PayloadError::Batch)? {
        Value::Array(items) => items,
        // A canonical value that starts with `[` is an array.
        _ => return Err(PayloadError::BatchSize(0)),
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(PayloadError::BatchSize(items.len()));
    }
    items
        .into_iter()
        .map(|value| {
            let envelope =
                Envelope::from_value(value, now, limits).map_err(PayloadError::Envelope)?;
            check_binding(from, to, envelope, now)
        })
        .collect()
}

/// The plaintext of a batch: the canonical JSON array of the envelopes.
pub fn encode_batch(envelopes: &[Envelope]) -> Result<Vec<u8>, CanonicalError> {
    canonical::to_canonical(&Value::Array(
        envelopes.iter().map(Envelope::to_value).collect(),
    ))
}

/// Parses `bytes` as the envelope of a frame from `from` to `to`: the
/// payload of a verified `GPG` frame, or the plaintext of a verified and
/// decrypted `GPG+` frame. Checks CEP 2 (against `now` and `limits`), then
/// that `meta.from` is `from`, that `meta.to` is `to` (a peer, never `"*"`:
/// what a frame carries is a direct message) and that it has not expired.
///
/// Replays are not checked here: the receiver remembers what it accepted.
pub fn open_envelope(
    from: PeerId,
    to: PeerId,
    bytes: &[u8],
    now: Timestamp,
    limits: &Limits,
) -> Result<Envelope, PayloadError> {
    let envelope = Envelope::parse(bytes, now, limits).map_err(PayloadError::Envelope)?;
    check_binding(from, to, envelope, now)
}

fn check_binding(
    from: PeerId,
    to: PeerId,
    envelope: Envelope,
    now: Timestamp,
) -> Result<Envelope, PayloadError> {
    if envelope.meta.from != from {
        return Err(PayloadError::FromMismatch {
            frame: from,
            envelope: envelope.meta.from,
        });
    }
    if envelope.meta.to != Destination::Peer(to) {
        return Err(PayloadError::ToMismatch {
            frame: to,
            envelope: envelope.meta.to,
        });
    }
    if envelope.is_expired(now) {
        return Err(PayloadError::Expired {
            exp: envelope.meta.exp,
            now,
        });
    }
    Ok(envelope)
}

fn take_string(
    object: &mut Map<String, Value>,
    field: &'static str,
) -> Result<String, PeerFrameError> {
    match object.remove(field) {
        None => Err(PeerFrameError::MissingField { field }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(PeerFrameError::WrongType { field }),
    }
}

fn peer_id(s: &str, field: &'static str) -> Result<PeerId, PeerFrameError> {
    s.parse()
        .map_err(|reason| PeerFrameError::BadPeerId { field, reason })
}

fn decode(s: &str, field: &'static str) -> Result<Vec<u8>, PeerFrameError> {
    base64::decode(s).map_err(|reason| PeerFrameError::BadBase64 { field, reason })
}

pub mod base64;
