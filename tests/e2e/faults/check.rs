//! The pure half of the fault suite: the nemesis's schedule, drawn from a
//! seed, and the checker, which compares what every peer holds at the end
//! with what the workload was told. Nothing here starts a process.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};

/// The daemons the nemesis kills.
pub const KILLABLE: &[&str] = &["dispatchd", "peerd", "userd"];

/// One fault, at its time from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of one daemon of one peer.
    Kill { peer: usize, daemon: &'static str },
    /// Every daemon of the peer started again (what systemd's
    /// `Restart=on-failure` does).
    Restart { peer: usize },
    /// The peers split in two groups (indices).
    Partition { alone: usize },
    /// Every partition rule removed.
    Heal,
    /// The peer's wall clock moved to `seconds` off the true time (within
    /// the 5 minutes CEPs 2 and 8 allow, so two skewed peers stay within
    /// them of each other) and its daemons restarted, as after an NTP step.
    Skew { peer: usize, seconds: i64 },
}

/// The largest clock offset the nemesis sets, in seconds.
pub const MAX_SKEW: i64 = 120;

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { peer, daemon } => write!(f, "kill -9 {daemon} of peer {peer}"),
            Fault::Restart { peer } => write!(f, "restart peer {peer}"),
            Fault::Partition { alone } => write!(f, "partition: peer {alone} / the others"),
            Fault::Heal => write!(f, "heal"),
            Fault::Skew { peer, seconds } => write!(f, "clock of peer {peer} at {seconds:+} s"),
        }
    }
}

/// The faults of a run of `length` over `peers` peers, from `seed`: the
/// same seed gives the same schedule. Every kill is followed by its
/// restart 1–3 s later, every partition by a heal 4–10 s later, and the
/// schedule ends healed with every daemon running.
pub fn schedule(seed: u64, peers: usize, length: Duration) -> Vec<(Duration, Fault)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    let mut t = Duration::ZERO;
    let mut healed_at = Duration::ZERO;
    let mut partitioned = false;
    // A peer's restart time, while it has a daemon down.
    let mut down: BTreeMap<usize, Duration> = BTreeMap::new();
    loop {
        t += Duration::from_millis(rng.random_range(1_500..4_000));
        if t >= length {
            break;
        }
        down.retain(|_, back| *back > t);
        if partitioned && t >= healed_at {
            faults.push((t, Fault::Heal));
            partitioned = false;
            continue;
        }
        if !partitioned && rng.random_bool(0.35) {
            let alone = rng.random_range(0..peers);
            faults.push((t, Fault::Partition { alone }));
            partitioned = true;
            healed_at = t + Duration::from_millis(rng.random_range(4_000..10_000));
            continue;
        }
        let peer = rng.random_range(0..peers);
        if down.contains_key(&peer) {
            continue;
        }
        if rng.random_bool(0.2) {
            let seconds = rng.random_range(-MAX_SKEW..=MAX_SKEW);
            faults.push((t, Fault::Skew { peer, seconds }));
            continue;
        }
        let daemon = KILLABLE[rng.random_range(0..KILLABLE.len())];
        let back = t + Duration::from_millis(rng.random_range(1_000..3_000));
        faults.push((t, Fault::Kill { peer, daemon }));
        faults.push((back, Fault::Restart { peer }));
        down.insert(peer, back);
    }
    if partitioned {
        faults.push((length, Fault::Heal));
    }
    faults.sort_by_key(|(at, _)| *at);
    faults
}

/// What the workload was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command succeeded: it must hold at the end.
    Acked,
    /// Anything else: it may or may not have happened.
    Unknown,
}

/// One operation of the workload, in the order it completed.
#[derive(Debug, Clone)]
pub enum Op {
    /// `user add NAME` on `peer`; `uid` as its answer named it. `raced`:
    /// the same name was asked for on the other side of a partition, so
    /// one of the two may lose (CEP 8, "Names").
    Add {
        name: String,
        peer: String,
        outcome: Outcome,
        uid: Option<u32>,
        raced: bool,
    },
    /// `user passwd NAME` on `peer` to `password`.
    Passwd {
        name: String,
        peer: String,
        password: String,
        outcome: Outcome,
    },
    /// A feed event `chaos.event` with `{"n": n}` published on `peer`.
    Publish {
        n: u64,
        peer: String,
        outcome: Outcome,
    },
}

/// What one peer holds at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub peer: String,
    /// Account name → uidNumber, from the peer's slapd.
    pub accounts: BTreeMap<String, u32>,
    /// The `n` of every `chaos.event` the peer delivers from its oldest
    /// feed event, in delivery order.
    pub events: Vec<u64>,
    /// For the passwords [`passwords_to_check`] names: whether the
    /// password binds on this peer.
    pub binds: BTreeMap<String, bool>,
}

/// What the checker found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Something acknowledged that a peer does not hold.
    pub losses: Vec<String>,
    /// Something held twice (one number for two names, one event twice).
    pub duplicates: Vec<String>,
    /// Peers that do not hold the same state.
    pub divergence: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.losses.is_empty() && self.duplicates.is_empty() && self.divergence.is_empty()
    }
}

/// The accounts whose last operation was an acknowledged password change,
/// with that password and the peer that made it: it must bind on every
/// peer. An account with any operation after it whose outcome is unknown
/// is left out.
pub fn passwords_to_check(history: &[Op]) -> BTreeMap<String, (String, String)> {
    let mut last: BTreeMap<String, Option<(String, String)>> = BTreeMap::new();
    for op in history {
        if let Op::Passwd {
            name,
            peer,
            password,
            outcome,
        } = op
        {
            let known = (*outcome == Outcome::Acked).then(|| (password.clone(), peer.clone()));
            last.insert(name.clone(), known);
        }
    }
    last.into_iter()
        .filter_map(|(name, password)| password.map(|p| (name, p)))
        .collect()
}

/// Compares every peer's snapshot with the history.
pub fn check(history: &[Op], snapshots: &[Snapshot]) -> Report {
    let mut report = Report::default();
    // Raced names: every attempt's number, and whether one was acked.
    let mut raced: BTreeMap<&str, (BTreeSet<u32>, bool)> = BTreeMap::new();
    for op in history {
        match op {
            Op::Add {
                name,
                peer,
                outcome,
                uid,
                raced: false,
            } if *outcome == Outcome::Acked => {
                for snap in snapshots {
                    match (snap.accounts.get(name), uid) {
                        (None, _) => report.losses.push(format!(
                            "{} lacks `{name}` (acknowledged on {peer})",
                            snap.peer
                        )),
                        (Some(held), Some(told)) if held != told => report.losses.push(format!(
                            "{} holds `{name}` as uid {held}, but {peer} answered uid {told}",
                            snap.peer
                        )),
                        _ => {}
                    }
                }
            }
            Op::Add {
                name,
                outcome,
                uid,
                raced: true,
                ..
            } => {
                let entry = raced.entry(name).or_default();
                entry.0.extend(uid);
                entry.1 |= *outcome == Outcome::Acked;
            }
            Op::Publish { n, peer, outcome } if *outcome == Outcome::Acked => {
                for snap in snapshots {
                    if !snap.events.contains(n) {
                        report.losses.push(format!(
                            "{} lacks event {n} (acknowledged on {peer})",
                            snap.peer
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    for (name, (uids, acked)) in raced {
        let held: Vec<Option<&u32>> = snapshots.iter().map(|s| s.accounts.get(name)).collect();
        if acked && held.iter().any(Option::is_none) {
            report
                .losses
                .push(format!("raced `{name}` is missing on some peer: {held:?}"));
        }
        if let Some(Some(uid)) = held.first()
            && !uids.is_empty()
            && !uids.contains(uid)
        {
            report.losses.push(format!(
                "raced `{name}` is held as uid {uid}, which no request for it was given ({uids:?})"
            ));
        }
    }
    for (name, (password, peer)) in passwords_to_check(history) {
        for snap in snapshots {
            if snap.binds.get(&name) != Some(&true) {
                report.losses.push(format!(
                    "{}: `{name}` does not bind with its last acknowledged password \
                     {password:?} (changed on {peer})",
                    snap.peer
                ));
            }
        }
    }
    for snap in snapshots {
        let mut by_uid: BTreeMap<u32, &str> = BTreeMap::new();
        for (name, uid) in &snap.accounts {
            if let Some(other) = by_uid.insert(*uid, name) {
                report.duplicates.push(format!(
                    "{}: uid {uid} is both `{other}` and `{name}`",
                    snap.peer
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for n in &snap.events {
            if !seen.insert(n) {
                report
                    .duplicates
                    .push(format!("{}: event {n} delivered twice", snap.peer));
            }
        }
    }
    if let Some((first, rest)) = snapshots.split_first() {
        let events = |s: &Snapshot| s.events.iter().copied().collect::<BTreeSet<u64>>();
        for snap in rest {
            if snap.accounts != first.accounts {
                let a: BTreeSet<_> = first.accounts.iter().collect();
                let b: BTreeSet<_> = snap.accounts.iter().collect();
                report.divergence.push(format!(
                    "accounts: only on {}: {:?}; only on {}: {:?}",
                    first.peer,
                    a.difference(&b).collect::<Vec<_>>(),
                    snap.peer,
                    b.difference(&a).collect::<Vec<_>>()
                ));
            }
            if events(snap) != events(first) {
                report.divergence.push(format!(
                    "events: {} and {} hold different sets",
                    first.peer, snap.peer
                ));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(name: &str, outcome: Outcome, uid: u32, raced: bool) -> Op {
        Op::Add {
            name: name.to_owned(),
            peer: "alpha".to_owned(),
            outcome,
            uid: Some(uid),
            raced,
        }
    }

    fn snap(peer: &str, accounts: &[(&str, u32)], events: &[u64]) -> Snapshot {
        Snapshot {
            peer: peer.to_owned(),
            accounts: accounts
                .iter()
                .map(|(n, u)| ((*n).to_owned(), *u))
                .collect(),
            events: events.to_vec(),
            binds: BTreeMap::new(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_it_ends_healed() {
        let length = Duration::from_secs(120);
        let a = schedule(7, 3, length);
        assert_eq!(a, schedule(7, 3, length));
        assert_ne!(a, schedule(8, 3, length));
        assert!(a.iter().any(|(_, f)| matches!(f, Fault::Kill { .. })));
        assert!(a.iter().any(|(_, f)| matches!(f, Fault::Partition { .. })));
        assert!(a.iter().any(|(_, f)| matches!(f, Fault::Skew { .. })));
        let mut partitioned = false;
        let mut killed = BTreeSet::new();
        for (_, fault) in &a {
            match fault {
                Fault::Partition { .. } => {
                    assert!(!partitioned, "one partition at a time");
                    partitioned = true;
                }
                Fault::Heal => partitioned = false,
                Fault::Kill { peer, .. } => {
                    killed.insert(*peer);
                }
                Fault::Restart { peer } => {
                    killed.remove(peer);
                }
                Fault::Skew { seconds, .. } => assert!(seconds.abs() <= MAX_SKEW),
            }
        }
        assert!(!partitioned && killed.is_empty(), "ends healed and running");
    }

    #[test]
    fn a_clean_run_is_clean() {
        let history = vec![
            add("a", Outcome::Acked, 10, false),
            add("b", Outcome::Unknown, 11, false),
            Op::Publish {
                n: 1,
                peer: "alpha".to_owned(),
                outcome: Outcome::Acked,
            },
        ];
        let snaps = [
            snap("alpha", &[("a", 10)], &[1]),
            snap("bravo", &[("a", 10)], &[1]),
        ];
        assert_eq!(check(&history, &snaps), Report::default());
    }

    #[test]
    fn a_lost_account_a_lost_event_and_a_wrong_number_are_losses() {
        let history = vec![
            add("a", Outcome::Acked, 10, false),
            add("b", Outcome::Acked, 11, false),
            Op::Publish {
                n: 1,
                peer: "alpha".to_owned(),
                outcome: Outcome::Acked,
            },
        ];
        let snaps = [
            snap("alpha", &[("a", 10), ("b", 11)], &[1]),
            snap("bravo", &[("a", 10), ("b", 12)], &[]),
            snap("charlie", &[("b", 11)], &[1]),
        ];
        let report = check(&history, &snaps);
        assert_eq!(report.losses.len(), 3, "{report:?}");
        assert!(
            report
                .losses
                .iter()
                .any(|l| l.contains("charlie lacks `a`"))
        );
        assert!(
            report
                .losses
                .iter()
                .any(|l| l.contains("bravo lacks event 1"))
        );
        assert!(report.losses.iter().any(|l| l.contains("uid 12")));
        assert_eq!(report.divergence.len(), 3, "{report:?}");
    }

    #[test]
    fn duplicates_are_found() {
        let snaps = [snap("alpha", &[("a", 10), ("b", 10)], &[1, 2, 1])];
        let report = check(&[], &snaps);
        assert_eq!(report.duplicates.len(), 2, "{report:?}");
    }

    #[test]
    fn a_raced_name_needs_one_version_everywhere_if_either_was_acked() {
        let history = vec![
            add("r", Outcome::Acked, 10, true),
            add("r", Outcome::Unknown, 20, true),
        ];
        // The other side's version won everywhere: fine.
        let won = [
            snap("alpha", &[("r", 20)], &[]),
            snap("bravo", &[("r", 20)], &[]),
        ];
        assert!(check(&history, &won).is_clean());
        // Neither anywhere: lost.
        let neither = [snap("alpha", &[], &[]), snap("bravo", &[], &[])];
        assert_eq!(check(&history, &neither).losses.len(), 1);
        // A number nobody was given: lost.
        let odd = [
            snap("alpha", &[("r", 30)], &[]),
            snap("bravo", &[("r", 30)], &[]),
        ];
        assert_eq!(check(&history, &odd).losses.len(), 1);
    }

    #[test]
    fn the_last_acknowledged_password_must_bind_unless_a_later_change_is_unknown() {
        let passwd = |password: &str, outcome| Op::Passwd {
            name: "a".to_owned(),
            peer: "alpha".to_owned(),
            password: password.to_owned(),
            outcome,
        };
        let history = vec![passwd("one", Outcome::Acked), passwd("two", Outcome::Acked)];
        assert_eq!(passwords_to_check(&history)["a"].0, "two");
        let mut bound = snap("alpha", &[], &[]);
        bound.binds.insert("a".to_owned(), true);
        assert!(check(&history, &[bound.clone()]).is_clean());
        bound.binds.insert("a".to_owned(), false);
        assert_eq!(check(&history, &[bound]).losses.len(), 1);
        let unknown = vec![
            passwd("one", Outcome::Acked),
            passwd("two", Outcome::Unknown),
        ];
        assert!(passwords_to_check(&unknown).is_empty());
    }
}
