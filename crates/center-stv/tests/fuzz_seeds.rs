//! Runs the `blt_parse` fuzz target's body over seed inputs on every
//! `cargo test`: the Glasgow files, their line-boundary prefixes (which
//! reach most error paths), and the small elections of `rules.rs` (which
//! are small enough to be counted too).

use std::fs;

use center_stv::fuzz::blt_parse;

use crate::glasgow::blt_files;

#[test]
fn fuzz_target_holds_on_every_glasgow_file_and_its_prefixes() {
    for path in blt_files() {
        let bytes = fs::read(&path).expect("read a .blt file");
        blt_parse(&bytes);
        let ends: Vec<usize> = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i)
            .collect();
        // The first lines (header, ballots) and the last (names, title),
        // cut at a line end and in the middle of the line.
        let chosen = ends.iter().take(8).chain(ends.iter().rev().take(16));
        for &end in chosen {
            blt_parse(bytes.get(..end).unwrap_or_default());
            blt_parse(bytes.get(..end.saturating_sub(3)).unwrap_or_default());
        }
    }
}

#[test]
fn fuzz_target_holds_on_small_hostile_inputs() {
    let inputs: [&[u8]; 12] = [
        b"",
        b"\xff\xfe",
        b"1 1\n0\n\"A\"\n",
        b"2 2\n1 1 0\n1 2 0\n0\n\"A\" \"B\" \"T\"",
        b"3 1\n[nick a b c]\n[withdrawn a]\n9 a b c 0\n2 c 0\n0\n\"A\"\n\"B\"\n\"C\"\n",
        b"3 1\n-1 -2 -3\n5 1 2 3 0\n0\n\"A\"\n\"B\"\n\"C\"\n",
        b"2 1\n18446744073709551615 1 0\n0\n\"A\"\n\"B\"\n",
        b"2 1\n9223372036854775807 1 0\n9223372036854775807 2 0\n0\n\"A\"\n\"B\"\n",
        b"4 3\n1 1 0\n1 2 0\n1 3 0\n1 4 0\n0\n\"A\"\n\"B\"\n\"C\"\n\"D\"\n",
        b"2 1\n1 1 1 1 1 1 0\n0\n\"A\"\n\"B\"\n",
        b"2 1\n/* */ 1 /**/ 2 0 /*\n*/0\n\"A\"\n\"B\"\n",
        b"2 1\n1 2 0\n\"A\"\n\"\"\n\"\"\n",
    ];
    for input in inputs {
        blt_parse(input);
    }
}
