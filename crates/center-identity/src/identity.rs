//! [`Identity`]: this peer's uuid, name and address, its OpenPGP certificate
//! with secret keys, its Olm account and the key its pickles are encrypted
//! with; created once, loaded from its directory, and the account saved
//! again whenever it changes (one-time keys published or used up).
//!
//! Secrets stay in memory and in their 0600 files: nothing here logs, and
//! the `Debug` output of an identity shows only public parts.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use center_proto::{PeerId, parse_canonical_value, to_canonical};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sequoia_openpgp as pgp;

use pgp::Cert;
use pgp::parse::Parse;
use pgp::serialize::SerializeInto;
use serde::Deserialize;
use serde_json::json;
use vodozemac::olm::{Account, AccountPickle, SessionConfig};
use vodozemac::{Curve25519PublicKey, base64_encode};

use crate::description::{self, PeerDescription};
use crate::files::{self, IdentityPaths, PUBLIC_MODE, SECRET_MODE};
use crate::keys::PeerKeys;
use crate::openpgp;
use crate::session::{self, PeerSession, SessionError};

/// This peer's identity, with its secrets.
pub struct Identity {
    paths: IdentityPaths,
    uuid: PeerId,
    name: String,
    address: String,
    /// With secret keys.
    cert: Cert,
    account: Account,
    pickle_key: [u8; 32],
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .field("address", &self.address)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Why an identity could not be created, loaded, used or saved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("an identity already exists at {}; it is never overwritten", .path.display())]
    Exists { path: PathBuf },
    #[error("another process is creating an identity in {}", .path.display())]
    Busy { path: PathBuf },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} holds secrets but has mode {mode:03o}, open to group or others; run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "directory {} has mode {mode:03o}, open to group or others; run `chmod 700 {}`",
        .path.display(), .path.display()
    )]
    DirPermissions { path: PathBuf, mode: u32 },
    #[error("{} is damaged: {reason}", .path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("openpgp: {reason}")]
    OpenPgp { reason: String },
    #[error("cannot get random bytes from the operating system: {reason}")]
    Random { reason: String },
    #[error("cannot publish {requested} one-time keys at once, at most {max}")]
    TooManyOneTimeKeys { requested: usize, max: usize },
}

fn openpgp_error(e: impl fmt::Display) -> IdentityError {
    IdentityError::OpenPgp {
        reason: e.to_string(),
    }
}

/// The members of `identity.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    uuid: PeerId,
    name: String,
    address: String,
}

impl Identity {
    /// Creates a new identity in `paths.dir` (made 0700 if missing).
    ///
    /// Refuses if `identity.json` exists. Every file is written atomically,
    /// secrets with mode 0600 from creation; `identity.json` is written last,
    /// so a crash leaves no half identity that [`Identity::load`] accepts.
    pub fn create(
        paths: &IdentityPaths,
        name: &str,
        address: &str,
    ) -> Result<Identity, IdentityError> {
        description::check_name(name).map_err(|reason| IdentityError::Invalid {
            field: "name",
            reason,
        })?;
        description::check_address(address).map_err(|reason| IdentityError::Invalid {
            field: "address",
            reason,
        })?;
        files::create_dir(&paths.dir)?;
        let _lock = lock(paths)?;
        let public_path = paths.identity_json();
        if files::exists(&public_path)? {
            return Err(IdentityError::Exists { path: public_path });
        }

        let uuid = PeerId::new_random();
        let mut pickle_key = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut pickle_key)
            .map_err(|e| IdentityError::Random {
                reason: e.to_string(),
            })?;
        let cert = openpgp::generate_cert(format!("{name} (center peer {uuid})"))
            .map_err(openpgp_error)?;
        let tsk = cert.as_tsk().armored().to_vec().map_err(openpgp_error)?;
        let account = Account::new();
        let public = json!({ "address": address, "name": name, "uuid": uuid.to_string() });
        let mut public = to_canonical(&public).map_err(|e| IdentityError::Invalid {
            field: "identity",
            reason: e.to_string(),
        })?;
        public.push(b'\n');

        files::write_atomic(&paths.pickle_key(), &pickle_key, SECRET_MODE)?;
        files::write_atomic(&paths.cert(), &tsk, SECRET_MODE)?;
        let pickle = account.pickle().encrypt(&pickle_key);
        files::write_atomic(&paths.olm_account(), pickle.as_bytes(), SECRET_MODE)?;
        files::create_atomic(&public_path, &public, PUBLIC_MODE)?;

        Ok(Identity {
            paths: paths.clone(),
            uuid,
            name: name.to_owned(),
            address: address.to_owned(),
            cert,
            account,
            pickle_key,
        })
    }

    /// Loads the identity in `paths.dir`.
    ///
    /// Refuses a secret file that group or others can access, naming the
    /// file and the `chmod` that fixes it, and a directory others can write.
    pub fn load(paths: &IdentityPaths) -> Result<Identity, IdentityError> {
        files::check_dir(&paths.dir)?;

        let public_path = paths.identity_json();
        let public = files::read(&public_path, false)?;
        let malformed = |path: &PathBuf, reason: String| IdentityError::Malformed {
            path: path.clone(),
            reason,
        };
        let public: PublicFile = parse_canonical_value(&public)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|reason| malformed(&public_path, reason))?;
        description::check_name(&public.name)
            .map_err(|reason| malformed(&public_path, format!("name {reason}")))?;
        description::check_address(&public.address)
            .map_err(|reason| malformed(&public_path, format!("address {reason}")))?;

        let key_path = paths.pickle_key();
        let key = files::read(&key_path, true)?;
        let pickle_key = <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| malformed(&key_path, format!("{} bytes, expected 32", key.len())))?;

        let cert_path = paths.cert();
        let cert = Cert::from_bytes(&files::read(&cert_path, true)?)
            .map_err(|e| malformed(&cert_path, e.to_string()))?;
        if !cert.is_tsk() {
            return Err(malformed(&cert_path, "holds no secret key".to_owned()));
        }
        openpgp::signer(&cert).map_err(|e| malformed(&cert_path, e.to_string()))?;

        let account = read_account(&paths.olm_account(), &pickle_key)?;

        Ok(Identity {
            paths: paths.clone(),
            uuid: public.uuid,
            name: public.name,
            address: public.address,
            cert,
            account,
            pickle_key,
        })
    }

    pub fn uuid(&self) -> PeerId {
        self.uuid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The OpenPGP fingerprint, uppercase hex.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// The Olm Curve25519 identity key, unpadded base64.
    pub fn olm_curve25519(&self) -> String {
        self.account.curve25519_key().to_base64()
    }

    /// The key session pickles are encrypted with (`pickle.key`). A secret:
    /// hand it only to [`PeerSession::pickle`] and [`PeerSession::unpickle`].
    pub fn pickle_key(&self) -> &[u8; 32] {
        &self.pickle_key
    }

    /// A detached OpenPGP signature over `message`, as packet bytes, made
    /// with the certificate's signing key valid now.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut signer = openpgp::signer(&self.cert).map_err(openpgp_error)?;
        openpgp::sign(&mut signer, message).map_err(openpgp_error)
    }

    /// This peer's public description, with a fresh binding signature.
    pub fn describe(&self) -> Result<PeerDescription, IdentityError> {
        describe(self, &self.cert, &self.account)
    }

    /// Starts a key rotation (CEP 7): makes a new OpenPGP certificate and a
    /// new Olm account for the same uuid, name and address, and writes them
    /// durably next to the current ones (`cert.next.asc`,
    /// `olm-account.next.pickle`, mode 0600). The identity in use does not
    /// change: a crash now leaves the old keys in use and the new ones
    /// unused. The caller announces the returned description, signed with
    /// the old key, then calls [`Identity::commit_rotation`].
    pub fn prepare_rotation(&self) -> Result<PreparedRotation, IdentityError> {
        let cert = openpgp::generate_cert(format!("{} (center peer {})", self.name, self.uuid))
            .map_err(openpgp_error)?;
        let account = Account::new();
        let description = describe(self, &cert, &account)?;
        let tsk = cert.as_tsk().armored().to_vec().map_err(openpgp_error)?;
        let pickle = account.pickle().encrypt(&self.pickle_key);
        files::write_atomic(&self.paths.cert_next(), &tsk, SECRET_MODE)?;
        files::write_atomic(
            &self.paths.olm_account_next(),
            pickle.as_bytes(),
            SECRET_MODE,
        )?;
        Ok(PreparedRotation {
            cert,
            account,
            description,
        })
    }

    /// Ends a rotation once it was announced: the new files are renamed
    /// over the old ones (certificate first, then the account), and the
    /// new keys are used from now on. The old secret key is gone from disk
    /// and from memory. A crash in between leaves a mix that
    /// [`Identity::resume_rotation`] completes.
    pub fn commit_rotation(&mut self, next: PreparedRotation) -> Result<(), IdentityError> {
        files::promote(&self.paths.cert_next(), &self.paths.cert())?;
        self.cert = next.cert;
        files::promote(&self.paths.olm_account_next(), &self.paths.olm_account())?;
        self.account = next.account;
        Ok(())
    }

    /// Completes a rotation that was announced (`expected` is the new
    /// description the announcement holds) but not committed before a
    /// crash: each of the certificate and the account that is not yet the
    /// announced one is taken from its `.next` file, which must match.
    /// Returns whether anything changed.
    pub fn resume_rotation(&mut self, expected: &PeerDescription) -> Result<bool, IdentityError> {
        let mut changed = false;
        if self.fingerprint() != expected.fingerprint() {
            let path = self.paths.cert_next();
            let cert = Cert::from_bytes(&files::read(&path, true)?).map_err(|e| {
                IdentityError::Malformed {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            if !cert.is_tsk() || cert.fingerprint().to_hex() != expected.fingerprint() {
                return Err(IdentityError::Malformed {
                    path,
                    reason: format!(
                        "is not the announced new certificate {}",
                        expected.fingerprint()
                    ),
                });
            }
            files::promote(&path, &self.paths.cert())?;
            self.cert = cert;
            changed = true;
        }
        if self.olm_curve25519() != expected.olm_curve25519() {
            let path = self.paths.olm_account_next();
            let account = read_account(&path, &self.pickle_key)?;
            if account.curve25519_key().to_base64() != expected.olm_curve25519() {
                return Err(IdentityError::Malformed {
                    path,
                    reason: "is not the announced new olm account".to_owned(),
                });
            }
            files::promote(&path, &self.paths.olm_account())?;
            self.account = account;
            changed = true;
        }
        Ok(changed)
    }

    /// Removes the new keys of a rotation that was prepared but never
    /// announced (a crash before the announcement was committed).
    pub fn discard_prepared_rotation(&self) -> Result<(), IdentityError> {
        files::remove(&self.paths.cert_next())?;
        files::remove(&self.paths.olm_account_next())
    }

    /// Generates `n` one-time keys (at most 50), marks them published and
    /// saves the account before returning them, unpadded base64.
    pub fn one_time_keys(&mut self, n: usize) -> Result<Vec<String>, IdentityError> {
        let max = self.account.max_number_of_one_time_keys();
        if n > max {
            return Err(IdentityError::TooManyOneTimeKeys { requested: n, max });
        }
        let before = self.account.pickle();
        self.account.generate_one_time_keys(n);
        let mut keys: Vec<_> = self.account.one_time_keys().into_iter().collect();
        keys.sort_by_key(|(id, _)| *id);
        self.account.mark_keys_as_published();
        if let Err(e) = self.save_account() {
            self.account = Account::from_pickle(before);
            return Err(e);
        }
        Ok(keys.into_iter().map(|(_, key)| key.to_base64()).collect())
    }

    /// Starts a session with `peer`, using one of its published one-time keys.
    pub fn outbound_session(
        &self,
        peer: &PeerKeys,
        their_one_time_key: &str,
    ) -> Result<PeerSession, SessionError> {
        let otk = Curve25519PublicKey::from_base64(their_one_time_key)
            .map_err(|_| SessionError::OneTimeKey)?;
        let session = self
            .account
            .create_outbound_session(SessionConfig::version_1(), peer.curve25519(), otk)
            .map_err(|e| SessionError::Create {
                reason: e.to_string(),
            })?;
        Ok(PeerSession::new(session))
    }

    /// Accepts the session `peer` started with `pre_key_message` (in
    /// [`PeerSession::encrypt`]'s encoding) and returns its plaintext.
    ///
    /// The one-time key is used up only if the message decrypts, and the
    /// account is saved before returning; if saving fails, the account is
    /// left as it was and the message can be retried.
    pub fn inbound_session(
        &mut self,
        peer: &PeerKeys,
        pre_key_message: &[u8],
    ) -> Result<(PeerSession, Vec<u8>), SessionError> {
        let message = match session::decode(pre_key_message)? {
            vodozemac::olm::OlmMessage::PreKey(m) => m,
            vodozemac::olm::OlmMessage::Normal(_) => return Err(SessionError::NotPreKey),
        };
        let before = self.account.pickle();
        let created = self
            .account
            .create_inbound_session(SessionConfig::version_1(), peer.curve25519(), &message)
            .map_err(session_creation_error)?;
        if let Err(e) = self.save_account() {
            self.account = Account::from_pickle(before);
            return Err(SessionError::Persist(Box::new(e)));
        }
        Ok((PeerSession::new(created.session), created.plaintext))
    }

    /// The certificate with its secret keys, for tests that sign by hand.
    #[cfg(test)]
    pub(crate) fn cert_with_secrets(&self) -> &Cert {
        &self.cert
    }

    fn save_account(&self) -> Result<(), IdentityError> {
        let pickle = self.account.pickle().encrypt(&self.pickle_key);
        files::write_atomic(&self.paths.olm_account(), pickle.as_bytes(), SECRET_MODE)
    }
}

/// The new keys of a rotation, written next to the old ones but not in use
/// yet ([`Identity::prepare_rotation`]).
pub struct PreparedRotation {
    cert: Cert,
    account: Account,
    description: PeerDescription,
}

impl fmt::Debug for PreparedRotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRotation")
            .field("fingerprint", &self.description.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PreparedRotation {
    /// The identity's description with the new keys (binding signed by
    /// the new certificate).
    pub fn description(&self) -> &PeerDescription {
        &self.description
    }
}

/// The description of `identity` with `cert` and `account` as its keys.
fn describe(
    identity: &Identity,
    cert: &Cert,
    account: &Account,
) -> Result<PeerDescription, IdentityError> {
    let keys = account.identity_keys();
    let message = description::binding_message(
        identity.uuid,
        &identity.name,
        &identity.address,
        &keys.curve25519,
        &keys.ed25519,
    )
    .map_err(openpgp_error)?;
    let mut signer = openpgp::signer(cert).map_err(openpgp_error)?;
    let binding = base64_encode(openpgp::sign(&mut signer, &message).map_err(openpgp_error)?);
    let public = cert.clone().strip_secret_key_material();
    let armored = public.armored().to_vec().map_err(openpgp_error)?;
    let cert_armored = String::from_utf8(armored).map_err(openpgp_error)?;
    Ok(PeerDescription {
        uuid: identity.uuid,
        name: identity.name.clone(),
        address: identity.address.clone(),
        fingerprint: cert.fingerprint().to_hex(),
        cert_armored,
        cert: public,
        olm_curve25519: keys.curve25519,
        olm_ed25519: keys.ed25519,
        binding,
    })
}

/// Reads and decrypts an Olm account pickle.
fn read_account(path: &std::path::Path, pickle_key: &[u8; 32]) -> Result<Account, IdentityError> {
    let pickle = files::read(path, true)?;
    let pickle = std::str::from_utf8(&pickle)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            AccountPickle::from_encrypted(text.trim_end(), pickle_key).map_err(|e| e.to_string())
        })
        .map_err(|reason| IdentityError::Malformed {
            path: path.to_owned(),
            reason,
        })?;
    Ok(Account::from_pickle(pickle))
}

fn session_creation_error(e: vodozemac::olm::SessionCreationError) -> SessionError {
    use vodozemac::olm::SessionCreationError as E;
    match e {
        E::Decryption(e) => SessionError::from(e),
        E::MissingOneTimeKey(_) => SessionError::Create {
            reason: "unknown or already used one-time key".to_owned(),
        },
        E::MismatchedIdentityKey(..) => SessionError::Create {
            reason: "the message is from another olm identity key than the peer's".to_owned(),
        },
        E::MismatchedSessionConfig { .. } => SessionError::Create {
            reason: "unsupported olm session version".to_owned(),
        },
        E::NonContributoryKey => SessionError::Create {
            reason: "non-contributory key exchange".to_owned(),
        },
    }
}

/// Takes the creation lock of `paths.dir`, released when the file is dropped.
pub(crate) fn lock(paths: &IdentityPaths) -> Result<File, IdentityError> {
    let path = paths.dir.join(".lock");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SECRET_MODE)
        .open(&path)
        .map_err(|source| IdentityError::Io {
            action: "cannot open",
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(IdentityError::Busy {
            path: paths.dir.clone(),
        }),
        Err(TryLockError::Error(source)) => Err(IdentityError::Io {
            action: "cannot lock",
            path,
            source,
        }),
    }
}
