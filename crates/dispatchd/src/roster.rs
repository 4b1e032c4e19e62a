//! The roster: the peers this peer trusts, each with its verified public
//! description (UUID, name, address, OpenPGP certificate, Olm identity key).
//!
//! Kept in `roster.json` in dispatchd's state directory, replaced atomically.
//! Every description is verified when added and again when loaded (the
//! binding signature ties the Olm key to the certificate), so a roster file
//! edited by hand cannot smuggle in an unverified key. A peer's key never
//! changes here silently: a different certificate for a known UUID is
//! refused by [`Roster::add`]; keys change only by the peer's own rotation
//! (CEP 7), a `peer.rotate` event signed by its old key, applied with
//! [`Roster::rotate`]. The keys a peer retired stay in its entry with the
//! last seq they signed, so its old feed events still verify
//! ([`Roster::history`]); [`Roster::export_entry`] and
//! [`Roster::import_entry`] hand an entry over with that history, each
//! retired key with its proof (the `peer.rotate` event it signed). An
//! import never replaces what the roster holds about a peer.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use center_feed::{FeedEvent, FeedLimits, OriginKeys, RetiredKeys, Rotation};
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
    /// When it was added on another member's announcement (not vetted by
    /// this peer's sysadmin): its feed budget grows from then (CEP 6,
    /// "Budgets"). `None`: vetted here, or a founding peer.
    pub announced: Option<Timestamp>,
    /// The descriptions it rotated away from, oldest first, each with the
    /// last seq of its feed the key signed (CEP 7).
    pub retired: Vec<Retired>,
}

/// A description a peer rotated away from.
#[derive(Clone)]
pub struct Retired {
    pub description: PeerDescription,
    pub last_seq: u64,
    /// The `peer.rotate` event (CEP 6 form) at `last_seq` that retired
    /// it, signed by this key and naming the next one: the proof a roster
    /// hand-off carries (CEP 7, "History hand-off"). `None` until this
    /// peer has read it from its feed store.
    pub rotation: Option<Value>,
}

impl RosterPeer {
    /// Which key verifies which seq of its feed.
    pub fn history(&self) -> Result<OriginKeys, center_feed::HistoryError> {
        OriginKeys::new(
            self.keys.clone(),
            self.retired
                .iter()
                .map(|r| RetiredKeys {
                    keys: PeerKeys::from_description(&r.description),
                    last_seq: r.last_seq,
                })
                .collect(),
        )
    }
}

/// What applying a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// The peer's keys changed.
    Switched,
    /// Already applied (the same rotation seen again).
    Known,
}

/// What adding a description did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Same keys (certificate and Olm), new name or address.
    Updated,
    Unchanged,
}

/// The peers this peer trusts, and those that departed.
pub struct Roster {
    path: PathBuf,
    me: PeerId,
    peers: BTreeMap<PeerId, RosterPeer>,
    /// Peers that left or were removed, with the last seq of their feed
    /// still taken: their earlier events (accounts made there among them)
    /// stay verifiable for every peer, newcomers included (CEP 7,
    /// "Departed origins"). Nothing else is done with them.
    departed: BTreeMap<PeerId, (RosterPeer, u64)>,
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
    #[error("peer {uuid} is not in the roster")]
    Unknown { uuid: PeerId },
    #[error("the rotation of peer {uuid} at seq {seq} is refused: {reason}")]
    Rotation {
        uuid: PeerId,
        seq: u64,
        reason: String,
    },
    #[error("the roster entry is refused: {0}")]
    Entry(String),
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
            departed: BTreeMap::new(),
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
            let (peer, until) =
                read_entry(entry, Timestamp::from_millis(added)).map_err(corrupt)?;
            if until.is_some() {
                return Err(corrupt("a trusted entry has `until`".to_owned()));
            }
            roster.peers.insert(peer.description.uuid(), peer);
        }
        let departed = match &doc["departed"] {
            Value::Null => &[][..],
            Value::Array(entries) => &entries[..],
            _ => return Err(corrupt("`departed` is not a list".to_owned())),
        };
        for entry in departed {
            let (peer, until) = read_entry(entry, Timestamp::now()).map_err(corrupt)?;
            let until =
                until.ok_or_else(|| corrupt("a departed entry lacks `until`".to_owned()))?;
            roster
                .departed
                .insert(peer.description.uuid(), (peer, until));
        }
        Ok(roster)
    }

    /// Verifies and adds (or refreshes) a peer; on disk before it returns.
    pub fn add(&mut self, description_json: &[u8]) -> Result<(Added, RosterPeer), RosterError> {
        self.add_with(description_json, false)
    }

    /// [`Roster::add`] of a peer another member announced: a new one is
    /// marked [`RosterPeer::announced`] (one already here keeps its mark).
    pub fn add_announced(
        &mut self,
        description_json: &[u8],
    ) -> Result<(Added, RosterPeer), RosterError> {
        self.add_with(description_json, true)
    }

    fn add_with(
        &mut self,
        description_json: &[u8],
        announced: bool,
    ) -> Result<(Added, RosterPeer), RosterError> {
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
        let retired = self
            .peers
            .get(&uuid)
            .map(|known| known.retired.clone())
            .unwrap_or_default();
        let announced = match self.peers.get(&uuid) {
            Some(known) => known.announced,
            None => announced.then_some(added),
        };
        let peer = RosterPeer {
            description,
            keys,
            added,
            announced,
            retired,
        };
        let mut next = self.peers.clone();
        next.insert(uuid, peer.clone());
        // A departed peer the sysadmin adds again is trusted again.
        let mut departed = self.departed.clone();
        departed.remove(&uuid);
        self.save_with(&next, &departed)?;
        self.peers = next;
        self.departed = departed;
        Ok((outcome, peer))
    }

    /// Removes a peer, keeping its keys for the events of its feed up to
    /// `until`; on disk before it returns. `None` if it was not in the
    /// roster.
    pub fn remove(&mut self, uuid: &PeerId, until: u64) -> Result<Option<RosterPeer>, RosterError> {
        let Some(gone) = self.peers.get(uuid).cloned() else {
            return Ok(None);
        };
        let mut next = self.peers.clone();
        next.remove(uuid);
        let mut departed = self.departed.clone();
        departed.insert(*uuid, (gone.clone(), until));
        self.save_with(&next, &departed)?;
        self.peers = next;
        self.departed = departed;
        Ok(Some(gone))
    }

    /// The last seq still taken of a departed origin.
    pub fn departed_end(&self, uuid: &PeerId) -> Option<u64> {
        self.departed.get(uuid).map(|(_, until)| *until)
    }

    /// The last seq still taken of each departed origin.
    pub fn departed_ends(&self) -> BTreeMap<PeerId, u64> {
        self.departed
            .iter()
            .map(|(uuid, (_, until))| (*uuid, *until))
            .collect()
    }

    /// The departed entries, for a newcomer's hand-off (as
    /// [`Roster::export_entry`], with `until`).
    pub fn export_departed(&self) -> Vec<Value> {
        self.departed
            .values()
            .map(|(peer, until)| exported(departed_json(peer, *until)))
            .collect()
    }

    /// Every peer, ordered by UUID.
    pub fn list(&self) -> impl Iterator<Item = &RosterPeer> {
        self.peers.values()
    }

    /// The peer with this UUID, if trusted.
    pub fn get(&self, uuid: &PeerId) -> Option<&RosterPeer> {
        self.peers.get(uuid)
    }

    /// Which key verifies which seq of `uuid`'s feed, if it is trusted
    /// or departed (then only up to its end).
    pub fn history(&self, uuid: &PeerId) -> Option<OriginKeys> {
        let (peer, until) = match self.peers.get(uuid) {
            Some(peer) => (peer, None),
            None => self
                .departed
                .get(uuid)
                .map(|(peer, until)| (peer, Some(*until)))?,
        };
        match peer.history() {
            Ok(history) => Some(match until {
                Some(until) => history.ending_at(until),
                None => history,
            }),
            Err(err) => {
                // Loading checked the history; this cannot happen.
                tracing::error!(peer = %uuid, error = %err, "a roster key history is inconsistent");
                None
            }
        }
    }

    /// Applies `rotation`, the data of the `peer.rotate` event `seq` of
    /// `uuid`'s feed, which the caller verified with the key `uuid` had at
    /// `seq`: the current description is retired with `last_seq = seq`
    /// and the rotation's becomes current. On disk before it returns.
    pub fn rotate(
        &mut self,
        uuid: PeerId,
        rotation: &Rotation,
        seq: u64,
    ) -> Result<Rotated, RosterError> {
        let refuse = |reason: String| RosterError::Rotation { uuid, seq, reason };
        let known = self.peers.get(&uuid).ok_or(RosterError::Unknown { uuid })?;
        let next = rotation.description();
        if next.uuid() != uuid {
            return Err(refuse("the new description is another peer's".to_owned()));
        }
        let last = known.retired.last().map_or(0, |r| r.last_seq);
        if seq <= last {
            // Seen before: this rotation, or one older than the last.
            return if known.retired.iter().any(|r| r.last_seq == seq) {
                Ok(Rotated::Known)
            } else {
                Err(refuse(format!("the peer last rotated at seq {last}")))
            };
        }
        if rotation.old_fingerprint() != known.description.fingerprint() {
            return Err(refuse(format!(
                "it retires certificate {}, but the current one is {}",
                rotation.old_fingerprint(),
                known.description.fingerprint()
            )));
        }
        let mut peer = known.clone();
        peer.retired.push(Retired {
            description: std::mem::replace(&mut peer.description, next.clone()),
            last_seq: seq,
            rotation: None,
        });
        peer.keys = PeerKeys::from_description(next);
        let mut peers = self.peers.clone();
        peers.insert(uuid, peer);
        self.save(&peers)?;
        self.peers = peers;
        Ok(Rotated::Switched)
    }

    /// One entry with its key history, as JSON: what a newcomer is handed
    /// so it can verify the old events of a peer that rotated before it
    /// joined (`{"added", "description", "retired": [{"description",
    /// "last_seq"}]}`, the form of the roster file without what is this
    /// peer's own view: `announced`).
    pub fn export_entry(&self, uuid: &PeerId) -> Option<Value> {
        self.peers.get(uuid).map(|peer| exported(entry_json(peer)))
    }

    /// Adds an entry [`Roster::export_entry`] made on another peer (a
    /// hand-off: hostile input), every description verified as when
    /// loading. What this peer already holds about a peer, trusted or
    /// departed, is never replaced: keys never change by import, and a
    /// history only fills in one that was empty. A retired key is kept
    /// only with its proof ([`check_rotation_proof`]): the keys before
    /// the first one that lacks it are dropped, with a logged reason. On
    /// disk before it returns.
    pub fn import_entry(&mut self, entry: &Value) -> Result<(Added, RosterPeer), RosterError> {
        let (mut peer, until) = read_entry(entry, Timestamp::now()).map_err(RosterError::Entry)?;
        let uuid = peer.description.uuid();
        if uuid == self.me {
            return Err(RosterError::Myself);
        }
        if let Some(reason) = keep_proven_history(&mut peer) {
            tracing::warn!(
                peer = %uuid,
                reason,
                kept = peer.retired.len(),
                "retired keys of a roster hand-off refused: that peer's events they signed will not verify here"
            );
        }
        if let Some((known, _)) = self.departed.get(&uuid) {
            // Departed here: what this peer decided stands.
            return Ok((Added::Unchanged, known.clone()));
        }
        if let Some(until) = until {
            // A departed peer: its keys for its old events, never trust.
            if let Some(known) = self.peers.get(&uuid) {
                return Ok((Added::Unchanged, known.clone()));
            }
            let mut departed = self.departed.clone();
            departed.insert(uuid, (peer.clone(), until));
            self.save_with(&self.peers, &departed)?;
            self.departed = departed;
            return Ok((Added::New, peer));
        }
        let (outcome, peer) = match self.peers.get(&uuid) {
            None => (Added::New, peer),
            Some(known) if known.description.fingerprint() != peer.description.fingerprint() => {
                return Err(RosterError::KeyChanged {
                    uuid,
                    known: known.description.fingerprint().to_owned(),
                    offered: peer.description.fingerprint().to_owned(),
                });
            }
            // A history held is never replaced (nor one shown longer).
            Some(known) if !known.retired.is_empty() || peer.retired.is_empty() => {
                return Ok((Added::Unchanged, known.clone()));
            }
            // Fills in the proven history of a peer known by its current
            // key only (the peer joined through, added from its welcome).
            Some(known) => (
                Added::Updated,
                RosterPeer {
                    retired: peer.retired,
                    ..known.clone()
                },
            ),
        };
        let mut peers = self.peers.clone();
        peers.insert(uuid, peer.clone());
        self.save_with(&peers, &self.departed)?;
        self.peers = peers;
        Ok((outcome, peer))
    }

    /// Attaches to every retired key that lacks it its proof, the
    /// `peer.rotate` event at its `last_seq` as `feeds` holds it (checked
    /// as an import would), so that hand-offs carry it. Returns how many
    /// proofs it attached; on disk before it returns.
    pub fn attach_rotation_proofs(
        &mut self,
        feeds: &center_feed::FeedStore,
    ) -> Result<usize, RosterError> {
        let mut attached = 0;
        let mut peers = self.peers.clone();
        let mut departed = self.departed.clone();
        let all = peers
            .values_mut()
            .chain(departed.values_mut().map(|(peer, _)| peer));
        for peer in all {
            if peer.retired.iter().all(|r| r.rotation.is_some()) {
                continue;
            }
            let uuid = peer.description.uuid();
            let events = match feeds.rotations(uuid, 0) {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!(peer = %uuid, error = %err, "cannot read a peer's rotations for its roster proofs");
                    continue;
                }
            };
            let nexts: Vec<PeerDescription> = peer
                .retired
                .iter()
                .skip(1)
                .map(|r| r.description.clone())
                .chain(std::iter::once(peer.description.clone()))
                .collect();
            for (retired, next) in peer.retired.iter_mut().zip(nexts.iter()) {
                if retired.rotation.is_some() {
                    continue;
                }
                let Some(event) = events.iter().find(|e| e.seq() == retired.last_seq) else {
                    continue;
                };
                let Ok(value) = serde_json::from_slice::<Value>(event.as_bytes()) else {
                    continue;
                };
                let candidate = Retired {
                    rotation: Some(value),
                    ..retired.clone()
                };
                match check_rotation_proof(uuid, &candidate, next) {
                    Ok(()) => {
                        *retired = candidate;
                        attached += 1;
                    }
                    Err(reason) => {
                        tracing::warn!(peer = %uuid, seq = retired.last_seq, reason, "a stored rotation does not prove a retired key")
                    }
                }
            }
        }
        if attached > 0 {
            self.save_with(&peers, &departed)?;
            self.peers = peers;
            self.departed = departed;
        }
        Ok(attached)
    }

    /// Attaches to `uuid`'s key retired at `event`'s seq its proof,
    /// `event` itself (the `peer.rotate` event there, as the feed store
    /// holds it), if it lacks one and `event` proves it (checked as an
    /// import would): what [`Roster::attach_rotation_proofs`] does at
    /// start, for a rotation just applied, so that a hand-off made from
    /// then on carries it. Returns whether it attached it; on disk before
    /// it returns.
    pub fn attach_proof(&mut self, uuid: PeerId, event: &FeedEvent) -> Result<bool, RosterError> {
        let Some(peer) = self.peers.get(&uuid) else {
            return Ok(false);
        };
        let Some(at) = peer
            .retired
            .iter()
            .position(|r| r.last_seq == event.seq() && r.rotation.is_none())
        else {
            return Ok(false);
        };
        let next = peer
            .retired
            .get(at + 1)
            .map_or(&peer.description, |r| &r.description);
        let Ok(value) = serde_json::from_slice::<Value>(event.as_bytes()) else {
            return Ok(false);
        };
        let candidate = Retired {
            rotation: Some(value),
            ..peer.retired[at].clone()
        };
        if let Err(reason) = check_rotation_proof(uuid, &candidate, next) {
            tracing::warn!(peer = %uuid, seq = event.seq(), reason, "a stored rotation does not prove a retired key");
            return Ok(false);
        }
        let mut peers = self.peers.clone();
        if let Some(peer) = peers.get_mut(&uuid)
            && let Some(retired) = peer.retired.get_mut(at)
        {
            *retired = candidate;
        }
        self.save(&peers)?;
        self.peers = peers;
        Ok(true)
    }

    fn save(&self, peers: &BTreeMap<PeerId, RosterPeer>) -> Result<(), RosterError> {
        self.save_with(peers, &self.departed)
    }

    fn save_with(
        &self,
        peers: &BTreeMap<PeerId, RosterPeer>,
        departed: &BTreeMap<PeerId, (RosterPeer, u64)>,
    ) -> Result<(), RosterError> {
        let entries: Vec<Value> = peers.values().map(entry_json).collect();
        let mut doc = json!({ "version": FILE_VERSION, "peers": entries });
        if !departed.is_empty() {
            doc["departed"] = departed
                .values()
                .map(|(peer, until)| departed_json(peer, *until))
                .collect();
        }
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|err| RosterError::Write {
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

/// Checks that `retired` (a key `uuid` rotated away from) is proven: its
/// `rotation` is the `peer.rotate` event of `uuid`'s feed at its
/// `last_seq`, signed by the retired key itself, naming it as the old
/// certificate and `next` (the following retired key, or the current one)
/// as the new description (CEP 7, "History hand-off").
pub fn check_rotation_proof(
    uuid: PeerId,
    retired: &Retired,
    next: &PeerDescription,
) -> Result<(), String> {
    let value = retired.rotation.as_ref().ok_or_else(|| {
        format!(
            "the key retired at seq {} comes without its rotation",
            retired.last_seq
        )
    })?;
    let bytes = center_proto::canonical::to_canonical(value)
        .map_err(|err| format!("its rotation is not canonical JSON: {err}"))?;
    let event = FeedEvent::parse(&bytes, &FeedLimits::DEFAULT)
        .map_err(|err| format!("its rotation is not a feed event: {err}"))?;
    if event.origin() != uuid {
        return Err(format!("its rotation is in the feed of {}", event.origin()));
    }
    if event.seq() != retired.last_seq {
        return Err(format!(
            "its rotation is at seq {}, not {}",
            event.seq(),
            retired.last_seq
        ));
    }
    let rotation = Rotation::from_event(&event)
        .ok_or_else(|| "its rotation is not a `peer.rotate` event".to_owned())?
        .map_err(|err| format!("its rotation is refused: {err}"))?;
    let keys = PeerKeys::from_description(&retired.description);
    event
        .verify(&keys)
        .map_err(|err| format!("its rotation is not signed by the retired key: {err}"))?;
    rotation
        .check_signer(&keys)
        .map_err(|err| format!("its rotation is refused: {err}"))?;
    if rotation.description().fingerprint() != next.fingerprint() {
        return Err(format!(
            "its rotation hands over to {}, not to the next key {}",
            rotation.description().fingerprint(),
            next.fingerprint()
        ));
    }
    Ok(())
}

/// Keeps of `peer`'s retired keys the newest ones that are each proven
/// ([`check_rotation_proof`]), dropping every key older than the newest
/// that is not; returns why, if it dropped any.
/// Reads a roster entry as an import does (the hand-off is hostile
/// input): strictly, every description verified, each retired key kept
/// only with its proof. Nothing is stored. The `roster_entry` fuzz target
/// runs it on arbitrary bytes.
pub fn check_entry(entry: &Value) -> Result<(RosterPeer, Option<u64>), String> {
    let (mut peer, until) = read_entry(entry, Timestamp::now())?;
    keep_proven_history(&mut peer);
    Ok((peer, until))
}

fn keep_proven_history(peer: &mut RosterPeer) -> Option<String> {
    let uuid = peer.description.uuid();
    let mut next = peer.description.clone();
    let mut keep = peer.retired.len();
    let mut reason = None;
    for (i, retired) in peer.retired.iter().enumerate().rev() {
        if let Err(why) = check_rotation_proof(uuid, retired, &next) {
            reason = Some(why);
            break;
        }
        next = retired.description.clone();
        keep = i;
    }
    if reason.is_some() {
        peer.retired.drain(..keep);
    }
    reason
}

/// An entry as another peer is handed it: without `announced`, which says
/// how this peer came to trust it (CEP 7's hand-off has no such member).
fn exported(mut entry: Value) -> Value {
    if let Some(members) = entry.as_object_mut() {
        members.remove("announced");
    }
    entry
}

/// A departed peer's entry: its roster entry and the end of its feed.
fn departed_json(peer: &RosterPeer, until: u64) -> Value {
    let mut entry = entry_json(peer);
    entry["until"] = json!(until);
    entry
}

/// A roster entry as the file (and [`Roster::export_entry`]) holds it.
fn entry_json(peer: &RosterPeer) -> Value {
    let retired: Vec<Value> = peer
        .retired
        .iter()
        .map(|r| {
            let mut item =
                json!({ "description": r.description.to_json(), "last_seq": r.last_seq });
            if let Some(rotation) = &r.rotation {
                item["rotation"] = rotation.clone();
            }
            item
        })
        .collect();
    let mut entry = json!({
        "added": peer.added.as_millis(),
        "description": peer.description.to_json(),
    });
    if let Some(announced) = peer.announced {
        entry["announced"] = json!(announced.as_millis());
    }
    if !retired.is_empty() {
        entry["retired"] = Value::Array(retired);
    }
    entry
}

/// Reads and verifies one entry (hostile: a file, or another peer's
/// export): every description's binding, all of them the same peer's, the
/// retired ones in strictly increasing `last_seq`; and `until`, the end of
/// a departed peer's feed, if the entry has one.
fn read_entry(entry: &Value, added: Timestamp) -> Result<(RosterPeer, Option<u64>), String> {
    let description = |value: &Value| -> Result<PeerDescription, String> {
        let text = serde_json::to_vec(value).map_err(|err| err.to_string())?;
        PeerDescription::from_json(&text).map_err(|err| err.to_string())
    };
    let Value::Object(members) = entry else {
        return Err("an entry is not an object".to_owned());
    };
    if let Some(unknown) = members
        .keys()
        .find(|k| !["added", "announced", "description", "retired", "until"].contains(&k.as_str()))
    {
        return Err(format!("an entry has the unknown member `{unknown}`"));
    }
    let added = match members.get("added") {
        None => added,
        Some(value) => Timestamp::from_millis(
            value
                .as_u64()
                .ok_or_else(|| "an entry's `added` is not a number".to_owned())?,
        ),
    };
    let current = description(
        members
            .get("description")
            .ok_or_else(|| "an entry lacks `description`".to_owned())?,
    )?;
    let mut retired = Vec::new();
    let items = match members.get("retired") {
        None => &[][..],
        Some(Value::Array(items)) => &items[..],
        Some(_) => return Err("an entry's `retired` is not a list".to_owned()),
    };
    for item in items.iter().take(1024) {
        let old = description(
            item.get("description")
                .ok_or_else(|| "a retired key lacks `description`".to_owned())?,
        )?;
        let last_seq = item
            .get("last_seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| "a retired key lacks `last_seq`".to_owned())?;
        if old.uuid() != current.uuid() {
            return Err(format!(
                "a retired key of {} is another peer's ({})",
                current.uuid(),
                old.uuid()
            ));
        }
        if retired
            .last()
            .is_some_and(|prev: &Retired| prev.last_seq >= last_seq)
        {
            return Err("retired keys out of order".to_owned());
        }
        let rotation = match item.get("rotation") {
            None => None,
            Some(value @ Value::Object(_)) => Some(value.clone()),
            Some(_) => return Err("a retired key's `rotation` is not an object".to_owned()),
        };
        retired.push(Retired {
            description: old,
            last_seq,
            rotation,
        });
    }
    let until = match members.get("until") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or_else(|| "an entry's `until` is not a number".to_owned())?,
        ),
    };
    let announced = match members.get("announced") {
        None => None,
        Some(value) => {
            Some(Timestamp::from_millis(value.as_u64().ok_or_else(|| {
                "an entry's `announced` is not a number".to_owned()
            })?))
        }
    };
    let keys = PeerKeys::from_description(&current);
    Ok((
        RosterPeer {
            description: current,
            keys,
            added,
            announced,
            retired,
        },
        until,
    ))
}

#[cfg(test)]
mod tests {
    //! Rotation in the roster: the switch, its history on disk, and the
    //! hand-over of an entry with its history.

    use center_feed::{EventBody, EventHash, FeedEvent, Rotation, rotation_data};
    use center_identity::{Identity, IdentityPaths};
    use center_proto::{EventName, PeerId, Timestamp};
    use serde_json::Value;

    use super::{Added, Roster, RosterError, Rotated};

    /// Event `seq` of `identity`'s feed (its `prev` is made up: only the
    /// signature matters to a proof).
    fn event(identity: &Identity, seq: u64, name: &str, data: Value) -> Value {
        let body = EventBody {
            origin: identity.uuid(),
            seq,
            prev: if seq == 1 {
                EventHash::ZERO
            } else {
                EventHash::digest(b"earlier")
            },
            name: EventName::parse(name).unwrap(),
            iat: Timestamp::from_millis(1_800_000_000_000),
            data,
        };
        let event = FeedEvent::sign(body, |m| identity.sign(m)).unwrap();
        serde_json::from_slice(event.as_bytes()).unwrap()
    }

    fn identity(dir: &tempfile::TempDir, name: &str) -> Identity {
        let paths = IdentityPaths::new(dir.path().join(name));
        Identity::create(&paths, name, "127.0.0.1:7350").unwrap()
    }

    #[test]
    fn a_removed_peer_s_keys_verify_its_feed_up_to_its_end_on_disk_and_in_an_export() {
        let dir = tempfile::tempdir().unwrap();
        let bravo = identity(&dir, "bravo").describe().unwrap();
        let me = PeerId::new_random();
        let mut roster = Roster::open(dir.path(), me).unwrap();
        roster.add(bravo.to_json().to_string().as_bytes()).unwrap();
        assert!(roster.remove(&bravo.uuid(), 7).unwrap().is_some());
        // Not trusted any more; its history ends at 7, on disk too.
        for roster in [&roster, &Roster::open(dir.path(), me).unwrap()] {
            assert!(roster.get(&bravo.uuid()).is_none());
            assert_eq!(roster.list().count(), 0);
            assert_eq!(roster.history(&bravo.uuid()).unwrap().until(), Some(7));
            assert_eq!(roster.departed_ends().get(&bravo.uuid()), Some(&7));
        }
        // Removing it again changes nothing.
        assert!(roster.remove(&bravo.uuid(), 9).unwrap().is_none());
        // A newcomer imports the departed entry: keys for the old events only.
        let exported = roster.export_departed();
        assert_eq!(exported.len(), 1);
        let newcomer_dir = tempfile::tempdir().unwrap();
        let mut newcomer = Roster::open(newcomer_dir.path(), PeerId::new_random()).unwrap();
        newcomer.import_entry(&exported[0]).unwrap();
        assert!(newcomer.get(&bravo.uuid()).is_none());
        assert_eq!(newcomer.history(&bravo.uuid()).unwrap().until(), Some(7));
        // A trusted entry for it (a hand-off) changes nothing: what this
        // peer holds about a peer is never replaced by an import.
        newcomer.import_entry(&roster.export_departed()[0]).unwrap();
        let mut trusted = roster.export_departed()[0].clone();
        trusted.as_object_mut().unwrap().remove("until");
        assert_eq!(newcomer.import_entry(&trusted).unwrap().0, Added::Unchanged);
        assert!(newcomer.get(&bravo.uuid()).is_none());
        assert_eq!(newcomer.departed_ends().get(&bravo.uuid()), Some(&7));
        // The sysadmin adding it again trusts it again, for all its feed.
        roster.add(bravo.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(roster.history(&bravo.uuid()).unwrap().until(), None);
        assert!(roster.departed_ends().is_empty());
    }

    #[test]
    fn a_rotation_keeps_the_old_key_for_the_seqs_it_signed_on_disk_and_in_an_export() {
        let dir = tempfile::tempdir().unwrap();
        let mut bravo = identity(&dir, "bravo");
        let old = bravo.describe().unwrap();
        let me = PeerId::new_random();
        let mut roster = Roster::open(dir.path(), me).unwrap();
        roster.add(old.to_json().to_string().as_bytes()).unwrap();

        let prepared = bravo.prepare_rotation().unwrap();
        let data = rotation_data(prepared.description(), old.fingerprint());
        let rotation = Rotation::from_data(bravo.uuid(), &data).unwrap();
        // The proof: the rotation event, signed by the old key.
        let proof = event(&bravo, 3, "peer.rotate", data.clone());
        let mallory = identity(&dir, "mallory");
        let forged = event(&mallory, 3, "peer.rotate", data.clone());
        let new = prepared.description().clone();
        bravo.commit_rotation(prepared).unwrap();
        // Naming another certificate as the old one: refused.
        // (Another hex digit first: a fingerprint may have no 'A' to change.)
        let other = new.fingerprint();
        let first = if other.starts_with('0') { "1" } else { "0" };
        let wrong = rotation_data(&new, &format!("{first}{}", &other[1..]));
        let wrong = Rotation::from_data(bravo.uuid(), &wrong).unwrap();
        assert!(matches!(
            roster.rotate(bravo.uuid(), &wrong, 3),
            Err(RosterError::Rotation { .. })
        ));
        assert_eq!(
            roster.rotate(bravo.uuid(), &rotation, 3).unwrap(),
            Rotated::Switched
        );
        assert_eq!(
            roster.rotate(bravo.uuid(), &rotation, 3).unwrap(),
            Rotated::Known
        );
        let check = |roster: &Roster| {
            let history = roster.history(&bravo.uuid()).unwrap();
            assert_eq!(history.for_seq(3).fingerprint(), old.fingerprint());
            assert_eq!(history.for_seq(4).fingerprint(), new.fingerprint());
            assert_eq!(
                roster.get(&bravo.uuid()).unwrap().description.fingerprint(),
                new.fingerprint()
            );
        };
        check(&roster);
        let reopened = Roster::open(dir.path(), me).unwrap();
        check(&reopened);

        // The proof attached as soon as the rotation is applied (not only
        // at the next start): only the event that proves that key.
        let feed_event = |value: &Value| {
            let bytes = center_proto::canonical::to_canonical(value).unwrap();
            FeedEvent::parse(&bytes, &center_feed::FeedLimits::DEFAULT).unwrap()
        };
        let mut attached = Roster::open(dir.path(), me).unwrap();
        for wrong in [
            &forged,
            &event(&bravo, 4, "peer.rotate", data.clone()),
            &event(&bravo, 3, "notes.posted", data.clone()),
        ] {
            assert!(
                !attached
                    .attach_proof(bravo.uuid(), &feed_event(wrong))
                    .unwrap()
            );
        }
        assert!(
            attached
                .attach_proof(bravo.uuid(), &feed_event(&proof))
                .unwrap()
        );
        assert!(
            !attached
                .attach_proof(bravo.uuid(), &feed_event(&proof))
                .unwrap()
        );
        let reopened = Roster::open(dir.path(), me).unwrap();
        assert_eq!(
            reopened.export_entry(&bravo.uuid()).unwrap()["retired"][0]["rotation"],
            proof
        );
        drop(attached);

        // Without its proof, a retired key of a hand-off is refused; so is
        // one whose proof another key signed, or is at another seq, or
        // hands over to another key. The current key is still taken.
        let unproven = roster.export_entry(&bravo.uuid()).unwrap();
        let mut at_4 = unproven.clone();
        at_4["retired"][0]["rotation"] = event(&bravo, 4, "peer.rotate", data.clone());
        let mut by_mallory = unproven.clone();
        by_mallory["retired"][0]["rotation"] = forged;
        let elsewhere_key = mallory.describe().unwrap();
        let mut to_another = unproven.clone();
        to_another["retired"][0]["rotation"] = event(
            &bravo,
            3,
            "peer.rotate",
            rotation_data(&elsewhere_key, old.fingerprint()),
        );
        for refused in [&unproven, &at_4, &by_mallory, &to_another] {
            let elsewhere = tempfile::tempdir().unwrap();
            let mut newcomer = Roster::open(elsewhere.path(), PeerId::new_random()).unwrap();
            assert_eq!(newcomer.import_entry(refused).unwrap().0, Added::New);
            let held = newcomer.get(&bravo.uuid()).unwrap();
            assert!(held.retired.is_empty());
            assert_eq!(held.description.fingerprint(), new.fingerprint());
        }
        // A newcomer imports the entry with its history and its proof.
        let mut entry = unproven.clone();
        entry["retired"][0]["rotation"] = proof;
        let elsewhere = tempfile::tempdir().unwrap();
        let mut newcomer = Roster::open(elsewhere.path(), PeerId::new_random()).unwrap();
        assert_eq!(newcomer.import_entry(&entry).unwrap().0, Added::New);
        check(&newcomer);
        assert_eq!(newcomer.import_entry(&entry).unwrap().0, Added::Unchanged);
        // It hands the proof on, on disk too.
        let reopened = Roster::open(elsewhere.path(), newcomer.me).unwrap();
        assert_eq!(
            reopened.export_entry(&bravo.uuid()).unwrap()["retired"],
            entry["retired"]
        );
        // A history held is never replaced, not even by a longer one.
        let mut longer = entry.clone();
        let extra = longer["retired"][0].clone();
        longer["retired"].as_array_mut().unwrap().insert(0, extra);
        longer["retired"][0]["last_seq"] = 1.into();
        assert_eq!(newcomer.import_entry(&longer).unwrap().0, Added::Unchanged);
        assert_eq!(newcomer.get(&bravo.uuid()).unwrap().retired.len(), 1);
        // A peer known by its current key only gets its proven history
        // filled in (the peer joined through, added from its welcome).
        let fourth = tempfile::tempdir().unwrap();
        let mut welcomed = Roster::open(fourth.path(), PeerId::new_random()).unwrap();
        welcomed.add(new.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(
            welcomed.import_entry(&unproven).unwrap().0,
            Added::Unchanged
        );
        assert_eq!(welcomed.import_entry(&entry).unwrap().0, Added::Updated);
        check(&welcomed);
        // A peer known with other keys is not changed by an import.
        let third = tempfile::tempdir().unwrap();
        let mut other = Roster::open(third.path(), me).unwrap();
        other.add(old.to_json().to_string().as_bytes()).unwrap();
        assert!(matches!(
            other.import_entry(&entry),
            Err(RosterError::KeyChanged { .. })
        ));
        // A retired description is verified like the current one.
        let mut tampered = entry;
        tampered["retired"][0]["description"]["name"] = "mallory".into();
        assert!(matches!(
            newcomer.import_entry(&tampered),
            Err(RosterError::Entry(_))
        ));
    }

    #[test]
    fn the_fuzz_body_reads_entries_and_survives_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let bravo = identity(&dir, "bravo");
        let mut roster = Roster::open(dir.path(), PeerId::new_random()).unwrap();
        roster
            .add(bravo.describe().unwrap().to_json().to_string().as_bytes())
            .unwrap();
        let entry = roster.export_entry(&bravo.uuid()).unwrap();
        let (peer, until) = super::check_entry(&entry).unwrap();
        assert_eq!(peer.description.uuid(), bravo.uuid());
        assert_eq!(until, None);
        let bytes = center_proto::canonical::to_canonical(&entry).unwrap();
        crate::fuzz::roster_entry(&bytes);
        for garbage in [
            &b""[..],
            b"{}",
            b"[]",
            b"{\"description\":1}",
            &bytes[..bytes.len() / 2],
        ] {
            crate::fuzz::roster_entry(garbage);
        }
    }

    #[test]
    fn a_peer_trusted_on_an_announcement_is_marked_here_only() {
        let dir = tempfile::tempdir().unwrap();
        let bravo = identity(&dir, "bravo");
        let me = PeerId::new_random();
        let mut roster = Roster::open(dir.path(), me).unwrap();
        let json = bravo.describe().unwrap().to_json().to_string();
        let (_, peer) = roster.add_announced(json.as_bytes()).unwrap();
        let since = peer.announced.expect("marked");
        // Added again (by the sysadmin, or the DHT): the mark stays.
        roster.add(json.as_bytes()).unwrap();
        assert_eq!(roster.get(&bravo.uuid()).unwrap().announced, Some(since));
        // Kept on disk, not handed to other peers.
        let reopened = Roster::open(dir.path(), me).unwrap();
        assert_eq!(reopened.get(&bravo.uuid()).unwrap().announced, Some(since));
        assert!(
            reopened
                .export_entry(&bravo.uuid())
                .unwrap()
                .get("announced")
                .is_none()
        );
    }
}
