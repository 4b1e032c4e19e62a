//! The Olm sessions with each peer, persisted as encrypted pickles.
//!
//! A peer may have a few sessions at once (both sides started one, or one
//! side started again after losing its state); the most recently used one
//! encrypts, every one is tried to decrypt. Each peer's sessions live in one
//! file, `<uuid>.json` (mode 0600), replaced atomically after every encrypt
//! (before the frame is sent) and every decrypt (before the message is
//! handed on), so a crash never reuses or loses a ratchet step.

use std::{collections::HashMap, path::PathBuf};

use center_identity::{Identity, PeerKeys, PeerSession, SessionError};
use center_proto::PeerId;

use super::SealError;

/// Sessions kept per peer; older ones are dropped.
const MAX_SESSIONS_PER_PEER: usize = 4;

/// The first byte of a pre-key message in center-identity's encoding.
const PRE_KEY: u8 = 0x00;

/// Why a ciphertext could not be decrypted.
#[derive(Debug)]
pub enum DecryptFailure {
    Session(SessionError),
    Store(String),
}

/// Every Olm session of this peer, by peer.
pub struct Sessions {
    dir: PathBuf,
    pickle_key: [u8; 32],
    /// Most recently used first.
    by_peer: HashMap<PeerId, Vec<PeerSession>>,
}

impl Sessions {
    /// Loads the sessions kept in `dir` (created 0700 if missing).
    pub fn open(dir: PathBuf, pickle_key: [u8; 32]) -> Result<Sessions, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let mut by_peer = HashMap::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(peer) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|uuid| uuid.parse::<PeerId>().ok())
            else {
                continue;
            };
            let bytes = std::fs::read(&path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            let pickles: Vec<String> = serde_json::from_slice(&bytes)
                .map_err(|err| format!("{} is damaged: {err}", path.display()))?;
            let sessions = pickles
                .iter()
                .map(|pickle| PeerSession::unpickle(pickle, &pickle_key))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("{}: {err}", path.display()))?;
            by_peer.insert(peer, sessions);
        }
        Ok(Sessions {
            dir,
            pickle_key,
            by_peer,
        })
    }

    /// Whether there is a session to encrypt to `peer` with.
    pub fn has_session(&self, peer: &PeerId) -> bool {
        self.by_peer
            .get(peer)
            .is_some_and(|sessions| !sessions.is_empty())
    }

    /// The id of the session that encrypts for `peer`.
    pub fn current_id(&self, peer: &PeerId) -> Option<String> {
        self.by_peer
            .get(peer)
            .and_then(|sessions| sessions.first())
            .map(PeerSession::session_id)
    }

    /// Whether the session that encrypts for `peer` has not yet heard from
    /// it (the peer learns it from our pre-key messages).
    pub fn unconfirmed(&self, peer: &PeerId) -> bool {
        self.by_peer
            .get(peer)
            .and_then(|sessions| sessions.first())
            .is_some_and(|session| !session.has_received_message())
    }

    /// Starts a session to `peer` with the one-time key it sent us; it
    /// becomes the one that encrypts.
    pub fn start_outbound(
        &mut self,
        identity: &Identity,
        peer: &PeerKeys,
        one_time_key: &str,
    ) -> Result<(), SealError> {
        let session = identity.outbound_session(peer, one_time_key)?;
        self.push_front(peer.uuid(), session);
        self.save(peer.uuid()).map_err(SealError::Store)
    }

    /// Encrypts for `peer` with its preferred session; saved before return.
    pub fn encrypt(&mut self, peer: PeerId, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let ciphertext = self.encrypt_unsaved(peer, plaintext)?;
        self.save(peer).map_err(SealError::Store)?;
        Ok(ciphertext)
    }

    /// Encrypts without saving: the caller MUST call [`Sessions::save`]
    /// before any of the ciphertexts leaves this process (a batch is saved
    /// once instead of once per message).
    pub fn encrypt_unsaved(
        &mut self,
        peer: PeerId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let session = self
            .by_peer
            .get_mut(&peer)
            .and_then(|sessions| sessions.first_mut())
            .ok_or(SealError::NoSession(peer))?;
        Ok(session.encrypt(plaintext)?)
    }

    /// Decrypts a message from `peer`: with a session we have, or, for a
    /// pre-key message none of them takes, with a new inbound session (then
    /// the second member is true).
    pub(super) fn decrypt(
        &mut self,
        identity: &mut Identity,
        peer: &PeerKeys,
        ciphertext: &[u8],
        save: super::SaveSessions,
    ) -> Result<(Vec<u8>, bool), DecryptFailure> {
        let uuid = peer.uuid();
        let mut first_error = None;
        let sessions = self.by_peer.entry(uuid).or_default();
        let mut opened = None;
        for (index, session) in sessions.iter_mut().enumerate() {
            // Olm decryption is transactional: a failure leaves the session as it was.
            match session.decrypt(ciphertext) {
                Ok(plaintext) => {
                    opened = Some((index, plaintext));
                    break;
                }
                Err(err) => {
                    // A replay is the most telling answer; keep it over the others.
                    if first_error.is_none() || matches!(err, SessionError::Replay { .. }) {
                        first_error = Some(err);
                    }
                }
            }
        }
        let (plaintext, created) = match opened {
            Some((index, plaintext)) => {
                let session = sessions.remove(index);
                sessions.insert(0, session);
                (plaintext, false)
            }
            None if ciphertext.first() == Some(&PRE_KEY)
                && !matches!(first_error, Some(SessionError::Replay { .. })) =>
            {
                let (session, plaintext) = identity
                    .inbound_session(peer, ciphertext)
                    .map_err(DecryptFailure::Session)?;
                self.push_front(uuid, session);
                (plaintext, true)
            }
            None => {
                return Err(DecryptFailure::Session(
                    first_error.unwrap_or(SessionError::NotPreKey),
                ));
            }
        };
        // A new inbound session is saved at once whatever `save` says: the
        // account already gave up the one-time key it used, so a session
        // lost now could never be made again from the same messages.
        if save == super::SaveSessions::Now || created {
            self.save(uuid).map_err(DecryptFailure::Store)?;
        }
        Ok((plaintext, created))
    }

    fn push_front(&mut self, peer: PeerId, session: PeerSession) {
        let sessions = self.by_peer.entry(peer).or_default();
        sessions.insert(0, session);
        sessions.truncate(MAX_SESSIONS_PER_PEER);
    }

    /// Drops every session with `peer` (its keys, or ours, rotated: CEP 7),
    /// on disk too.
    pub fn forget(&mut self, peer: PeerId) -> Result<(), String> {
        self.by_peer.remove(&peer);
        self.save(peer)
    }

    /// Drops every session with every peer (this peer's keys rotated).
    pub fn forget_all(&mut self) -> Result<(), String> {
        let peers: Vec<PeerId> = self.by_peer.keys().copied().collect();
        for peer in peers {
            self.forget(peer)?;
        }
        Ok(())
    }

    /// Writes `peer`'s sessions to disk (atomically, fsynced).
    pub fn save(&self, peer: PeerId) -> Result<(), String> {
        let pickles: Vec<String> = self
            .by_peer
            .get(&peer)
            .map(|sessions| {
                sessions
                    .iter()
                    .map(|s| s.pickle(&self.pickle_key))
                    .collect()
            })
            .unwrap_or_default();
        let bytes = serde_json::to_vec(&pickles).map_err(|err| err.to_string())?;
        let path = self.dir.join(format!("{peer}.json"));
        crate::durable::replace_file(&path, &bytes, 0o600)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))
    }
}
