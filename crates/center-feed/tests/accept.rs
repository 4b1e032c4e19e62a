//! Accepting relayed pages and appending local events: chains, gaps,
//! replays, refusals, budgets, frontiers and pages.

use std::time::Duration;

use center_feed::{BudgetLimit, FeedBudget, FeedEvent, Head, Outcome, Refusal, StoreError};
use center_proto::{EventName, Timestamp};
use expect_test::expect;
use serde_json::json;

use crate::support::{NOW, Peer, Store, bytes, render, roster};

fn later(ms: u64) -> Timestamp {
    Timestamp::from_millis(NOW.as_millis() + ms)
}

#[test]
fn a_chain_in_order_is_stored_and_becomes_the_frontier() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let chain = alpha.chain(3, "main");
    let outcomes = s
        .store
        .accept(&bytes(&chain), roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        Stored { origin: PeerId(alpha), seq: 1, pos: 1 }
        Stored { origin: PeerId(alpha), seq: 2, pos: 2 }
        Stored { origin: PeerId(alpha), seq: 3, pos: 3 }
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha")]));
    let frontier = s.store.frontier().expect("frontier");
    assert_eq!(
        frontier.get(&alpha.id()),
        Some(&Head {
            seq: 3,
            hash: chain[2].hash()
        })
    );
}

#[test]
fn reordered_and_dropped_events_are_gaps_and_replays_are_duplicates() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let chain = bytes(&alpha.chain(4, "main"));
    let page = [
        chain[1].clone(), // 2 before 1: a gap
        chain[0].clone(),
        chain[2].clone(),
        chain[0].clone(), // replayed
    ];
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha]), NOW)
        .expect("accept");
    // 4 with 2 and 3 dropped on the way: a gap; then 2 fits.
    let dropped = s
        .store
        .accept(
            &[chain[3].clone(), chain[1].clone()],
            roster(&[&alpha]),
            NOW,
        )
        .expect("accept");
    let names = [(&alpha, "alpha")];
    expect![[r#"
        Gap { origin: PeerId(alpha), seq: 2, have: 0 }
        Stored { origin: PeerId(alpha), seq: 1, pos: 1 }
        Gap { origin: PeerId(alpha), seq: 3, have: 1 }
        Duplicate { origin: PeerId(alpha), seq: 1 }
        ---
        Gap { origin: PeerId(alpha), seq: 4, have: 1 }
        Stored { origin: PeerId(alpha), seq: 2, pos: 2 }
    "#]]
    .assert_eq(&format!(
        "{}---\n{}",
        render(&outcomes, &names),
        render(&dropped, &names)
    ));
}

#[test]
fn unknown_origins_bad_signatures_and_garbage_are_refused() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let mut s = Store::new(FeedBudget::DEFAULT);
    let good = alpha.chain(1, "main");
    let text = String::from_utf8(good[0].as_bytes().to_vec()).expect("utf-8");
    let forged = text
        .replace(r#""branch":"main""#, r#""branch":"evil""#)
        .into_bytes();
    let stranger = bravo.chain(1, "main");
    let page = vec![
        b"not json".to_vec(),
        forged,
        stranger[0].as_bytes().to_vec(),
        good[0].as_bytes().to_vec(),
    ];
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        refused: event is not valid json: expected ident at line 1 column 2
        refused: event 1 of alpha: bad signature: signature does not match the message
        refused: event 1 of bravo: the origin is not a known peer
        Stored { origin: PeerId(alpha), seq: 1, pos: 1 }
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha"), (&bravo, "bravo")]));
}

#[test]
fn the_rate_budget_refuses_past_its_limits_until_the_window_ends() {
    let alpha = Peer::new("alpha");
    let budget = FeedBudget {
        window: Duration::from_secs(60),
        max_events_per_window: 3,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    let chain = bytes(&alpha.chain(5, "main"));
    let first = s
        .store
        .accept(&chain, roster(&[&alpha]), NOW)
        .expect("accept");
    // Within the window, still refused; once it ends, accepted.
    let same = s
        .store
        .accept(&chain[3..], roster(&[&alpha]), later(59_999))
        .expect("accept");
    let next = s
        .store
        .accept(&chain[3..], roster(&[&alpha]), later(60_000))
        .expect("accept");
    let names = [(&alpha, "alpha")];
    expect![[r#"
        Stored { origin: PeerId(alpha), seq: 1, pos: 1 }
        Stored { origin: PeerId(alpha), seq: 2, pos: 2 }
        Stored { origin: PeerId(alpha), seq: 3, pos: 3 }
        refused: event 4 of alpha: the origin is over its budget of 3 events per 60 s; fetch it again later
        Gap { origin: PeerId(alpha), seq: 5, have: 3 }
        ---
        refused: event 4 of alpha: the origin is over its budget of 3 events per 60 s; fetch it again later
        Gap { origin: PeerId(alpha), seq: 5, have: 3 }
        ---
        Stored { origin: PeerId(alpha), seq: 4, pos: 4 }
        Stored { origin: PeerId(alpha), seq: 5, pos: 5 }
    "#]]
    .assert_eq(&format!(
        "{}---\n{}---\n{}",
        render(&first, &names),
        render(&same, &names),
        render(&next, &names)
    ));

    // The byte budget, and the window survives a reopen.
    let size = u64::try_from(chain[0].len()).expect("size");
    let max = 2 * size + size / 2;
    let budget = FeedBudget {
        window: Duration::from_secs(60),
        max_bytes_per_window: max,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    let first = s
        .store
        .accept(&chain[..2], roster(&[&alpha]), NOW)
        .expect("accept");
    assert!(
        first.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{first:?}"
    );
    let mut s = s.reopen(budget);
    let third = s
        .store
        .accept(&chain[2..3], roster(&[&alpha]), later(1))
        .expect("accept");
    assert_eq!(
        third,
        [Outcome::Refused(Refusal::OverBudget {
            origin: alpha.id(),
            seq: 3,
            limit: BudgetLimit::Bytes {
                max,
                window: Duration::from_secs(60)
            }
        })]
    );
}

/// A relay sending a page far over the origin's budget costs this peer no
/// signature check for what the budget refuses (issue 13): the budget is
/// checked before any signature, the parallel checks ahead included.
#[test]
fn no_signature_is_checked_for_events_over_the_budget() {
    let alpha = Peer::new("alpha");
    let budget = FeedBudget {
        window: Duration::from_secs(60),
        max_events_per_window: 2,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    let chain = bytes(&alpha.chain(100, "main"));
    let outcomes = s
        .store
        .accept(&chain, roster(&[&alpha]), NOW)
        .expect("accept");
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { .. }))
        .count();
    assert_eq!(stored, 2);
    assert_eq!(s.store.signature_checks(), 2);
    // Again while the window lasts: refused, and still nothing checked.
    s.store
        .accept(&chain[2..], roster(&[&alpha]), later(1))
        .expect("accept");
    assert_eq!(s.store.signature_checks(), 2);
}

#[test]
fn local_appends_chain_and_replicate_to_another_store() {
    let alpha = Peer::new("alpha");
    let mut own = Store::new(FeedBudget::DEFAULT);
    let name = EventName::parse("account.created").expect("name");
    let mut appended = Vec::new();
    for i in 0..3 {
        let sign = |m: &[u8]| alpha.identity.sign(m);
        let a = own
            .store
            .append_local(sign, alpha.id(), name.clone(), json!({ "i": i }), later(i))
            .expect("append");
        appended.push(a);
    }
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        appended.iter().map(|a| a.pos).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let page = own.store.page(alpha.id(), 0, 100, 1 << 20).expect("page");
    assert_eq!(page.floor, 1);
    assert_eq!(page.events.len(), 3);
    let parsed = FeedEvent::parse(&page.events[2], &Default::default()).expect("parse");
    assert_eq!(parsed.hash(), appended[2].hash);
    assert_eq!(parsed.prev(), appended[1].hash);

    let mut other = Store::new(FeedBudget::DEFAULT);
    let outcomes = other
        .store
        .accept(&page.events, roster(&[&alpha]), NOW)
        .expect("accept");
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        other.store.frontier().expect("frontier"),
        own.store.frontier().expect("frontier")
    );
}

#[test]
fn an_oversize_local_event_is_refused_and_nothing_is_stored() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let name = EventName::parse("big").expect("name");
    let got = s.store.append_local(
        |m: &[u8]| alpha.identity.sign(m),
        alpha.id(),
        name,
        json!({ "x": "y".repeat(65 * 1024) }),
        NOW,
    );
    assert!(
        matches!(
            got,
            Err(StoreError::Event(center_feed::FeedError::TooLarge { .. }))
        ),
        "{got:?}"
    );
    assert!(s.store.frontier().expect("frontier").is_empty());
}

#[test]
fn pages_are_bounded_by_count_and_bytes_but_hold_at_least_one_event() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let chain = bytes(&alpha.chain(5, "main"));
    s.store
        .accept(&chain, roster(&[&alpha]), NOW)
        .expect("accept");
    let size = chain[0].len();
    let seqs = |page: center_feed::Page| {
        page.events
            .iter()
            .map(|b| {
                FeedEvent::parse(b, &Default::default())
                    .expect("parse")
                    .seq()
            })
            .collect::<Vec<_>>()
    };
    let page = |after, n, max| s.store.page(alpha.id(), after, n, max).expect("page");
    assert_eq!(seqs(page(0, 2, 1 << 20)), [1, 2]);
    assert_eq!(seqs(page(2, 10, 1 << 20)), [3, 4, 5]);
    assert_eq!(seqs(page(1, 10, 2 * size + 10)), [2, 3]);
    assert_eq!(seqs(page(1, 10, 1)), [2]);
    assert_eq!(seqs(page(5, 10, 1 << 20)), Vec::<u64>::new());
    let unknown = Peer::new("unknown");
    let empty = s.store.page(unknown.id(), 0, 10, 1 << 20).expect("page");
    assert_eq!((empty.events.len(), empty.floor), (0, 0));
}

#[test]
fn a_page_of_many_origins_interleaved_is_stored_in_order() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let mut s = Store::new(FeedBudget::DEFAULT);
    let (a, b) = (alpha.chain(20, "main"), bravo.chain(20, "main"));
    let page: Vec<Vec<u8>> = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| [x.as_bytes().to_vec(), y.as_bytes().to_vec()])
        .collect();
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha, &bravo]), NOW)
        .expect("accept");
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{outcomes:?}"
    );
    let status = s.store.status().expect("status");
    assert_eq!(status.len(), 2);
    for origin in status {
        assert_eq!(
            (
                origin.head_seq,
                origin.events_stored,
                origin.oldest_seq,
                origin.forked
            ),
            (20, 20, 1, false)
        );
    }
}

#[test]
fn a_departed_origin_s_events_are_taken_up_to_its_end_and_refused_after() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let keys = alpha.keys.clone();
    let ended = move |_: &center_proto::PeerId| {
        Some(center_feed::OriginKeys::from(keys.clone()).ending_at(40))
    };
    // Long enough for the signatures to be checked ahead, in parallel.
    let chain = alpha.chain(45, "main");
    let outcomes = s.store.accept(&bytes(&chain), &ended, NOW).expect("accept");
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { .. }))
        .count();
    assert_eq!(stored, 40);
    assert!(
        matches!(
            outcomes.get(40),
            Some(Outcome::Refused(Refusal::Departed {
                seq: 41,
                until: 40,
                ..
            }))
        ),
        "{outcomes:?}"
    );
    assert_eq!(s.store.frontier().expect("frontier")[&alpha.id()].seq, 40);
}

#[test]
fn an_announced_newcomer_starts_with_a_sixteenth_of_the_budget_and_grows_into_it() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let budget = FeedBudget {
        window: Duration::from_secs(60),
        max_events_per_window: 32,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    // bravo was announced by another member just now; alpha is vetted.
    s.store
        .set_announced([(bravo.id(), NOW)].into_iter().collect());
    let stored = |outcomes: &[Outcome]| {
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Stored { .. }))
            .count()
    };
    let (a, b) = (
        bytes(&alpha.chain(40, "main")),
        bytes(&bravo.chain(40, "main")),
    );
    let peers = [&alpha, &bravo];
    assert_eq!(
        stored(&s.store.accept(&a, roster(&peers), NOW).unwrap()),
        32
    );
    assert_eq!(stored(&s.store.accept(&b, roster(&peers), NOW).unwrap()), 2);
    // Half the ramp later (and a new window): about half the budget.
    let ramp = u64::try_from(center_feed::RAMP.as_millis()).unwrap();
    let half = Timestamp::from_millis(NOW.as_millis() + ramp / 2);
    let at_half = stored(&s.store.accept(&b[2..], roster(&peers), half).unwrap());
    assert_eq!(at_half, 17);
    // After the ramp, the whole of it: the 21 left fit in 32.
    let grown = Timestamp::from_millis(NOW.as_millis() + ramp);
    let rest = &b[2 + at_half..];
    assert_eq!(
        stored(&s.store.accept(rest, roster(&peers), grown).unwrap()),
        21
    );
}

#[test]
fn the_ramp_by_table() {
    let full = FeedBudget::DEFAULT;
    let day = Duration::from_secs(24 * 3600);
    let shown: Vec<(u64, u64)> = [
        None,
        Some(Duration::ZERO),
        Some(day),
        Some(3 * day),
        Some(7 * day),
        Some(30 * day),
    ]
    .into_iter()
    .map(|age| {
        let b = full.for_age(age);
        (b.max_events_per_window, b.max_bytes_per_window)
    })
    .collect();
    expect!["[(20000, 67108864), (1250, 4194304), (3928, 13182098), (9285, 31157686), (20000, 67108864), (20000, 67108864)]"]
        .assert_eq(&format!("{shown:?}"));
}
