//! Unit tests of the crate, one module per area, sharing the helpers here:
//! fresh identities in temporary directories.

mod cep5;
mod description;
mod files;
mod fuzz;
mod rotation;
mod session;
mod verify;

use std::path::Path;

use tempfile::TempDir;

use crate::{Identity, IdentityPaths, PeerDescription, PeerKeys};

/// A new identity named `name` in its own temporary directory.
pub(crate) fn fresh(name: &str) -> (TempDir, Identity) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let paths = IdentityPaths::new(tmp.path().join("identity"));
    let identity = Identity::create(&paths, name, "127.0.0.1:7350").expect("create identity");
    (tmp, identity)
}

/// The verified keys of `identity`, as another peer would hold them.
pub(crate) fn keys_of(identity: &Identity) -> PeerKeys {
    PeerKeys::from_description(&description_of(identity))
}

/// The description of `identity`, through its JSON and the strict reader.
pub(crate) fn description_of(identity: &Identity) -> PeerDescription {
    let json = identity.describe().expect("describe").to_json().to_string();
    PeerDescription::from_json(json.as_bytes()).expect("own description verifies")
}

/// `text` with the temporary directory `dir` replaced by `$DIR`.
pub(crate) fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "$DIR")
}
