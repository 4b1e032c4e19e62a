//! Timestamps on the wire: whole milliseconds since the Unix epoch (UTC,
//! leap seconds ignored, as `SystemTime` counts them).
//!
//! A timestamp never exceeds [`Timestamp::MAX`], 2^53-1 ms (about the year
//! 287396), so that it is an integer canonical JSON can carry. Constructors
//! clamp rather than fail: the only way a larger value reaches this type is a
//! local clock or arithmetic gone absurd, and clamping keeps every caller
//! total. Values from the network are range-checked by the envelope parser.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch, at most [`Timestamp::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The largest timestamp, 2^53-1 ms: the largest integer canonical JSON allows.
    pub const MAX: Timestamp = Timestamp((1 << 53) - 1);

    /// The current time of the local clock; a clock before 1970 reads as 0.
    pub fn now() -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// Wraps `ms`, clamped to [`Timestamp::MAX`].
    pub const fn from_millis(ms: u64) -> Timestamp {
        if ms > Timestamp::MAX.0 {
            Timestamp::MAX
        } else {
            Timestamp(ms)
        }
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, clamped to [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp::from_millis(self.0.saturating_add(duration_millis(d)))
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        if ms > Timestamp::MAX.0 {
            return Err(serde::de::Error::custom(
                "timestamp is over the maximum of 2^53-1 milliseconds",
            ));
        }
        Ok(Timestamp(ms))
    }
}
