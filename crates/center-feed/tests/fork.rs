//! Equivocation: both events kept, the origin frozen, and the two ways an
//! operator resolves it.

use center_feed::{Conflict, FeedBudget, Head, Outcome, Resolution, StartAt, StoreError};
use center_proto::EventName;
use expect_test::expect;
use serde_json::json;

use crate::support::{NOW, Peer, Store, bytes, render, roster};

/// A store holding alpha's `main` chain 1..=3, and alpha's `other` branch
/// that leaves it after 1 (events 2..=4).
fn forked_setup() -> (
    Peer,
    Store,
    Vec<center_feed::FeedEvent>,
    Vec<center_feed::FeedEvent>,
) {
    let alpha = Peer::new("alpha");
    let mut s = Store::new(FeedBudget::DEFAULT);
    let main = alpha.chain(4, "main");
    let other = alpha.extend(&main[..1], 4, "other");
    let stored = s
        .store
        .accept(&bytes(&main[..3]), roster(&[&alpha]), NOW)
        .expect("accept");
    assert!(stored.iter().all(|o| matches!(o, Outcome::Stored { .. })));
    (alpha, s, main, other)
}

#[test]
fn a_second_event_for_a_stored_seq_is_kept_as_evidence_and_freezes_the_origin() {
    let (alpha, mut s, main, other) = forked_setup();
    let page = bytes(&[other[1].clone(), main[3].clone(), main[1].clone()]);
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        Equivocation { origin: PeerId(alpha), seq: 2 }
        refused: event 4 of alpha: the feed is frozen by an equivocation until an operator resolves it
        Duplicate { origin: PeerId(alpha), seq: 2 }
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha")]));

    let evidence = s.store.equivocations().expect("evidence");
    assert_eq!(evidence.len(), 1);
    let e = &evidence[0];
    assert_eq!(
        (e.origin, e.seq, e.kind, e.resolved),
        (alpha.id(), 2, Conflict::SameSeq, false)
    );
    assert_eq!(
        (e.first_hash, e.second_hash),
        (main[1].hash(), other[1].hash())
    );
    assert_eq!(
        (&e.first[..], &e.second[..]),
        (main[1].as_bytes(), other[1].as_bytes())
    );
    assert_eq!(e.detected_at, NOW);

    // The head is frozen at 3, and survives a reopen frozen.
    let s = s.reopen(FeedBudget::DEFAULT);
    let status = s.store.status().expect("status");
    assert_eq!((status[0].head_seq, status[0].forked), (3, true));
    let mut s = s;
    let own = s.store.append_local(
        |m: &[u8]| alpha.identity.sign(m),
        alpha.id(),
        EventName::parse("x").expect("name"),
        json!({}),
        NOW,
    );
    assert!(matches!(own, Err(StoreError::Forked { .. })), "{own:?}");
}

/// Evidence relayed again is answered from what is held, without checking
/// its signature again (issue 13): the same contradicting event 500 times
/// costs one check, not 500.
#[test]
fn evidence_already_held_is_not_verified_again() {
    let (alpha, mut s, _main, other) = forked_setup();
    let first = s
        .store
        .accept(&bytes(&other[1..2]), roster(&[&alpha]), NOW)
        .expect("accept");
    assert!(
        matches!(first[..], [Outcome::Equivocation { .. }]),
        "{first:?}"
    );
    let checks = s.store.signature_checks();
    let again: Vec<_> = std::iter::repeat_n(other[1].clone(), 100).collect();
    let outcomes = s
        .store
        .accept(&bytes(&again), roster(&[&alpha]), NOW)
        .expect("accept");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Refused(center_feed::Refusal::Forked { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(s.store.signature_checks(), checks);
    assert_eq!(s.store.equivocations().expect("evidence").len(), 1);
}

#[test]
fn an_event_that_breaks_the_chain_at_the_head_is_an_equivocation() {
    let (alpha, mut s, _main, other) = forked_setup();
    // `other[3]` is seq 4, after our head 3, but its prev is `other[2]`.
    let outcomes = s
        .store
        .accept(&bytes(&other[3..]), roster(&[&alpha]), NOW)
        .expect("accept");
    assert_eq!(
        outcomes,
        [Outcome::Equivocation {
            origin: alpha.id(),
            seq: 4
        }]
    );
    let evidence = s.store.equivocations().expect("evidence");
    assert_eq!(evidence[0].kind, Conflict::BrokenChain);
    assert_eq!(evidence[0].second_hash, other[3].hash());
}

#[test]
fn a_forged_conflicting_event_is_a_bad_signature_not_evidence() {
    let (alpha, mut s, main, _other) = forked_setup();
    let text = String::from_utf8(main[1].as_bytes().to_vec()).expect("utf-8");
    let forged = text.replace(r#""branch":"main""#, r#""branch":"evil""#);
    let outcomes = s
        .store
        .accept(&[forged], roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        refused: event 2 of alpha: bad signature: signature does not match the message
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha")]));
    assert!(s.store.equivocations().expect("evidence").is_empty());
    assert!(!s.store.status().expect("status")[0].forked);
}

#[test]
fn resolving_for_the_stored_event_rejects_the_other_branch() {
    let (alpha, mut s, main, other) = forked_setup();
    s.store
        .accept(&bytes(&other[1..2]), roster(&[&alpha]), NOW)
        .expect("accept");
    let got = s
        .store
        .resolve_fork(alpha.id(), main[1].hash())
        .expect("resolve");
    assert_eq!(
        got,
        Resolution::KeptStored {
            head: Head {
                seq: 3,
                hash: main[2].hash()
            }
        }
    );
    // The other branch is refused without freezing again; ours goes on.
    let page = bytes(&[other[1].clone(), other[2].clone(), main[3].clone()]);
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        refused: event 2 of alpha is on a branch an operator rejected when resolving a fork
        refused: event 3 of alpha is on a branch an operator rejected when resolving a fork
        Stored { origin: PeerId(alpha), seq: 4, pos: 4 }
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha")]));
    assert!(s.store.equivocations().expect("evidence")[0].resolved);

    // Nothing left to resolve.
    let again = s.store.resolve_fork(alpha.id(), main[1].hash());
    assert!(
        matches!(again, Err(StoreError::NotForked { .. })),
        "{again:?}"
    );
}

#[test]
fn resolving_for_the_other_event_replaces_the_stored_branch() {
    let (alpha, mut s, main, other) = forked_setup();
    s.store
        .new_subscriber("userd", StartAt::Oldest)
        .expect("subscribe");
    s.store.advance("userd", alpha.id(), 3).expect("advance");
    s.store
        .accept(&bytes(&other[1..2]), roster(&[&alpha]), NOW)
        .expect("accept");

    let unknown = s.store.resolve_fork(alpha.id(), other[2].hash());
    assert!(
        matches!(unknown, Err(StoreError::UnknownEvent { .. })),
        "{unknown:?}"
    );

    let got = s
        .store
        .resolve_fork(alpha.id(), other[1].hash())
        .expect("resolve");
    assert_eq!(got, Resolution::Replaced { seq: 2, removed: 2 });
    assert_eq!(
        s.store.frontier().expect("frontier")[&alpha.id()],
        Head {
            seq: 2,
            hash: other[1].hash()
        }
    );
    // The subscriber is set back to see the kept event 2.
    assert_eq!(s.store.cursor("userd", alpha.id()).expect("cursor"), 1);
    let next = s.store.next_for("userd", 0, 10).expect("next");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].bytes, other[1].as_bytes());

    let page = bytes(&[
        main[2].clone(),
        main[3].clone(),
        other[2].clone(),
        other[3].clone(),
    ]);
    let outcomes = s
        .store
        .accept(&page, roster(&[&alpha]), NOW)
        .expect("accept");
    expect![[r#"
        refused: event 3 of alpha is on a branch an operator rejected when resolving a fork
        Gap { origin: PeerId(alpha), seq: 4, have: 2 }
        Stored { origin: PeerId(alpha), seq: 3, pos: 5 }
        Stored { origin: PeerId(alpha), seq: 4, pos: 6 }
    "#]]
    .assert_eq(&render(&outcomes, &[(&alpha, "alpha")]));
}
