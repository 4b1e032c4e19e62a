//! Canonical JSON: the one byte string a JSON value is signed as, and a
//! strict JSON reader that refuses what canonical JSON cannot carry.
//!
//! The encoding is Matrix's canonical JSON:
//!
//! - object keys sorted by Unicode code point, which is the byte order of
//!   their UTF-8 encoding (not UTF-16 order, which differs above U+FFFF);
//! - no whitespace outside strings;
//! - numbers are integers in -(2^53-1) ..= 2^53-1, written in plain decimal;
//!   no fraction, no exponent, no `-0`;
//! - in strings only `"`, `\` and the control characters below U+0020 are
//!   escaped, as `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t` where those exist
//!   and as `\u00xx` with lowercase hex otherwise; everything else, U+007F
//!   and all non-ASCII included, is written as raw UTF-8.
//!
//! Both directions stop at [`MAX_DEPTH`] levels of arrays and objects, so a
//! hostile document cannot exhaust the stack. The reader also refuses an
//! object that names a key twice, which `serde_json` would silently collapse
//! into its last value: two parsers must never disagree on what was signed.
//!
//! This module does no I/O and no crypto; signing the bytes is the caller's.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::path::{self, Segment, at, quote};

/// The deepest nesting of arrays and objects, counting the outermost as 1.
pub const MAX_DEPTH: usize = 64;

/// The largest magnitude of an integer in canonical JSON, 2^53-1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Why a value or a byte string is not canonical JSON.
///
/// Paths are rendered as in `data.files[2]`; the empty path is the top level.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("not valid json: {0}")]
    Syntax(String),
    #[error("number at {} is not a plain integer (no fraction, exponent or -0)", at(.path))]
    Float { path: String },
    #[error("integer at {} is outside -(2^53-1) to 2^53-1", at(.path))]
    IntegerOutOfRange { path: String },
    #[error("duplicate key {} in the object at {}", quote(.key), at(.path))]
    DuplicateKey { path: String, key: String },
    #[error("json is nested deeper than {MAX_DEPTH} levels at {}", at(.path))]
    TooDeep { path: String },
}

/// The canonical encoding of `v`.
///
/// Fails on a float, an integer out of range, or nesting past [`MAX_DEPTH`]:
/// a `Value` built in code can hold all three.
pub fn to_canonical(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), Some(&mut out))?;
    Ok(out)
}

/// Parses any JSON document, refusing floats, integers out of range,
/// duplicate keys and nesting past [`MAX_DEPTH`]. The input need not be in
/// canonical form (whitespace and key order are free).
pub fn parse_canonical_value(bytes: &[u8]) -> Result<Value, CanonicalError> {
    let ctx = Ctx {
        path: RefCell::new(Vec::new()),
        error: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed { ctx: &ctx }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        ctx.error
            .take()
            .unwrap_or_else(|| CanonicalError::Syntax(e.to_string()))
    })
}

/// Checks that `v` could be encoded, without encoding it.
pub(crate) fn check(v: &Value) -> Result<(), CanonicalError> {
    walk(v, &mut Vec::new(), None)
}

/// Appends `s` as a canonical JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // Bytes >= 0x80 are parts of multi-byte characters and are copied as they are.
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Walks `v`, whose enclosing containers are `path`, checking it and, when
/// `out` is given, writing its canonical form.
fn walk<'a>(
    v: &'a Value,
    path: &mut Vec<Segment<'a>>,
    mut out: Option<&mut Vec<u8>>,
) -> Result<(), CanonicalError> {
    fn emit(out: &mut Option<&mut Vec<u8>>, bytes: &[u8]) {
        if let Some(out) = out {
            out.extend_from_slice(bytes);
        }
    }
    match v {
        Value::Null => emit(&mut out, b"null"),
        Value::Bool(true) => emit(&mut out, b"true"),
        Value::Bool(false) => emit(&mut out, b"false"),
        Value::Number(n) => {
            let i = integer(n).map_err(|make| make(path::render(path)))?;
            emit(&mut out, i.to_string().as_bytes());
        }
        Value::String(s) => {
            if let Some(out) = out {
                write_json_string(out, s);
            }
        }
        Value::Array(items) => {
            if path.len() >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep {
                    path: path::render(path),
                });
            }
            emit(&mut out, b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    emit(&mut out, b",");
                }
                path.push(Segment::Index(index));
                walk(item, path, out.as_deref_mut())?;
                path.pop();
            }
            emit(&mut out, b"]");
        }
        Value::Object(object) => {
            if path.len() >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep {
                    path: path::render(path),
                });
            }
            // `String`'s order is byte order, which for UTF-8 is code point order.
            // Sorting here rather than trusting `Map` keeps the output right even
            // if a dependency turns on serde_json's `preserve_order`.
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            emit(&mut out, b"{");
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    emit(&mut out, b",");
                }
                if let Some(out) = out.as_deref_mut() {
                    write_json_string(out, key);
                    out.push(b':');
                }
                path.push(Segment::Key(Cow::Borrowed(key)));
                walk(item, path, out.as_deref_mut())?;
                path.pop();
            }
            emit(&mut out, b"}");
        }
    }
    Ok(())
}

/// The integer in `n`, or how to build the error for its path.
///
/// serde_json reads an integer too large for 64 bits as a float; a float
/// with no fraction past 2^53-1 is therefore reported as out of range.
fn integer(n: &Number) -> Result<i64, fn(String) -> CanonicalError> {
    let out_of_range: fn(String) -> CanonicalError =
        |path| CanonicalError::IntegerOutOfRange { path };
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => Ok(i),
        (Some(_), _, _) | (None, Some(_), _) => Err(out_of_range),
        (None, None, Some(f)) if f.fract() == 0.0 && f.abs() > MAX_SAFE_INTEGER as f64 => {
            Err(out_of_range)
        }
        (None, None, _) => Err(|path| CanonicalError::Float { path }),
    }
}

/// State shared by every level of one [`parse_canonical_value`] call.
struct Ctx {
    /// Where the reader is; one segment per enclosing container.
    path: RefCell<Vec<Segment<'static>>>,
    /// The precise error, set just before the visitor hands serde_json an
    /// opaque one (serde's error type cannot carry ours).
    error: RefCell<Option<CanonicalError>>,
}

#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    ctx: &'c Ctx,
}

impl ValueSeed<'_> {
    fn fail<E: de::Error>(self, make: impl FnOnce(String) -> CanonicalError) -> E {
        let path = path::render(&self.ctx.path.borrow());
        *self.ctx.error.borrow_mut() = Some(make(path));
        E::custom("not canonical json")
    }

    /// Called on opening an array or object.
    fn enter<E: de::Error>(self) -> Result<(), E> {
        if self.ctx.path.borrow().len() >= MAX_DEPTH {
            return Err(self.fail(|path| CanonicalError::TooDeep { path }));
        }
        Ok(())
    }

    fn number<E: de::Error>(self, n: Number) -> Result<Value, E> {
        match integer(&n) {
            Ok(_) => Ok(Value::Number(n)),
            Err(make) => Err(self.fail(make)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.number(Number::from(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.number(Number::from(u))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        match Number::from_f64(f) {
            Some(n) => self.number(n),
            None => Err(self.fail(|path| CanonicalError::Float { path })),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.ctx.path.borrow_mut().push(Segment::Index(items.len()));
            let item = seq.next_element_seed(self)?;
            self.ctx.path.borrow_mut().pop();
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(self.fail(|path| CanonicalError::DuplicateKey { path, key }));
            }
            // The key lives in the path while its value is read, then moves into the map.
            self.ctx
                .path
                .borrow_mut()
                .push(Segment::Key(Cow::Owned(key)));
            let value = map.next_value_seed(self)?;
            let popped = self.ctx.path.borrow_mut().pop();
            if let Some(Segment::Key(key)) = popped {
                object.insert(key.into_owned(), value);
            }
        }
        Ok(Value::Object(object))
    }
}
