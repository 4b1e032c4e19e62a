//! Moving a peer to another address (`centerctl peer set-address`): the
//! address is part of the identity's public file and of the signed
//! description, so it changes only while dispatchd is stopped (the identity
//! is locked while loaded), and the other peers learn the new one from the
//! DHT record signed with the unchanged key (CEP 7).

use center_proto::{parse_canonical_value, to_canonical};
use serde_json::Value;

use crate::{
    description,
    files::{self, IdentityPaths, PUBLIC_MODE},
    identity::{IdentityError, lock},
};

/// Replaces the address in `identity.json`; nothing else changes.
pub fn set_address(paths: &IdentityPaths, address: &str) -> Result<(), IdentityError> {
    description::check_address(address).map_err(|reason| IdentityError::Invalid {
        field: "address",
        reason,
    })?;
    let _lock = lock(paths)?;
    let path = paths.identity_json();
    let malformed = |reason: String| IdentityError::Malformed {
        path: path.clone(),
        reason,
    };
    let mut public: Value = parse_canonical_value(&files::read(&path, false)?)
        .map_err(|err| malformed(err.to_string()))?;
    let object = public
        .as_object_mut()
        .ok_or_else(|| malformed("not a JSON object".to_owned()))?;
    if !object.contains_key("address") {
        return Err(malformed("lacks `address`".to_owned()));
    }
    object.insert("address".to_owned(), Value::from(address));
    let mut bytes = to_canonical(&public).map_err(|err| malformed(err.to_string()))?;
    bytes.push(b'\n');
    files::write_atomic(&path, &bytes, PUBLIC_MODE)
}
