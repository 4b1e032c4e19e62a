//! Property tests: any election writes to a `.blt` file that reads back to
//! it, and any election counts to a result that keeps the count's
//! invariants (`center_stv::fuzz::check_count`), whatever the weights.

use center_stv::{Ballot, Candidate, CandidateId, CountConfig, Election, Lot, count, fuzz};
use proptest::prelude::*;
use proptest::sample::subsequence;

/// Names and titles: anything but `"` and line breaks, spaces included.
fn text() -> impl Strategy<Value = String> {
    "[^\"\r\n]{0,12}"
}

/// `items` in an order drawn from `seed` (Fisher–Yates).
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    for i in (1..items.len()).rev() {
        let j = (seed.rotate_left(i as u32) as usize) % (i + 1);
        items.swap(i, j);
    }
    items
}

fn ids(candidates: usize) -> Vec<CandidateId> {
    (0..candidates)
        .filter_map(CandidateId::from_index)
        .collect()
}

/// A ballot over `candidates`: a weight and distinct preferences in any
/// order (possibly none).
fn ballot(candidates: usize, max_weight: u64) -> impl Strategy<Value = Ballot> {
    (
        1..=max_weight,
        subsequence(ids(candidates), 0..=candidates),
        any::<u64>(),
    )
        .prop_map(|(weight, preferences, seed)| Ballot::new(weight, shuffled(preferences, seed)))
}

fn election(max_weight: u64) -> impl Strategy<Value = Election> {
    (1usize..8).prop_flat_map(move |candidates| {
        (
            text(),
            1..=candidates,
            prop::collection::vec((text(), any::<bool>()), candidates),
            prop::collection::vec(ballot(candidates, max_weight), 0..24),
            prop::option::of(any::<u64>().prop_map(move |seed| shuffled(ids(candidates), seed))),
        )
            .prop_map(|(title, seats, names, ballots, tie)| {
                let candidates = names
                    .into_iter()
                    .map(|(name, withdrawn)| {
                        if withdrawn {
                            Candidate::withdrawn(name)
                        } else {
                            Candidate::new(name)
                        }
                    })
                    .collect();
                let election =
                    Election::new(title, seats, candidates, ballots).expect("valid parts");
                match tie {
                    Some(order) => election.with_tie_order(order).expect("a permutation"),
                    None => election,
                }
            })
    })
}

proptest! {
    #[test]
    fn blt_round_trips(election in election(u64::MAX / 32)) {
        let text = election.to_blt();
        let again = Election::parse_blt(&text);
        prop_assert_eq!(again.as_ref(), Ok(&election), "{}", text);
        prop_assert_eq!(again.map(|e| e.to_blt()), Ok(text));
    }

    #[test]
    fn counts_keep_their_invariants(
        election in election(12),
        seed in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        for lot in [Lot::Seed(seed.clone()), Lot::TieOrder] {
            let result = count(&election, &CountConfig { lot });
            fuzz::check_count(&election, &result);
        }
    }

    #[test]
    fn huge_weights_count_without_overflow(election in election(u64::MAX / 32)) {
        let result = count(&election, &CountConfig { lot: Lot::TieOrder });
        fuzz::check_count(&election, &result);
    }
}
