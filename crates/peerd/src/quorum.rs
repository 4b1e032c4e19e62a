//! Removal by many (CEP 7, "Excommunication"): how many distinct members
//! must vote a peer out before this peer removes it, and what the votes
//! it holds decide. Pure functions; peerd's state keeps the votes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One member's `peer.excommunicate` of a peer, as this peer recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub reason: String,
    /// The last seq of the target's feed the voter still took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// When this peer recorded it (ms).
    pub at: u64,
}

/// Votes needed to remove a peer when `eligible` members may vote (this
/// peer and every peer of its roster, the target excluded): `configured`
/// (`[membership] excommunicate_quorum`), or else a strict majority of
/// them. Never less than one.
pub fn required(configured: Option<usize>, eligible: usize) -> usize {
    match configured {
        Some(n) => n.max(1),
        None => eligible / 2 + 1,
    }
}

/// What the votes held about one target decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not enough yet: `have` votes of members count, `need` are needed.
    Pending { have: usize, need: usize },
    /// Enough: remove it, its feed ending at `until` (the least of the
    /// counted voters' ends; `None` if none gave one: this peer's head).
    Remove { until: Option<u64>, voters: usize },
}

/// Counts the votes on `target`: only those of `members` (this peer and
/// its roster, as it is now), never the target's own, each origin once
/// (the map's key).
pub fn decide(
    target: &str,
    votes: &BTreeMap<String, Vote>,
    members: &BTreeSet<String>,
    configured: Option<usize>,
) -> Decision {
    let eligible = members.iter().filter(|m| m.as_str() != target).count();
    let need = required(configured, eligible);
    let counted: Vec<&Vote> = votes
        .iter()
        .filter(|(voter, _)| voter.as_str() != target && members.contains(voter.as_str()))
        .map(|(_, vote)| vote)
        .collect();
    if counted.len() < need {
        return Decision::Pending {
            have: counted.len(),
            need,
        };
    }
    Decision::Remove {
        until: counted.iter().filter_map(|v| v.until).min(),
        voters: counted.len(),
    }
}

#[cfg(test)]
mod tests {
    //! The quorum rule, by table.

    use std::collections::{BTreeMap, BTreeSet};

    use super::{Decision, Vote, decide, required};

    #[test]
    fn the_default_quorum_is_a_strict_majority_of_those_who_may_vote() {
        // (configured, eligible voters, votes needed)
        let table = [
            (None, 0, 1),
            (None, 1, 1),
            (None, 2, 2),
            (None, 3, 2),
            (None, 4, 3),
            (None, 5, 3),
            (None, 10, 6),
            (Some(1), 10, 1),
            (Some(3), 2, 3),
            (Some(0), 4, 1),
        ];
        for (configured, eligible, need) in table {
            assert_eq!(
                required(configured, eligible),
                need,
                "{configured:?} of {eligible}"
            );
        }
    }

    fn vote(until: Option<u64>) -> Vote {
        Vote {
            reason: "spam".to_owned(),
            until,
            at: 1,
        }
    }

    #[test]
    fn only_distinct_members_other_than_the_target_count() {
        let members: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        let votes = |voters: &[(&str, Option<u64>)]| -> BTreeMap<String, Vote> {
            voters
                .iter()
                .map(|(v, until)| ((*v).to_owned(), vote(*until)))
                .collect()
        };
        // Target d; a, b, c may vote; 2 of 3 needed.
        let table = [
            (votes(&[]), Decision::Pending { have: 0, need: 2 }),
            (
                votes(&[("a", Some(5))]),
                Decision::Pending { have: 1, need: 2 },
            ),
            // The target's own vote does not count.
            (
                votes(&[("a", Some(5)), ("d", Some(1))]),
                Decision::Pending { have: 1, need: 2 },
            ),
            // Nor one from a peer not (or no longer) a member.
            (
                votes(&[("a", Some(5)), ("x", Some(1))]),
                Decision::Pending { have: 1, need: 2 },
            ),
            // Two members: removed, at the least of their ends.
            (
                votes(&[("a", Some(5)), ("b", Some(3))]),
                Decision::Remove {
                    until: Some(3),
                    voters: 2,
                },
            ),
            (
                votes(&[("a", None), ("b", Some(7)), ("c", Some(9))]),
                Decision::Remove {
                    until: Some(7),
                    voters: 3,
                },
            ),
            (
                votes(&[("a", None), ("c", None)]),
                Decision::Remove {
                    until: None,
                    voters: 2,
                },
            ),
        ];
        for (held, decision) in table {
            assert_eq!(decide("d", &held, &members, None), decision, "{held:?}");
        }
        // A configured quorum replaces the majority.
        assert_eq!(
            decide("d", &votes(&[("a", Some(5))]), &members, Some(1)),
            Decision::Remove {
                until: Some(5),
                voters: 1
            }
        );
        assert_eq!(
            decide("d", &votes(&[("a", None), ("b", None)]), &members, Some(3)),
            Decision::Pending { have: 2, need: 3 }
        );
    }
}
