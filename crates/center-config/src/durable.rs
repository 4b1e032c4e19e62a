//! Replacing a small state file so that a crash leaves either the old or the
//! new contents, never a torn file: temporary file with the final mode from
//! creation, fsync, rename, fsync of the directory.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// Writes `bytes` to `path` atomically and durably, with permission `mode`.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    // The mode given at creation is filtered by the umask; set it exactly.
    out.set_permissions(fs::Permissions::from_mode(mode))?;
    out.write_all(bytes)?;
    out.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
