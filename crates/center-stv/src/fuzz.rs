//! The body of the `blt_parse` fuzz target (`fuzz/fuzz_targets/blt_parse.rs`),
//! kept here so that the tests run it over the Glasgow files and their
//! mutations as a seed corpus.
//!
//! The oracle: whatever the reader accepts, the writer writes in a form the
//! reader reads back to the same election, and writing is idempotent; a
//! small election also counts, under both kinds of lot, to a result that
//! keeps the count's invariants. Panics here are findings.

use crate::count::{CountConfig, Lot, count};
use crate::election::{CandidateId, Election};
use crate::record::{Count, ElectedBy, State};
use crate::votes::Votes;

/// Elections larger than this are parsed and written but not counted, so
/// that each input stays fast.
const COUNT_CANDIDATES: usize = 24;
const COUNT_BALLOTS: usize = 512;

/// Parses `data` as a `.blt` file and checks the round trip and, if it is
/// small, the count.
pub fn blt_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(election) = Election::parse_blt(text) else {
        return;
    };
    let written = election.to_blt();
    match Election::parse_blt(&written) {
        Ok(again) => {
            assert_eq!(again, election, "the canonical form reads back differently");
            assert_eq!(again.to_blt(), written, "writing is not idempotent");
        }
        Err(e) => panic!("the canonical form does not read back: {e}\n{written}"),
    }
    if election.candidates().len() <= COUNT_CANDIDATES && election.ballots().len() <= COUNT_BALLOTS
    {
        for lot in [Lot::Seed(b"fuzz".to_vec()), Lot::TieOrder] {
            let config = CountConfig { lot };
            let result = count(&election, &config);
            check_count(&election, &result);
            assert_eq!(
                count(&election, &config),
                result,
                "the count is not deterministic"
            );
        }
    }
}

/// The invariants every count keeps, whatever the ballots.
pub fn check_count(election: &Election, result: &Count) {
    let papers: u64 = election.ballots().iter().map(|b| b.weight()).sum();
    assert_eq!(
        result.valid() + result.invalid(),
        papers,
        "papers lost before counting"
    );
    let seats = u64::try_from(election.seats()).unwrap_or(u64::MAX);
    assert_eq!(
        result.quota(),
        Votes::whole(result.valid() / (seats + 1) + 1)
    );

    let standing = election
        .candidates()
        .iter()
        .filter(|c| !c.is_withdrawn())
        .count();
    let elected = result.elected();
    assert_eq!(
        elected.len(),
        election.seats().min(standing),
        "seats left unfilled"
    );
    let mut sorted = elected.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), elected.len(), "someone elected twice");

    let valid = Votes::whole(result.valid());
    let mut previous: Option<(Votes, Votes)> = None;
    let mut in_stages: Vec<CandidateId> = Vec::new();
    for (index, stage) in result.stages().iter().enumerate() {
        assert_eq!(stage.number(), index + 1);
        let held: Votes = election.candidate_ids().map(|id| stage.votes(id)).sum();
        assert_eq!(
            held + stage.non_transferable() + stage.lost(),
            valid,
            "votes created or lost"
        );
        if let Some((nt, lost)) = previous {
            assert!(stage.non_transferable() >= nt && stage.lost() >= lost);
        }
        previous = Some((stage.non_transferable(), stage.lost()));
        for &(id, by) in stage.elected() {
            assert_eq!(stage.state(id), Some(State::Elected));
            if by == ElectedBy::Quota {
                assert!(stage.votes(id) >= result.quota(), "elected below the quota");
            }
            in_stages.push(id);
        }
        for id in election.candidate_ids() {
            let withdrawn = election.candidate(id).is_some_and(|c| c.is_withdrawn());
            assert_eq!(stage.state(id) == Some(State::Withdrawn), withdrawn);
        }
    }
    assert_eq!(
        in_stages, elected,
        "the stages elect others than the result"
    );
}
