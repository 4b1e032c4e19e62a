//! The identity directory on disk: where each file lives, atomic writes with
//! the final mode from the first byte, and reads that check modes and sizes.
//!
//! Every write goes to a temporary file in the same directory (created with
//! `O_EXCL` and its final mode, so a secret is never readable by anyone else,
//! not even briefly), is fsynced, renamed over the target and the directory
//! fsynced. Reads open the file first and check the mode of what was opened.
//! Nothing here knows what the files contain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::identity::IdentityError;

/// Mode of the identity directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of a file holding secret material.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of `identity.json`, which holds nothing secret.
pub(crate) const PUBLIC_MODE: u32 = 0o644;
/// No file of an identity is anywhere near this large.
pub(crate) const MAX_FILE_LEN: u64 = 1 << 20;

/// Where an identity's files live: one directory, mode 0700.
///
/// - `identity.json`: the public part, `{"address","name","uuid"}`;
/// - `cert.asc`: the OpenPGP certificate with its secret keys, armored (0600);
/// - `olm-account.pickle`: the Olm account, encrypted with `pickle.key` (0600);
/// - `pickle.key`: 32 random bytes (0600);
/// - `cert.next.asc` and `olm-account.next.pickle`: the new keys of a key
///   rotation between its preparation and its commit (0600; see
///   [`crate::Identity::prepare_rotation`]);
/// - `.lock`: locked (`flock`) while an identity is being created, so two
///   concurrent `create`s cannot mix their files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPaths {
    pub dir: PathBuf,
}

impl IdentityPaths {
    pub fn new(dir: impl Into<PathBuf>) -> IdentityPaths {
        IdentityPaths { dir: dir.into() }
    }

    pub fn identity_json(&self) -> PathBuf {
        self.dir.join("identity.json")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.asc")
    }

    pub fn olm_account(&self) -> PathBuf {
        self.dir.join("olm-account.pickle")
    }

    pub fn pickle_key(&self) -> PathBuf {
        self.dir.join("pickle.key")
    }

    /// The new certificate of a rotation in progress.
    pub fn cert_next(&self) -> PathBuf {
        self.dir.join("cert.next.asc")
    }

    /// The new Olm account of a rotation in progress.
    pub fn olm_account_next(&self) -> PathBuf {
        self.dir.join("olm-account.next.pickle")
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> IdentityError {
    IdentityError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and its parents) with mode 0700, or checks that an existing
/// one is not open to group or others.
pub(crate) fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io_error("cannot create directory", dir, e)),
    }
    let meta = fs::metadata(dir).map_err(|e| io_error("cannot inspect", dir, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::DirPermissions {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Refuses a directory whose files others could replace.
pub(crate) fn check_dir(dir: &Path) -> Result<(), IdentityError> {
    let meta = fs::metadata(dir).map_err(|e| io_error("cannot open", dir, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(IdentityError::DirPermissions {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// The temporary name `path` is written under before the rename.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to a fresh temporary file next to `path` with `mode`,
/// fsynced; returns the temporary path.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, IdentityError> {
    let tmp = temp_path(path);
    // A leftover of a crashed write; ours, since the directory is 0700.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &tmp, e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_error("cannot create", &tmp, e))?;
    // The umask can only have removed bits; set the mode exactly anyway.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("cannot set the mode of", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", &tmp, e))?;
    Ok(tmp)
}

fn sync_dir(path: &Path) -> Result<(), IdentityError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot sync directory", dir, e))
}

/// Atomically replaces `path` with `bytes`, with `mode` from creation on.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = write_temp(path, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| io_error("cannot rename into place", path, e))?;
    sync_dir(path)
}

/// Atomically creates `path` with `bytes`, failing with
/// [`IdentityError::Exists`] if it already exists (a hard link does not
/// overwrite, unlike a rename).
pub(crate) fn create_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = write_temp(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let removed = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(IdentityError::Exists {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_error("cannot create", path, e)),
    }
    removed.map_err(|e| io_error("cannot remove", &tmp, e))?;
    sync_dir(path)
}

/// Reads `path`, refusing it if it is larger than [`MAX_FILE_LEN`] or, when
/// `secret`, if group or others have any access to it.
pub(crate) fn read(path: &Path, secret: bool) -> Result<Vec<u8>, IdentityError> {
    let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot inspect", path, e))?;
    if !meta.is_file() {
        return Err(IdentityError::Malformed {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if secret && mode & 0o077 != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(IdentityError::Malformed {
            path: path.to_owned(),
            reason: format!("larger than {MAX_FILE_LEN} bytes"),
        });
    }
    Ok(bytes)
}

/// Renames `from` over `to` and syncs the directory: the new file is in
/// place, or (after a crash) the old one.
pub(crate) fn promote(from: &Path, to: &Path) -> Result<(), IdentityError> {
    fs::rename(from, to).map_err(|e| io_error("cannot rename into place", to, e))?;
    sync_dir(to)
}

/// Removes `path` if it exists, and syncs the directory.
pub(crate) fn remove(path: &Path) -> Result<(), IdentityError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot remove", path, e)),
    }
}

/// Whether `path` exists (or is a dangling symlink).
pub(crate) fn exists(path: &Path) -> Result<bool, IdentityError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("cannot inspect", path, e)),
    }
}
