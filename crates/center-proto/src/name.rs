//! Event names: the validated `name` of an envelope, the key that services
//! subscribe to and sysadmins grant; and the rule for the names of the
//! services themselves ([`check_service_name`]), which the bus and the
//! configuration both check.
//!
//! The grammar is deliberately small so that a name is safe to print, to put
//! in a file name and to match with a glob:
//!
//! ```text
//! name      = lower *alnum *( sep 1*alnum )     ; 1 to 64 bytes in all
//! lower     = %x61-7A                            ; a-z
//! alnum     = lower / %x30-39                    ; a-z 0-9
//! sep       = "." / "-"
//! ```
//!
//! That is `^[a-z][a-z0-9]*([.-][a-z0-9]+)*$`: `new-peer-server`,
//! `account.created` and `feed.v2` are names; `Account`, `a..b`, `a-` and
//! `9lives` are not.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest event name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A validated event name (see the module docs for the grammar).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EventName(String);

/// Why a string is not an event name.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum NameError {
    #[error("event name must not be empty")]
    Empty,
    #[error("event name is {len} bytes long, over the maximum of {MAX_NAME_LEN}")]
    TooLong { len: usize },
    #[error("event name must start with a lowercase ascii letter")]
    BadStart,
    #[error("event name has a character other than a-z, 0-9, '.' and '-' at byte {index}")]
    BadChar { index: usize },
    #[error(
        "event name has a '.' or '-' at byte {index} that is not between two letters or digits"
    )]
    BadSeparator { index: usize },
}

impl EventName {
    /// Checks `s` against the grammar and wraps it.
    pub fn parse(s: &str) -> Result<EventName, NameError> {
        validate(s)?;
        Ok(EventName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(s: &str) -> Result<(), NameError> {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(NameError::Empty);
    };
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: bytes.len() });
    }
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart);
    }
    // `prev_sep` is true right after a separator, where an alphanumeric must follow.
    let mut prev_sep = false;
    for (index, &b) in bytes.iter().enumerate().skip(1) {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
            b'.' | b'-' if prev_sep => return Err(NameError::BadSeparator { index }),
            b'.' | b'-' => prev_sep = true,
            _ => return Err(NameError::BadChar { index }),
        }
    }
    if prev_sep {
        return Err(NameError::BadSeparator {
            index: bytes.len() - 1,
        });
    }
    Ok(())
}

impl FromStr for EventName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<EventName, NameError> {
        EventName::parse(s)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EventName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventName, D::Error> {
        let s = String::deserialize(deserializer)?;
        validate(&s).map_err(serde::de::Error::custom)?;
        Ok(EventName(s))
    }
}

/// The rule for service names: `^[a-z][a-z0-9-]{0,31}$`, like a Unix account.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err(format!(
            "service name `{}` must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter",
            name.chars().take(40).collect::<String>()
        ))
    }
}
