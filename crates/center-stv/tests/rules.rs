//! The rules of the count (SSI 2007/42 rr. 45–52) as tables: each case is a
//! small `.blt` election whose transcript was worked out by hand first.
//! Figures are at five decimals; `*` marks an elected candidate, and
//! excluded or withdrawn candidates are not listed.

use center_stv::{CandidateId, CountConfig, Election, Lot, count, fuzz};
use expect_test::{Expect, expect};

fn check(blt: &str, lot: Lot, expected: Expect) {
    let election = Election::parse_blt(blt).expect("the test election parses");
    let result = count(&election, &CountConfig { lot });
    fuzz::check_count(&election, &result);
    expected.assert_eq(&result.transcript(&election));
}

fn seed(text: &str) -> Lot {
    Lot::Seed(text.as_bytes().to_vec())
}

#[test]
fn largest_surplus_goes_first_even_if_elected_later() {
    // A (surplus 15) and B (5) are elected at once; A's surplus elects C
    // with 10, which goes before B's older but smaller one. Every paper C
    // holds moves, those from A at 0.375 × 10/35 = 0.10714 (inclusive
    // Gregory), and find no one after C.
    check(
        r#"5 4
40 1 3 0
30 2 4 0
20 3 5 0
18 4 0
12 5 0
0
"A" "B" "C" "D" "E"
"#,
        seed("center"),
        expect![[r#"
            quota 25.00000; 120 valid papers, 0 invalid
            1 first preferences: A* 40.00000 B* 30.00000 C 20.00000 D 18.00000 E 12.00000; non-transferable 0.00000, lost 0.00000
              elected A (quota)
              elected B (quota)
            2 surplus of A (15.00000): A* 25.00000 B* 30.00000 C* 35.00000 D 18.00000 E 12.00000; non-transferable 0.00000, lost 0.00000
              elected C (quota)
            3 surplus of C (10.00000): A* 25.00000 B* 30.00000 C* 25.00000 D 18.00000 E 17.71420; non-transferable 4.28560, lost 0.00020
            4 surplus of B (5.00000): A* 25.00000 B* 25.00000 C* 25.00000 D 22.99980 E 17.71420; non-transferable 4.28560, lost 0.00040
            5 exclusion of E (17.71420): A* 25.00000 B* 25.00000 C* 25.00000 D* 22.99980; non-transferable 21.99980, lost 0.00040
              elected D (last vacancies)
            elected: A, B, C, D
        "#]],
    );
}

#[test]
fn transfer_values_are_truncated_per_paper_at_five_decimals() {
    // A's surplus 34/60 = 0.566666… is kept as 0.56666 (60 papers: 33.99960,
    // 0.00040 lost). B then passes on its own 20 papers at
    // 27.99960/53.99960 = 0.51851 and A's 60 at 0.56666 × that = 0.29382.
    check(
        r#"4 3
60 1 2 0
20 2 3 0
12 3 0
8 4 0
0
"A" "B" "C" "D"
"#,
        seed("center"),
        expect![[r#"
            quota 26.00000; 100 valid papers, 0 invalid
            1 first preferences: A* 60.00000 B 20.00000 C 12.00000 D 8.00000; non-transferable 0.00000, lost 0.00000
              elected A (quota)
            2 surplus of A (34.00000): A* 26.00000 B* 53.99960 C 12.00000 D 8.00000; non-transferable 0.00000, lost 0.00040
              elected B (quota)
            3 surplus of B (27.99960): A* 26.00000 B* 26.00000 C 22.37020 D 8.00000; non-transferable 17.62920, lost 0.00060
            4 exclusion of D (8.00000): A* 26.00000 B* 26.00000 C* 22.37020; non-transferable 25.62920, lost 0.00060
              elected C (last vacancies)
            elected: A, B, C
        "#]],
    );
}

#[test]
fn exclusion_tie_looks_back_to_the_most_recent_difference() {
    // B and C tie on 8 at stage 3. At stage 2 B led (8 to 6), at stage 1
    // C did (6 to 5): the most recent difference counts, so C goes.
    check(
        r#"5 1
12 1 0
5 2 1 0
6 3 0
3 4 2 0
2 5 3 0
2 5 0
0
"A" "B" "C" "D" "E"
"#,
        seed("center"),
        expect![[r#"
            quota 16.00000; 30 valid papers, 0 invalid
            1 first preferences: A 12.00000 B 5.00000 C 6.00000 D 3.00000 E 4.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of D (3.00000): A 12.00000 B 8.00000 C 6.00000 E 4.00000; non-transferable 0.00000, lost 0.00000
            3 exclusion of E (4.00000): A 12.00000 B 8.00000 C 8.00000; non-transferable 2.00000, lost 0.00000
            4 exclusion of C (8.00000): A 12.00000 B 8.00000; non-transferable 10.00000, lost 0.00000
              tie for exclusion between B, C: look-back to stage 2 chose C
            5 exclusion of B (8.00000): A* 17.00000; non-transferable 13.00000, lost 0.00000
              elected A (last vacancies)
            elected: A
        "#]],
    );
}

#[test]
fn equal_surpluses_and_equal_quota_holders_look_back() {
    // X's exclusion brings A and B to 21 each. A led at stage 1 (19 to 18),
    // so A is listed first and A's surplus goes first.
    check(
        r#"5 3
19 1 3 0
18 2 4 0
18 3 0
16 4 0
2 5 1 0
3 5 2 0
0
"A" "B" "C" "D" "X"
"#,
        seed("center"),
        expect![[r#"
            quota 20.00000; 76 valid papers, 0 invalid
            1 first preferences: A 19.00000 B 18.00000 C 18.00000 D 16.00000 X 5.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of X (5.00000): A* 21.00000 B* 21.00000 C 18.00000 D 16.00000; non-transferable 0.00000, lost 0.00000
              tie for election order between A, B: look-back to stage 1 chose A
              elected A (quota)
              elected B (quota)
            3 surplus of A (1.00000): A* 20.00000 B* 21.00000 C 18.90459 D 16.00000; non-transferable 0.09522, lost 0.00019
              tie for surplus between A, B: look-back to stage 1 chose A
            4 surplus of B (1.00000): A* 20.00000 B* 20.00000 C 18.90459 D 16.85698; non-transferable 0.23805, lost 0.00038
            5 exclusion of D (16.85698): A* 20.00000 B* 20.00000 C* 18.90459; non-transferable 17.09503, lost 0.00038
              elected C (last vacancies)
            elected: A, B, C
        "#]],
    );
}

/// B and C are equal at every stage.
const ALWAYS_TIED: &str = r#"3 1
5 1 0
3 2 1 0
3 3 0
0
"A" "B" "C"
"#;

#[test]
fn a_tie_at_every_stage_is_broken_by_the_seeded_lot() {
    // At stage 2 C draws SHA-256("center" ‖ 00000002 ‖ 00000003) = 1bed…,
    // below B's 545b…, so C is excluded (computed with Python's hashlib).
    check(
        ALWAYS_TIED,
        seed("center"),
        expect![[r#"
            quota 6.00000; 11 valid papers, 0 invalid
            1 first preferences: A 5.00000 B 3.00000 C 3.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of C (3.00000): A 5.00000 B 3.00000; non-transferable 3.00000, lost 0.00000
              tie for exclusion between B, C: lot among B, C chose C
            3 exclusion of B (3.00000): A* 8.00000; non-transferable 3.00000, lost 0.00000
              elected A (last vacancies)
            elected: A
        "#]],
    );
    // droop's default draws the lowest-numbered candidate, B.
    check(
        ALWAYS_TIED,
        Lot::TieOrder,
        expect![[r#"
            quota 6.00000; 11 valid papers, 0 invalid
            1 first preferences: A 5.00000 B 3.00000 C 3.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of B (3.00000): A* 8.00000 C 3.00000; non-transferable 0.00000, lost 0.00000
              tie for exclusion between B, C: lot among B, C chose B
              elected A (quota)
            elected: A
        "#]],
    );
    // A [tie] line puts C first.
    let with_order = ALWAYS_TIED.replacen("3 1\n", "3 1\n[tie 3 2 1]\n", 1);
    check(
        &with_order,
        Lot::TieOrder,
        expect![[r#"
            quota 6.00000; 11 valid papers, 0 invalid
            1 first preferences: A 5.00000 B 3.00000 C 3.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of C (3.00000): A 5.00000 B 3.00000; non-transferable 3.00000, lost 0.00000
              tie for exclusion between B, C: lot among B, C chose C
            3 exclusion of B (3.00000): A* 8.00000; non-transferable 3.00000, lost 0.00000
              elected A (last vacancies)
            elected: A
        "#]],
    );
}

#[test]
fn the_lot_is_only_among_those_the_look_back_left() {
    // B, C and D tie on 5 at stage 2; at stage 1 D had 5 and B and C 4, so
    // D is safe and the lot is between B and C.
    check(
        r#"5 1
10 1 0
4 2 1 0
4 3 1 0
5 4 0
1 5 2 1 0
1 5 3 1 0
0
"A" "B" "C" "D" "E"
"#,
        seed("center"),
        expect![[r#"
            quota 13.00000; 25 valid papers, 0 invalid
            1 first preferences: A 10.00000 B 4.00000 C 4.00000 D 5.00000 E 2.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of E (2.00000): A 10.00000 B 5.00000 C 5.00000 D 5.00000; non-transferable 0.00000, lost 0.00000
            3 exclusion of C (5.00000): A* 15.00000 B 5.00000 D 5.00000; non-transferable 0.00000, lost 0.00000
              tie for exclusion between B, C, D: lot among B, C chose C
              elected A (quota)
            elected: A
        "#]],
    );
}

#[test]
fn lot_digest_matches_an_independent_implementation() {
    // Python: hashlib.sha256(seed + struct.pack('>I', stage) + struct.pack('>I', n)).
    let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let b = CandidateId::from_number(2).unwrap();
    let c = CandidateId::from_number(3).unwrap();
    let a = CandidateId::from_number(1).unwrap();
    expect!["545b1b9f6848eccb5b89cf4780975a61b49ba5f5105ccc57c30b671d209d321c"]
        .assert_eq(&hex(Lot::digest(b"center", 2, b)));
    expect!["1bedf0141e264ef02d4b11d6b90a1ffaf41d1f98780d8dd99b1447da220156bb"]
        .assert_eq(&hex(Lot::digest(b"center", 2, c)));
    expect!["577fcad6fcd8592bf8b3b70c5ed4981eb1b2f7b7ac7ae355b930aa302ff85a55"]
        .assert_eq(&hex(Lot::digest(b"", 1, a)));
}

#[test]
fn last_vacancies_elect_all_continuing_in_ballot_order() {
    // After C's exclusion A and B are the last two for two seats: both are
    // elected then (rule 52), in ballot order, though only B has a quota.
    check(
        r#"4 2
30 1 0
25 2 0
24 3 2 0
21 4 0
0
"A" "B" "C" "D"
"#,
        seed("center"),
        expect![[r#"
            quota 34.00000; 100 valid papers, 0 invalid
            1 first preferences: A 30.00000 B 25.00000 C 24.00000 D 21.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of D (21.00000): A 30.00000 B 25.00000 C 24.00000; non-transferable 21.00000, lost 0.00000
            3 exclusion of C (24.00000): A* 30.00000 B* 49.00000; non-transferable 21.00000, lost 0.00000
              elected A (last vacancies)
              elected B (last vacancies)
            elected: A, B
        "#]],
    );
}

#[test]
fn a_candidate_with_exactly_the_quota_has_no_surplus_stage() {
    check(
        r#"3 2
4 1 0
3 2 0
2 3 0
0
"A" "B" "C"
"#,
        seed("center"),
        expect![[r#"
            quota 4.00000; 9 valid papers, 0 invalid
            1 first preferences: A* 4.00000 B 3.00000 C 2.00000; non-transferable 0.00000, lost 0.00000
              elected A (quota)
            2 exclusion of C (2.00000): A* 4.00000 B* 3.00000; non-transferable 2.00000, lost 0.00000
              elected B (last vacancies)
            elected: A, B
        "#]],
    );
}

#[test]
fn withdrawn_candidates_are_skipped_and_blank_papers_are_invalid() {
    // B withdrew: "3 2 3" counts for C, "1 2" ranks no one standing and,
    // like the 3 blank papers, is not a valid vote nor part of the quota.
    check(
        r#"3 1
-2
4 1 0
3 2 3 0
2 3 0
1 2 0
3 0
0
"A" "B" "C"
"#,
        seed("center"),
        expect![[r#"
            quota 5.00000; 9 valid papers, 4 invalid
            1 first preferences: A 4.00000 C* 5.00000; non-transferable 0.00000, lost 0.00000
              elected C (quota)
            elected: C
        "#]],
    );
}

#[test]
fn seats_beyond_the_standing_candidates_stay_empty() {
    check(
        r#"3 3
-1
2 1 2 0
1 3 0
0
"A" "B" "C"
"#,
        seed("center"),
        expect![[r#"
            quota 1.00000; 3 valid papers, 0 invalid
            1 first preferences: B* 2.00000 C* 1.00000; non-transferable 0.00000, lost 0.00000
              elected B (quota)
              elected C (quota)
            elected: B, C
        "#]],
    );
}

#[test]
fn one_seat_is_instant_runoff() {
    // The quota is a majority; A leads on first preferences, but C's
    // papers give B one.
    check(
        r#"3 1
8 1 0
7 2 0
4 3 2 0
0
"A" "B" "C"
"#,
        seed("center"),
        expect![[r#"
            quota 10.00000; 19 valid papers, 0 invalid
            1 first preferences: A 8.00000 B 7.00000 C 4.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of C (4.00000): A 8.00000 B* 11.00000; non-transferable 0.00000, lost 0.00000
              elected B (quota)
            elected: B
        "#]],
    );
}

#[test]
fn no_valid_papers_still_fills_the_seats() {
    check(
        "2 1\n0\n\"A\" \"B\"\n",
        Lot::TieOrder,
        expect![[r#"
            quota 1.00000; 0 valid papers, 0 invalid
            1 first preferences: A 0.00000 B 0.00000; non-transferable 0.00000, lost 0.00000
            2 exclusion of A (0.00000): B* 0.00000; non-transferable 0.00000, lost 0.00000
              tie for exclusion between A, B: lot among A, B chose A
              elected B (last vacancies)
            elected: B
        "#]],
    );
}
