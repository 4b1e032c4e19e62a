//! Retention: pruning by age and by size keeps each head and a contiguous
//! suffix, pages say the floor, and the chain goes on after pruning.

use center_feed::{EventHash, FeedBudget, FeedEvent, Outcome, PruneReason, Pruned};
use center_proto::Timestamp;
use serde_json::json;

use crate::support::{NOW, Peer, Store, bytes, roster};

const DAY: u64 = 24 * 60 * 60 * 1000;

/// Alpha's events 1..=n, event i written i days before `NOW` counted back
/// from n (so the last is at `NOW`).
fn aged_chain(alpha: &Peer, n: u64) -> Vec<FeedEvent> {
    let mut events: Vec<FeedEvent> = Vec::new();
    for seq in 1..=n {
        let prev = events.last().map_or(EventHash::ZERO, FeedEvent::hash);
        let body = center_feed::EventBody {
            origin: alpha.id(),
            seq,
            prev,
            name: center_proto::EventName::parse("test.event").expect("name"),
            iat: Timestamp::from_millis(NOW.as_millis() - (n - seq) * DAY),
            data: json!({ "n": seq }),
        };
        events.push(FeedEvent::sign(body, |m| alpha.identity.sign(m)).expect("sign"));
    }
    events
}

#[test]
fn pruning_by_age_keeps_the_young_events_and_always_the_head() {
    let alpha = Peer::new("alpha");
    let budget = FeedBudget {
        retention_days: 2,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    let chain = aged_chain(&alpha, 6);
    s.store
        .accept(&bytes(&chain), roster(&[&alpha]), NOW)
        .expect("accept");

    let report = s.store.prune(NOW).expect("prune");
    // Events 4, 5 and 6 are 2, 1 and 0 days old.
    let origin = alpha.id();
    let expected = Pruned {
        origin,
        reason: PruneReason::Age,
        events: 3,
        bytes: chain[..3].iter().map(|e| e.as_bytes().len() as u64).sum(),
        floor: 4,
    };
    assert_eq!(report.pruned, [expected]);
    let page = s.store.page(origin, 0, 100, 1 << 20).expect("page");
    assert_eq!((page.floor, page.events.len()), (4, 3));
    assert_eq!(page.events[0], chain[3].as_bytes());

    // A pruned event sent again is stale; a kept one a duplicate.
    let outcomes = s
        .store
        .accept(&bytes(&chain[1..4]), roster(&[&alpha]), NOW)
        .expect("accept");
    assert_eq!(
        outcomes,
        [
            Outcome::Stale {
                origin,
                seq: 2,
                floor: 4
            },
            Outcome::Stale {
                origin,
                seq: 3,
                floor: 4
            },
            Outcome::Duplicate { origin, seq: 4 },
        ]
    );

    // Much later, everything but the head goes, and the chain goes on.
    let far = Timestamp::from_millis(NOW.as_millis() + 30 * DAY);
    let report = s.store.prune(far).expect("prune");
    assert_eq!((report.events(), report.pruned[0].floor), (2, 6));
    let status = s.store.status().expect("status");
    assert_eq!(
        (
            status[0].head_seq,
            status[0].events_stored,
            status[0].oldest_seq
        ),
        (6, 1, 6)
    );
    let next = alpha.event(7, chain[5].hash(), json!({ "n": 7 }));
    let outcomes = s
        .store
        .accept(&bytes(&[next]), roster(&[&alpha]), far)
        .expect("accept");
    assert!(
        matches!(outcomes[0], Outcome::Stored { seq: 7, .. }),
        "{outcomes:?}"
    );
}

#[test]
fn pruning_by_size_keeps_the_newest_events_that_fit_and_never_the_head_alone() {
    let (alpha, bravo) = (Peer::new("alpha"), Peer::new("bravo"));
    let a = alpha.chain(10, "main");
    let b = bravo.chain(2, "main");
    // Exactly the last three of alpha's events fit.
    let fits: u64 = a[7..].iter().map(|e| e.as_bytes().len() as u64).sum();
    let budget = FeedBudget {
        max_bytes_per_origin: fits,
        ..FeedBudget::DEFAULT
    };
    let mut s = Store::new(budget);
    s.store
        .accept(&bytes(&a), roster(&[&alpha]), NOW)
        .expect("accept");
    s.store
        .accept(&bytes(&b), roster(&[&bravo]), NOW)
        .expect("accept");
    let frontier = s.store.frontier().expect("frontier");

    let report = s.store.prune(NOW).expect("prune");
    assert_eq!(report.pruned.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.pruned[0].origin,
            report.pruned[0].reason,
            report.pruned[0].events,
            report.pruned[0].floor
        ),
        (alpha.id(), PruneReason::Bytes, 7, 8)
    );
    assert_eq!(
        s.store.frontier().expect("frontier"),
        frontier,
        "heads survive"
    );
    assert!(
        s.store.prune(NOW).expect("prune").pruned.is_empty(),
        "pruning is idempotent"
    );

    // A limit smaller than one event keeps the head alone.
    let tiny = FeedBudget {
        max_bytes_per_origin: 1,
        ..FeedBudget::DEFAULT
    };
    let mut s = s.reopen(tiny);
    s.store.prune(NOW).expect("prune");
    let status = s.store.status().expect("status");
    let counts: Vec<_> = status
        .iter()
        .map(|o| (o.events_stored, o.oldest_seq, o.head_seq))
        .collect();
    let mut expected = vec![(1, 10, 10), (1, 2, 2)];
    if status[0].origin != alpha.id() {
        expected.reverse();
    }
    assert_eq!(counts, expected);
}
