//! The account event readers on valid and hostile `data`, as data: each
//! case is an event name, its `data` and what the reader says.

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

const HASH: &str = "{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJt6pcB2X0zLqYb6n6Yx0m5mjsXy6yD5ZsYb9vJ6Qy0 alice@laptop";

fn created() -> Value {
    json!({
        "name": "alice",
        "uid_number": BASE + 3 * BLOCK_SIZE + 1,
        "gid_number": BASE + 3 * BLOCK_SIZE + 1,
        "shell": "/bin/bash",
        "display_name": "Alice Liddell",
        "password_hash": HASH,
        "ssh_keys": [KEY],
        "created": 1_790_000_000_000u64,
        "user_key": "",
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn check(name: &str, data: Value, expected: Expect) {
    let shown = match AccountEvent::read(name, &data) {
        Ok(event) => {
            // What reads back writes back the same.
            let (written, data2) = event.to_event();
            assert_eq!(written, name);
            assert_eq!(AccountEvent::read(name, &data2), Ok(event.clone()));
            crate::fuzz::account_event(data.to_string().as_bytes());
            format!("ok {:?}", event.account())
        }
        Err(err) => format!("refused: {err}"),
    };
    expected.assert_eq(&shown);
}

#[test]
fn created_events() {
    check(CREATED, created(), expect![[r#"ok Some("alice")"#]]);
    check(
        CREATED,
        with(created(), "name", json!("Alice")),
        expect!["refused: `name` must match ^[a-z][a-z0-9]{1,31}$"],
    );
    check(
        CREATED,
        with(created(), "name", json!("a")),
        expect!["refused: `name` must match ^[a-z][a-z0-9]{1,31}$"],
    );
    check(
        CREATED,
        with(created(), "name", json!("a".repeat(33))),
        expect!["refused: `name` must match ^[a-z][a-z0-9]{1,31}$"],
    );
    check(
        CREATED,
        with(created(), "uid_number", json!(0)),
        expect!["refused: `uid_number` is outside every peer's block"],
    );
    check(
        CREATED,
        with(created(), "gid_number", json!(0)),
        expect!["refused: `gid_number` must equal uid_number"],
    );
    check(
        CREATED,
        with(created(), "uid_number", json!(u64::from(u32::MAX) + 1)),
        expect!["refused: `uid_number` too large"],
    );
    check(
        CREATED,
        with(created(), "password_hash", json!("hunter2")),
        expect!["refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"],
    );
    check(
        CREATED,
        with(created(), "password_hash", json!("{SSHA}abcdefghijklmnop")),
        expect!["refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"],
    );
    check(
        CREATED,
        with(
            created(),
            "password_hash",
            json!(HASH.replace("argon2id", "argon2i")),
        ),
        expect!["refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"],
    );
    check(
        CREATED,
        // Each peer decides where homes are: an event never says.
        with(created(), "home", json!("/etc")),
        expect!["refused: `data` has an unknown member `home`"],
    );
    check(
        CREATED,
        with(created(), "shell", json!("bash")),
        expect![
            "refused: `shell` must be an absolute path of letters, digits, '/', '.', '_', '-' without '..'"
        ],
    );
    check(
        CREATED,
        with(created(), "display_name", json!("Al\nice")),
        expect!["refused: `display_name` must be at most 128 characters, none a control character"],
    );
    check(
        CREATED,
        with(
            created(),
            "ssh_keys",
            json!([format!("{KEY}\nssh-rsa AAAA")]),
        ),
        expect!["refused: `ssh_keys` holds something that is not an SSH public key"],
    );
    check(
        CREATED,
        with(
            created(),
            "ssh_keys",
            json!(["command=\"sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"]),
        ),
        expect!["refused: `ssh_keys` holds something that is not an SSH public key"],
    );
    check(
        CREATED,
        with(created(), "ssh_keys", json!([KEY, KEY])),
        expect!["refused: `ssh_keys` holds the same key twice"],
    );
    check(
        CREATED,
        without(created(), "shell"),
        expect!["refused: `data` lacks `shell`"],
    );
    check(
        CREATED,
        with(created(), "joined_from", json!("someone-else")),
        expect!["refused: `data` has an unknown member `joined_from`"],
    );
    check(
        CREATED,
        json!([]),
        expect!["refused: `data` must be a JSON object"],
    );
}

#[test]
fn user_keys_signatures_and_hash_costs() {
    let key = crate::authority::public_key(&vodozemac::Ed25519SecretKey::from_slice(&[7; 32]));
    check(
        CREATED,
        with(created(), "user_key", json!(key)),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        CREATED,
        with(created(), "user_key", json!("AAAA")),
        expect!["refused: `user_key` must be empty or an Ed25519 public key in unpadded base64"],
    );
    let change = json!({"name": "alice", "ssh_keys": [], "at": 5, "auth": "x".repeat(86)});
    check(
        KEYS,
        change,
        expect!["refused: `auth` must be empty or an Ed25519 signature in unpadded base64"],
    );
    check(
        KEYS,
        json!({"name": "alice", "ssh_keys": [], "at": 0, "auth": ""}),
        expect!["refused: `at` must be a time in milliseconds"],
    );
    // A hash that would pin slapd at every bind, on every peer.
    for (params, shown) in [
        ("m=65536,t=10,p=4", expect![[r#"ok Some("alice")"#]]),
        (
            "m=65537,t=2,p=1",
            expect![
                "refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"
            ],
        ),
        (
            "m=19456,t=11,p=1",
            expect![
                "refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"
            ],
        ),
        (
            "m=19456,t=2,p=5",
            expect![
                "refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"
            ],
        ),
        (
            "m=4294967295,t=2,p=1",
            expect![
                "refused: `password_hash` must be {ARGON2} followed by an $argon2id$ PHC string"
            ],
        ),
    ] {
        let hash = HASH.replace("m=19456,t=2,p=1", params);
        check(
            CREATED,
            with(created(), "password_hash", json!(hash)),
            shown,
        );
    }
}

#[test]
fn delegations() {
    let key = vodozemac::Ed25519SecretKey::from_slice(&[7; 32]);
    let peer = "bbbbbbbb-0000-4000-8000-000000000002";
    let unsigned = json!({"name": "alice", "peer": peer, "scopes": ["keys", "files"],
        "not_before": 1_000, "not_after": 1_000 + MAX_DELEGATION_MS, "auth": ""});
    let event = AccountEvent::read(DELEGATED, &unsigned.clone().with_auth()).unwrap();
    let signed = crate::authority::sign(event, &key).to_event().1;
    check(DELEGATED, signed.clone(), expect![[r#"ok Some("alice")"#]]);
    check(
        DELEGATED,
        unsigned.clone(),
        expect!["refused: `auth` a delegation must be signed by its user"],
    );
    check(
        DELEGATED,
        with(
            signed.clone(),
            "not_after",
            json!(1_001 + MAX_DELEGATION_MS),
        ),
        expect!["refused: `not_after` must be after not_before, by 30 days at most"],
    );
    check(
        DELEGATED,
        with(signed.clone(), "not_after", json!(1_000)),
        expect!["refused: `not_after` must be after not_before, by 30 days at most"],
    );
    check(
        DELEGATED,
        with(signed.clone(), "scopes", json!(["root"])),
        expect![[r#"refused: `scopes` holds something other than "keys" or "files""#]],
    );
    check(
        DELEGATED,
        with(signed.clone(), "scopes", json!([])),
        expect!["refused: `scopes` must name at least one scope"],
    );
    check(
        DELEGATED,
        with(signed, "peer", json!("bravo")),
        expect!["refused: `peer` must be a peer's UUID"],
    );
}

/// `data` with a placeholder signature, for reading before signing.
trait WithAuth {
    fn with_auth(self) -> Value;
}

impl WithAuth for Value {
    fn with_auth(self) -> Value {
        let signature = vodozemac::Ed25519SecretKey::from_slice(&[1; 32])
            .sign(b"placeholder")
            .to_base64();
        with(self, "auth", json!(signature))
    }
}

#[test]
fn other_events() {
    check(BLOCK, json!({"index": 3, "attempt": 0}), expect!["ok None"]);
    check(
        BLOCK,
        json!({"index": BLOCKS, "attempt": 0}),
        expect!["refused: `index` must be below 879"],
    );
    check(
        BLOCK,
        json!({"index": -1, "attempt": 0}),
        expect!["refused: `index` must be a non-negative integer"],
    );
    check(
        PASSWORD,
        json!({"name": "alice", "password_hash": HASH, "user_key": "", "at": 5, "auth": ""}),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        PASSWORD,
        json!({"name": "alice", "password": "hunter2"}),
        expect!["refused: `data` has an unknown member `password`"],
    );
    check(
        KEYS,
        json!({"name": "alice", "ssh_keys": [], "at": 5, "auth": ""}),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        PROFILE,
        json!({"name": "alice", "shell": "/bin/zsh", "display_name": "", "at": 5, "auth": ""}),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        DELETED,
        json!({"name": "alice", "deleted": 1_790_000_000_000u64, "auth": ""}),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        DELETED,
        json!({"name": "alice", "auth": ""}),
        expect!["refused: `data` lacks `deleted`"],
    );
    check(
        DELETED,
        json!({"name": "root!", "deleted": 1, "auth": ""}),
        expect!["refused: `name` must match ^[a-z][a-z0-9]{1,31}$"],
    );
    check(
        NOTICE,
        json!({"name": "alice", "action": "ban", "reason": "spam"}),
        expect![[r#"ok Some("alice")"#]],
    );
    check(
        NOTICE,
        json!({"name": "alice", "action": "delete", "reason": ""}),
        expect![[r#"refused: `action` must be "ban" or "unban""#]],
    );
    check(
        NOTICE,
        json!({"name": "alice", "action": "ban", "reason": "a\u{1b}[2J"}),
        expect!["refused: `reason` must be at most 512 characters, none a control character"],
    );
    check(
        "account.other",
        json!({}),
        expect!["refused: `account.other` is not an account event"],
    );
}

#[test]
fn keys() {
    for good in [
        KEY,
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=",
    ] {
        assert!(valid_key(good), "{good}");
    }
    for bad in [
        "",
        "ssh-ed25519",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP8=",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG===",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJt6pcB2X0zLqYb6n6Yx0m5mjsXy6yD5ZsYb9vJ6Qy0\tx",
        "ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAAIGJt6pcB2X0zLqYb6n6Yx0m5mjsXy6yD5ZsYb9vJ6Qy0",
    ] {
        assert!(!valid_key(bad), "{bad:?}");
    }
    assert_eq!(normalize_key(&format!("  {KEY}\n")), KEY);
}

#[test]
fn hashes_made_here_are_accepted() {
    let hash = hash_password("correct horse").unwrap();
    assert!(valid_hash(&hash), "{hash}");
    assert!(
        hash.starts_with("{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[test]
fn blocks() {
    assert_eq!(block_of(BASE - 1), None);
    assert_eq!(block_of(BASE), Some(0));
    assert_eq!(block_of(BASE + 5 * BLOCK_SIZE + 7), Some(5));
    assert_eq!(block_of(BASE + BLOCKS * BLOCK_SIZE), None);
    assert_eq!(block_range(2), BASE + 2 * BLOCK_SIZE..BASE + 3 * BLOCK_SIZE);
    assert!(block_range(BLOCKS - 1).end < 1_879_048_192);
}

#[test]
fn fuzz_body_survives_garbage() {
    for input in [&b""[..], b"{", b"null", b"{\"name\":1}", &[0xff, 0xfe]] {
        crate::fuzz::account_event(input);
    }
}

#[test]
fn cep_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../CEPS/vectors/0008-account-events.json"
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let result = AccountEvent::read(name, &v["data"]);
        assert_eq!(
            result.is_ok(),
            v["valid"].as_bool().unwrap(),
            "{}: {result:?}",
            v["why"]
        );
        crate::fuzz::account_event(v["data"].to_string().as_bytes());
    }
}
