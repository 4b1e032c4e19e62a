//! The `.blt` reader and writer as a table: each input with the canonical
//! form it reads to, or the error it gets (which says the line).

use center_stv::{Ballot, Candidate, CandidateId, Election, ElectionError};
use expect_test::{Expect, expect};

fn check(input: &str, expected: Expect) {
    let actual = match Election::parse_blt(input) {
        Ok(election) => election.to_blt(),
        Err(e) => format!("error: {e}"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn canonical_input_reads_and_writes_unchanged() {
    check(
        "3 2\n4 1 2 0\n2 3 0\n1 2 3 1 0\n0\n\"Ann\"\n\"Bob\"\n\"Cy\"\n\"Vote\"\n",
        expect![[r#"
            3 2
            4 1 2 0
            2 3 0
            1 2 3 1 0
            0
            "Ann"
            "Bob"
            "Cy"
            "Vote"
        "#]],
    );
}

#[test]
fn lenient_layouts_read_to_the_canonical_form() {
    // A byte-order mark, CRLF, blank lines, droop's comments (also across
    // lines and inside a line), several names on a line, no title.
    check(
        "\u{feff}2 1\r\n\r\n/* ballots\r\n follow */ 3 1 /* ann */ 0\r\n2 2 1 0\r\n0\r\n\"Ann /* not a comment */\" \"Bob\"\r\n",
        expect![[r#"
            2 1
            3 1 0
            2 2 1 0
            0
            "Ann /* not a comment */"
            "Bob"
            ""
        "#]],
    );
    // The `0` line may be left out before the names; spaces inside quotes stay.
    check(
        "2 1\n1 2 0\n\" Ann \"\n\"Bob\"\n\"T\"",
        expect![[r#"
            2 1
            1 2 0
            0
            " Ann "
            "Bob"
            "T"
        "#]],
    );
}

#[test]
fn withdrawn_lines_and_options_are_read() {
    check(
        "4 2\n-2 -4\n[tie 4 3 2 1]\n3 1 2 0\n0\n\"A\"\n\"B\"\n\"C\"\n\"D\"\n\"T\"\n",
        expect![[r#"
            4 2
            -2
            -4
            [tie 4 3 2 1]
            3 1 2 0
            0
            "A"
            "B"
            "C"
            "D"
            "T"
        "#]],
    );
    // stv-rs's and droop's newer layout: nicknames, also in the ballots.
    check(
        "3 1\n[nick apple banana cherry]\n[withdrawn banana]\n[tie cherry banana apple]\n3 apple banana 0\n2 cherry 1 0\n0\n\"Apple\"\n\"Banana\"\n\"Cherry\"\n\"Fruit\"\n",
        expect![[r#"
            3 1
            -2
            [tie 3 2 1]
            3 1 2 0
            2 3 1 0
            0
            "Apple"
            "Banana"
            "Cherry"
            "Fruit"
        "#]],
    );
}

#[test]
fn a_later_mention_of_a_ranked_candidate_is_dropped() {
    check(
        "3 1\n5 1 2 1 3 2 0\n0\n\"A\"\n\"B\"\n\"C\"\n\"T\"\n",
        expect![[r#"
            3 1
            5 1 2 3 0
            0
            "A"
            "B"
            "C"
            "T"
        "#]],
    );
}

#[test]
fn errors_name_the_line_and_what_to_do() {
    let ok_tail = "0\n\"A\"\n\"B\"\n\"T\"\n";
    let with = |middle: &str| format!("2 1\n{middle}{ok_tail}");
    check(
        "",
        expect!["error: line 1: the file is empty: a .blt file starts with `<candidates> <seats>`"],
    );
    check(
        " \n/* only a comment */\n",
        expect!["error: line 1: the file is empty: a .blt file starts with `<candidates> <seats>`"],
    );
    check(
        "2\n",
        expect!["error: line 1: expected `<candidates> <seats>`, found `2`"],
    );
    check(
        "two 1\n",
        expect!["error: line 1: expected `<candidates> <seats>`, found `two 1`"],
    );
    check(
        "0 1\n",
        expect!["error: line 1: an election needs at least one candidate"],
    );
    check(
        "1001 1\n",
        expect!["error: line 1: 1001 candidates; at most 1000 are allowed"],
    );
    check(
        "2 0\n",
        expect![
            "error: line 1: 0 seats for 2 candidates: give at least 1 seat and no more seats than candidates"
        ],
    );
    check(
        "2 3\n",
        expect![
            "error: line 1: 3 seats for 2 candidates: give at least 1 seat and no more seats than candidates"
        ],
    );
    check(
        &with("-3\n"),
        expect![
            "error: line 2: `-3` is not a withdrawn candidate: write `-N` with N from 1 to the number of candidates"
        ],
    );
    check(
        &with("[weight 2]\n"),
        expect![
            "error: line 2: unknown option `[weight]`: the options read here are [nick ...], [withdrawn ...] and [tie ...]"
        ],
    );
    check(
        &with("[nick a b\n"),
        expect!["error: line 2: an option line must end with `]`"],
    );
    check(
        &with("[nick a]\n"),
        expect!["error: line 2: [nick] gives 1 nicknames for 2 candidates: give one per candidate"],
    );
    check(
        &with("[nick a 2]\n"),
        expect![[
            r#"error: line 2: `2` cannot be a nickname: use letters, not only digits, and none of `"`, `=`, `[`, `]` or a leading `-`"#
        ]],
    );
    check(
        &with("[nick a a]\n"),
        expect!["error: line 2: nickname `a` is given twice"],
    );
    check(
        &with("[tie 1]\n"),
        expect!["error: line 2: the tie order must list each of the 2 candidates exactly once"],
    );
    check(
        &with("[tie 1 1]\n"),
        expect!["error: line 2: the tie order must list each of the 2 candidates exactly once"],
    );
    check(
        &with("1 1 0\n-2\n"),
        expect![
            "error: line 3: `-2` after the first ballot: withdrawn candidates and options come before the ballots"
        ],
    );
    check(
        &with("1 1=2 0\n"),
        expect![
            "error: line 2: `1=2` ranks candidates equally, which Scottish STV cannot count: give each preference its own rank"
        ],
    );
    check(
        &with("1 1 = 2 0\n"),
        expect![
            "error: line 2: `=` ranks candidates equally, which Scottish STV cannot count: give each preference its own rank"
        ],
    );
    check(
        &with("0 1 0\n"),
        expect![
            "error: line 2: a ballot of weight 0: a line `0` alone ends the ballots; other weights start at 1"
        ],
    );
    check(
        &with("x 1 0\n"),
        expect![
            "error: line 2: expected a ballot `<weight> <preferences...> 0` with a whole weight from 1 to 18446744073709551615, found `x`"
        ],
    );
    check(
        &with("18446744073709551616 1 0\n"),
        expect![
            "error: line 2: expected a ballot `<weight> <preferences...> 0` with a whole weight from 1 to 18446744073709551615, found `18446744073709551616`"
        ],
    );
    check(
        &with("18446744073709551615 1 0\n1 2 0\n"),
        expect!["error: line 3: the ballot weights add up to more than 18446744073709551615"],
    );
    check(
        &with("1 3 0\n"),
        expect!["error: line 2: `3` is not a candidate: expected a number from 1 to 2"],
    );
    check(
        &with("1 -1 0\n"),
        expect!["error: line 2: `-1` is not a candidate: expected a number from 1 to 2"],
    );
    check(
        &with("[nick a b]\n1 c 0\n"),
        expect![
            "error: line 3: `c` is not a candidate: expected a number from 1 to 2 or a nickname"
        ],
    );
    check(
        &with("1 1 2\n"),
        expect!["error: line 2: a ballot must end with ` 0`"],
    );
    check(
        &with("1 1 0 2 0\n"),
        expect!["error: line 2: `2` after the 0 that ends the ballot: put one ballot per line"],
    );
    check(
        "2 1\n0\n\"A\"\nB\n",
        expect!["error: line 4: expected a name between double quotes, found `B`"],
    );
    check(
        "2 1\n0\n\"A\"\n\"B\n\"T\"\n",
        expect![[r#"error: line 4: a quoted name must close its `"` on the same line"#]],
    );
    check(
        "2 1\n0\n\"A\" \"B",
        expect![[r#"error: line 3: a quoted name must close its `"` on the same line"#]],
    );
    check(
        "2 1\n1 1 0\n0\n\"A\"\n",
        expect!["error: line 4: expected 2 candidate names, found 1"],
    );
    check(
        "2 1\n1 1 0\n",
        expect!["error: line 2: expected 2 candidate names, found 0"],
    );
    check(
        "2 1\n0\n\"A\"\n\"B\"\n\"T\"\n\"more\"\n",
        expect![[
            r#"error: line 6: unexpected `"more"` after the title: the file ends with the title"#
        ]],
    );
    check(
        "2 1\n/* open\n0\n",
        expect!["error: line 2: a `/*` comment is never closed with `*/`"],
    );
}

#[test]
fn elections_built_in_code_are_checked() {
    let a = || Candidate::new("A");
    let id = |n| CandidateId::from_number(n).unwrap();
    let new = |candidates, ballots| Election::new("T", 1, candidates, ballots);
    assert_eq!(new(vec![], vec![]), Err(ElectionError::NoCandidates));
    assert_eq!(
        new(vec![Candidate::new("say \"hi\"")], vec![])
            .unwrap_err()
            .to_string(),
        r#"the candidate name "say \"hi\"" contains a double quote, which a .blt file cannot hold: remove it"#
    );
    assert_eq!(
        Election::new("two\nlines", 1, vec![a()], vec![])
            .unwrap_err()
            .to_string(),
        r#"the title "two\nlines" contains a line break, which a .blt file cannot hold: remove it"#
    );
    assert_eq!(
        new(vec![a()], vec![Ballot::new(0, vec![])]),
        Err(ElectionError::ZeroWeight { ballot: 1 })
    );
    assert_eq!(
        new(vec![a()], vec![Ballot::new(1, vec![id(2)])])
            .unwrap_err()
            .to_string(),
        "ballot 1 ranks candidate 2, but there are only 1"
    );
    assert_eq!(
        new(
            vec![a(), a()],
            vec![Ballot::new(1, vec![id(2), id(1), id(2)])]
        ),
        Err(ElectionError::DuplicatePreference {
            ballot: 1,
            number: 2
        })
    );
    assert_eq!(
        new(
            vec![a()],
            vec![Ballot::new(u64::MAX, vec![]), Ballot::new(1, vec![])]
        ),
        Err(ElectionError::TooManyPapers)
    );
    let too_many = (0..1001).map(|_| a()).collect();
    assert_eq!(
        Election::new("T", 1, too_many, vec![]),
        Err(ElectionError::TooManyCandidates { count: 1001 })
    );
}
