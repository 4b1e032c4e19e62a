//! What a count returns: [`Count`], with one [`Stage`] per stage of the
//! statute (the first preferences, then one transfer each), and a plain-text
//! [`Count::transcript`]. The figures are those a returning officer's result
//! sheet shows, and those droop prints in its dump: droop's round `r` is
//! stage `r + 1` here.

use std::fmt::Write as _;

use crate::election::{CandidateId, Election};
use crate::votes::Votes;

/// The outcome of [`count`](crate::count()): who was elected, in order, and
/// every stage that led there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    pub(crate) valid: u64,
    pub(crate) invalid: u64,
    pub(crate) quota: Votes,
    pub(crate) elected: Vec<CandidateId>,
    pub(crate) stages: Vec<Stage>,
}

impl Count {
    /// Valid papers: those with a preference for a candidate who did not
    /// withdraw. The quota is computed from them (rule 46).
    pub fn valid(&self) -> u64 {
        self.valid
    }

    /// Papers with no preference for a candidate standing (blank papers,
    /// or only withdrawn candidates ranked).
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    /// `⌊valid / (seats + 1)⌋ + 1` whole votes (rule 46).
    pub fn quota(&self) -> Votes {
        self.quota
    }

    /// The elected candidates in the order of their election: within one
    /// stage, quota holders from most to fewest votes, then (rule 52) the
    /// remaining candidates in ballot order.
    pub fn elected(&self) -> &[CandidateId] {
        &self.elected
    }

    /// Stage 1 (first preferences) first.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// One line per stage with every figure, then the result; the format
    /// is for people (and for the tests), not for parsing.
    pub fn transcript(&self, election: &Election) -> String {
        let name = |id: CandidateId| election.candidate(id).map_or("?", |c| c.name());
        let names = |ids: &[CandidateId]| {
            ids.iter()
                .map(|&id| name(id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "quota {}; {} valid papers, {} invalid",
            self.quota, self.valid, self.invalid
        );
        for stage in &self.stages {
            let action = match stage.action {
                Action::FirstPreferences => "first preferences".to_owned(),
                Action::Surplus { candidate, surplus } => {
                    format!("surplus of {} ({surplus})", name(candidate))
                }
                Action::Exclusion { candidate, votes } => {
                    format!("exclusion of {} ({votes})", name(candidate))
                }
            };
            let _ = write!(out, "{} {action}:", stage.number);
            for id in election.candidate_ids() {
                let mark = match stage.state(id) {
                    Some(State::Continuing) => "",
                    Some(State::Elected) => "*",
                    _ => continue,
                };
                let _ = write!(out, " {}{mark} {}", name(id), stage.votes(id));
            }
            let _ = writeln!(
                out,
                "; non-transferable {}, lost {}",
                stage.non_transferable, stage.lost
            );
            for tie in &stage.ties {
                let purpose = match tie.purpose {
                    TieFor::Surplus => "surplus",
                    TieFor::Exclusion => "exclusion",
                    TieFor::ElectionOrder => "election order",
                };
                let rule = match &tie.rule {
                    TieRule::LookBack { stage } => format!("look-back to stage {stage}"),
                    TieRule::Lot { among } => format!("lot among {}", names(among)),
                };
                let _ = writeln!(
                    out,
                    "  tie for {purpose} between {}: {rule} chose {}",
                    names(&tie.tied),
                    name(tie.chosen)
                );
            }
            for &(id, by) in &stage.elected {
                let by = match by {
                    ElectedBy::Quota => "quota",
                    ElectedBy::LastVacancies => "last vacancies",
                };
                let _ = writeln!(out, "  elected {} ({by})", name(id));
            }
        }
        let _ = writeln!(out, "elected: {}", names(&self.elected));
        out
    }
}

/// One stage of the count, with the figures at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub(crate) number: usize,
    pub(crate) action: Action,
    pub(crate) ties: Vec<TieBreak>,
    pub(crate) elected: Vec<(CandidateId, ElectedBy)>,
    pub(crate) votes: Vec<Votes>,
    pub(crate) states: Vec<State>,
    pub(crate) non_transferable: Votes,
    pub(crate) lost: Votes,
}

impl Stage {
    /// From 1, as the statute and the result sheets number stages.
    pub fn number(&self) -> usize {
        self.number
    }

    pub fn action(&self) -> Action {
        self.action
    }

    /// The ties this stage broke, in the order they were broken.
    pub fn ties(&self) -> &[TieBreak] {
        &self.ties
    }

    /// Who was elected at the end of this stage, in order, and by which rule.
    pub fn elected(&self) -> &[(CandidateId, ElectedBy)] {
        &self.elected
    }

    /// A candidate's votes at the end of the stage: an elected candidate
    /// whose surplus was transferred keeps the quota, an excluded one has 0.
    pub fn votes(&self, id: CandidateId) -> Votes {
        self.votes.get(id.index()).copied().unwrap_or_default()
    }

    /// A candidate's state at the end of the stage.
    pub fn state(&self, id: CandidateId) -> Option<State> {
        self.states.get(id.index()).copied()
    }

    /// The value of papers with no further preference for a continuing
    /// candidate, so far (droop's "non-transferable").
    pub fn non_transferable(&self) -> Votes {
        self.non_transferable
    }

    /// The value lost so far to truncating transfer values: the valid
    /// papers minus all candidates' votes minus the non-transferable.
    pub fn lost(&self) -> Votes {
        self.lost
    }
}

/// What a stage did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Rule 45: each valid paper to its first preference, at value 1.
    FirstPreferences,
    /// Rules 48–49: a candidate's surplus, every paper they hold passed on
    /// at its transfer value.
    Surplus {
        candidate: CandidateId,
        surplus: Votes,
    },
    /// Rules 50–51: the candidate with the fewest votes, `votes` of them,
    /// every paper passed on at the value it had.
    Exclusion {
        candidate: CandidateId,
        votes: Votes,
    },
}

/// Why a candidate was elected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectedBy {
    /// Rule 47: votes equal to or above the quota.
    Quota,
    /// Rule 52: as many continuing candidates as vacancies left.
    LastVacancies,
}

/// A candidate's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Neither elected nor excluded: papers can still go to them. At the
    /// end of a count these are the candidates not elected.
    Continuing,
    Elected,
    Excluded,
    /// Withdrew before the count; never receives a paper.
    Withdrawn,
}

/// A tie the count had to break, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TieBreak {
    pub purpose: TieFor,
    /// The candidates with equal votes, in ballot order.
    pub tied: Vec<CandidateId>,
    /// The one whose surplus goes first, who is excluded, or who is
    /// listed first among those elected together.
    pub chosen: CandidateId,
    pub rule: TieRule,
}

/// What a tie decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieFor {
    /// Which of equal surpluses is transferred first (rule 49(2)–(3)).
    Surplus,
    /// Which of equal lowest candidates is excluded (rule 51).
    Exclusion,
    /// The order in which candidates reaching the quota with equal votes
    /// at the same stage are listed; the statute elects them together.
    ElectionOrder,
}

/// How a tie was broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TieRule {
    /// By the most recent earlier stage at which the tied candidates had
    /// unequal votes (rules 49(2), 51(2)(a)).
    LookBack { stage: usize },
    /// By lot (rules 49(3), 51(2)(b)) among those still equal at every
    /// stage; see [`Lot`](crate::Lot) for the draw.
    Lot { among: Vec<CandidateId> },
}
