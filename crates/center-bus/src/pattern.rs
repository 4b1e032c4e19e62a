//! Event-name patterns: what a subscription asks for and what a grant allows.
//!
//! A pattern is an exact event name (`account.created`), or a prefix followed by
//! one trailing `*` (`account.*`, `*`). Nothing else is special. This keeps
//! "is this subscription inside that grant" a question with an exact answer,
//! which wildcards in the middle would not.

use std::fmt;

use center_proto::EventName;

/// A validated event-name pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    text: String,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern `{0}` is empty or longer than 65 bytes")]
    Length(String),
    #[error("pattern `{0}` may only contain a-z, 0-9, '.', '-' and one trailing '*'")]
    Characters(String),
    #[error("pattern `{0}` is neither an event name nor a prefix ending in '*': {1}")]
    Name(String, String),
}

impl Pattern {
    /// Parses `account.*`, `*` or an exact event name.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() || text.len() > 65 {
            return Err(PatternError::Length(text.chars().take(80).collect()));
        }
        match text.strip_suffix('*') {
            Some(prefix) => {
                let starts_ok = prefix.bytes().next().is_none_or(|b| b.is_ascii_lowercase());
                let chars_ok = prefix.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
                if !starts_ok || !chars_ok {
                    return Err(PatternError::Characters(text.to_owned()));
                }
            }
            None => {
                EventName::parse(text)
                    .map_err(|err| PatternError::Name(text.to_owned(), err.to_string()))?;
            }
        }
        Ok(Pattern {
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the event name `name` is matched.
    pub fn matches(&self, name: &str) -> bool {
        match self.text.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.text == name,
        }
    }

    /// Whether every name `other` can match is also matched by `self`: a
    /// subscription is allowed when some grant pattern covers it.
    pub fn covers(&self, other: &Pattern) -> bool {
        match self.text.strip_suffix('*') {
            // `other` is exact or a prefix; either way its text starts with ours.
            Some(prefix) => other.text.starts_with(prefix),
            None => self.text == other.text,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(s)
    }
}

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(d)?;
        Pattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether some pattern in `grant` covers `wanted`.
pub fn granted(grant: &[Pattern], wanted: &Pattern) -> bool {
    grant.iter().any(|g| g.covers(wanted))
}

/// Whether some pattern in `patterns` matches `name`.
pub fn any_matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}
