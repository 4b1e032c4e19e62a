//! The count: Scottish STV as the Scottish Local Government Elections
//! Order 2007 (SSI 2007/42), Schedule 1, rules 45–52 set it out, with one
//! seat being instant-runoff voting.
//!
//! 1. **First stage (r. 45).** Each valid paper goes to its first
//!    preference at value 1. Withdrawn candidates are skipped wherever a
//!    paper ranks them; a paper ranking no one else is invalid.
//! 2. **Quota (r. 46).** `⌊valid / (seats + 1)⌋ + 1` whole votes. With one
//!    seat this is a majority, so the count is IRV: exclude the last,
//!    transfer, until someone has a majority or is the last one standing.
//! 3. **Election (r. 47).** At the end of every stage, each continuing
//!    candidate with at least the quota is elected, listed from most votes
//!    to fewest (equal votes ordered as equal surpluses would be).
//! 4. **Surpluses (rr. 48–49).** While seats remain, the largest surplus
//!    not yet transferred goes first, one per stage: *every* paper the
//!    candidate holds passes to its next continuing preference at
//!    `surplus × its value ÷ the candidate's votes`, truncated to five
//!    decimals (weighted inclusive Gregory); the candidate keeps the quota.
//!    A candidate with exactly the quota has no surplus and no stage.
//! 5. **Exclusion (rr. 50–51).** With no surplus to transfer, the
//!    continuing candidate with the fewest votes is excluded and each of
//!    their papers passes on at the value it had.
//! 6. **Last vacancies (r. 52).** As soon as the continuing candidates are
//!    no more than the seats left, they are all elected (in ballot order)
//!    and nothing more is transferred. This is checked after an exclusion
//!    before anyone is elected on the quota, as droop does.
//!
//! Ties (equal surpluses, equal lowest, equal votes on reaching the quota)
//! are broken by looking back to the most recent stage at which the tied
//! candidates differed, then by [`Lot`]; every tie is recorded in its
//! [`Stage`].

use sha2::{Digest, Sha256};

use crate::election::{CandidateId, Election};
use crate::record::{Action, Count, ElectedBy, Stage, State, TieBreak, TieFor};
use crate::tie::{Extreme, break_tie};
use crate::votes::{SCALE, Votes, transfer_value};

/// How to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountConfig {
    pub lot: Lot,
}

/// How a lot is drawn when looking back does not break a tie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lot {
    /// A draw anyone can repeat: each tied candidate's
    /// [`digest`](Lot::digest), the smallest chosen. `voted` seeds it with
    /// what only exists once voting has closed.
    Seed(Vec<u8>),
    /// The first in the election's tie order (a `[tie]` line), or the
    /// lowest-numbered candidate: what droop does by default, for
    /// comparing counts with it. Not a lot for a real election.
    TieOrder,
}

impl Lot {
    /// `SHA-256(seed ‖ stage ‖ number)`, the stage (from 1) and the
    /// candidate's one-based number each as 4 bytes big-endian.
    pub fn digest(seed: &[u8], stage: usize, candidate: CandidateId) -> [u8; 32] {
        let stage = u32::try_from(stage).unwrap_or(u32::MAX);
        let number = u32::try_from(candidate.number()).unwrap_or(u32::MAX);
        Sha256::new()
            .chain_update(seed)
            .chain_update(stage.to_be_bytes())
            .chain_update(number.to_be_bytes())
            .finalize()
            .into()
    }
}

/// Counts `election`. Deterministic: the same election and config give
/// the same [`Count`]. Takes time proportional to the stages (at most
/// twice the candidates) times the papers moved at each.
pub fn count(election: &Election, config: &CountConfig) -> Count {
    let mut counter = Counter::start(election, &config.lot);
    loop {
        if counter.seats_left == 0 {
            break;
        }
        if counter.continuing().count() <= counter.seats_left {
            counter.elect_remaining();
            break;
        }
        if !counter.next_stage() {
            // Unreachable: more continuing candidates than seats left means
            // there is someone to exclude. Stopping beats looping.
            break;
        }
    }
    Count {
        valid: counter.valid,
        invalid: counter.invalid,
        quota: counter.quota,
        elected: counter.elected,
        stages: counter.stages,
    }
}

/// Papers of one ballot line, all at the same place and value.
#[derive(Clone, Copy, Debug)]
struct Parcel {
    /// Index in [`Election::ballots`].
    ballot: usize,
    /// Index in the ballot's preferences of the candidate holding it.
    position: usize,
    /// The value of each paper, in units of 10⁻⁵.
    value: u32,
}

/// The state of a count between stages.
struct Counter<'a> {
    election: &'a Election,
    lot: &'a Lot,
    valid: u64,
    invalid: u64,
    quota: Votes,
    seats_left: usize,
    votes: Vec<Votes>,
    states: Vec<State>,
    /// Elected with a surplus not yet transferred.
    pending: Vec<bool>,
    /// The parcels each candidate holds.
    piles: Vec<Vec<Parcel>>,
    non_transferable: Votes,
    elected: Vec<CandidateId>,
    stages: Vec<Stage>,
}

impl<'a> Counter<'a> {
    /// The first stage (rules 45–47).
    fn start(election: &'a Election, lot: &'a Lot) -> Counter<'a> {
        let candidates = election.candidates().len();
        let states = election
            .candidates()
            .iter()
            .map(|c| {
                if c.is_withdrawn() {
                    State::Withdrawn
                } else {
                    State::Continuing
                }
            })
            .collect();
        let mut counter = Counter {
            election,
            lot,
            valid: 0,
            invalid: 0,
            quota: Votes::ZERO,
            seats_left: election.seats(),
            votes: vec![Votes::ZERO; candidates],
            states,
            pending: vec![false; candidates],
            piles: vec![Vec::new(); candidates],
            non_transferable: Votes::ZERO,
            elected: Vec::new(),
            stages: Vec::new(),
        };
        for (index, ballot) in election.ballots().iter().enumerate() {
            let parcel = Parcel {
                ballot: index,
                position: 0,
                value: SCALE as u32,
            };
            // Election::new keeps the weights' sum within u64.
            if counter.place(parcel, 0) {
                counter.valid = counter.valid.saturating_add(ballot.weight());
            } else {
                counter.invalid = counter.invalid.saturating_add(ballot.weight());
            }
        }
        let seats = u64::try_from(election.seats()).unwrap_or(u64::MAX);
        counter.quota = Votes::whole(counter.valid / seats.saturating_add(1) + 1);
        let mut ties = Vec::new();
        let elected = counter.elect_quota_holders(1, &mut ties);
        counter.push_stage(Action::FirstPreferences, ties, elected);
        counter
    }

    fn continuing(&self) -> impl Iterator<Item = CandidateId> + '_ {
        self.election
            .candidate_ids()
            .filter(|&id| self.state(id) == State::Continuing)
    }

    fn state(&self, id: CandidateId) -> State {
        self.states
            .get(id.index())
            .copied()
            .unwrap_or(State::Withdrawn)
    }

    fn votes(&self, id: CandidateId) -> Votes {
        self.votes.get(id.index()).copied().unwrap_or_default()
    }

    /// One stage: the largest surplus if there is one, else an exclusion;
    /// then the elections it brings. False if there was nothing to do.
    fn next_stage(&mut self) -> bool {
        let number = self.stages.len() + 1;
        let mut ties = Vec::new();
        let action = match self.largest_surplus(number, &mut ties) {
            Some(candidate) => {
                let surplus = self.transfer_surplus(candidate);
                Action::Surplus { candidate, surplus }
            }
            None => {
                let Some(candidate) = self.lowest(number, &mut ties) else {
                    return false;
                };
                let votes = self.exclude(candidate);
                Action::Exclusion { candidate, votes }
            }
        };
        // Rule 52 first after an exclusion: `count` elects the rest.
        let last_vacancies = matches!(action, Action::Exclusion { .. })
            && self.continuing().count() <= self.seats_left;
        let elected = if last_vacancies {
            Vec::new()
        } else {
            self.elect_quota_holders(number, &mut ties)
        };
        self.push_stage(action, ties, elected);
        true
    }

    /// Rule 47: elects every continuing candidate with the quota, most
    /// votes first.
    fn elect_quota_holders(
        &mut self,
        stage: usize,
        ties: &mut Vec<TieBreak>,
    ) -> Vec<(CandidateId, ElectedBy)> {
        let mut holders: Vec<CandidateId> = self
            .continuing()
            .filter(|&id| self.votes(id) >= self.quota)
            .collect();
        holders.sort_by_key(|&id| std::cmp::Reverse(self.votes(id)));
        let mut order = Vec::with_capacity(holders.len());
        let mut rest = &holders[..];
        while let Some((&first, _)) = rest.split_first() {
            let level = self.votes(first);
            let equal = rest
                .iter()
                .take_while(|&&id| self.votes(id) == level)
                .count();
            let (group, after) = rest.split_at(equal);
            rest = after;
            let mut group = group.to_vec();
            // Equal votes: ordered as equal surpluses would be (rule 49).
            while let Some((&head, others)) = group.split_first() {
                let chosen = if others.is_empty() {
                    head
                } else {
                    let tie =
                        self.tie(head, others, Extreme::Highest, TieFor::ElectionOrder, stage);
                    let chosen = tie.chosen;
                    ties.push(tie);
                    chosen
                };
                order.push(chosen);
                group.retain(|&id| id != chosen);
            }
        }
        for &id in &order {
            self.set_state(id, State::Elected);
            if let Some(pending) = self.pending.get_mut(id.index()) {
                *pending = self.votes.get(id.index()).is_some_and(|&v| v > self.quota);
            }
            self.seats_left = self.seats_left.saturating_sub(1);
            self.elected.push(id);
        }
        order.into_iter().map(|id| (id, ElectedBy::Quota)).collect()
    }

    /// Rule 52: elects every continuing candidate, in ballot order, at the
    /// stage just recorded.
    fn elect_remaining(&mut self) {
        let remaining: Vec<CandidateId> = self.continuing().collect();
        for id in remaining {
            self.set_state(id, State::Elected);
            self.seats_left = self.seats_left.saturating_sub(1);
            self.elected.push(id);
            if let Some(stage) = self.stages.last_mut() {
                stage.elected.push((id, ElectedBy::LastVacancies));
                if let Some(state) = stage.states.get_mut(id.index()) {
                    *state = State::Elected;
                }
            }
        }
    }

    /// Rule 49: the elected candidate with the largest surplus not yet
    /// transferred, if any.
    fn largest_surplus(&self, stage: usize, ties: &mut Vec<TieBreak>) -> Option<CandidateId> {
        let pending: Vec<CandidateId> = self
            .election
            .candidate_ids()
            .filter(|id| self.pending.get(id.index()).copied().unwrap_or(false))
            .collect();
        let top = pending.iter().map(|&id| self.votes(id)).max()?;
        let tied: Vec<CandidateId> = pending
            .into_iter()
            .filter(|&id| self.votes(id) == top)
            .collect();
        self.choose(&tied, Extreme::Highest, TieFor::Surplus, stage, ties)
    }

    /// Rule 50: the continuing candidate with the fewest votes.
    fn lowest(&self, stage: usize, ties: &mut Vec<TieBreak>) -> Option<CandidateId> {
        let bottom = self.continuing().map(|id| self.votes(id)).min()?;
        let tied: Vec<CandidateId> = self
            .continuing()
            .filter(|&id| self.votes(id) == bottom)
            .collect();
        self.choose(&tied, Extreme::Lowest, TieFor::Exclusion, stage, ties)
    }

    /// The one of `tied`, breaking the tie if there are several.
    fn choose(
        &self,
        tied: &[CandidateId],
        extreme: Extreme,
        purpose: TieFor,
        stage: usize,
        ties: &mut Vec<TieBreak>,
    ) -> Option<CandidateId> {
        let (&first, others) = tied.split_first()?;
        if others.is_empty() {
            return Some(first);
        }
        let tie = self.tie(first, others, extreme, purpose, stage);
        let chosen = tie.chosen;
        ties.push(tie);
        Some(chosen)
    }

    fn tie(
        &self,
        first: CandidateId,
        others: &[CandidateId],
        extreme: Extreme,
        purpose: TieFor,
        stage: usize,
    ) -> TieBreak {
        break_tie(
            first,
            others,
            extreme,
            purpose,
            &self.stages,
            stage,
            self.lot,
            self.election,
        )
    }

    /// Rule 48: passes on every paper `candidate` holds at its transfer
    /// value; they keep the quota. Returns the surplus.
    fn transfer_surplus(&mut self, candidate: CandidateId) -> Votes {
        let total = self.votes(candidate);
        let surplus = total.saturating_sub(self.quota);
        if let Some(pending) = self.pending.get_mut(candidate.index()) {
            *pending = false;
        }
        let pile = self.take_pile(candidate);
        for parcel in pile {
            let value = transfer_value(surplus, parcel.value, total);
            self.pass_on(Parcel { value, ..parcel });
        }
        self.set_votes(candidate, self.quota);
        surplus
    }

    /// Rule 50: excludes `candidate` and passes on their papers at the
    /// value they had. Returns the votes they had.
    fn exclude(&mut self, candidate: CandidateId) -> Votes {
        let votes = self.votes(candidate);
        self.set_state(candidate, State::Excluded);
        for parcel in self.take_pile(candidate) {
            self.pass_on(parcel);
        }
        self.set_votes(candidate, Votes::ZERO);
        votes
    }

    fn take_pile(&mut self, candidate: CandidateId) -> Vec<Parcel> {
        self.piles
            .get_mut(candidate.index())
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Moves a parcel to its next continuing preference after the one
    /// holding it, or to the non-transferable papers.
    fn pass_on(&mut self, parcel: Parcel) {
        if !self.place(parcel, parcel.position + 1) {
            let weight = self.weight(parcel.ballot);
            self.non_transferable += Votes::of_papers(weight, parcel.value);
        }
    }

    /// Gives a parcel to the first continuing candidate its ballot ranks
    /// at `from` or later; false if there is none.
    fn place(&mut self, parcel: Parcel, from: usize) -> bool {
        let Some(ballot) = self.election.ballots().get(parcel.ballot) else {
            return false;
        };
        let next = ballot
            .preferences()
            .iter()
            .enumerate()
            .skip(from)
            .find(|&(_, &id)| self.state(id) == State::Continuing);
        let Some((position, &id)) = next else {
            return false;
        };
        let credit = Votes::of_papers(ballot.weight(), parcel.value);
        if let (Some(votes), Some(pile)) = (
            self.votes.get_mut(id.index()),
            self.piles.get_mut(id.index()),
        ) {
            *votes += credit;
            pile.push(Parcel { position, ..parcel });
        }
        true
    }

    fn weight(&self, ballot: usize) -> u64 {
        self.election
            .ballots()
            .get(ballot)
            .map_or(0, |b| b.weight())
    }

    fn set_state(&mut self, id: CandidateId, state: State) {
        if let Some(slot) = self.states.get_mut(id.index()) {
            *slot = state;
        }
    }

    fn set_votes(&mut self, id: CandidateId, votes: Votes) {
        if let Some(slot) = self.votes.get_mut(id.index()) {
            *slot = votes;
        }
    }

    fn push_stage(
        &mut self,
        action: Action,
        ties: Vec<TieBreak>,
        elected: Vec<(CandidateId, ElectedBy)>,
    ) {
        let held: Votes = self.votes.iter().copied().sum();
        let lost = Votes::whole(self.valid).saturating_sub(held + self.non_transferable);
        self.stages.push(Stage {
            number: self.stages.len() + 1,
            action,
            ties,
            elected,
            votes: self.votes.clone(),
            states: self.states.clone(),
            non_transferable: self.non_transferable,
            lost,
        });
    }
}
