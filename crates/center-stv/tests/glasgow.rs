//! Every Glasgow 2007 ward (`tests/data/glasgow-2007/`) counted and held
//! against droop's dump of the same count: the same candidates elected in
//! the same order, and droop's quota, non-transferable and every
//! candidate's votes (five decimals) at every row that maps onto a stage.
//!
//! droop's round `r` is stage `r + 1`. Its rows: `begin` (first
//! preferences), `elect` (one candidate elected), `unpend` (a surplus about
//! to move: the stage's action), `defeat` (a candidate excluded, with the
//! figures from before the transfer), `transfer` (the figures after it),
//! `end` (the final state).

use std::fs;
use std::path::{Path, PathBuf};

use center_stv::{
    Action, CandidateId, Count, CountConfig, Election, Lot, State, TieRule, count, fuzz,
};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/glasgow-2007");

/// The wards' ballot files, sorted; there are 21.
pub fn blt_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(DATA)
        .expect("read tests/data/glasgow-2007")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "blt"))
        .collect();
    files.sort();
    files
}

/// One row of droop's dump.
struct Row {
    round: String,
    action: String,
    quota: String,
    non_transferable: String,
    /// Name, state letter and votes of each candidate, in ballot order.
    candidates: Vec<(String, String, String)>,
}

fn read_dump(path: &Path) -> Vec<Row> {
    let text = fs::read_to_string(path).expect("read a droop dump");
    text.lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 4 && cells[1] != "log" && cells[1] != "round")
        .map(|cells| Row {
            round: cells[0].to_owned(),
            action: cells[1].to_owned(),
            quota: cells[2].to_owned(),
            non_transferable: cells[3].to_owned(),
            candidates: cells[4..]
                .chunks(3)
                .map(|c| (c[0].to_owned(), c[1].to_owned(), c[2].to_owned()))
                .collect(),
        })
        .collect()
}

/// `name` with its words joined by single spaces.
fn spaced(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What one ward's comparison found.
struct Outcome {
    mismatches: Vec<String>,
    /// Rows whose figures were compared.
    rows_compared: usize,
}

fn compare(election: &Election, result: &Count, rows: &[Row]) -> Outcome {
    let mut mismatches = Vec::new();
    let mut rows_compared = 0;
    // droop's reader joins a name's words with single spaces; Canal's file
    // has "Ellen   Hurcombe", which we keep as written.
    let name = |id: CandidateId| spaced(election.candidate(id).map_or("?", |c| c.name()));
    let names: Vec<String> = election.candidate_ids().map(name).collect();
    let stages = result.stages();
    let mut droop_elected: Vec<String> = Vec::new();
    let mut previous: Option<&Row> = None;
    let mut transfers = 0;

    // After droop's last transfer come its bookkeeping rows: `unpend` for a
    // surplus left untransferred because the seats are filled, `defeat` for
    // each candidate left unelected. They show the last stage's figures.
    let last_transfer = rows.iter().rposition(|row| row.action == "transfer");
    for (index, row) in rows.iter().enumerate() {
        let label = format!("round {} {}", row.round, row.action);
        let closing = last_transfer.is_none_or(|last| index > last);
        let row_names: Vec<String> = row.candidates.iter().map(|(n, _, _)| spaced(n)).collect();
        if row_names != names {
            mismatches.push(format!("{label}: droop's candidates are {row_names:?}"));
            continue;
        }
        // The candidates whose state letter changed since the previous row.
        let changed = |to: &[&str]| -> Vec<String> {
            row.candidates
                .iter()
                .enumerate()
                .filter(|(i, (_, state, _))| {
                    to.contains(&state.as_str())
                        && previous.is_none_or(|p| !to.contains(&p.candidates[*i].1.as_str()))
                })
                .map(|(_, (n, _, _))| spaced(n))
                .collect()
        };
        let round: Option<usize> = row.round.parse().ok();
        // The stage whose end figures this row shows.
        let figures_of = match (row.action.as_str(), round) {
            ("begin", Some(0)) => Some(0),
            ("defeat" | "unpend", Some(_)) if closing => stages.len().checked_sub(1),
            ("defeat" | "unpend", Some(r)) if r > 0 => Some(r - 1),
            ("elect" | "transfer", Some(r)) => Some(r),
            ("end", None) => stages.len().checked_sub(1),
            _ => {
                mismatches.push(format!("{label}: a row this test does not know"));
                None
            }
        };
        match (row.action.as_str(), round) {
            ("elect", _) => droop_elected.extend(changed(&["e", "E"])),
            ("transfer", _) => transfers += 1,
            ("defeat", _) if closing => {
                for moved in changed(&["D"]) {
                    let ours = names
                        .iter()
                        .position(|n| *n == moved)
                        .and_then(CandidateId::from_index)
                        .and_then(|id| stages.last().and_then(|s| s.state(id)));
                    if ours != Some(State::Continuing) {
                        mismatches.push(format!(
                            "{label}: droop leaves {moved} out, ours is {ours:?}"
                        ));
                    }
                }
            }
            ("unpend", _) if closing => {}
            ("unpend" | "defeat", Some(r)) => {
                let moved = if row.action == "unpend" {
                    row.candidates
                        .iter()
                        .enumerate()
                        .filter(|(i, (_, s, _))| {
                            s == "E" && previous.is_some_and(|p| p.candidates[*i].1 == "e")
                        })
                        .map(|(_, (n, _, _))| spaced(n))
                        .collect()
                } else {
                    changed(&["D"])
                };
                let ours = match stages.get(r).map(|s| s.action()) {
                    Some(Action::Surplus { candidate, .. }) if row.action == "unpend" => {
                        vec![name(candidate)]
                    }
                    Some(Action::Exclusion { candidate, .. }) if row.action == "defeat" => {
                        vec![name(candidate)]
                    }
                    other => vec![format!("{other:?}")],
                };
                if moved != ours {
                    mismatches.push(format!("{label}: droop moves {moved:?}, we {ours:?}"));
                }
            }
            _ => {}
        }
        if let Some(stage) = figures_of.and_then(|i| stages.get(i)) {
            rows_compared += 1;
            if row.quota != result.quota().to_string() {
                mismatches.push(format!(
                    "{label}: quota {} vs ours {}",
                    row.quota,
                    result.quota()
                ));
            }
            if row.non_transferable != stage.non_transferable().to_string() {
                mismatches.push(format!(
                    "{label}: non-transferable {} vs ours {}",
                    row.non_transferable,
                    stage.non_transferable()
                ));
            }
            for (id, (n, _, votes)) in election.candidate_ids().zip(&row.candidates) {
                let ours = stage.votes(id).to_string();
                if *votes != ours {
                    mismatches.push(format!("{label}: {n} has {votes} vs ours {ours}"));
                }
            }
        } else if figures_of.is_some() {
            mismatches.push(format!(
                "{label}: we have no such stage ({} stages)",
                stages.len()
            ));
        }
        if row.action == "end"
            && let Some(last) = stages.last()
        {
            for (id, (n, state, _)) in election.candidate_ids().zip(&row.candidates) {
                let ours = last.state(id);
                let agrees = match state.as_str() {
                    "E" => ours == Some(State::Elected),
                    "D" => matches!(ours, Some(State::Excluded | State::Continuing)),
                    _ => false,
                };
                if !agrees {
                    mismatches.push(format!("{label}: {n} is {state} vs ours {ours:?}"));
                }
            }
        }
        previous = Some(row);
    }

    let ours: Vec<String> = result.elected().iter().map(|&id| name(id)).collect();
    if droop_elected != ours {
        mismatches.push(format!("elected: droop {droop_elected:?}, ours {ours:?}"));
    }
    if transfers + 1 != stages.len() {
        mismatches.push(format!(
            "droop has {} stages, we {}",
            transfers + 1,
            stages.len()
        ));
    }
    Outcome {
        mismatches,
        rows_compared,
    }
}

#[test]
fn every_glasgow_ward_matches_droop_in_order_and_figures() {
    let files = blt_files();
    assert_eq!(files.len(), 21, "the 21 Glasgow wards are in {DATA}");
    let mut failures = Vec::new();
    let mut rows_compared = 0;
    for blt in &files {
        let ward = blt
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_owned();
        let text = fs::read_to_string(blt).expect("read a .blt file");
        let election = Election::parse_blt(&text).unwrap_or_else(|e| panic!("{ward}: {e}"));
        // droop breaks a lot by ballot order; no Glasgow count needs one.
        let result = count(&election, &CountConfig { lot: Lot::TieOrder });
        fuzz::check_count(&election, &result);
        let lots = result
            .stages()
            .iter()
            .flat_map(|s| s.ties())
            .filter(|t| matches!(t.rule, TieRule::Lot { .. }))
            .count();
        assert_eq!(lots, 0, "{ward}: a lot was drawn");
        let rows = read_dump(&blt.with_extension("droop-dump.tsv"));
        assert!(rows.len() > 2, "{ward}: the dump has rows");
        let outcome = compare(&election, &result, &rows);
        rows_compared += outcome.rows_compared;
        for mismatch in outcome.mismatches {
            failures.push(format!("{ward}: {mismatch}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with droop:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every begin, defeat, unpend, transfer, elect and end row of the 21
    // dumps (see tests/data/glasgow-2007).
    assert_eq!(rows_compared, 466);
}

#[test]
fn the_seeded_lot_changes_nothing_where_no_lot_is_drawn() {
    for blt in blt_files() {
        let text = fs::read_to_string(&blt).expect("read a .blt file");
        let election = Election::parse_blt(&text).expect("a Glasgow file parses");
        let by_order = count(&election, &CountConfig { lot: Lot::TieOrder });
        let seeded = count(
            &election,
            &CountConfig {
                lot: Lot::Seed(b"glasgow".to_vec()),
            },
        );
        assert_eq!(by_order, seeded, "{}", blt.display());
    }
}

#[test]
fn glasgow_files_write_back_to_themselves() {
    // The files are already in the canonical form, names' spaces included.
    for blt in blt_files() {
        let text = fs::read_to_string(&blt).expect("read a .blt file");
        let election = Election::parse_blt(&text).expect("a Glasgow file parses");
        assert_eq!(election.to_blt(), text, "{}", blt.display());
    }
}
