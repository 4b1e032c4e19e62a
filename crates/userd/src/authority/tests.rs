//! The authority rules as tables: who may change an account, which times
//! are believed, and which of two changes wins.

use expect_test::{Expect, expect};

use super::*;
use crate::account::{Scope, Stamp};

const HOME: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const OTHER: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const HASH: &str = "{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn password(at: u64) -> AccountEvent {
    AccountEvent::Password {
        name: "alice".to_owned(),
        password_hash: HASH.to_owned(),
        user_key: None,
        stamp: Stamp { at, auth: None },
    }
}

fn check(result: Result<Authority, Unauthorized>, expected: Expect) {
    let shown = match result {
        Ok(authority) => format!("ok: {}", authority.as_str()),
        Err(err) => format!("refused: {err}"),
    };
    expected.assert_eq(&shown);
}

#[test]
fn who_may_change_an_account() {
    let alice = derive_user_key("alice", "correct horse").unwrap();
    let mallory = Ed25519SecretKey::new();
    let key = public_key(&alice);
    let unsigned = password(1_000);
    let signed = sign(password(1_000), &alice);
    let forged = sign(password(1_000), &mallory);
    check(
        authorize(HOME, HOME, Some(&key), &[], &unsigned),
        expect!["ok: from its home peer"],
    );
    check(
        authorize(OTHER, HOME, Some(&key), &[], &unsigned),
        expect![
            "refused: neither signed by its user nor published by its home peer aaaaaaaa-0000-4000-8000-000000000001, nor by a peer she delegated it to"
        ],
    );
    check(
        authorize(OTHER, HOME, Some(&key), &[], &signed),
        expect!["ok: signed by its user"],
    );
    check(
        authorize(OTHER, HOME, Some(&key), &[], &forged),
        expect!["refused: signed by a key that is not the account's user key"],
    );
    // A forged signature is refused even from the home peer.
    check(
        authorize(HOME, HOME, Some(&key), &[], &forged),
        expect!["refused: signed by a key that is not the account's user key"],
    );
    check(
        authorize(OTHER, HOME, None, &[], &signed),
        expect!["refused: signed by its user, but the account has no user key here"],
    );
    // The signature covers every member: a changed time breaks it.
    let AccountEvent::Password {
        name,
        password_hash,
        user_key,
        stamp,
    } = signed
    else {
        unreachable!()
    };
    let moved = AccountEvent::Password {
        name,
        password_hash,
        user_key,
        stamp: Stamp {
            at: stamp.at + 1,
            auth: stamp.auth,
        },
    };
    check(
        authorize(OTHER, HOME, Some(&key), &[], &moved),
        expect!["refused: signed by a key that is not the account's user key"],
    );
}

#[test]
fn the_same_password_gives_the_same_key_and_another_name_another() {
    let one = public_key(&derive_user_key("alice", "pw").unwrap());
    assert_eq!(one, public_key(&derive_user_key("alice", "pw").unwrap()));
    assert_ne!(one, public_key(&derive_user_key("alicf", "pw").unwrap()));
    assert_ne!(one, public_key(&derive_user_key("alice", "px").unwrap()));
}

#[test]
fn stated_times_are_bounded() {
    let now = 1_800_000_000_000;
    let show = |r: Result<(), Unauthorized>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    expect!["ok"].assert_eq(&show(check_time("created", now, now, now)));
    expect!["ok"].assert_eq(&show(check_time("created", now - SKEW_MS, now, now)));
    expect![
        "refused: `created` (1 ms) is more than 5 minutes from the event's iat (1800000000000 ms)"
    ]
    .assert_eq(&show(check_time("created", 1, now, now)));
    expect!["refused: `deleted` (32503680000000 ms) is more than 5 minutes from the event's iat (1800000000000 ms)"]
        .assert_eq(&show(check_time("deleted", 32_503_680_000_000, now, now)));
    // A signed time far ahead is refused even when iat agrees with it.
    let ahead = now + 3_600_000;
    expect!["refused: `at` (1800003600000 ms) is in this peer's future (now 1800000000000 ms)"]
        .assert_eq(&show(check_time("at", ahead, ahead, now)));
    // An old event caught up later is fine: its times agree with its iat.
    expect!["ok"].assert_eq(&show(check_time(
        "at",
        now - 86_400_000,
        now - 86_400_000,
        now,
    )));
    expect!["ok"].assert_eq(&show(check_newer(2, 1)));
    expect!["refused: older than the change already applied (at 1 ms; this one at 1 ms)"]
        .assert_eq(&show(check_newer(1, 1)));
}

#[test]
fn a_delegated_peer_changes_only_the_keys_only_while_it_may() {
    let alice = derive_user_key("alice", "pw").unwrap();
    let key = public_key(&alice);
    let keys = |at| AccountEvent::Keys {
        name: "alice".to_owned(),
        ssh_keys: Vec::new(),
        stamp: Stamp { at, auth: None },
    };
    let to_other = |key: &str| Delegated {
        peer: OTHER.to_owned(),
        scopes: vec![Scope::Keys],
        not_before: 100,
        not_after: 200,
        key: key.to_owned(),
    };
    let held = [to_other(&key)];
    check(
        authorize(OTHER, HOME, Some(&key), &held, &keys(150)),
        expect!["ok: from a peer its user delegated it to"],
    );
    // Outside its time, from another peer, for a password, or signed with
    // a key she no longer has (a new password ends every delegation).
    for (origin, event, delegations) in [
        (OTHER, keys(99), held.to_vec()),
        (OTHER, keys(201), held.to_vec()),
        (
            "cccccccc-0000-4000-8000-000000000003",
            keys(150),
            held.to_vec(),
        ),
        (OTHER, password(150), held.to_vec()),
        (OTHER, keys(150), vec![to_other("an older key")]),
        (
            OTHER,
            keys(150),
            vec![Delegated {
                scopes: vec![Scope::Files],
                ..to_other(&key)
            }],
        ),
    ] {
        assert!(
            authorize(origin, HOME, Some(&key), &delegations, &event).is_err(),
            "{origin} {event:?} {delegations:?}"
        );
    }
}
