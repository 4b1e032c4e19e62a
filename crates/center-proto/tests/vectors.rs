//! Checks every vector of `CEPS/vectors/0002-envelope.json` against the parser,
//! so CEP 2 and the code cannot drift apart.

use std::collections::BTreeSet;
use std::path::PathBuf;

use center_proto::{Envelope, EnvelopeError, Limits, Timestamp, fuzz};
use serde_json::Value;

pub(crate) struct Vectors {
    pub(crate) now: Timestamp,
    pub(crate) valid: Vec<Valid>,
    pub(crate) invalid: Vec<Invalid>,
}

pub(crate) struct Valid {
    pub(crate) name: String,
    /// A JSON value, or a string holding the raw input text.
    pub(crate) input: Value,
    pub(crate) canonical: String,
}

pub(crate) struct Invalid {
    pub(crate) name: String,
    pub(crate) input: String,
    pub(crate) error: String,
}

impl Valid {
    pub(crate) fn input_bytes(&self) -> Vec<u8> {
        match &self.input {
            Value::String(raw) => raw.clone().into_bytes(),
            value => serde_json::to_vec(value).expect("a value always serializes"),
        }
    }
}

pub(crate) fn load() -> Vectors {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0002-envelope.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the vectors file is json");
    let str_of = |v: &Value, key: &str| -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key} is not a string: {v}"))
            .to_owned()
    };
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    Vectors {
        now: Timestamp::from_millis(doc["now"].as_u64().expect("now is an integer")),
        valid: list("valid")
            .iter()
            .map(|v| Valid {
                name: str_of(v, "name"),
                input: v["input"].clone(),
                canonical: str_of(v, "canonical"),
            })
            .collect(),
        invalid: list("invalid")
            .iter()
            .map(|v| Invalid {
                name: str_of(v, "name"),
                input: str_of(v, "input"),
                error: str_of(v, "error"),
            })
            .collect(),
    }
}

#[test]
fn valid_vectors_parse_to_their_canonical_form() {
    let vectors = load();
    assert!(!vectors.valid.is_empty());
    let limits = Limits::DEFAULT;
    let mut failures = Vec::new();
    for v in &vectors.valid {
        let parsed = Envelope::parse(&v.input_bytes(), vectors.now, &limits);
        let envelope = match parsed {
            Ok(envelope) => envelope,
            Err(e) => {
                failures.push(format!("{}: refused: {e}", v.name));
                continue;
            }
        };
        let canonical = envelope
            .canonical_bytes()
            .expect("a parsed envelope encodes");
        if canonical != v.canonical.as_bytes() {
            failures.push(format!(
                "{}: canonical form differs\n  want {}\n  got  {}",
                v.name,
                v.canonical,
                String::from_utf8_lossy(&canonical)
            ));
        }
        // The canonical form is a fixed point, and from_value agrees with parse.
        let again = Envelope::parse(v.canonical.as_bytes(), vectors.now, &limits);
        assert_eq!(
            again.as_ref(),
            Ok(&envelope),
            "{}: canonical form re-parses",
            v.name
        );
        let value: Value = serde_json::from_slice(&v.input_bytes()).expect("valid input is json");
        let from_value = Envelope::from_value(value, vectors.now, &limits);
        assert_eq!(
            from_value.as_ref(),
            Ok(&envelope),
            "{}: from_value agrees",
            v.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_vectors_fail_with_their_error() {
    let vectors = load();
    let limits = Limits::DEFAULT;
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for v in &vectors.invalid {
        match Envelope::parse(v.input.as_bytes(), vectors.now, &limits) {
            Ok(envelope) => failures.push(format!("{}: accepted as {envelope:?}", v.name)),
            Err(e) => {
                seen.insert(variant(&e));
                if e.to_string() != v.error {
                    failures.push(format!("{}: got error {:?}", v.name, e.to_string()));
                }
                // Through a plain serde_json value the same fault is found, except
                // those serde_json cannot see: bad syntax and duplicate keys.
                if let Ok(value) = serde_json::from_str::<Value>(&v.input)
                    && !matches!(e, EnvelopeError::DuplicateKey { .. })
                {
                    let from_value = Envelope::from_value(value, vectors.now, &limits);
                    assert_eq!(from_value, Err(e), "{}: from_value agrees", v.name);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<_> = ALL_VARIANTS
        .iter()
        .filter(|name| !seen.contains(*name))
        .collect();
    assert!(missing.is_empty(), "no invalid vector for {missing:?}");
}

#[test]
fn vectors_use_the_fuzz_clock() {
    assert_eq!(load().now, fuzz::NOW);
}

const ALL_VARIANTS: [&str; 16] = [
    "NotJson",
    "NotObject",
    "MissingField",
    "WrongType",
    "UnknownField",
    "BadName",
    "BadPeerId",
    "BadDestination",
    "ExpiresBeforeIssued",
    "LifetimeTooLong",
    "IssuedInFuture",
    "DataNotObject",
    "Float",
    "IntegerOutOfRange",
    "DuplicateKey",
    "TooDeep",
];

/// Exhaustive on purpose: a new variant does not compile until it is listed
/// in `ALL_VARIANTS` and given a vector.
fn variant(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::NotJson(_) => "NotJson",
        EnvelopeError::NotObject => "NotObject",
        EnvelopeError::MissingField { .. } => "MissingField",
        EnvelopeError::WrongType { .. } => "WrongType",
        EnvelopeError::UnknownField { .. } => "UnknownField",
        EnvelopeError::BadName(_) => "BadName",
        EnvelopeError::BadPeerId { .. } => "BadPeerId",
        EnvelopeError::BadDestination { .. } => "BadDestination",
        EnvelopeError::ExpiresBeforeIssued { .. } => "ExpiresBeforeIssued",
        EnvelopeError::LifetimeTooLong { .. } => "LifetimeTooLong",
        EnvelopeError::IssuedInFuture { .. } => "IssuedInFuture",
        EnvelopeError::DataNotObject => "DataNotObject",
        EnvelopeError::Float { .. } => "Float",
        EnvelopeError::IntegerOutOfRange { .. } => "IntegerOutOfRange",
        EnvelopeError::DuplicateKey { .. } => "DuplicateKey",
        EnvelopeError::TooDeep { .. } => "TooDeep",
    }
}
