//! [`Election`]: the seats, the candidates and the ballots of one contest,
//! checked once when built so that the counter and the writer never meet a
//! case they cannot handle. It does not parse (see [`crate::blt`]) and does
//! not count (see [`crate::count`]).

use std::fmt;

use thiserror::Error;

/// The most candidates an election may have: far above any real ballot
/// paper, and low enough that a count's record stays small.
pub const MAX_CANDIDATES: usize = 1000;

/// A candidate, by position in the election's list (zero-based); in a
/// `.blt` file it is written as its [`number`](CandidateId::number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CandidateId(u16);

impl CandidateId {
    /// The candidate at zero-based `index`, if it can exist at all.
    pub fn from_index(index: usize) -> Option<CandidateId> {
        if index < MAX_CANDIDATES {
            u16::try_from(index).ok().map(CandidateId)
        } else {
            None
        }
    }

    /// The candidate numbered `number` (one-based, as in `.blt` files).
    pub fn from_number(number: usize) -> Option<CandidateId> {
        number.checked_sub(1).and_then(CandidateId::from_index)
    }

    /// The zero-based position in [`Election::candidates`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The one-based number, as written in `.blt` files.
    pub fn number(self) -> usize {
        self.index() + 1
    }
}

/// The one-based number.
impl fmt::Display for CandidateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// A candidate: a name and whether they withdrew. A withdrawn candidate
/// stays in the list (ballots still number the others the same way) but
/// is skipped wherever a ballot ranks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    name: String,
    withdrawn: bool,
}

impl Candidate {
    /// A candidate standing for election.
    pub fn new(name: impl Into<String>) -> Candidate {
        Candidate {
            name: name.into(),
            withdrawn: false,
        }
    }

    /// A candidate who withdrew.
    pub fn withdrawn(name: impl Into<String>) -> Candidate {
        Candidate {
            name: name.into(),
            withdrawn: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn
    }
}

/// `weight` identical papers ranking `preferences`, most preferred first.
/// An empty ranking is allowed (a blank paper): it is not a valid vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    weight: u64,
    preferences: Vec<CandidateId>,
}

impl Ballot {
    pub fn new(weight: u64, preferences: Vec<CandidateId>) -> Ballot {
        Ballot {
            weight,
            preferences,
        }
    }

    /// How many identical papers this line stands for.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    pub fn preferences(&self) -> &[CandidateId] {
        &self.preferences
    }
}

/// One contest. Built only through [`Election::new`] (or the `.blt`
/// reader), so that it always holds: 1 to [`MAX_CANDIDATES`] candidates,
/// 1 to that many seats, names and title without `"` or line breaks, no
/// ballot of weight 0, every preference a candidate and none twice on a
/// ballot, weights adding up within `u64`, and a tie order (if any) that
/// lists every candidate once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    title: String,
    seats: usize,
    candidates: Vec<Candidate>,
    ballots: Vec<Ballot>,
    tie_order: Option<Vec<CandidateId>>,
}

/// Why [`Election::new`] refused its parts.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ElectionError {
    #[error("an election needs at least one candidate")]
    NoCandidates,
    #[error("{count} candidates; at most {MAX_CANDIDATES} are allowed")]
    TooManyCandidates { count: usize },
    #[error(
        "{seats} seats for {candidates} candidates: give at least 1 seat and no more seats than candidates"
    )]
    Seats { seats: usize, candidates: usize },
    #[error("{what} {text:?} contains {found}, which a .blt file cannot hold: remove it")]
    Text {
        what: &'static str,
        text: String,
        found: &'static str,
    },
    #[error("ballot {ballot} has weight 0: give it at least 1 or leave it out")]
    ZeroWeight { ballot: usize },
    #[error("ballot {ballot} ranks candidate {number}, but there are only {candidates}")]
    UnknownCandidate {
        ballot: usize,
        number: usize,
        candidates: usize,
    },
    #[error("ballot {ballot} ranks candidate {number} twice: keep the first")]
    DuplicatePreference { ballot: usize, number: usize },
    #[error("the ballot weights add up to more than {max}", max = u64::MAX)]
    TooManyPapers,
    #[error("the tie order must list each of the {candidates} candidates exactly once")]
    TieOrder { candidates: usize },
}

impl Election {
    /// Checks the parts and builds the election. The candidates are
    /// numbered from 1 in the order given.
    pub fn new(
        title: impl Into<String>,
        seats: usize,
        candidates: Vec<Candidate>,
        ballots: Vec<Ballot>,
    ) -> Result<Election, ElectionError> {
        let title = title.into();
        check_text("the title", &title)?;
        if candidates.is_empty() {
            return Err(ElectionError::NoCandidates);
        }
        if candidates.len() > MAX_CANDIDATES {
            return Err(ElectionError::TooManyCandidates {
                count: candidates.len(),
            });
        }
        if seats == 0 || seats > candidates.len() {
            return Err(ElectionError::Seats {
                seats,
                candidates: candidates.len(),
            });
        }
        for candidate in &candidates {
            check_text("the candidate name", &candidate.name)?;
        }
        let mut total: u64 = 0;
        let mut seen = vec![false; candidates.len()];
        for (index, ballot) in ballots.iter().enumerate() {
            let number = index + 1;
            if ballot.weight == 0 {
                return Err(ElectionError::ZeroWeight { ballot: number });
            }
            total = total
                .checked_add(ballot.weight)
                .ok_or(ElectionError::TooManyPapers)?;
            for &preference in &ballot.preferences {
                let Some(slot) = seen.get_mut(preference.index()) else {
                    return Err(ElectionError::UnknownCandidate {
                        ballot: number,
                        number: preference.number(),
                        candidates: candidates.len(),
                    });
                };
                if *slot {
                    return Err(ElectionError::DuplicatePreference {
                        ballot: number,
                        number: preference.number(),
                    });
                }
                *slot = true;
            }
            // Clear only what this ballot set: linear in the ballots.
            for &preference in &ballot.preferences {
                if let Some(slot) = seen.get_mut(preference.index()) {
                    *slot = false;
                }
            }
        }
        Ok(Election {
            title,
            seats,
            candidates,
            ballots,
            tie_order: None,
        })
    }

    /// Sets the order in which [`Lot::TieOrder`](crate::Lot::TieOrder)
    /// draws: the first listed is drawn first. It must list every
    /// candidate exactly once (droop's and stv-rs's `[tie]` line).
    pub fn with_tie_order(mut self, order: Vec<CandidateId>) -> Result<Election, ElectionError> {
        let mut seen = vec![false; self.candidates.len()];
        for candidate in &order {
            match seen.get_mut(candidate.index()) {
                Some(slot) if !*slot => *slot = true,
                _ => {
                    return Err(ElectionError::TieOrder {
                        candidates: self.candidates.len(),
                    });
                }
            }
        }
        if order.len() != self.candidates.len() {
            return Err(ElectionError::TieOrder {
                candidates: self.candidates.len(),
            });
        }
        self.tie_order = Some(order);
        Ok(self)
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// How many are to be elected.
    pub fn seats(&self) -> usize {
        self.seats
    }

    /// All candidates, withdrawn ones included, in ballot order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The candidate `id`, if this election has one by that number.
    pub fn candidate(&self, id: CandidateId) -> Option<&Candidate> {
        self.candidates.get(id.index())
    }

    /// Every candidate's id, in ballot order.
    pub fn candidate_ids(&self) -> impl Iterator<Item = CandidateId> + '_ {
        (0..self.candidates.len()).filter_map(CandidateId::from_index)
    }

    pub fn ballots(&self) -> &[Ballot] {
        &self.ballots
    }

    /// The explicit tie order, if one was given.
    pub fn tie_order(&self) -> Option<&[CandidateId]> {
        self.tie_order.as_deref()
    }
}

/// Names and the title are written between `"` on one line, so they may
/// hold neither.
pub(crate) fn check_text(what: &'static str, text: &str) -> Result<(), ElectionError> {
    let found = if text.contains('"') {
        "a double quote"
    } else if text.contains(['\n', '\r']) {
        "a line break"
    } else {
        return Ok(());
    };
    Err(ElectionError::Text {
        what,
        text: text.to_owned(),
        found,
    })
}
