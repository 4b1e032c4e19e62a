//! The DHT record of a peer's address (CEP 7): its current description
//! (which carries the address and is self-signed) and when the record was
//! made, signed by the peer's OpenPGP key. A record is taken only if the
//! key that signed it is the one this peer's roster holds for that uuid:
//! an unsigned record, a record signed by another key, or one for another
//! uuid changes nothing.

use center_identity::{PeerDescription, PeerKeys, statement};
use center_proto::PeerId;
use serde_json::Value;

/// Largest record read.
pub const MAX_RECORD: usize = 64 * 1024;

/// A record, read but not yet checked against the roster.
#[derive(Debug, Clone)]
pub struct Record {
    pub description: PeerDescription,
    description_json: Value,
    pub issued: u64,
    signature: Vec<u8>,
}

impl Record {
    /// Reads a record's JSON (the value stored in the DHT).
    pub fn parse(value: &Value) -> Result<Record, String> {
        let object = value.as_object().ok_or("a record is a JSON object")?;
        if let Some(key) = object
            .keys()
            .find(|k| !["description", "issued", "signature"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown member `{}`",
                key.chars().take(64).collect::<String>()
            ));
        }
        let description_json = object
            .get("description")
            .ok_or("the record lacks `description`")?
            .clone();
        let bytes = serde_json::to_vec(&description_json).map_err(|err| err.to_string())?;
        let description =
            PeerDescription::from_json(&bytes).map_err(|err| format!("description: {err}"))?;
        let issued = object
            .get("issued")
            .and_then(Value::as_u64)
            .ok_or("`issued` must be a whole number of ms")?;
        let signature = object
            .get("signature")
            .and_then(Value::as_str)
            .filter(|s| s.len() <= 4096)
            .ok_or("`signature` must be a base64 string")?;
        let signature =
            statement::base64_decode(signature).map_err(|_| "`signature` is not base64")?;
        Ok(Record {
            description,
            description_json,
            issued,
            signature,
        })
    }

    /// Reads the bytes stored under a key in the DHT.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, String> {
        if bytes.len() > MAX_RECORD {
            return Err(format!("a record is at most {MAX_RECORD} bytes"));
        }
        let value = center_proto::parse_canonical_value(bytes).map_err(|err| err.to_string())?;
        Record::parse(&value)
    }

    /// Checks the record is `uuid`'s, signed by the certificate with
    /// `fingerprint` (the roster's for that uuid).
    pub fn verify(&self, uuid: PeerId, fingerprint: &str) -> Result<(), String> {
        if self.description.uuid() != uuid {
            return Err(format!(
                "the record is of {}, not of {uuid}",
                self.description.uuid()
            ));
        }
        if !self
            .description
            .fingerprint()
            .eq_ignore_ascii_case(fingerprint)
        {
            return Err(format!(
                "the record is signed by certificate {}, not by {fingerprint}, the one trusted for {uuid}",
                self.description.fingerprint()
            ));
        }
        self.verify_self()
    }

    /// Checks the record's signature by its own description's key (a
    /// record of a peer this peer does not know yet: nothing more can be
    /// said of it).
    pub fn verify_self(&self) -> Result<(), String> {
        let message =
            statement::dht_record(self.description.uuid(), &self.description_json, self.issued)
                .map_err(|err| err.to_string())?;
        PeerKeys::from_description(&self.description)
            .verify(&message, &self.signature)
            .map_err(|err| format!("bad signature: {err}"))
    }
}
