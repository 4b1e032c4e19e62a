//! Key rotation on disk: prepare writes the new keys aside, commit puts
//! them in place, and a crash at any step leaves an identity that loads
//! and that `resume_rotation` (announced) or `discard_prepared_rotation`
//! (not announced) completes.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{fresh, keys_of};
use crate::{Identity, IdentityPaths};

#[test]
fn prepare_changes_nothing_in_use_and_commit_switches_every_key() {
    let (tmp, mut identity) = fresh("bravo");
    let paths = IdentityPaths::new(tmp.path().join("identity"));
    let old = identity.describe().expect("describe");
    let prepared = identity.prepare_rotation().expect("prepare");
    let new = prepared.description().clone();
    assert_ne!(new.fingerprint(), old.fingerprint());
    assert_ne!(new.olm_curve25519(), old.olm_curve25519());
    assert_eq!((new.uuid(), new.name()), (old.uuid(), old.name()));
    for path in [paths.cert_next(), paths.olm_account_next()] {
        let mode = fs::metadata(&path).expect("next file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    // A crash now: the old identity loads, and the unannounced keys go.
    let reloaded = Identity::load(&paths).expect("load");
    assert_eq!(reloaded.fingerprint(), old.fingerprint());
    reloaded.discard_prepared_rotation().expect("discard");
    assert!(!paths.cert_next().exists() && !paths.olm_account_next().exists());

    let prepared = identity.prepare_rotation().expect("prepare again");
    let new = prepared.description().clone();
    identity.commit_rotation(prepared).expect("commit");
    assert_eq!(identity.fingerprint(), new.fingerprint());
    assert_eq!(identity.olm_curve25519(), new.olm_curve25519());
    // Signatures are the new key's, and the old key no longer verifies them.
    let signature = identity.sign(b"after").expect("sign");
    let new_keys = crate::PeerKeys::from_description(&new);
    new_keys.verify(b"after", &signature).expect("new key");
    assert!(
        crate::PeerKeys::from_description(&old)
            .verify(b"after", &signature)
            .is_err()
    );
    let loaded = Identity::load(&paths).expect("load");
    assert_eq!(loaded.fingerprint(), new.fingerprint());
    assert_eq!(keys_of(&loaded).fingerprint(), new.fingerprint());
    assert!(!paths.cert_next().exists() && !paths.olm_account_next().exists());
}

#[test]
fn an_announced_rotation_cut_short_is_resumed_from_any_step() {
    let (tmp, identity) = fresh("bravo");
    let paths = IdentityPaths::new(tmp.path().join("identity"));
    let prepared = identity.prepare_rotation().expect("prepare");
    let new = prepared.description().clone();
    drop(identity);
    // Crash before either rename.
    let mut loaded = Identity::load(&paths).expect("load");
    assert!(loaded.resume_rotation(&new).expect("resume"));
    assert_eq!(loaded.fingerprint(), new.fingerprint());
    assert_eq!(loaded.olm_curve25519(), new.olm_curve25519());
    assert!(!loaded.resume_rotation(&new).expect("again"));

    // Crash between the two renames: the certificate is new, the account old.
    let (tmp, identity) = fresh("charlie");
    let paths = IdentityPaths::new(tmp.path().join("identity"));
    let prepared = identity.prepare_rotation().expect("prepare");
    let new = prepared.description().clone();
    fs::rename(paths.cert_next(), paths.cert()).expect("half commit");
    drop(identity);
    let mut loaded = Identity::load(&paths).expect("load a half-rotated identity");
    assert_eq!(loaded.fingerprint(), new.fingerprint());
    assert!(loaded.resume_rotation(&new).expect("resume"));
    assert_eq!(loaded.olm_curve25519(), new.olm_curve25519());

    // The new keys lost: resuming says so instead of running on old keys.
    let (tmp, identity) = fresh("delta");
    let paths = IdentityPaths::new(tmp.path().join("identity"));
    let prepared = identity.prepare_rotation().expect("prepare");
    let new = prepared.description().clone();
    fs::remove_file(paths.cert_next()).expect("lose it");
    let mut loaded = Identity::load(&paths).expect("load");
    assert!(loaded.resume_rotation(&new).is_err());
}
