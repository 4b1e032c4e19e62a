//! Forming the test network with the RFC's join flow (CEP 7), through
//! `centerctl` as sysadmins would: `peer invite` on the existing peer,
//! `peer join` on the newcomer with a copy of the secret file, `peer
//! approve` on the existing peer. Waiting is by polling what a command
//! shows, with a deadline.

use std::{
    fs,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{PeerInfo, Testnet};

/// The account on every test peer whose home receives invitations (a
/// system account the test network creates if it is missing).
pub const TEST_ADMIN: &str = "center-testadm";

/// How long forming the network may take.
const FORMING: Duration = Duration::from_secs(60);

/// What `centerctl peer invite --json` printed.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub via: String,
    pub uuid: String,
    pub fingerprint: String,
    pub admin: String,
    /// The secret file in the admin's home on the inviting peer.
    pub path: PathBuf,
}

/// Runs a command; its stdout if it succeeded, else an error with stderr.
pub fn output(mut command: Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Creates the test admin account if it does not exist (several tests may
/// race to do it: "already exists" is success).
pub fn ensure_admin_account() -> anyhow::Result<()> {
    if nix::unistd::User::from_name(TEST_ADMIN)?.is_some() {
        return Ok(());
    }
    let home = format!("/var/tmp/{TEST_ADMIN}");
    let status = Command::new("useradd")
        .args(["--system", "--create-home", "--home-dir", &home, "--shell"])
        .arg("/usr/sbin/nologin")
        .arg(TEST_ADMIN)
        .status()
        .context("cannot run useradd (the test network runs as root)")?;
    // 9: the account exists (another test made it meanwhile).
    if !status.success() && status.code() != Some(9) {
        bail!("useradd {TEST_ADMIN} failed: {status}");
    }
    Ok(())
}

impl Testnet {
    /// Approves peerd's grant on the bus of `peer` (before peerd starts).
    pub(crate) fn approve_peerd(&self, peer: &PeerInfo) -> anyhow::Result<()> {
        let mut command = self.centerctl(peer);
        command
            .args([
                "service",
                "approve",
                "peerd",
                "--user",
                "root",
                "--membership",
                "--receive",
            ])
            .args(peerd_receive())
            .arg("--send")
            .args(peerd_send());
        output(command, &format!("peer {}: approving peerd", peer.name))?;
        Ok(())
    }

    /// `centerctl peer invite` on `peer` for `admin`.
    pub fn invite(&self, peer: &PeerInfo, admin: &str) -> anyhow::Result<Invitation> {
        ensure_admin_account()?;
        let mut command = self.centerctl(peer);
        command.args(["--json", "peer", "invite", "--admin", admin]);
        let printed: Value = serde_json::from_slice(&output(
            command,
            &format!("peer {}: peer invite", peer.name),
        )?)?;
        invitation(&printed)
    }

    /// `centerctl peer challenge UUID` on `peer`.
    pub fn challenge(&self, peer: &PeerInfo, uuid: &str) -> anyhow::Result<Invitation> {
        let mut command = self.centerctl(peer);
        command.args(["--json", "peer", "challenge", uuid]);
        let printed: Value = serde_json::from_slice(&output(
            command,
            &format!("peer {}: peer challenge", peer.name),
        )?)?;
        invitation(&printed)
    }

    /// `centerctl peer join` on `newcomer`, with a copy of the secret file
    /// (as its sysadmin would copy it over), which is removed afterwards.
    pub fn join(&self, newcomer: &PeerInfo, invitation: &Invitation) -> anyhow::Result<()> {
        let name = invitation
            .path
            .file_name()
            .context("the invitation has no file name")?;
        let copy_dir = newcomer.dir.join("invitations");
        fs::create_dir_all(&copy_dir)?;
        let copy = copy_dir.join(name);
        fs::copy(&invitation.path, &copy)?;
        let mut command = self.centerctl(newcomer);
        command
            .args(["peer", "join", "--via", &invitation.via, "--uuid"])
            .arg(&invitation.uuid)
            .args(["--fingerprint", &invitation.fingerprint, "--admin"])
            .arg(&invitation.admin)
            .arg("--secret-file")
            .arg(&copy);
        let result = output(command, &format!("peer {}: peer join", newcomer.name));
        let _ = fs::remove_file(&copy);
        result.map(|_| ())
    }

    /// The join requests waiting on `peer` (`peer requests --json`).
    pub fn requests(&self, peer: &PeerInfo) -> anyhow::Result<Vec<Value>> {
        let mut command = self.centerctl(peer);
        command.args(["--json", "peer", "requests"]);
        let list: Value = serde_json::from_slice(&output(
            command,
            &format!("peer {}: peer requests", peer.name),
        )?)?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// Waits until a request from `uuid` waits on `peer`.
    pub fn wait_for_request(&self, peer: &PeerInfo, uuid: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + FORMING;
        loop {
            if let Some(found) = self
                .requests(peer)?
                .into_iter()
                .find(|r| r.get("uuid").and_then(Value::as_str) == Some(uuid))
            {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!("peer {}: no request from {uuid} arrived", peer.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `centerctl peer approve UUID` on `peer`.
    pub fn approve(&self, peer: &PeerInfo, uuid: &str) -> anyhow::Result<()> {
        let mut command = self.centerctl(peer);
        command.args(["peer", "approve", uuid]);
        output(command, &format!("peer {}: peer approve", peer.name)).map(|_| ())
    }

    /// The uuids in `peer`'s roster.
    pub fn roster(&self, peer: &PeerInfo) -> anyhow::Result<Vec<String>> {
        let mut command = self.centerctl(peer);
        command.args(["--json", "peer", "list"]);
        let list: Value =
            serde_json::from_slice(&output(command, &format!("peer {}: peer list", peer.name))?)?;
        Ok(list
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.get("uuid").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Waits until `peer` trusts every one of `uuids`.
    pub fn wait_for_roster(&self, peer: &PeerInfo, uuids: &[String]) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORMING;
        loop {
            let roster = self.roster(peer)?;
            if uuids.iter().all(|u| roster.contains(u)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "peer {} trusts {roster:?}, not all of {uuids:?} in time",
                    peer.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole join flow: `newcomer` joins through `existing`, and waits
    /// until each trusts the other.
    pub fn join_through(&self, newcomer: &PeerInfo, existing: &PeerInfo) -> anyhow::Result<()> {
        let invitation = self.invite(existing, TEST_ADMIN)?;
        let joined = self.join(newcomer, &invitation);
        let _ = fs::remove_file(&invitation.path);
        joined?;
        let uuid = newcomer.uuid.to_string();
        self.wait_for_request(existing, &uuid)?;
        self.approve(existing, &uuid)?;
        self.wait_for_roster(existing, &[uuid])?;
        self.wait_for_roster(newcomer, &[existing.uuid.to_string()])
    }

    /// Every peer joins through the first; returns once every peer trusts
    /// every other.
    pub(crate) fn join_all(&self) -> anyhow::Result<()> {
        let Some((first, rest)) = self.peers.split_first() else {
            return Ok(());
        };
        for peer in rest {
            self.join_through(peer, first)?;
        }
        for peer in &self.peers {
            let others: Vec<String> = self
                .peers
                .iter()
                .filter(|o| o.uuid != peer.uuid)
                .map(|o| o.uuid.to_string())
                .collect();
            self.wait_for_roster(peer, &others)?;
        }
        Ok(())
    }
}

fn invitation(printed: &Value) -> anyhow::Result<Invitation> {
    let text = |key: &str| -> anyhow::Result<String> {
        Ok(printed
            .get(key)
            .and_then(Value::as_str)
            .with_context(|| format!("peer invite printed no `{key}`"))?
            .to_owned())
    };
    Ok(Invitation {
        via: text("via")?,
        uuid: text("uuid")?,
        fingerprint: text("fingerprint")?,
        admin: text("admin")?,
        path: PathBuf::from(text("path")?),
    })
}

/// peerd's grant, as `peerd::RECEIVE` and `peerd::SEND` say (kept in step
/// by the e2e test that starts peerd with it).
fn peerd_receive() -> [&'static str; 3] {
    ["new-peer-server", "add-peer-server", "peer.*"]
}

fn peerd_send() -> [&'static str; 1] {
    ["peer.*"]
}
