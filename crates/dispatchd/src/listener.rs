//! Getting the bus socket: from systemd (`center-bus.socket`, socket
//! activation) when there is one, else bound here at the configured path.
//!
//! Binding replaces a stale socket file left by a crash, but never one a live
//! dispatchd is still answering on.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, net::UnixListener as StdListener},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

/// The bus socket and whether we must remove its file on exit.
pub struct BusSocket {
    pub listener: StdListener,
    /// Set when dispatchd created the file (not systemd).
    pub owned_path: Option<PathBuf>,
}

/// Takes the socket from systemd, or binds `path` with `mode`.
pub fn open(path: &Path, mode: u32) -> anyhow::Result<BusSocket> {
    if let Some(listener) = from_systemd()? {
        return Ok(BusSocket {
            listener,
            owned_path: None,
        });
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another dispatchd is already serving the bus at {}; stop it first",
                path.display()
            );
        }
        fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = StdListener::bind(path)
        .with_context(|| format!("cannot bind the bus socket {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))?;
    Ok(BusSocket {
        listener,
        owned_path: Some(path.to_owned()),
    })
}

#[allow(unsafe_code)]
fn from_systemd() -> anyhow::Result<Option<StdListener>> {
    use std::os::fd::FromRawFd;
    let fds: Vec<_> = sd_notify::listen_fds()
        .context("bad LISTEN_FDS from systemd")?
        .collect();
    match fds.as_slice() {
        [] => Ok(None),
        [fd] => {
            // SAFETY: systemd passed this descriptor to us (LISTEN_PID matched
            // our pid inside listen_fds) and nothing else in this process owns
            // it; we take ownership exactly once here.
            let listener = unsafe { StdListener::from_raw_fd(*fd) };
            Ok(Some(listener))
        }
        more => bail!(
            "systemd passed {} sockets; dispatchd expects exactly one (center-bus.socket)",
            more.len()
        ),
    }
}
