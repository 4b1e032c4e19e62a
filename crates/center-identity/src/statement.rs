//! Signed statements of membership (CEP 7): small canonical JSON objects a
//! peer signs with its OpenPGP key, each with a `purpose` of its own so a
//! signature made for one can never be taken for another (nor for a
//! description binding or a frame).

use center_proto::{CanonicalError, PeerId, to_canonical};
use serde_json::{Value, json};

/// The `purpose` of the statement a newcomer signs to prove it holds an
/// invitation's secret.
pub const JOIN_SECRET_PURPOSE: &str = "center join secret v1";

/// The `purpose` of a peer's signed address record in the DHT.
pub const DHT_RECORD_PURPOSE: &str = "center dht record v1";

/// The bytes a newcomer signs in `new-peer-server` (CEP 7): the secret it
/// read in `secret_file` under `admin`'s home on peer `to`, bound to who
/// asks (`from`) and whom, so the signature proves knowledge of the secret
/// for this one request and cannot be replayed towards another peer.
pub fn join_secret(
    from: PeerId,
    to: PeerId,
    admin: &str,
    secret_file: &str,
    secret: &str,
) -> Result<Vec<u8>, CanonicalError> {
    to_canonical(&json!({
        "purpose": JOIN_SECRET_PURPOSE,
        "from": from.to_string(),
        "to": to.to_string(),
        "admin": admin,
        "secret_file": secret_file,
        "secret": secret,
    }))
}

/// The bytes a peer signs for its DHT record (CEP 7): its description (a
/// JSON object, itself self-signed) and the time the record was made, so a
/// newer record replaces an older one and an old one cannot be replayed
/// as new.
pub fn dht_record(
    uuid: PeerId,
    description: &Value,
    issued: u64,
) -> Result<Vec<u8>, CanonicalError> {
    to_canonical(&json!({
        "purpose": DHT_RECORD_PURPOSE,
        "uuid": uuid.to_string(),
        "description": description,
        "issued": issued,
    }))
}

/// Unpadded standard base64, the spelling of every signature in these
/// statements (as in descriptions).
pub use vodozemac::{base64_decode, base64_encode};
