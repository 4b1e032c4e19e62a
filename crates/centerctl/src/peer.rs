//! `centerctl init` and `centerctl peer …`: this peer's identity, made once
//! on disk before dispatchd runs, and the roster of trusted peers, changed
//! through the bus so dispatchd verifies every description it is given.

use std::{
    fs,
    io::Read,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    time::Duration,
};

use anyhow::{Context, bail};
use center_bus::{AdminOp, PeerEntry, membership::ControlRequest};
use center_identity::{Identity, IdentityError, IdentityPaths, PeerDescription};

use crate::{
    cli::{Cli, PeerCommand},
    connect, output,
};

const PATIENCE: Duration = Duration::from_secs(5);

/// Creates the identity, writes the public description next to it, and gives
/// both to the owner of dispatchd's state directory (under systemd,
/// `center-dispatchd`), so root can run this for the daemon.
pub fn init(cli: &Cli, name: &str, address: &str) -> anyhow::Result<()> {
    let config = center_config::Config::load(&cli.config)?;
    let state = config.paths.daemon_state("dispatchd");
    if !state.exists() {
        fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755))?;
    }
    let paths = IdentityPaths::new(config.paths.identity_dir());
    let identity = match Identity::create(&paths, name, address) {
        Err(IdentityError::Exists { path }) => {
            bail!(
                "this peer already has an identity ({}); `centerctl peer whoami` shows it",
                path.display()
            )
        }
        other => other?,
    };
    let description = write_description(&config, &identity)?;
    if cli.json {
        output::json(&description.to_json())?;
    } else {
        println!(
            "peer/{} initialized: uuid {}, OpenPGP fingerprint {}",
            identity.name(),
            identity.uuid(),
            identity.fingerprint()
        );
        println!("give other sysadmins the output of `centerctl peer whoami --json`");
    }
    Ok(())
}

/// Writes this peer's public description next to its identity, readable
/// by every local user, and gives it (and the identity) to the owner of
/// dispatchd's state directory.
fn write_description(
    config: &center_config::Config,
    identity: &Identity,
) -> anyhow::Result<PeerDescription> {
    let description = identity.describe()?;
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&description.to_json())?
    );
    let target = config.paths.description_file();
    // Durable: dispatchd serves this file, and a crash must not tear it.
    center_config::durable::replace_file(&target, text.as_bytes(), 0o644)?;
    let state = config.paths.daemon_state("dispatchd");
    give_to_state_owner(&state, &config.paths.identity_dir(), &target)?;
    Ok(description)
}

/// `peer set-address`: while dispatchd is stopped (it holds the identity).
pub fn set_address(cli: &Cli, address: &str) -> anyhow::Result<()> {
    let config = center_config::Config::load(&cli.config)?;
    let paths = IdentityPaths::new(config.paths.identity_dir());
    center_identity::address::set_address(&paths, address).with_context(
        || "cannot change the address (stop dispatchd first: it holds the identity)",
    )?;
    let identity = Identity::load(&paths)?;
    let description = write_description(&config, &identity)?;
    if cli.json {
        output::json(&description.to_json())?;
    } else {
        println!(
            "peer/{} now at {}; start dispatchd and peerd again: the other peers find it through the DHT",
            description.name(),
            description.address()
        );
    }
    Ok(())
}

/// Chowns what init wrote (the identity directory, its known files, and
/// the description) to the owner of the state directory, if that is not us:
/// root preparing files for the daemon's system user.
fn give_to_state_owner(
    state: &Path,
    identity_dir: &Path,
    description: &Path,
) -> anyhow::Result<()> {
    let meta = fs::metadata(state)?;
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == nix::unistd::geteuid().as_raw() {
        return Ok(());
    }
    chown_known_files(identity_dir, description, uid, gid)
}

/// The names an identity directory holds (see [`IdentityPaths`]), and
/// nothing else: whatever else is there was not written by us.
fn identity_file_names(identity_dir: &Path) -> Vec<std::ffi::OsString> {
    let paths = IdentityPaths::new(identity_dir);
    let mut names: Vec<_> = [
        paths.identity_json(),
        paths.cert(),
        paths.olm_account(),
        paths.pickle_key(),
        paths.cert_next(),
        paths.olm_account_next(),
    ]
    .iter()
    .filter_map(|path| path.file_name().map(ToOwned::to_owned))
    .collect();
    names.push(".lock".into());
    names
}

/// Gives the identity directory, its known files and the description to
/// `uid`:`gid`. The directory's owner could have planted symlinks there, so
/// every file is opened with `O_NOFOLLOW` (the files relative to the opened
/// directory) and the opened file is `fchown`ed: a symlink under a known
/// name is refused, one under any other name is never looked at.
fn chown_known_files(
    identity_dir: &Path,
    description: &Path,
    uid: u32,
    gid: u32,
) -> anyhow::Result<()> {
    use nix::{
        fcntl::{OFlag, openat},
        sys::stat::Mode,
        unistd::{Gid, Uid, fchown},
    };
    let (owner, group) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let refused = |path: &Path, err: nix::Error| {
        anyhow::anyhow!(
            "cannot give {} to uid {uid}: {err}{}",
            path.display(),
            if err == nix::Error::ELOOP {
                " (a symlink: not followed)"
            } else {
                ""
            }
        )
    };
    let dir = nix::fcntl::open(identity_dir, flags | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(|err| refused(identity_dir, err))?;
    fchown(&dir, owner, group).map_err(|err| refused(identity_dir, err))?;
    for name in identity_file_names(identity_dir) {
        let path = identity_dir.join(&name);
        match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
            Ok(file) => fchown(&file, owner, group).map_err(|err| refused(&path, err))?,
            Err(nix::Error::ENOENT) => {}
            Err(err) => return Err(refused(&path, err)),
        }
    }
    let file = nix::fcntl::open(description, flags, Mode::empty())
        .map_err(|err| refused(description, err))?;
    fchown(&file, owner, group).map_err(|err| refused(description, err))?;
    Ok(())
}

/// This peer's public description, as `centerctl init` (and dispatchd,
/// after a rotation) wrote it for every local user to read.
pub fn this_peer(config: &center_config::Config) -> anyhow::Result<PeerDescription> {
    let path = config.paths.description_file();
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "cannot read {}; has this peer been initialized (`centerctl init`)?",
            path.display()
        )
    })?;
    PeerDescription::from_json(&bytes)
        .with_context(|| format!("{} is not a valid description", path.display()))
}

pub async fn run(cli: &Cli, command: &PeerCommand) -> anyhow::Result<()> {
    match command {
        PeerCommand::Whoami => {
            let config = center_config::Config::load(&cli.config)?;
            let description = this_peer(&config)?;
            if cli.json {
                output::json(&description.to_json())?;
            } else {
                println!("NAME         {}", description.name());
                println!("UUID         {}", description.uuid());
                println!("ADDRESS      {}", description.address());
                println!("FINGERPRINT  {}", description.fingerprint());
                println!("OLM KEY      {}", description.olm_curve25519());
            }
            Ok(())
        }
        PeerCommand::Add { from } => {
            let mut bytes = Vec::new();
            if from.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut bytes)?;
            } else {
                bytes =
                    fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
            }
            // Strict JSON (no duplicate members), as dispatchd reads it.
            let description = center_proto::parse_canonical_value(&bytes).context(
                "the description is not strict JSON (use `peer whoami --json` on the other peer)",
            )?;
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let reply = client
                .admin(AdminOp::PeerAdd {
                    description,
                    announced: false,
                })
                .await?;
            for peer in &reply.peers {
                if cli.json {
                    output::json(&serde_json::to_value(peer)?)?;
                } else {
                    println!(
                        "peer/{} trusted: uuid {}, address {}, fingerprint {}",
                        peer.name, peer.uuid, peer.address, peer.fingerprint
                    );
                }
            }
            Ok(())
        }
        PeerCommand::SetAddress { address } => set_address(cli, address),
        PeerCommand::Invite { admin } => crate::member::invite(cli, admin, None).await,
        PeerCommand::Join {
            via,
            uuid,
            fingerprint,
            secret_file,
            admin,
        } => crate::member::join(cli, via, uuid, fingerprint, secret_file, admin).await,
        PeerCommand::Requests => crate::member::requests(cli).await,
        PeerCommand::Challenge { uuid } => crate::member::challenge(cli, uuid).await,
        PeerCommand::Approve { uuid } => {
            crate::member::simple(cli, ControlRequest::Approve { uuid: uuid.clone() }).await
        }
        PeerCommand::Reject { uuid } => {
            crate::member::simple(cli, ControlRequest::Reject { uuid: uuid.clone() }).await
        }
        PeerCommand::Remove { uuid, reason } => {
            crate::member::simple(
                cli,
                ControlRequest::Remove {
                    uuid: uuid.clone(),
                    reason: reason.clone(),
                },
            )
            .await
        }
        PeerCommand::Leave { reason } => {
            crate::member::simple(
                cli,
                ControlRequest::Leave {
                    reason: reason.clone(),
                },
            )
            .await
        }
        PeerCommand::Excommunicate { uuid, reason } => {
            crate::member::simple(
                cli,
                ControlRequest::Excommunicate {
                    uuid: uuid.clone(),
                    reason: reason.clone(),
                },
            )
            .await
        }
        PeerCommand::RotateKeys => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            client.admin(AdminOp::RotateKeys {}).await?;
            // dispatchd rewrote the description with the new keys.
            let config = center_config::Config::load(&cli.config)?;
            let description = this_peer(&config).context("the keys rotated, but")?;
            if cli.json {
                output::json(&description.to_json())?;
            } else {
                println!(
                    "peer/{} rotated its keys: OpenPGP fingerprint {}",
                    description.name(),
                    description.fingerprint()
                );
                println!(
                    "other peers switch when they receive the announcement; nothing to hand them"
                );
            }
            Ok(())
        }
        PeerCommand::List => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let peers = client.admin(AdminOp::PeerList {}).await?.peers;
            if cli.json {
                output::json(&serde_json::to_value(&peers)?)?;
            } else {
                output::text(&render_list(&peers, output::now_ms()))?;
            }
            Ok(())
        }
    }
}

/// The roster as a table (`now` in ms, for how long ago each was heard).
pub(crate) fn render_list(peers: &[PeerEntry], now: u64) -> String {
    let rows: Vec<Vec<String>> = peers.iter().map(|peer| row(peer, now)).collect();
    output::render_table(
        &[
            "NAME",
            "UUID",
            "STATE",
            "LAST HEARD",
            "RTT",
            "LAG",
            "AHEAD",
            "QUEUED",
            "FEED",
        ],
        &rows,
    )
}

fn row(peer: &PeerEntry, now: u64) -> Vec<String> {
    let heard = peer
        .last_heard
        .map_or_else(|| "never".to_owned(), |ms| output::ago(now, ms));
    let rtt = peer
        .rtt_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms"));
    // It signed two events for one place in its feed (CEP 6): its feed is
    // frozen here until the sysadmin resolves the fork.
    let feed = if peer.equivocated { "EQUIVOCATED" } else { "-" };
    vec![
        peer.name.clone(),
        peer.uuid.clone(),
        peer.state.as_str().to_owned(),
        heard,
        rtt,
        peer.feed_lag.to_string(),
        peer.feed_ahead.to_string(),
        peer.queued.to_string(),
        feed.to_owned(),
    ]
}

#[cfg(test)]
mod chown_tests {
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::*;

    /// Some uid that is not ours: root's tests give files to `nobody`, and
    /// anyone else can only give files to themselves.
    fn other_ids() -> (u32, u32) {
        if nix::unistd::geteuid().is_root() {
            (65534, 65534)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        }
    }

    fn identity_dir(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let dir = tmp.join("identity");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("identity.json"), b"{}").unwrap();
        fs::write(dir.join("cert.asc"), b"secret").unwrap();
        let description = tmp.join("description.json");
        fs::write(&description, b"{}").unwrap();
        let victim = tmp.join("victim");
        fs::write(&victim, b"root's").unwrap();
        (dir, description, victim)
    }

    #[test]
    fn known_files_are_given_and_planted_links_under_other_names_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, description, victim) = identity_dir(tmp.path());
        symlink(&victim, dir.join("planted")).unwrap();
        let before = fs::metadata(&victim).unwrap().uid();
        let (uid, gid) = other_ids();
        chown_known_files(&dir, &description, uid, gid).unwrap();
        for file in [dir.clone(), dir.join("cert.asc"), description] {
            assert_eq!(
                fs::metadata(&file).unwrap().uid(),
                uid,
                "{}",
                file.display()
            );
        }
        assert_eq!(fs::metadata(&victim).unwrap().uid(), before);
    }

    #[test]
    fn a_symlink_under_a_known_name_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, description, victim) = identity_dir(tmp.path());
        symlink(&victim, dir.join("pickle.key")).unwrap();
        let before = fs::metadata(&victim).unwrap().uid();
        let (uid, gid) = other_ids();
        let err = chown_known_files(&dir, &description, uid, gid).unwrap_err();
        assert!(err.to_string().contains("not followed"), "{err}");
        assert_eq!(fs::metadata(&victim).unwrap().uid(), before);
        // The identity directory itself as a symlink: refused too.
        let moved = tmp.path().join("moved");
        fs::rename(&dir, &moved).unwrap();
        symlink(&moved, &dir).unwrap();
        chown_known_files(&dir, &description, uid, gid).unwrap_err();
    }
}
