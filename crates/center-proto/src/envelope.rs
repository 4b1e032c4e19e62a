//! The envelope every center message travels in, and its strict parser.
//!
//! On the wire (CEP 2) an envelope is exactly
//!
//! ```text
//! {"data":{...},"meta":{"exp":MS,"from":PEER,"iat":MS,"to":PEER-or-"*"},"name":NAME}
//! ```
//!
//! with no other field at either level. The parser checks grammar, types and
//! the time rules against a `now` the caller passes in, so it reads no clock
//! and is deterministic. It does not check signatures, does not decide
//! whether the message is for this peer, and does not reject an expired
//! envelope: see [`Envelope::is_expired`].

use std::time::Duration;

use serde_json::{Map, Value};

use crate::canonical::{self, CanonicalError};
use crate::id::{Destination, PeerId, PeerIdError};
use crate::name::{EventName, NameError};
use crate::path::{self, Segment, at, quote};
use crate::time::{Timestamp, duration_millis};

/// Routing and timing of a message: `meta` on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Meta {
    /// The peer that wrote the message.
    pub from: PeerId,
    pub to: Destination,
    /// Issued at: when `from` wrote the message.
    pub iat: Timestamp,
    /// Expires at: the first instant at which the message is stale.
    pub exp: Timestamp,
}

/// One message between peers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    pub name: EventName,
    pub meta: Meta,
    /// The payload; always a JSON object of canonical values when parsed.
    pub data: Value,
}

/// The time rules the parser enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Longest allowed `exp - iat`.
    pub max_lifetime: Duration,
    /// How far `iat` may be ahead of the receiver's clock.
    pub max_skew: Duration,
}

impl Limits {
    /// 30 days of lifetime, 5 minutes of skew; CEP 2 argues both.
    pub const DEFAULT: Limits = Limits {
        max_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
        max_skew: Duration::from_secs(5 * 60),
    };
}

/// Why bytes or a value are not an acceptable envelope.
///
/// When input has several faults, which one is reported is not part of the
/// contract.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid json: {0}")]
    NotJson(String),
    #[error("envelope is not a json object")]
    NotObject,
    #[error("envelope has no `{field}` field")]
    MissingField { field: &'static str },
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("envelope has an unknown field `{field}`")]
    UnknownField { field: String },
    #[error("invalid `name`: {0}")]
    BadName(NameError),
    #[error("invalid `{field}`: {reason}")]
    BadPeerId {
        field: &'static str,
        reason: PeerIdError,
    },
    #[error("invalid `meta.to`, which must be \"*\" or a peer id: {reason}")]
    BadDestination { reason: PeerIdError },
    #[error("`meta.exp` ({exp}) is before `meta.iat` ({iat})")]
    ExpiresBeforeIssued { iat: Timestamp, exp: Timestamp },
    #[error(
        "lifetime from `meta.iat` to `meta.exp` is {lifetime_ms} ms, over the maximum of {max_ms} ms"
    )]
    LifetimeTooLong { lifetime_ms: u64, max_ms: u64 },
    #[error(
        "`meta.iat` is {ahead_ms} ms ahead of the receiver's clock, over the allowed skew of {max_ms} ms"
    )]
    IssuedInFuture { ahead_ms: u64, max_ms: u64 },
    #[error("`data` must be a json object")]
    DataNotObject,
    #[error("number at {} is not a plain integer (no fraction, exponent or -0)", at(.path))]
    Float { path: String },
    #[error("integer at {} is outside -(2^53-1) to 2^53-1", at(.path))]
    IntegerOutOfRange { path: String },
    #[error("duplicate key {} in the object at {}", quote(.key), at(.path))]
    DuplicateKey { path: String, key: String },
    #[error("json is nested deeper than {} levels at {}", canonical::MAX_DEPTH, at(.path))]
    TooDeep { path: String },
}

impl From<CanonicalError> for EnvelopeError {
    fn from(e: CanonicalError) -> EnvelopeError {
        match e {
            CanonicalError::Syntax(msg) => EnvelopeError::NotJson(msg),
            CanonicalError::Float { path } => EnvelopeError::Float { path },
            CanonicalError::IntegerOutOfRange { path } => EnvelopeError::IntegerOutOfRange { path },
            CanonicalError::DuplicateKey { path, key } => EnvelopeError::DuplicateKey { path, key },
            CanonicalError::TooDeep { path } => EnvelopeError::TooDeep { path },
        }
    }
}

const TOP_FIELDS: [&str; 3] = ["data", "meta", "name"];
const META_FIELDS: [&str; 4] = ["exp", "from", "iat", "to"];
const MILLIS: &str = "a non-negative integer (milliseconds since the unix epoch)";

impl Envelope {
    /// Strict parse of bytes from the network: checks grammar/types and the time rules against `now`.
    ///
    /// The bytes need not be in canonical form, but they must be JSON that
    /// canonical JSON can carry: no floats, no integers past 2^53-1, no
    /// duplicate keys, no nesting past [`canonical::MAX_DEPTH`].
    pub fn parse(bytes: &[u8], now: Timestamp, limits: &Limits) -> Result<Envelope, EnvelopeError> {
        let value = canonical::parse_canonical_value(bytes)?;
        Envelope::from_value(value, now, limits)
    }

    /// Structural parse from an already-decoded JSON value, same checks.
    pub fn from_value(
        v: Value,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Envelope, EnvelopeError> {
        canonical::check(&v)?;
        let Value::Object(mut top) = v else {
            return Err(EnvelopeError::NotObject);
        };
        reject_unknown(&top, &TOP_FIELDS, None)?;
        let name = take(&mut top, "name", "name")?;
        let meta = take(&mut top, "meta", "meta")?;
        let data = take(&mut top, "data", "data")?;

        let Value::String(name) = name else {
            return Err(wrong_type("name", "a string"));
        };
        let name = EventName::parse(&name).map_err(EnvelopeError::BadName)?;

        let Value::Object(mut meta) = meta else {
            return Err(wrong_type("meta", "a json object"));
        };
        reject_unknown(&meta, &META_FIELDS, Some("meta"))?;
        let from = take(&mut meta, "from", "meta.from")?;
        let to = take(&mut meta, "to", "meta.to")?;
        let iat = take(&mut meta, "iat", "meta.iat")?;
        let exp = take(&mut meta, "exp", "meta.exp")?;

        let from = string(&from, "meta.from", "a string (a peer id)")?
            .parse::<PeerId>()
            .map_err(|reason| EnvelopeError::BadPeerId {
                field: "meta.from",
                reason,
            })?;
        let to = string(&to, "meta.to", "a string (\"*\" or a peer id)")?
            .parse::<Destination>()
            .map_err(|reason| EnvelopeError::BadDestination { reason })?;
        let iat = timestamp(&iat, "meta.iat")?;
        let exp = timestamp(&exp, "meta.exp")?;

        if !data.is_object() {
            return Err(EnvelopeError::DataNotObject);
        }

        let meta = Meta { from, to, iat, exp };
        check_times(&meta, now, limits)?;
        Ok(Envelope { name, meta, data })
    }

    /// The envelope as a JSON value (key order is the `Map`'s; see
    /// [`Envelope::canonical_bytes`] for the signing input).
    pub fn to_value(&self) -> Value {
        let mut meta = Map::new();
        meta.insert("exp".into(), Value::from(self.meta.exp.as_millis()));
        meta.insert("from".into(), Value::String(self.meta.from.to_string()));
        meta.insert("iat".into(), Value::from(self.meta.iat.as_millis()));
        meta.insert("to".into(), Value::String(self.meta.to.to_string()));
        let mut top = Map::new();
        top.insert("data".into(), self.data.clone());
        top.insert("meta".into(), Value::Object(meta));
        top.insert("name".into(), Value::String(self.name.to_string()));
        Value::Object(top)
    }

    /// Canonical JSON bytes (the signing input).
    ///
    /// Fails only when `data` was set in code to something canonical JSON
    /// cannot carry (a float, an integer past 2^53-1, nesting too deep); an
    /// envelope from [`Envelope::parse`] or [`Envelope::from_value`] always encodes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::to_canonical(&self.to_value())
    }

    /// Whether the message is stale at `now`, that is `now >= exp`.
    ///
    /// Parsing does not apply this, because staleness is the caller's policy,
    /// not a property of the bytes: a direct message is dropped once expired,
    /// but a feed event fetched days later by anti-entropy must still be
    /// parsed to verify its chain, and a dropped message is best logged with
    /// its name and sender, which needs the parse.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.meta.exp
    }
}

fn check_times(meta: &Meta, now: Timestamp, limits: &Limits) -> Result<(), EnvelopeError> {
    let (iat, exp) = (meta.iat.as_millis(), meta.exp.as_millis());
    let Some(lifetime_ms) = exp.checked_sub(iat) else {
        return Err(EnvelopeError::ExpiresBeforeIssued {
            iat: meta.iat,
            exp: meta.exp,
        });
    };
    let max_ms = duration_millis(limits.max_lifetime);
    if lifetime_ms > max_ms {
        return Err(EnvelopeError::LifetimeTooLong {
            lifetime_ms,
            max_ms,
        });
    }
    let ahead_ms = iat.saturating_sub(now.as_millis());
    let max_ms = duration_millis(limits.max_skew);
    if ahead_ms > max_ms {
        return Err(EnvelopeError::IssuedInFuture { ahead_ms, max_ms });
    }
    Ok(())
}

/// Fails on the smallest key of `object` not in `known`; `parent` names the object.
fn reject_unknown(
    object: &Map<String, Value>,
    known: &[&str],
    parent: Option<&'static str>,
) -> Result<(), EnvelopeError> {
    let unknown = object.keys().filter(|k| !known.contains(&k.as_str())).min();
    match unknown {
        None => Ok(()),
        Some(key) => {
            let mut segments: Vec<Segment<'_>> =
                parent.map(|p| Segment::Key(p.into())).into_iter().collect();
            segments.push(Segment::Key(key.as_str().into()));
            Err(EnvelopeError::UnknownField {
                field: path::render(&segments),
            })
        }
    }
}

fn take(
    object: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Value, EnvelopeError> {
    object
        .remove(key)
        .ok_or(EnvelopeError::MissingField { field })
}

fn string<'v>(
    v: &'v Value,
    field: &'static str,
    expected: &'static str,
) -> Result<&'v str, EnvelopeError> {
    v.as_str().ok_or(wrong_type(field, expected))
}

fn timestamp(v: &Value, field: &'static str) -> Result<Timestamp, EnvelopeError> {
    match v.as_u64() {
        Some(ms) if ms <= Timestamp::MAX.as_millis() => Ok(Timestamp::from_millis(ms)),
        _ => Err(wrong_type(field, MILLIS)),
    }
}

fn wrong_type(field: &'static str, expected: &'static str) -> EnvelopeError {
    EnvelopeError::WrongType { field, expected }
}
