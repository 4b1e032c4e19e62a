//! Key rotation (CEP 7): events are verified with the key their origin had
//! at their seq; a `peer.rotate` event switches the keys, inside a page
//! too; a rotation that does not name the key that signed it is refused.

use center_feed::{
    EventBody, EventHash, FeedBudget, FeedEvent, OriginKeys, Outcome, Refusal, RetiredKeys,
    Rotation, rotation_data,
};
use center_identity::{Identity, PeerKeys};
use center_proto::{EventName, PeerId};
use serde_json::{Value, json};

use crate::support::{NOW, Peer, Store, bytes};

/// Event `seq` named `name`, signed by `signer` as `origin`.
fn signed(signer: &Identity, seq: u64, prev: EventHash, name: &str, data: Value) -> FeedEvent {
    let body = EventBody {
        origin: signer.uuid(),
        seq,
        prev,
        name: EventName::parse(name).expect("name"),
        iat: NOW,
        data,
    };
    FeedEvent::sign(body, |message| signer.sign(message)).expect("sign")
}

/// What a rotation at `at` leaves: `n` events before it (old key), the
/// rotate event, and what each key signs after it.
struct Rotated {
    before: Vec<FeedEvent>,
    rotate: FeedEvent,
    /// Old key, seq `at + 1`: what a thief of the old key would write.
    forged: FeedEvent,
    /// New key, seq `at + 1`.
    next: FeedEvent,
    /// New key, seq `at`, in place of the rotate event.
    early: FeedEvent,
    old: PeerKeys,
    new: PeerKeys,
}

fn rotate(peer: &mut Peer, at: u64) -> Rotated {
    let before = peer.chain(at - 1, "old");
    let prev = before.last().map_or(EventHash::ZERO, FeedEvent::hash);
    let prepared = peer.identity.prepare_rotation().expect("prepare");
    let data = rotation_data(prepared.description(), &peer.identity.fingerprint());
    let rotate = signed(&peer.identity, at, prev, "peer.rotate", data);
    let forged = signed(
        &peer.identity,
        at + 1,
        rotate.hash(),
        "test.event",
        json!({"who": "thief"}),
    );
    let new = PeerKeys::from_description(prepared.description());
    let old = peer.keys.clone();
    peer.identity.commit_rotation(prepared).expect("commit");
    let next = signed(
        &peer.identity,
        at + 1,
        rotate.hash(),
        "test.event",
        json!({"who": "owner"}),
    );
    let early = signed(&peer.identity, at, prev, "test.event", json!({}));
    Rotated {
        before,
        rotate,
        forged,
        next,
        early,
        old,
        new,
    }
}

fn only(origin: PeerId, keys: OriginKeys) -> impl Fn(&PeerId) -> Option<OriginKeys> {
    move |id| (*id == origin).then(|| keys.clone())
}

fn is_bad_signature(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Refused(Refusal::BadSignature { .. }))
}

#[test]
fn a_rotation_in_a_page_switches_keys_for_the_rest_of_it() {
    let mut bravo = Peer::new("bravo");
    let id = bravo.id();
    // Enough events on both sides to be checked ahead, in parallel.
    let r = rotate(&mut bravo, 40);
    let mut after = vec![r.next.clone()];
    for seq in 42..=80 {
        let prev = after.last().map_or(EventHash::ZERO, FeedEvent::hash);
        after.push(signed(&bravo.identity, seq, prev, "test.event", json!({})));
    }
    let mut page = r.before.clone();
    page.push(r.rotate.clone());
    page.extend(after);
    let mut s = Store::new(FeedBudget::DEFAULT);
    // The receiver knows only the old key: the page teaches it the new one.
    let outcomes = s
        .store
        .accept(&bytes(&page), only(id, r.old.clone().into()), NOW)
        .expect("accept");
    assert_eq!(outcomes.len(), 80);
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{outcomes:?}"
    );
    let rotations = s.store.rotations(id, 0).expect("rotations");
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].seq(), 40);
    assert!(s.store.rotations(id, 40).expect("rotations").is_empty());
}

#[test]
fn the_old_key_after_the_rotation_is_refused_even_in_the_same_page() {
    let mut bravo = Peer::new("bravo");
    let id = bravo.id();
    let r = rotate(&mut bravo, 3);
    let mut page = r.before.clone();
    page.push(r.rotate.clone());
    page.push(r.forged.clone());
    let mut s = Store::new(FeedBudget::DEFAULT);
    let outcomes = s
        .store
        .accept(&bytes(&page), only(id, r.old.clone().into()), NOW)
        .expect("accept");
    assert!(
        outcomes[..3]
            .iter()
            .all(|o| matches!(o, Outcome::Stored { .. }))
    );
    assert!(is_bad_signature(&outcomes[3]), "{:?}", outcomes[3]);
    // Once the receiver's roster has the history, the owner's event at
    // that seq fits.
    let history = OriginKeys::new(
        r.new,
        vec![RetiredKeys {
            keys: r.old,
            last_seq: 3,
        }],
    )
    .expect("history");
    let outcomes = s
        .store
        .accept(
            &bytes(std::slice::from_ref(&r.next)),
            only(id, history),
            NOW,
        )
        .expect("accept");
    assert!(
        matches!(outcomes[0], Outcome::Stored { seq: 4, .. }),
        "{outcomes:?}"
    );
}

#[test]
fn a_history_verifies_each_seq_with_its_own_key() {
    let mut bravo = Peer::new("bravo");
    let id = bravo.id();
    let r = rotate(&mut bravo, 3);
    let history = OriginKeys::new(
        r.new.clone(),
        vec![RetiredKeys {
            keys: r.old.clone(),
            last_seq: 3,
        }],
    )
    .expect("history");
    assert_eq!(history.for_seq(1).fingerprint(), r.old.fingerprint());
    assert_eq!(history.for_seq(3).fingerprint(), r.old.fingerprint());
    assert_eq!(history.for_seq(4).fingerprint(), r.new.fingerprint());

    // The new key at or below the rotation: refused.
    let mut s = Store::new(FeedBudget::DEFAULT);
    let outcomes = s
        .store
        .accept(
            &bytes(&[&r.before[..], std::slice::from_ref(&r.early)].concat()),
            only(id, history.clone()),
            NOW,
        )
        .expect("accept");
    assert!(matches!(outcomes[1], Outcome::Stored { .. }));
    assert!(is_bad_signature(&outcomes[2]), "{:?}", outcomes[2]);

    // The old key up to the rotation: stored; after it: refused; the new
    // key after it: stored.
    let page = [r.rotate.clone(), r.forged.clone(), r.next.clone()];
    let outcomes = s
        .store
        .accept(&bytes(&page), only(id, history), NOW)
        .expect("accept");
    assert!(matches!(outcomes[0], Outcome::Stored { seq: 3, .. }));
    assert!(is_bad_signature(&outcomes[1]), "{:?}", outcomes[1]);
    assert!(
        matches!(outcomes[2], Outcome::Stored { seq: 4, .. }),
        "{outcomes:?}"
    );
}

#[test]
fn a_rotation_that_does_not_name_its_signer_is_refused() {
    let bravo = Peer::new("bravo");
    let other = Peer::new("other");
    let id = bravo.id();
    let prepared = bravo.identity.prepare_rotation().expect("prepare");
    // Claims to retire another certificate than the one that signs it.
    let data = rotation_data(prepared.description(), &other.identity.fingerprint());
    let bad = signed(&bravo.identity, 1, EventHash::ZERO, "peer.rotate", data);
    // Moves to another peer's keys.
    let stolen = rotation_data(
        &other.identity.describe().expect("describe"),
        &bravo.identity.fingerprint(),
    );
    let stolen = signed(&bravo.identity, 1, EventHash::ZERO, "peer.rotate", stolen);
    let not_data = signed(
        &bravo.identity,
        1,
        EventHash::ZERO,
        "peer.rotate",
        json!({"description": 1, "old_fingerprint": "x"}),
    );
    let mut s = Store::new(FeedBudget::DEFAULT);
    for event in [bad, stolen, not_data] {
        let outcomes = s
            .store
            .accept(&bytes(&[event]), only(id, bravo.keys.clone().into()), NOW)
            .expect("accept");
        assert!(
            matches!(outcomes[0], Outcome::Refused(Refusal::BadRotation { .. })),
            "{outcomes:?}"
        );
    }
    assert!(Rotation::from_data(id, &json!([])).is_err());
}
