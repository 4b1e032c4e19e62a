//! The body of the `account_event` fuzz target (`fuzz/fuzz_targets/
//! account_event.rs`): every account event reader on arbitrary bytes. The
//! oracle is that none panics and that what reads back writes back the
//! same; the users' signatures (`auth`) are checked as every peer checks
//! them, and the control socket's reader sees the same data. The crate's
//! tests run it over the valid events as seeds.

use crate::account::{self, AccountEvent};

/// Reads `data` (a JSON `data` object) as every account event.
pub fn account_event(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for name in [
        account::BLOCK,
        account::CREATED,
        account::PASSWORD,
        account::KEYS,
        account::PROFILE,
        account::DELETED,
        account::NOTICE,
        account::DELEGATED,
    ] {
        if let Ok(event) = AccountEvent::read(name, &value) {
            let (written, data) = event.to_event();
            assert_eq!(written, name);
            assert_eq!(AccountEvent::read(name, &data).as_ref(), Ok(&event));
            // The user's signature, checked as every peer does: a forged
            // or garbled one is refused, never a panic.
            let key =
                crate::authority::public_key(&vodozemac::Ed25519SecretKey::from_slice(&[7; 32]));
            let _ = crate::authority::authorize("origin", "home", Some(&key), &[], &event);
        }
    }
    // The control socket's reader sees the same data from local users.
    for name in [account::PASSWORD, account::KEYS, account::DELEGATED] {
        let request = serde_json::json!({ "event": name, "data": value });
        let _ = crate::control::parse(&request);
    }
    // And root's creation requests, numbered by userd.
    let request = serde_json::json!({ "event": account::CREATED, "data": value });
    let _ = crate::control::parse_create(&request);
    let _ = crate::control::parse_create(&value);
}
