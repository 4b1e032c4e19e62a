//! The node's libp2p identity on disk: 32 raw bytes of ed25519 secret key.
//!
//! Created 0600 (with `O_EXCL`, so two starts cannot both write it) when
//! missing; refused when group or others may read it, or when it is not
//! exactly 32 bytes. The same file gives the same peer id across restarts.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use libp2p::identity::{Keypair, ed25519};

use crate::DhtError;

const KEY_LEN: usize = 32;

/// Reads the key at `path`, creating it first if it does not exist.
pub(crate) fn load_or_create(path: &Path) -> Result<Keypair, DhtError> {
    let io_err = |source| DhtError::KeyFile {
        path: path.to_owned(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
        Err(e) => return Err(io_err(e)),
    }
    // O_NOFOLLOW: the key file itself must not be a symlink.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err)?;
    let mode = file.metadata().map_err(io_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(DhtError::KeyFileMode {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    let mut bytes = Vec::with_capacity(KEY_LEN);
    Read::by_ref(&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() != KEY_LEN {
        return Err(DhtError::KeyFileInvalid {
            path: path.to_owned(),
            reason: format!("it holds {} bytes", bytes.len()),
        });
    }
    let secret =
        ed25519::SecretKey::try_from_bytes(&mut bytes).map_err(|e| DhtError::KeyFileInvalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(ed25519::Keypair::from(secret).into())
}

fn create(path: &Path) -> Result<(), DhtError> {
    let io_err = |source| DhtError::KeyFile {
        path: path.to_owned(),
        source,
    };
    let keypair = ed25519::Keypair::generate();
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Another start created it in between: read theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    file.write_all(keypair.secret().as_ref()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_reloaded_same_and_refused_when_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.key");
        let first = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.public(), again.public());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(DhtError::KeyFileMode { mode: 0o640, .. })
        ));

        let short = dir.path().join("short.key");
        fs::write(&short, b"tiny").unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_create(&short),
            Err(DhtError::KeyFileInvalid { .. })
        ));
    }
}
