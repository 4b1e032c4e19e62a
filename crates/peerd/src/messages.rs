//! The membership messages (CEP 7), read strictly: each `data` object must
//! have exactly its members, of the right types and sizes, and every
//! description in it must verify. These run on input from other peers
//! (the `NEW` request comes from anyone), so nothing here panics; the
//! `membership` fuzz target feeds them arbitrary bytes.

use center_identity::{PeerDescription, statement};
use center_proto::PeerId;
use serde_json::{Map, Value};

/// The event names, and the direct message of the roster hand-off.
pub const NEW_PEER_SERVER: &str = "new-peer-server";
pub const ADD_PEER_SERVER: &str = "add-peer-server";
pub const ROSTER: &str = "peer.roster";
pub const JOINED: &str = "peer.joined";
pub const LEAVE: &str = "peer.leave";
pub const EXCOMMUNICATE: &str = "peer.excommunicate";
/// Raised by this peer's own dispatcher on its bus: a peer cannot be
/// reached at its address.
pub const UNREACHABLE: &str = "peer.unreachable";
/// A peer's DHT node: how to reach it (on its own feed).
pub const DHT_CONTACT: &str = "peer.dht-contact";

/// Most descriptions in one roster hand-off.
pub const MAX_ROSTER: usize = 1000;
/// Longest `admin`, `secret_file` or `reason`.
const MAX_TEXT: usize = 256;

/// Why a membership message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("`data` must be a JSON object")]
    NotObject,
    #[error("`data` lacks `{0}`")]
    Missing(&'static str),
    #[error("`data` has an unknown member `{0}`")]
    Unknown(String),
    #[error("`{field}` {reason}")]
    Field { field: &'static str, reason: String },
    #[error("the description is refused: {0}")]
    Description(String),
}

/// `new-peer-server` (CEP 7): a newcomer asks to join.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The account on this peer whose home holds the secret file.
    pub admin: String,
    /// The name of the file (in that home) whose secret was signed.
    pub secret_file: String,
    /// The newcomer's signature over the join statement.
    pub signature: Vec<u8>,
    /// The newcomer's verified description.
    pub description: PeerDescription,
}

/// Reads the `data` of `new-peer-server`.
pub fn join_request(data: &Value) -> Result<JoinRequest, MessageError> {
    let object = members(data, &["admin", "description", "secret_file", "signature"])?;
    let admin = account(object, "admin")?;
    let secret_file = file_name(object, "secret_file")?;
    let signature = text(object, "signature", 4096)?;
    let signature = statement::base64_decode(signature).map_err(|_| MessageError::Field {
        field: "signature",
        reason: "is not base64".to_owned(),
    })?;
    let description = description(required(object, "description")?)?;
    Ok(JoinRequest {
        admin,
        secret_file,
        signature,
        description,
    })
}

/// Reads the `data` of `add-peer-server`: the approving peer's description.
pub fn welcome(data: &Value) -> Result<PeerDescription, MessageError> {
    let object = members(data, &["description"])?;
    description(required(object, "description")?)
}

/// Reads the `data` of `peer.roster` (the hand-off): roster entries, each
/// a description (verified here) with the keys that peer retired by
/// rotation (verified by dispatchd when it imports the entry), and for a
/// departed peer `until`, the last seq of its feed still taken. Returns
/// each entry's description and the entry to import.
pub fn roster(data: &Value) -> Result<Vec<(PeerDescription, Value)>, MessageError> {
    let object = members(data, &["peers"])?;
    let list = required(object, "peers")?
        .as_array()
        .ok_or(MessageError::Field {
            field: "peers",
            reason: "must be a list".to_owned(),
        })?;
    if list.len() > MAX_ROSTER {
        return Err(MessageError::Field {
            field: "peers",
            reason: format!("holds {} entries, more than {MAX_ROSTER}", list.len()),
        });
    }
    list.iter()
        .map(|entry| {
            let object = members(entry, &["description", "retired", "until"])?;
            if object.get("retired").is_some_and(|r| !r.is_array()) {
                return Err(MessageError::Field {
                    field: "retired",
                    reason: "must be a list".to_owned(),
                });
            }
            optional_seq(object, "until")?;
            Ok((
                description(required(object, "description")?)?,
                entry.clone(),
            ))
        })
        .collect()
}

/// `peer.joined`: a peer approved a newcomer.
pub fn joined(data: &Value) -> Result<PeerDescription, MessageError> {
    let object = members(data, &["description"])?;
    description(required(object, "description")?)
}

/// `peer.leave`: the origin retires, with a reason.
pub fn leave(data: &Value) -> Result<String, MessageError> {
    let object = members(data, &["reason"])?;
    Ok(text(object, "reason", MAX_TEXT)?.to_owned())
}

/// `peer.excommunicate`: a peer is expelled from the network.
pub fn excommunicate(data: &Value) -> Result<(PeerId, String, Option<u64>), MessageError> {
    let object = members(data, &["peer", "reason", "until"])?;
    let peer = text(object, "peer", 64)?
        .parse::<PeerId>()
        .map_err(|err| MessageError::Field {
            field: "peer",
            reason: err.to_string(),
        })?;
    let until = optional_seq(object, "until")?;
    Ok((peer, text(object, "reason", MAX_TEXT)?.to_owned(), until))
}

/// `peer.dht-contact`: how to reach the origin's DHT node, in libp2p's
/// text form (checked by `center_dht::Contact::parse`).
pub fn dht_contact(data: &Value) -> Result<String, MessageError> {
    let object = members(data, &["contact"])?;
    Ok(text(object, "contact", 512)?.to_owned())
}

/// The object's members, exactly `allowed` (all required).
fn members<'a>(
    data: &'a Value,
    allowed: &[&'static str],
) -> Result<&'a Map<String, Value>, MessageError> {
    let object = data.as_object().ok_or(MessageError::NotObject)?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(MessageError::Unknown(unknown.chars().take(64).collect()));
    }
    Ok(object)
}

/// A member that, when present, is a feed seq.
fn optional_seq(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, MessageError> {
    object
        .get(field)
        .map(|value| {
            value.as_u64().ok_or(MessageError::Field {
                field,
                reason: "must be a seq".to_owned(),
            })
        })
        .transpose()
}

fn required<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a Value, MessageError> {
    object.get(field).ok_or(MessageError::Missing(field))
}

fn text<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<&'a str, MessageError> {
    let value = required(object, field)?
        .as_str()
        .ok_or(MessageError::Field {
            field,
            reason: "must be a string".to_owned(),
        })?;
    if value.len() > max {
        return Err(MessageError::Field {
            field,
            reason: format!("is longer than {max} bytes"),
        });
    }
    Ok(value)
}

/// A Unix account name as Debian allows it by default.
fn account(object: &Map<String, Value>, field: &'static str) -> Result<String, MessageError> {
    let value = text(object, field, 32)?;
    check_account(value).map_err(|reason| MessageError::Field { field, reason })?;
    Ok(value.to_owned())
}

/// `^[a-z_][a-z0-9_-]{0,31}$`: a Unix account name.
pub fn check_account(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first && rest && name.len() <= 32 {
        Ok(())
    } else {
        Err("must be a Unix account name (a-z, 0-9, _ and -, starting with a letter or _, at most 32)".to_owned())
    }
}

/// A plain file name: no directory, no dot first, printable ASCII.
fn file_name(object: &Map<String, Value>, field: &'static str) -> Result<String, MessageError> {
    let value = text(object, field, 128)?;
    check_file_name(value).map_err(|reason| MessageError::Field { field, reason })?;
    Ok(value.to_owned())
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`: a file name in a home directory.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest = bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if first && rest && name.len() <= 128 {
        Ok(())
    } else {
        Err(
            "must be a plain file name (letters, digits, '.', '_' and '-', not starting with '.')"
                .to_owned(),
        )
    }
}

fn description(value: &Value) -> Result<PeerDescription, MessageError> {
    let bytes =
        serde_json::to_vec(value).map_err(|err| MessageError::Description(err.to_string()))?;
    PeerDescription::from_json(&bytes).map_err(|err| MessageError::Description(err.to_string()))
}

/// Runs every reader on `data` (the fuzz target's entry point).
pub fn read_any(data: &Value) {
    let _ = join_request(data);
    let _ = welcome(data);
    let _ = roster(data);
    let _ = joined(data);
    let _ = leave(data);
    let _ = excommunicate(data);
    if let Ok(contact) = dht_contact(data) {
        let _ = center_dht::Contact::parse(&contact);
    }
    let _ = crate::dht::Record::parse(data);
}
