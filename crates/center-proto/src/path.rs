//! How error messages name a place in a JSON document: `data.files[2].path`,
//! `meta["odd key"]`, or "the top level".
//!
//! Keys come from the network, so they are printed JSON-escaped and cut to a
//! short prefix: an error message is safe to log whatever the input was.

use std::borrow::Cow;
use std::fmt;

use crate::canonical::write_json_string;

/// Longest key prefix, in bytes, that an error message repeats.
const MAX_SHOWN_KEY: usize = 48;

/// One step from a container to a member.
pub(crate) enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// Renders `segments` as a path; the empty path is the empty string.
pub(crate) fn render(segments: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) if is_plain(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                out.push('[');
                out.push_str(&quote(key));
                out.push(']');
            }
            Segment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// `key` as a JSON string literal, cut to a short prefix (marked by `...`).
pub(crate) fn quote(key: &str) -> String {
    let mut cut = key.len().min(MAX_SHOWN_KEY);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let shown = key.get(..cut).unwrap_or_default();
    let mut bytes = Vec::with_capacity(shown.len() + 2);
    write_json_string(&mut bytes, shown);
    let mut out = String::from_utf8_lossy(&bytes).into_owned();
    if cut < key.len() {
        out.push_str("...");
    }
    out
}

/// A rendered path for a message: `` `data.x` ``, or "the top level".
pub(crate) fn at(path: &str) -> impl fmt::Display + '_ {
    struct At<'a>(&'a str);
    impl fmt::Display for At<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.0.is_empty() {
                f.write_str("the top level")
            } else {
                write!(f, "`{}`", self.0)
            }
        }
    }
    At(path)
}

fn is_plain(key: &str) -> bool {
    let mut chars = key.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && key.len() <= MAX_SHOWN_KEY
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
