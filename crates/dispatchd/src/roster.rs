//! The roster: the peers this peer trusts, each with its verified public
//! description (UUID, name, address, OpenPGP certificate, Olm identity key).
//!
//! Kept in `roster.json` in dispatchd's state directory, replaced atomically.
//! Every description is verified when added and again when loaded (the
//! binding signature ties the Olm key to the certificate), so a roster file
//! edited by hand cannot smuggle in an unverified key. A peer's key never
//! changes here silently: a different certificate for a known UUID is
//! refused (rotation, a later CEP, will be the way to change it).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use center_identity::{PeerDescription, PeerKeys};
use center_proto::{PeerId, Timestamp};
use serde_json::{Value, json};

/// One trusted peer.
#[derive(Clone)]
pub struct RosterPeer {
    pub description: PeerDescription,
    pub keys: PeerKeys,
    /// When this peer was first added.
    pub added: Timestamp,
}

/// What adding a description did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Same keys (certificate and Olm), new name or address.
    Updated,
    Unchanged,
}

/// The peers this peer trusts.
pub struct Roster {
    path: PathBuf,
    me: PeerId,
    peers: BTreeMap<PeerId, RosterPeer>,
}

/// Why the roster could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot read roster {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "roster {path} is corrupt ({reason}); restore it from a backup or remove it and add the peers again"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write roster {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the description is refused: {0}")]
    Description(#[from] center_identity::DescriptionError),
    #[error("that is this peer's own description")]
    Myself,
    #[error(
        "peer {uuid} is already in the roster with other Olm keys; a peer's keys change only by rotation"
    )]
    OlmKeyChanged { uuid: PeerId },
    #[error(
        "peer {uuid} is already in the roster with certificate {known}, not {offered}; \
         a peer's keys change only by rotation"
    )]
    KeyChanged {
        uuid: PeerId,
        known: String,
        offered: String,
    },
}

const FILE_VERSION: u64 = 1;

impl Roster {
    /// Loads `dir/roster.json` (missing: empty), verifying every entry.
    pub fn open(dir: &Path, me: PeerId) -> Result<Roster, RosterError> {
        let path = dir.join("roster.json");
        let mut roster = Roster {
            path: path.clone(),
            me,
            peers: BTreeMap::new(),
        };
        let bytes = match std::fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(roster),
            Err(source) => return Err(RosterError::Read { path, source }),
            Ok(bytes) => bytes,
        };
        let corrupt = |reason: String| RosterError::Corrupt {
            path: path.clone(),
            reason,
        };
        let doc: Value = serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
        if doc["version"].as_u64() != Some(FILE_VERSION) {
            return Err(corrupt("unknown version".to_owned()));
        }
        for entry in doc["peers"]
            .as_array()
            .ok_or_else(|| corrupt("no peers list".to_owned()))?
        {
            let added = entry["added"]
                .as_u64()
                .ok_or_else(|| corrupt("an entry lacks `added`".to_owned()))?;
            let text = serde_json::to_vec(&entry["description"])
                .map_err(|err| corrupt(err.to_string()))?;
            let description =
                PeerDescription::from_json(&text).map_err(|err| corrupt(err.to_string()))?;
            let keys = PeerKeys::from_description(&description);
            roster.peers.insert(
                description.uuid(),
                RosterPeer {
                    description,
                    keys,
                    added: Timestamp::from_millis(added),
                },
            );
        }
        Ok(roster)
    }

    /// Verifies and adds (or refreshes) a peer; on disk before it returns.
    pub fn add(&mut self, description_json: &[u8]) -> Result<(Added, RosterPeer), RosterError> {
        let description = PeerDescription::from_json(description_json)?;
        let uuid = description.uuid();
        if uuid == self.me {
            return Err(RosterError::Myself);
        }
        let (outcome, added) = match self.peers.get(&uuid) {
            None => (Added::New, Timestamp::now()),
            Some(known) if known.description.fingerprint() != description.fingerprint() => {
                return Err(RosterError::KeyChanged {
                    uuid,
                    known: known.description.fingerprint().to_owned(),
                    offered: description.fingerprint().to_owned(),
                });
            }
            Some(known)
                if known.description.olm_curve25519() != description.olm_curve25519()
                    || known.description.olm_ed25519() != description.olm_ed25519() =>
            {
                return Err(RosterError::OlmKeyChanged { uuid });
            }
            Some(known)
                if known.description.name() == description.name()
                    && known.description.address() == description.address() =>
            {
                return Ok((Added::Unchanged, known.clone()));
            }
            Some(known) => (Added::Updated, known.added),
        };
        let keys = PeerKeys::from_description(&description);
        let peer = RosterPeer {
            description,
            keys,
            added,
        };
        let mut next = self.peers.clone();
        next.insert(uuid, peer.clone());
        self.save(&next)?;
        self.peers = next;
        Ok((outcome, peer))
    }

    /// Removes a peer; on disk before it returns. `None` if it was not
    /// in the roster.
    pub fn remove(&mut self, uuid: &PeerId) -> Result<Option<RosterPeer>, RosterError> {
        let Some(gone) = self.peers.get(uuid).cloned() else {
            return Ok(None);
        };
        let mut next = self.peers.clone();
        next.remove(uuid);
        self.save(&next)?;
        self.peers = next;
        Ok(Some(gone))
    }

    /// Every peer, ordered by UUID.
    pub fn list(&self) -> impl Iterator<Item = &RosterPeer> {
        self.peers.values()
    }

    /// The peer with this UUID, if trusted.
    pub fn get(&self, uuid: &PeerId) -> Option<&RosterPeer> {
        self.peers.get(uuid)
    }

    fn save(&self, peers: &BTreeMap<PeerId, RosterPeer>) -> Result<(), RosterError> {
        let entries: Vec<Value> = peers
            .values()
            .map(
                |p| json!({ "added": p.added.as_millis(), "description": p.description.to_json() }),
            )
            .collect();
        let mut bytes =
            serde_json::to_vec_pretty(&json!({ "version": FILE_VERSION, "peers": entries }))
                .map_err(|err| RosterError::Write {
                    path: self.path.clone(),
                    source: err.into(),
                })?;
        bytes.push(b'\n');
        crate::durable::replace_file(&self.path, &bytes, 0o644).map_err(|source| {
            RosterError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }
}
