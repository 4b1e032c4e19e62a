//! Key rotation in the feeds (CEP 7, "Key rotation"): which keys verify
//! which seqs of an origin ([`OriginKeys`]), and the `peer.rotate` event
//! that moves an origin to new keys ([`Rotation`]).
//!
//! An origin that rotates at seq S signed every event up to and including
//! S (the `peer.rotate` event itself) with its old key, and signs every
//! event after S with the new one. So a verifier picks the key by seq: a
//! retired key verifies exactly the seqs from just after the previous
//! rotation up to its `last_seq`, the current key only the seqs after the
//! last rotation. A signature by the old key on a seq after S is refused
//! even though the old certificate is neither expired nor revoked.
//!
//! A rotation a peer's hello carries is taken only as the event at its seq
//! in the chain the receiver holds ([`hello_rotation`]): a receiver behind
//! on that feed waits for the events before it.
//!
//! Nothing here does I/O; the store applies a rotation it stores, and the
//! dispatcher keeps the history in its roster.

use center_identity::{PeerDescription, PeerKeys};
use center_proto::{PeerId, canonical::to_canonical};
use serde_json::{Value, json};

use crate::{event::FeedEvent, store::Outcome};

/// The name of the event an origin rotates its keys with.
pub const ROTATE_EVENT: &str = "peer.rotate";

/// A key an origin used before, and the last seq it signed.
#[derive(Clone, Debug)]
pub struct RetiredKeys {
    pub keys: PeerKeys,
    pub last_seq: u64,
}

/// Every key an origin signed its feed with, by seq.
#[derive(Clone, Debug)]
pub struct OriginKeys {
    current: PeerKeys,
    /// Oldest first; `last_seq` strictly increasing.
    retired: Vec<RetiredKeys>,
    /// The origin left the network (or was removed) after this seq: later
    /// events are refused, earlier ones stay valid (CEP 7, "Departed
    /// origins").
    until: Option<u64>,
}

/// Why a key history is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("retired keys of another peer ({found}) in the history of {origin}")]
    OtherPeer { origin: PeerId, found: PeerId },
    #[error("two retired keys end at seq {seq}")]
    SameSeq { seq: u64 },
}

impl From<PeerKeys> for OriginKeys {
    fn from(current: PeerKeys) -> OriginKeys {
        OriginKeys {
            current,
            retired: Vec::new(),
            until: None,
        }
    }
}

impl OriginKeys {
    /// The history of an origin that rotated: `retired` in any order.
    pub fn new(current: PeerKeys, mut retired: Vec<RetiredKeys>) -> Result<Self, HistoryError> {
        let origin = current.uuid();
        if let Some(other) = retired.iter().find(|r| r.keys.uuid() != origin) {
            return Err(HistoryError::OtherPeer {
                origin,
                found: other.keys.uuid(),
            });
        }
        retired.sort_by_key(|r| r.last_seq);
        if let Some((a, _)) = retired
            .iter()
            .zip(retired.iter().skip(1))
            .find(|(a, b)| a.last_seq == b.last_seq)
        {
            return Err(HistoryError::SameSeq { seq: a.last_seq });
        }
        Ok(OriginKeys {
            current,
            retired,
            until: None,
        })
    }

    /// The same history for an origin that departed after event `seq`.
    pub fn ending_at(self, seq: u64) -> OriginKeys {
        OriginKeys {
            until: Some(seq),
            ..self
        }
    }

    /// The last seq of a departed origin.
    pub fn until(&self) -> Option<u64> {
        self.until
    }

    /// The keys that must have signed event `seq`.
    pub fn for_seq(&self, seq: u64) -> &PeerKeys {
        self.retired
            .iter()
            .find(|r| seq <= r.last_seq)
            .map_or(&self.current, |r| &r.keys)
    }

    /// The keys of every event after the last rotation.
    pub fn current(&self) -> &PeerKeys {
        &self.current
    }

    /// The retired keys, oldest first.
    pub fn retired(&self) -> &[RetiredKeys] {
        &self.retired
    }

    /// The seq of the last rotation, if the origin ever rotated.
    pub fn rotated_at(&self) -> Option<u64> {
        self.retired.last().map(|r| r.last_seq)
    }

    /// Retires the current keys at `last_seq` and makes `next` current.
    /// Only a rotation after the last one changes anything; returns
    /// whether this one did.
    pub fn rotate(&mut self, next: PeerKeys, last_seq: u64) -> bool {
        if self.rotated_at().is_some_and(|at| at >= last_seq) || next.uuid() != self.current.uuid()
        {
            return false;
        }
        let old = std::mem::replace(&mut self.current, next);
        self.retired.push(RetiredKeys {
            keys: old,
            last_seq,
        });
        true
    }
}

/// A `peer.rotate` event's data, read and checked against its event.
#[derive(Clone, Debug)]
pub struct Rotation {
    description: PeerDescription,
    old_fingerprint: String,
}

/// Why a `peer.rotate` event is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RotationError {
    #[error("rotation data {0}")]
    Shape(&'static str),
    #[error("rotation description refused: {0}")]
    Description(String),
    #[error("the new description is for peer {found}, not the origin")]
    OtherPeer { found: PeerId },
    #[error("the new certificate is the old one")]
    SameKey,
    #[error("the rotation names the old certificate {claimed}, but {actual} signed it")]
    OldKeyMismatch { claimed: String, actual: String },
}

/// The data of a `peer.rotate` event moving to `next` from the
/// certificate `old_fingerprint`.
pub fn rotation_data(next: &PeerDescription, old_fingerprint: &str) -> Value {
    json!({ "description": next.to_json(), "old_fingerprint": old_fingerprint })
}

impl Rotation {
    /// Reads a rotation out of `event`: `None` if it is not a
    /// `peer.rotate` event. The description is verified (its binding
    /// signature) and must be the origin's, with another certificate.
    /// Does not check who signed the event.
    pub fn from_event(event: &FeedEvent) -> Option<Result<Rotation, RotationError>> {
        (event.name().as_str() == ROTATE_EVENT)
            .then(|| Rotation::from_data(event.origin(), event.data()))
    }

    /// Reads the data of a `peer.rotate` event of `origin` (hostile input).
    pub fn from_data(origin: PeerId, data: &Value) -> Result<Rotation, RotationError> {
        let Value::Object(members) = data else {
            return Err(RotationError::Shape("is not an object"));
        };
        if members.len() != 2 {
            return Err(RotationError::Shape(
                "must have exactly `description` and `old_fingerprint`",
            ));
        }
        let Some(Value::String(old_fingerprint)) = members.get("old_fingerprint") else {
            return Err(RotationError::Shape("lacks the string `old_fingerprint`"));
        };
        let Some(description) = members.get("description") else {
            return Err(RotationError::Shape("lacks `description`"));
        };
        let bytes =
            to_canonical(description).map_err(|e| RotationError::Description(e.to_string()))?;
        let description = PeerDescription::from_json(&bytes)
            .map_err(|e| RotationError::Description(e.to_string()))?;
        if description.uuid() != origin {
            return Err(RotationError::OtherPeer {
                found: description.uuid(),
            });
        }
        if description.fingerprint() == old_fingerprint {
            return Err(RotationError::SameKey);
        }
        Ok(Rotation {
            description,
            old_fingerprint: old_fingerprint.clone(),
        })
    }

    /// Checks that `signer`, the keys that verified the event, is the old
    /// certificate the rotation names.
    pub fn check_signer(&self, signer: &PeerKeys) -> Result<(), RotationError> {
        let actual = signer.fingerprint();
        if actual != self.old_fingerprint {
            return Err(RotationError::OldKeyMismatch {
                claimed: self.old_fingerprint.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// The origin's new description.
    pub fn description(&self) -> &PeerDescription {
        &self.description
    }

    pub fn old_fingerprint(&self) -> &str {
        &self.old_fingerprint
    }

    /// The new keys.
    pub fn keys(&self) -> PeerKeys {
        PeerKeys::from_description(&self.description)
    }
}

/// What a receiver does with a `peer.rotate` event a hello carries
/// (CEP 7, "The rotating peer's hello"), once the event verified with the
/// sender's key for its seq and was offered to the feed store.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HelloRotation {
    /// The store holds it at its seq, chained to the events before it
    /// (stored now, or held already): the receiver switches.
    Apply,
    /// The receiver lacks events before it (it holds the feed up to
    /// `have`): the rotation cannot be checked against them, so nothing
    /// switches now; the feed brings the event at that seq, from any peer,
    /// and the receiver switches when it stores it.
    Defer { have: u64 },
    /// The store did not take it at its seq: never applied.
    Refuse(String),
}

/// Decides [`HelloRotation`] by what [`crate::FeedStore::accept`] made of
/// the hello's rotation event. Only an event the store holds *at its seq*
/// is applied: there it was checked against every event before it (the
/// chain of `prev` hashes from the receiver's own copy), so a rotation
/// signed by a thief of the old key switches nobody without forking the
/// feed where the receiver holds it, which the genuine events then show
/// as an equivocation (CEP 6).
pub fn hello_rotation(outcome: &Outcome) -> HelloRotation {
    match outcome {
        Outcome::Stored { .. } | Outcome::Duplicate { .. } => HelloRotation::Apply,
        Outcome::Gap { have, .. } => HelloRotation::Defer { have: *have },
        Outcome::Stale { floor, .. } => HelloRotation::Refuse(format!(
            "its seq is below the oldest event kept here ({floor}), so it cannot be compared"
        )),
        Outcome::Equivocation { .. } => HelloRotation::Refuse(
            "it contradicts the event held at its seq (an equivocation)".to_owned(),
        ),
        Outcome::Refused(refusal) => {
            HelloRotation::Refuse(format!("the feed refuses it: {refusal}"))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rule for a rotation a hello carries: applied only as the event
    //! the feed holds at its seq.

    use center_proto::PeerId;

    use super::{HelloRotation, hello_rotation};
    use crate::store::{Outcome, Refusal};

    #[test]
    fn a_hello_rotation_is_applied_only_when_the_feed_holds_it_at_its_seq() {
        let origin = PeerId::new_random();
        let seq = 7;
        assert_eq!(
            hello_rotation(&Outcome::Stored {
                origin,
                seq,
                pos: 3
            }),
            HelloRotation::Apply
        );
        assert_eq!(
            hello_rotation(&Outcome::Duplicate { origin, seq }),
            HelloRotation::Apply
        );
        // Behind on the feed: not checked against the missing events.
        assert_eq!(
            hello_rotation(&Outcome::Gap {
                origin,
                seq,
                have: 4
            }),
            HelloRotation::Defer { have: 4 }
        );
        for outcome in [
            Outcome::Equivocation { origin, seq },
            Outcome::Stale {
                origin,
                seq,
                floor: 9,
            },
            Outcome::Refused(Refusal::Forked { origin, seq }),
            Outcome::Refused(Refusal::UnknownOrigin { origin, seq }),
        ] {
            assert!(
                matches!(hello_rotation(&outcome), HelloRotation::Refuse(_)),
                "{outcome:?}"
            );
        }
    }
}
