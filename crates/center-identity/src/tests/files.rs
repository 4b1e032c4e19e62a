//! Creating and loading an identity: round trip, modes, refusals, and the
//! account saved when one-time keys are published or used.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use expect_test::{Expect, expect};

use super::{fresh, keys_of, redact};
use crate::{Identity, IdentityError, IdentityPaths};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn paths_of(tmp: &tempfile::TempDir) -> IdentityPaths {
    IdentityPaths::new(tmp.path().join("identity"))
}

fn check_load_error(tmp: &tempfile::TempDir, expect: Expect) {
    let err = Identity::load(&paths_of(tmp)).expect_err("load must refuse");
    expect.assert_eq(&redact(&err.to_string(), tmp.path()));
}

#[test]
fn create_then_load_round_trips() {
    let (tmp, created) = fresh("alpha");
    let loaded = Identity::load(&paths_of(&tmp)).expect("load");
    assert_eq!(loaded.uuid(), created.uuid());
    assert_eq!(loaded.name(), "alpha");
    assert_eq!(loaded.address(), "127.0.0.1:7350");
    assert_eq!(loaded.fingerprint(), created.fingerprint());
    assert_eq!(loaded.olm_curve25519(), created.olm_curve25519());
    assert_eq!(loaded.pickle_key(), created.pickle_key());
    assert_eq!(loaded.fingerprint().len(), 40);
    assert!(
        loaded
            .fingerprint()
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    );

    // What the loaded identity signs verifies against the created one's keys.
    let signature = loaded.sign(b"hello").expect("sign");
    keys_of(&created)
        .verify(b"hello", &signature)
        .expect("verifies");
}

#[test]
fn files_have_their_modes_and_no_temporaries_remain() {
    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    assert_eq!(mode(&paths.dir), 0o700);
    for secret in [paths.cert(), paths.olm_account(), paths.pickle_key()] {
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
    assert_eq!(mode(&paths.identity_json()), 0o644);
    assert_eq!(fs::metadata(paths.pickle_key()).expect("key").len(), 32);

    let mut names: Vec<String> = fs::read_dir(&paths.dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    expect![[r#"[".lock", "cert.asc", "identity.json", "olm-account.pickle", "pickle.key"]"#]]
        .assert_eq(&format!("{names:?}"));

    let public = fs::read_to_string(paths.identity_json()).expect("identity.json");
    let expected = format!(
        "{{\"address\":\"127.0.0.1:7350\",\"name\":\"alpha\",\"uuid\":\"{}\"}}\n",
        _identity.uuid()
    );
    assert_eq!(public, expected);
    let cert = fs::read_to_string(paths.cert()).expect("cert.asc");
    assert!(cert.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
}

#[test]
fn create_refuses_an_existing_identity_and_leaves_it_alone() {
    let (tmp, first) = fresh("alpha");
    let err = Identity::create(&paths_of(&tmp), "beta", "127.0.0.1:7351")
        .expect_err("second create must refuse");
    expect![[
        r#"an identity already exists at $DIR/identity/identity.json; it is never overwritten"#
    ]]
    .assert_eq(&redact(&err.to_string(), tmp.path()));
    let loaded = Identity::load(&paths_of(&tmp)).expect("load");
    assert_eq!(loaded.fingerprint(), first.fingerprint());
    assert_eq!(loaded.name(), "alpha");
}

#[test]
fn create_refuses_bad_names_and_addresses() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let check = |name: &str, address: &str, expect: Expect| {
        let err = Identity::create(&paths_of(&tmp), name, address).expect_err("refused");
        expect.assert_eq(&err.to_string());
    };
    check(
        "",
        "127.0.0.1:7350",
        expect![[r#"name must be 1 to 63 characters of letters, digits, '.' and '-'"#]],
    );
    check(
        "al pha",
        "127.0.0.1:7350",
        expect![[r#"name must be 1 to 63 characters of letters, digits, '.' and '-'"#]],
    );
    for address in [
        "127.0.0.1",
        "host:0",
        "host:65536",
        ":7350",
        "host:07350",
        "a b:1",
    ] {
        check(
            "alpha",
            address,
            expect![[
                r#"address must be HOST:PORT (at most 255 printable characters, port 1 to 65535), e.g. 127.0.0.1:7350"#
            ]],
        );
    }
    assert!(!tmp.path().join("identity").exists(), "nothing was written");
    // Host names and IPv6 literals are fine.
    let ok = tempfile::tempdir().expect("temp dir");
    Identity::create(&paths_of(&ok), "alpha", "[::1]:7350").expect("ipv6 address");
}

#[test]
fn create_refuses_a_directory_open_to_others() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let paths = paths_of(&tmp);
    fs::create_dir(&paths.dir).expect("mkdir");
    fs::set_permissions(&paths.dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = Identity::create(&paths, "alpha", "127.0.0.1:7350").expect_err("refused");
    expect![[r#"directory $DIR/identity has mode 755, open to group or others; run `chmod 700 $DIR/identity`"#]]
        .assert_eq(&redact(&err.to_string(), tmp.path()));
}

#[test]
fn load_refuses_secret_files_readable_by_others() {
    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    for (secret, expect) in [
        (
            paths.cert(),
            expect![[
                r#"$DIR/identity/cert.asc holds secrets but has mode 644, open to group or others; run `chmod 600 $DIR/identity/cert.asc`"#
            ]],
        ),
        (
            paths.olm_account(),
            expect![[
                r#"$DIR/identity/olm-account.pickle holds secrets but has mode 644, open to group or others; run `chmod 600 $DIR/identity/olm-account.pickle`"#
            ]],
        ),
        (
            paths.pickle_key(),
            expect![[
                r#"$DIR/identity/pickle.key holds secrets but has mode 644, open to group or others; run `chmod 600 $DIR/identity/pickle.key`"#
            ]],
        ),
    ] {
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
        check_load_error(&tmp, expect);
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).expect("chmod");
        Identity::load(&paths).expect_err("group-readable is refused too");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    Identity::load(&paths).expect("loads again once fixed");
}

#[test]
fn load_refuses_a_directory_others_can_write() {
    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    fs::set_permissions(&paths.dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    check_load_error(
        &tmp,
        expect![[
            r#"directory $DIR/identity has mode 777, open to group or others; run `chmod 700 $DIR/identity`"#
        ]],
    );
}

#[test]
fn load_refuses_damaged_files_without_panicking() {
    let write = |path: &std::path::Path, bytes: &[u8]| {
        fs::write(path, bytes).expect("write");
    };
    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    write(&paths.pickle_key(), &[0u8; 31]);
    check_load_error(
        &tmp,
        expect![[r#"$DIR/identity/pickle.key is damaged: 31 bytes, expected 32"#]],
    );

    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    write(&paths.pickle_key(), &[7u8; 32]);
    let err = Identity::load(&paths).expect_err("wrong pickle key");
    assert!(
        matches!(&err, IdentityError::Malformed { path, .. } if *path == paths.olm_account()),
        "{err}"
    );

    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    write(&paths.olm_account(), b"not a pickle");
    let err = Identity::load(&paths).expect_err("garbage pickle");
    assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");

    let (tmp, identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    write(
        &paths.cert(),
        identity.describe().expect("describe").cert().as_bytes(),
    );
    check_load_error(
        &tmp,
        expect![[r#"$DIR/identity/cert.asc is damaged: holds no secret key"#]],
    );

    let (tmp, _identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    write(&paths.cert(), b"\x99\xff\xff garbage");
    let err = Identity::load(&paths).expect_err("garbage cert");
    assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");

    let (tmp, identity) = fresh("alpha");
    let paths = paths_of(&tmp);
    let extra = format!(
        r#"{{"address":"127.0.0.1:7350","name":"alpha","uuid":"{}","x":1}}"#,
        identity.uuid()
    );
    write(&paths.identity_json(), extra.as_bytes());
    check_load_error(
        &tmp,
        expect![[
            r#"$DIR/identity/identity.json is damaged: unknown field `x`, expected one of `uuid`, `name`, `address`"#
        ]],
    );

    let (tmp, _identity) = fresh("alpha");
    fs::remove_file(paths_of(&tmp).identity_json()).expect("rm");
    let err = Identity::load(&paths_of(&tmp)).expect_err("no identity");
    assert!(matches!(err, IdentityError::Io { .. }), "{err}");
}

#[test]
fn debug_output_shows_no_secrets() {
    let (_tmp, identity) = fresh("alpha");
    let debug = format!("{identity:?}");
    assert!(debug.contains(&identity.fingerprint()));
    assert!(!debug.contains("pickle_key"), "{debug}");
    assert!(!debug.contains("account"), "{debug}");
    assert!(!debug.contains("cert:"), "{debug}");
}

#[test]
fn published_one_time_keys_survive_a_reload() {
    let (tmp, mut bob) = fresh("bob");
    let (_tmp_a, alice) = fresh("alice");
    let otks = bob.one_time_keys(3).expect("one-time keys");
    assert_eq!(otks.len(), 3);
    let mut unique = otks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);
    drop(bob);

    // A restart between publishing and the first message.
    let mut bob = Identity::load(&paths_of(&tmp)).expect("reload");
    let mut session = alice
        .outbound_session(&keys_of(&bob), &otks[1])
        .expect("outbound");
    let hello = session.encrypt(b"hello").expect("encrypt");
    let (_session, plaintext) = bob
        .inbound_session(&keys_of(&alice), &hello)
        .expect("inbound after reload");
    assert_eq!(plaintext, b"hello");

    // The used key is gone from disk too: a replay after another restart fails.
    let mut bob = Identity::load(&paths_of(&tmp)).expect("reload");
    let err = bob
        .inbound_session(&keys_of(&alice), &hello)
        .expect_err("one-time key already used");
    expect![[r#"cannot create the session: unknown or already used one-time key"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn at_most_fifty_one_time_keys_at_once() {
    let (_tmp, mut identity) = fresh("alpha");
    let err = identity.one_time_keys(51).expect_err("too many");
    expect![[r#"cannot publish 51 one-time keys at once, at most 50"#]].assert_eq(&err.to_string());
    assert_eq!(identity.one_time_keys(50).expect("fifty").len(), 50);
    assert_eq!(identity.one_time_keys(0).expect("none").len(), 0);
}
