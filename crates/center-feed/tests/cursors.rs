//! Local delivery: cursors per subscriber and origin, durable and never
//! moving back; new subscribers from the oldest event or from now; reading
//! in local order; and the frontiers other peers acknowledged.

use std::collections::BTreeMap;

use center_feed::{FeedBudget, StartAt};
use center_proto::Timestamp;

use crate::support::{NOW, Peer, Store, bytes, roster};

/// (origin name, seq) of each event `next_for` returns.
fn read(
    s: &Store,
    subscriber: &str,
    after: i64,
    limit: usize,
    names: &[(&Peer, &str)],
) -> Vec<(String, u64)> {
    s.store
        .next_for(subscriber, after, limit)
        .expect("next_for")
        .into_iter()
        .map(|e| {
            let name = names
                .iter()
                .find(|(p, _)| p.id() == e.origin)
                .map_or("?", |(_, n)| n);
            (name.to_owned(), e.seq)
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
}

#[test]
fn cursors_are_durable_and_never_move_back() {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    assert_eq!(s.store.cursor("userd", alpha.id()).expect("cursor"), 0);
    s.store.advance("userd", alpha.id(), 5).expect("advance");
    s.store.advance("userd", alpha.id(), 3).expect("advance");
    let s = s.reopen(FeedBudget::DEFAULT);
    assert_eq!(s.store.cursor("userd", alpha.id()).expect("cursor"), 5);
    assert_eq!(s.store.cursor("syncd", alpha.id()).expect("cursor"), 0);
}

#[test]
fn next_for_reads_in_local_order_above_each_cursor() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let names = [(&alpha, "a"), (&bravo, "b")];
    let mut s = Store::new(FeedBudget::DEFAULT);
    let (a, b) = (alpha.chain(3, "main"), bravo.chain(2, "main"));
    let page = bytes(&[
        a[0].clone(),
        b[0].clone(),
        a[1].clone(),
        b[1].clone(),
        a[2].clone(),
    ]);
    s.store
        .accept(&page, roster(&[&alpha, &bravo]), NOW)
        .expect("accept");
    s.store
        .new_subscriber("userd", StartAt::Oldest)
        .expect("subscribe");

    let all = read(&s, "userd", 0, 100, &names);
    assert_eq!(
        all,
        pairs(&[("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)])
    );
    assert_eq!(
        read(&s, "userd", 0, 2, &names),
        pairs(&[("a", 1), ("b", 1)])
    );
    assert_eq!(
        read(&s, "userd", 2, 2, &names),
        pairs(&[("a", 2), ("b", 2)])
    );

    // What is left to offer: everything above the cursors after a position.
    let left = |s: &Store, after: i64| s.store.count_after("userd", after).expect("count");
    assert_eq!((left(&s, 0), left(&s, 2), left(&s, 5)), (5, 3, 0));
    s.store.advance("userd", alpha.id(), 2).expect("advance");
    assert_eq!(
        read(&s, "userd", 0, 100, &names),
        pairs(&[("b", 1), ("b", 2), ("a", 3)])
    );
    assert_eq!((left(&s, 0), left(&s, 2)), (3, 2));
    s.store.advance("userd", bravo.id(), 2).expect("advance");
    assert_eq!(read(&s, "userd", 0, 100, &names), pairs(&[("a", 3)]));
    s.store.advance("userd", alpha.id(), 3).expect("advance");
    assert!(read(&s, "userd", 0, 100, &names).is_empty());

    // Survives a reopen; new events come after.
    let mut s = s.reopen(FeedBudget::DEFAULT);
    let more = alpha.extend(&a, 4, "main");
    s.store
        .accept(&bytes(&more[3..]), roster(&[&alpha]), NOW)
        .expect("accept");
    assert_eq!(read(&s, "userd", 0, 100, &names), pairs(&[("a", 4)]));
}

#[test]
fn a_new_subscriber_starts_at_the_oldest_event_or_at_the_heads() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let names = [(&alpha, "a"), (&bravo, "b")];
    let mut s = Store::new(FeedBudget::DEFAULT);
    let a = alpha.chain(3, "main");
    s.store
        .accept(&bytes(&a[..2]), roster(&[&alpha]), NOW)
        .expect("accept");

    assert!(
        s.store
            .new_subscriber("history", StartAt::Oldest)
            .expect("subscribe")
    );
    assert!(
        s.store
            .new_subscriber("live", StartAt::Now)
            .expect("subscribe")
    );
    assert_eq!(s.store.cursor("live", alpha.id()).expect("cursor"), 2);
    assert_eq!(
        read(&s, "history", 0, 100, &names),
        pairs(&[("a", 1), ("a", 2)])
    );
    assert!(read(&s, "live", 0, 100, &names).is_empty());

    // Events stored later, of a known origin or a new one, reach both.
    let b = bravo.chain(1, "main");
    s.store
        .accept(
            &bytes(&[a[2].clone(), b[0].clone()]),
            roster(&[&alpha, &bravo]),
            NOW,
        )
        .expect("accept");
    assert_eq!(
        read(&s, "live", 0, 100, &names),
        pairs(&[("a", 3), ("b", 1)])
    );
    assert_eq!(read(&s, "history", 0, 100, &names).len(), 4);

    // Registering again changes nothing.
    s.store.advance("history", alpha.id(), 1).expect("advance");
    assert!(
        !s.store
            .new_subscriber("history", StartAt::Now)
            .expect("subscribe")
    );
    assert!(
        !s.store
            .new_subscriber("live", StartAt::Oldest)
            .expect("subscribe")
    );
    assert_eq!(s.store.cursor("history", alpha.id()).expect("cursor"), 1);
    assert_eq!(s.store.cursor("live", alpha.id()).expect("cursor"), 2);
}

#[test]
fn next_for_starts_past_what_every_cursor_covers() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let names = [(&alpha, "a"), (&bravo, "b")];
    let mut s = Store::new(FeedBudget::DEFAULT);
    let a = alpha.chain(300, "main");
    s.store
        .accept(&bytes(&a), roster(&[&alpha]), NOW)
        .expect("accept");
    s.store
        .new_subscriber("live", StartAt::Now)
        .expect("subscribe");
    let b = bravo.chain(2, "main");
    s.store
        .accept(&bytes(&b), roster(&[&bravo]), NOW)
        .expect("accept");
    let got = s.store.next_for("live", 0, 10).expect("next_for");
    assert_eq!(got.iter().map(|e| e.pos).collect::<Vec<_>>(), [301, 302]);
    assert_eq!(
        read(&s, "live", 0, 10, &names),
        pairs(&[("b", 1), ("b", 2)])
    );
}

#[test]
fn peer_frontiers_are_recorded_per_peer_and_origin() {
    let (alpha, bravo, charlie) = (Peer::new("alpha"), Peer::new("bravo"), Peer::new("charlie"));
    let mut s = Store::new(FeedBudget::DEFAULT);
    let later = Timestamp::from_millis(NOW.as_millis() + 1000);
    let first = BTreeMap::from([(alpha.id(), 4), (charlie.id(), 1)]);
    s.store
        .record_peer_frontier(bravo.id(), &first, |_| true, NOW)
        .expect("record");
    s.store
        .record_peer_frontier(
            bravo.id(),
            &BTreeMap::from([(alpha.id(), 7)]),
            |_| true,
            later,
        )
        .expect("record");
    let s = s.reopen(FeedBudget::DEFAULT);
    let got: Vec<_> = s
        .store
        .peer_frontiers()
        .expect("frontiers")
        .into_iter()
        .map(|f| (f.peer, f.origin, f.seq, f.updated_at))
        .collect();
    let mut expected = vec![
        (bravo.id(), alpha.id(), 7, later),
        (bravo.id(), charlie.id(), 1, NOW),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

/// A frontier naming thousands of made-up origins stores nothing for them
/// (issue 13): only the origins the caller knows (its roster) are kept, and
/// a record of an origin no longer known is forgotten.
#[test]
fn a_frontier_keeps_only_known_origins() {
    let (alpha, bravo, charlie) = (Peer::new("alpha"), Peer::new("bravo"), Peer::new("charlie"));
    let mut s = Store::new(FeedBudget::DEFAULT);
    let mut frontier: BTreeMap<_, _> = (0..4096)
        .map(|_| (center_proto::PeerId::new_random(), 1))
        .collect();
    frontier.insert(alpha.id(), 3);
    frontier.insert(charlie.id(), 2);
    let roster = [alpha.id(), charlie.id()];
    let ignored = s
        .store
        .record_peer_frontier(bravo.id(), &frontier, |o| roster.contains(o), NOW)
        .expect("record");
    assert_eq!(ignored, 4096);
    let held = |s: &Store| -> Vec<_> {
        s.store
            .peer_frontiers()
            .expect("frontiers")
            .into_iter()
            .map(|f| (f.origin, f.seq))
            .collect()
    };
    let mut expected = vec![(alpha.id(), 3), (charlie.id(), 2)];
    expected.sort();
    assert_eq!(held(&s), expected);
    // Charlie leaves the roster: its record goes with the next frontier.
    let ignored = s
        .store
        .record_peer_frontier(bravo.id(), &BTreeMap::new(), |o| *o == alpha.id(), NOW)
        .expect("record");
    assert_eq!(ignored, 0);
    assert_eq!(held(&s), vec![(alpha.id(), 3)]);
}
