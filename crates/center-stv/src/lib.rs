//! The vote counter of `voted`: a lenient reader and a canonical writer for
//! `.blt` ballot files, and a Scottish STV count whose every figure can be
//! checked by hand or with another counter.
//!
//! The rule is the one used in every Scottish council election since 2007:
//! the Scottish Local Government Elections Order 2007 (SSI 2007/42),
//! Schedule 1, rules 45 to 52. Votes move by the weighted inclusive Gregory
//! method, transfer values are truncated to five decimal places, and all
//! arithmetic is integer fixed point at five decimals ([`Votes`]): there is
//! no float anywhere. With one seat the quota is a majority of the valid
//! papers and the count is instant-runoff voting (IRV), which is what a
//! single-winner choice (a governance model, with "none of these" as an
//! ordinary candidate) uses.
//!
//! # Layout
//!
//! - [`election`]: [`Election`], [`Candidate`], [`Ballot`], [`CandidateId`]
//!   and [`ElectionError`]: what is counted, with its invariants checked once.
//! - [`blt`]: [`Election::parse_blt`] and [`Election::to_blt`], with
//!   [`BltError`] saying which line is wrong.
//! - [`votes`]: [`Votes`], five-decimal fixed point.
//! - [`count`]: [`count()`](count::count) and its [`CountConfig`] (how a lot
//!   is drawn, [`Lot`]).
//! - [`record`]: what a count returns: [`Count`], one [`Stage`] per stage of
//!   the statute, each with its [`Action`], the ties it broke ([`TieBreak`])
//!   and every candidate's [`State`] and votes.
//! - [`fuzz`]: the body of the `blt_parse` fuzz target, which the tests also
//!   run over the Glasgow files.
//!
//! **Invariant:** no I/O, no clock, no randomness that the caller did not
//! seed, and no panic on input: a `.blt` file may come from anyone. Sizes
//! are bounded ([`MAX_CANDIDATES`]) and ballot weights add up in checked
//! arithmetic, so that every figure of a count fits its integer type.

pub mod blt;
pub mod count;
pub mod election;
pub mod fuzz;
pub mod record;
mod tie;
pub mod votes;

pub use blt::{BltError, BltErrorKind};
pub use count::{CountConfig, Lot, count};
pub use election::{Ballot, Candidate, CandidateId, Election, ElectionError, MAX_CANDIDATES};
pub use record::{Action, Count, ElectedBy, Stage, State, TieBreak, TieFor, TieRule};
pub use votes::Votes;
