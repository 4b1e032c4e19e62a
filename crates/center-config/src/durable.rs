//! Replacing a small state file so that a crash leaves either the old or the
//! new contents, never a torn file: temporary file with the final mode from
//! creation, fsync, rename, fsync of the directory.
//!
//! The temporary file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` under a
//! name unique to this process and call, so that whoever can write the
//! directory (a daemon's system user, when root runs `centerctl`) cannot
//! plant a symlink or a file there that root would then write through; it is
//! removed if anything fails before the rename.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// How many unique names are tried before giving up (each taken name is
/// something planted or left behind by a crash).
const TMP_ATTEMPTS: u32 = 16;

/// Writes `bytes` to `path` atomically and durably, with permission `mode`.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let (tmp, mut out) = create_tmp(path, mode)?;
    let written = (|| {
        // The mode given at creation is filtered by the umask; set it exactly.
        out.set_permissions(fs::Permissions::from_mode(mode))?;
        out.write_all(bytes)?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates a new temporary file next to `path`, never opening anything
/// already there (and never following a symlink).
fn create_tmp(path: &Path, mode: u32) -> std::io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut last = None;
    for _ in 0..TMP_ATTEMPTS {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let unique = format!(
            ".{}.{}.{}.{nanos:08x}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        );
        let tmp = path.with_file_name(unique);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn replaces_contents_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_file(&path, b"one", 0o600).unwrap();
        replace_file(&path, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    /// The old fixed name `state.tmp`, planted as a symlink by whoever owns
    /// the directory, used to be opened and written through by root.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let path = dir.path().join("state.json");
        for planted in ["state.tmp", "state.json.tmp", ".state.json.tmp"] {
            symlink(&victim, dir.path().join(planted)).unwrap();
        }
        replace_file(&path, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // The target itself as a symlink is replaced, not written through.
        fs::remove_file(&path).unwrap();
        symlink(&victim, &path).unwrap();
        replace_file(&path, b"again", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails after the write.
        let path = dir.path().join("busy");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        replace_file(&path, b"new", 0o644).unwrap_err();
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("busy")]);
    }
}
