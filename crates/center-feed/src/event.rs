//! A feed event (CEP 6): one entry of an origin's append-only feed, its
//! strict parser, its hash and the exact bytes its signature covers.
//!
//! On the wire an event is exactly this object, in canonical JSON (CEP 2),
//! with no other member:
//!
//! ```text
//! {"data":{...},"iat":MS,"name":NAME,"origin":PEER,"prev":HEX64,"seq":N,"sig":BASE64}
//! ```
//!
//! The *body* is the same object without `sig`. The signing input is
//! [`SIGNING_CONTEXT`] followed by the canonical body, and the event's hash
//! is the SHA-256 of the signing input. An event carries no `exp`: feed
//! events are permanent, and how long a peer keeps them is its own policy.
//!
//! This module reads no clock, touches no file and never panics on input;
//! it checks a signature only when asked ([`FeedEvent::verify`]), and knows
//! nothing of chains: whether `prev` is right is the store's question.

use center_identity::{MAX_SIGNATURE_LEN, PeerKeys, VerifyError};
use center_proto::canonical::{self, CanonicalError};
use center_proto::peer_frame::base64::{self, Base64Error};
use center_proto::{EventName, NameError, PeerId, PeerIdError, Timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::hash::{EventHash, HashError};

/// The bytes every signing input starts with; they keep a feed signature
/// from being valid as any other kind of center signature.
pub const SIGNING_CONTEXT: &[u8] = b"center-feed-event-v1\n";

/// The members of an event, in canonical (byte) order; `sig` sorts last.
const MEMBERS: [&str; 7] = ["data", "iat", "name", "origin", "prev", "seq", "sig"];

/// What the parser accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeedLimits {
    /// The largest event, in bytes of its canonical encoding.
    pub max_event_bytes: usize,
}

impl FeedLimits {
    /// 64 KiB per event; CEP 6 argues it.
    pub const DEFAULT: FeedLimits = FeedLimits {
        max_event_bytes: 64 * 1024,
    };
}

impl Default for FeedLimits {
    fn default() -> FeedLimits {
        FeedLimits::DEFAULT
    }
}

/// Everything an event says but its signature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EventBody {
    /// The peer whose feed this is, and whose key signs it.
    pub origin: PeerId,
    /// Position in the origin's feed, from 1, with no gaps.
    pub seq: u64,
    /// The hash of the origin's event `seq - 1`, or [`EventHash::ZERO`] for seq 1.
    pub prev: EventHash,
    pub name: EventName,
    /// When the origin wrote it (the origin's claim; nothing checks it).
    pub iat: Timestamp,
    /// The payload; a JSON object.
    pub data: Value,
}

/// A well-formed event: its members checked, its bytes canonical. Not yet
/// verified; see [`FeedEvent::verify`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FeedEvent {
    body: EventBody,
    sig: Vec<u8>,
    /// The canonical encoding of the whole event.
    bytes: Vec<u8>,
    /// The length of the canonical body; `bytes` starts with all of it but its final `}`.
    body_len: usize,
    hash: EventHash,
}

/// Why bytes are not a well-formed event, or a body cannot be signed.
///
/// When input has several faults, which one is reported is not part of the
/// contract.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FeedError {
    #[error("event is {len} bytes, over the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("event is not valid json: {0}")]
    NotJson(String),
    #[error("event is not a json object")]
    NotObject,
    #[error("event has an unknown member {member}")]
    UnknownMember { member: String },
    #[error("event has no `{member}` member")]
    MissingMember { member: &'static str },
    #[error("`{member}` must be {expected}")]
    WrongType {
        member: &'static str,
        expected: &'static str,
    },
    #[error("`data` must be a json object")]
    DataNotObject,
    #[error("invalid `name`: {0}")]
    BadName(NameError),
    #[error("invalid `origin`: {0}")]
    BadOrigin(PeerIdError),
    #[error("invalid `prev`: {0}")]
    BadPrev(HashError),
    #[error("`seq` must be at least 1")]
    SeqZero,
    #[error("`prev` of event 1 must be 64 zeros")]
    FirstPrevNotZero,
    #[error("`prev` of event {seq} is 64 zeros, which only event 1 may have")]
    PrevZero { seq: u64 },
    #[error("`sig` is not canonical base64: {0}")]
    SigEncoding(Base64Error),
    #[error("`sig` is {len} bytes once decoded; a signature is 1 to {max} bytes")]
    SigLength { len: usize, max: usize },
    #[error("number at {path} is not a plain integer (no fraction, exponent or -0)")]
    Float { path: String },
    #[error("integer at {path} is outside -(2^53-1) to 2^53-1")]
    IntegerOutOfRange { path: String },
    #[error("duplicate key {key} in the object at {path}")]
    DuplicateKey { path: String, key: String },
    #[error("json is nested deeper than {} levels at {path}", canonical::MAX_DEPTH)]
    TooDeep { path: String },
    #[error(
        "event is not in canonical form (first difference at byte {offset}); send the canonical encoding of CEP 2"
    )]
    NotCanonical { offset: usize },
}

impl From<CanonicalError> for FeedError {
    fn from(e: CanonicalError) -> FeedError {
        let at = |path: String| {
            if path.is_empty() {
                "the top level".to_owned()
            } else {
                format!("`{path}`")
            }
        };
        match e {
            CanonicalError::Syntax(msg) => FeedError::NotJson(msg),
            CanonicalError::Float { path } => FeedError::Float { path: at(path) },
            CanonicalError::IntegerOutOfRange { path } => {
                FeedError::IntegerOutOfRange { path: at(path) }
            }
            CanonicalError::DuplicateKey { path, key } => FeedError::DuplicateKey {
                path: at(path),
                key: quote(&key),
            },
            CanonicalError::TooDeep { path } => FeedError::TooDeep { path: at(path) },
        }
    }
}

/// Why [`FeedEvent::sign`] made no event.
#[derive(Debug, thiserror::Error)]
pub enum SignError<E> {
    #[error("cannot make the event: {0}")]
    Event(#[from] FeedError),
    #[error("cannot sign the event: {0}")]
    Signer(E),
}

/// Why an event's signature is not its origin's.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VerifyEventError {
    #[error("the event is from {origin}, but the keys given are {keys}'s")]
    WrongKeys { origin: PeerId, keys: PeerId },
    #[error("bad signature: {0}")]
    Signature(#[from] VerifyError),
}

const MILLIS: &str = "a non-negative integer (milliseconds since the unix epoch)";

impl FeedEvent {
    /// Signs `body` with `sign`, which makes a detached OpenPGP signature
    /// over the bytes it is given (`Identity::sign`).
    ///
    /// Checks what [`FeedEvent::parse`] would (but not the size limit, which
    /// is the caller's): a seq of at least 1, `prev` zero exactly for seq 1,
    /// `data` an object of canonical values.
    pub fn sign<E>(
        body: EventBody,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<FeedEvent, SignError<E>> {
        body.check()?;
        let body_bytes = canonical::to_canonical(&body.to_value()).map_err(FeedError::from)?;
        let sig = sign(&signing_input(&body_bytes)).map_err(SignError::Signer)?;
        check_sig_len(&sig)?;
        Ok(FeedEvent::from_parts(body, body_bytes, sig))
    }

    /// Strict parse of bytes from the network: exactly the seven members,
    /// each of its type and grammar, canonical bytes, at most
    /// `limits.max_event_bytes`. Does not verify the signature.
    pub fn parse(bytes: &[u8], limits: &FeedLimits) -> Result<FeedEvent, FeedError> {
        if bytes.len() > limits.max_event_bytes {
            return Err(FeedError::TooLarge {
                len: bytes.len(),
                max: limits.max_event_bytes,
            });
        }
        let Value::Object(mut top) = canonical::parse_canonical_value(bytes)? else {
            return Err(FeedError::NotObject);
        };
        if let Some(member) = top.keys().filter(|k| !MEMBERS.contains(&k.as_str())).min() {
            return Err(FeedError::UnknownMember {
                member: quote(member),
            });
        }
        if let Some(member) = MEMBERS.into_iter().find(|m| !top.contains_key(*m)) {
            return Err(FeedError::MissingMember { member });
        }
        let sig = take(&mut top, "sig")?;
        let sig = sig.as_str().ok_or(FeedError::WrongType {
            member: "sig",
            expected: "a string (the base64 of an openpgp signature)",
        })?;
        let sig = base64::decode(sig).map_err(FeedError::SigEncoding)?;
        check_sig_len(&sig)?;

        // What is left is the body; encode it before taking it apart.
        let body = Value::Object(top);
        let body_bytes = canonical::to_canonical(&body)?;
        let Value::Object(top) = body else {
            return Err(FeedError::NotObject);
        };
        let body = EventBody::from_members(top)?;
        let event = FeedEvent::from_parts(body, body_bytes, sig);
        if event.bytes != bytes {
            let offset = event
                .bytes
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(event.bytes.len().min(bytes.len()));
            return Err(FeedError::NotCanonical { offset });
        }
        Ok(event)
    }

    /// Assembles the event from a checked body, its canonical encoding and
    /// its signature. `sig` sorts after every body member, so the whole
    /// event is the body with `,"sig":"…"` spliced in before its final `}`.
    fn from_parts(body: EventBody, body_bytes: Vec<u8>, sig: Vec<u8>) -> FeedEvent {
        let hash = EventHash::from_bytes(
            Sha256::new()
                .chain_update(SIGNING_CONTEXT)
                .chain_update(&body_bytes)
                .finalize()
                .into(),
        );
        let sig_text = base64::encode(&sig);
        let open = body_bytes.len().saturating_sub(1);
        let mut bytes = Vec::with_capacity(body_bytes.len() + sig_text.len() + 10);
        bytes.extend_from_slice(body_bytes.get(..open).unwrap_or_default());
        bytes.extend_from_slice(b",\"sig\":\"");
        bytes.extend_from_slice(sig_text.as_bytes());
        bytes.extend_from_slice(b"\"}");
        FeedEvent {
            body,
            sig,
            bytes,
            body_len: body_bytes.len(),
            hash,
        }
    }

    /// Checks the signature with the origin's keys.
    pub fn verify(&self, keys: &PeerKeys) -> Result<(), VerifyEventError> {
        if keys.uuid() != self.body.origin {
            return Err(VerifyEventError::WrongKeys {
                origin: self.body.origin,
                keys: keys.uuid(),
            });
        }
        keys.verify(&self.signing_input(), &self.sig)?;
        Ok(())
    }

    /// The bytes the signature covers: [`SIGNING_CONTEXT`], then the canonical body.
    pub fn signing_input(&self) -> Vec<u8> {
        let open = self.body_len.saturating_sub(1);
        let mut body = self.bytes.get(..open).unwrap_or_default().to_vec();
        body.push(b'}');
        signing_input(&body)
    }

    /// SHA-256 of the signing input: the event's name in chains and in the store.
    pub fn hash(&self) -> EventHash {
        self.hash
    }

    /// The canonical encoding, what travels and what is stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn body(&self) -> &EventBody {
        &self.body
    }

    pub fn origin(&self) -> PeerId {
        self.body.origin
    }

    pub fn seq(&self) -> u64 {
        self.body.seq
    }

    pub fn prev(&self) -> EventHash {
        self.body.prev
    }

    pub fn name(&self) -> &EventName {
        &self.body.name
    }

    pub fn iat(&self) -> Timestamp {
        self.body.iat
    }

    pub fn data(&self) -> &Value {
        &self.body.data
    }

    /// The detached OpenPGP signature, as packet bytes.
    pub fn signature(&self) -> &[u8] {
        &self.sig
    }
}

impl EventBody {
    /// The rules on a body that its types do not carry.
    fn check(&self) -> Result<(), FeedError> {
        if !self.data.is_object() {
            return Err(FeedError::DataNotObject);
        }
        match (self.seq, self.prev == EventHash::ZERO) {
            (0, _) => Err(FeedError::SeqZero),
            (1, false) => Err(FeedError::FirstPrevNotZero),
            (seq, true) if seq > 1 => Err(FeedError::PrevZero { seq }),
            _ => Ok(()),
        }
    }

    /// The body as a JSON value (key order is the `Map`'s; encode it with
    /// `to_canonical` for the signing input).
    pub fn to_value(&self) -> Value {
        let mut top = Map::new();
        top.insert("data".into(), self.data.clone());
        top.insert("iat".into(), Value::from(self.iat.as_millis()));
        top.insert("name".into(), Value::String(self.name.to_string()));
        top.insert("origin".into(), Value::String(self.origin.to_string()));
        top.insert("prev".into(), Value::String(self.prev.to_hex()));
        top.insert("seq".into(), Value::from(self.seq));
        Value::Object(top)
    }

    /// Reads the six body members, all present, from a parsed object.
    fn from_members(mut top: Map<String, Value>) -> Result<EventBody, FeedError> {
        let data = take(&mut top, "data")?;
        let iat = take(&mut top, "iat")?;
        let name = take(&mut top, "name")?;
        let origin = take(&mut top, "origin")?;
        let prev = take(&mut top, "prev")?;
        let seq = take(&mut top, "seq")?;

        let iat = match iat.as_u64() {
            Some(ms) if ms <= Timestamp::MAX.as_millis() => Timestamp::from_millis(ms),
            _ => return Err(wrong_type("iat", MILLIS)),
        };
        let name = name
            .as_str()
            .ok_or(wrong_type("name", "a string (an event name)"))?;
        let name = EventName::parse(name).map_err(FeedError::BadName)?;
        let origin = origin
            .as_str()
            .ok_or(wrong_type("origin", "a string (a peer id)"))?
            .parse::<PeerId>()
            .map_err(FeedError::BadOrigin)?;
        let prev = prev
            .as_str()
            .ok_or(wrong_type("prev", "a string (64 lowercase hex digits)"))?
            .parse::<EventHash>()
            .map_err(FeedError::BadPrev)?;
        let seq = seq
            .as_u64()
            .ok_or(wrong_type("seq", "a positive integer"))?;
        let body = EventBody {
            origin,
            seq,
            prev,
            name,
            iat,
            data,
        };
        body.check()?;
        Ok(body)
    }
}

fn signing_input(body_bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_CONTEXT.len() + body_bytes.len());
    input.extend_from_slice(SIGNING_CONTEXT);
    input.extend_from_slice(body_bytes);
    input
}

fn check_sig_len(sig: &[u8]) -> Result<(), FeedError> {
    if sig.is_empty() || sig.len() > MAX_SIGNATURE_LEN {
        return Err(FeedError::SigLength {
            len: sig.len(),
            max: MAX_SIGNATURE_LEN,
        });
    }
    Ok(())
}

fn take(object: &mut Map<String, Value>, member: &'static str) -> Result<Value, FeedError> {
    object
        .remove(member)
        .ok_or(FeedError::MissingMember { member })
}

fn wrong_type(member: &'static str, expected: &'static str) -> FeedError {
    FeedError::WrongType { member, expected }
}

/// `key` as a JSON string literal, cut to 48 bytes (marked by `...`), so
/// that an error message is safe to log whatever the input was.
fn quote(key: &str) -> String {
    let mut cut = key.len().min(48);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let shown = key.get(..cut).unwrap_or_default();
    let mut out = Value::String(shown.to_owned()).to_string();
    if cut < key.len() {
        out.push_str("...");
    }
    out
}
