//! Clock skew for the fault suite: a peer's daemons, and `centerctl` run
//! for it, see the wall clock moved by a number of seconds (libfaketime
//! from Debian's `faketime` package, preloaded; the monotonic clock stays
//! true, so timers and timeouts keep their length). The offset is kept in
//! `DIR/<peer>/clock-offset` and takes effect when a daemon starts, as a
//! stepped system clock would for a restarted service.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, bail};

use crate::{PeerInfo, Testnet};

/// Where Debian's `faketime` package puts the library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The environment that moves a process's wall clock by `seconds`.
pub fn skew_env(seconds: i64) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", LIBFAKETIME.to_owned()),
        ("FAKETIME", format!("{seconds:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        // Read FAKETIME once, not from a cache file shared between runs.
        ("FAKETIME_NO_CACHE", "1".to_owned()),
    ]
}

fn offset_file(peer: &PeerInfo) -> PathBuf {
    peer.dir.join("clock-offset")
}

impl Testnet {
    /// Moves `peer`'s clock by `seconds` (0: the true clock) for the
    /// daemons started from now on and every `centerctl` run for it.
    pub fn set_clock_offset(&self, peer: &PeerInfo, seconds: i64) -> anyhow::Result<()> {
        let file = offset_file(peer);
        if seconds == 0 {
            match fs::remove_file(&file) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| format!("cannot remove {}", file.display()));
                }
                _ => return Ok(()),
            }
        }
        if !std::path::Path::new(LIBFAKETIME).exists() {
            bail!("{LIBFAKETIME} is missing: install Debian's faketime package");
        }
        fs::write(&file, seconds.to_string())
            .with_context(|| format!("cannot write {}", file.display()))
    }

    /// The offset of `peer`'s clock, in seconds (0 if none).
    pub fn clock_offset(&self, peer: &PeerInfo) -> i64 {
        fs::read_to_string(offset_file(peer))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The environment of `peer`'s clock offset (none for the true clock).
    pub(crate) fn skew_vars(&self, peer: &PeerInfo) -> Vec<(&'static str, String)> {
        match self.clock_offset(peer) {
            0 => Vec::new(),
            seconds => skew_env(seconds),
        }
    }

    /// Puts `peer`'s clock offset into `command`'s environment.
    pub(crate) fn skew(&self, peer: &PeerInfo, command: &mut Command) {
        command.envs(self.skew_vars(peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_signed_seconds() {
        let env = skew_env(-90);
        assert!(env.contains(&("FAKETIME", "-90s".to_owned())));
        assert!(skew_env(120).contains(&("FAKETIME", "+120s".to_owned())));
    }
}
