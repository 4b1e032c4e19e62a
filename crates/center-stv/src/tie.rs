//! Breaking ties: look back through the earlier stages (rules 49(2) and
//! 51(2)(a)), then draw a lot (rules 49(3) and 51(2)(b)) as [`Lot`] says.
//!
//! The look-back narrows: going back one stage at a time, it keeps only the
//! tied candidates at the extreme (most votes for a surplus, fewest for an
//! exclusion) and stops when one is left. Those still equal after stage 1
//! go to the lot. This is what droop does.

use crate::count::Lot;
use crate::election::{CandidateId, Election};
use crate::record::{Stage, TieBreak, TieFor, TieRule};

/// Which end of the tied candidates is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extreme {
    /// The candidate with the most votes (surpluses, election order).
    Highest,
    /// The candidate with the fewest votes (exclusion).
    Lowest,
}

/// Chooses one of `first` and `others` (all with equal votes now) at
/// stage `stage`, looking back through `history` (the stages before the
/// tie, oldest first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn break_tie(
    first: CandidateId,
    others: &[CandidateId],
    extreme: Extreme,
    purpose: TieFor,
    history: &[Stage],
    stage: usize,
    lot: &Lot,
    election: &Election,
) -> TieBreak {
    let mut tied = others.to_vec();
    tied.push(first);
    tied.sort();
    tied.dedup();
    let mut remaining = tied.clone();
    for earlier in history.iter().rev() {
        let votes = remaining.iter().map(|&id| earlier.votes(id));
        let best = match extreme {
            Extreme::Highest => votes.max(),
            Extreme::Lowest => votes.min(),
        };
        remaining.retain(|&id| Some(earlier.votes(id)) == best);
        if let [chosen] = remaining[..] {
            return TieBreak {
                purpose,
                tied,
                chosen,
                rule: TieRule::LookBack {
                    stage: earlier.number(),
                },
            };
        }
    }
    let chosen = draw(&remaining, stage, lot, election).unwrap_or(first);
    TieBreak {
        purpose,
        tied,
        chosen,
        rule: TieRule::Lot { among: remaining },
    }
}

/// The lot among `among` at stage `stage` (`None` only if it is empty).
///
/// - [`Lot::Seed`]: each candidate draws [`Lot::digest`]; the smallest
///   digest (compared as bytes) is chosen.
/// - [`Lot::TieOrder`]: the first of them in the election's tie order, or
///   in ballot order if it has none (droop's default).
fn draw(
    among: &[CandidateId],
    stage: usize,
    lot: &Lot,
    election: &Election,
) -> Option<CandidateId> {
    match lot {
        Lot::Seed(seed) => among
            .iter()
            .copied()
            .min_by_key(|&id| Lot::digest(seed, stage, id)),
        Lot::TieOrder => match election.tie_order() {
            Some(order) => order.iter().copied().find(|id| among.contains(id)),
            None => among.iter().copied().min(),
        },
    }
}
