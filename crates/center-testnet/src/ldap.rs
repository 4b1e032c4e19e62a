//! One private slapd per peer, when [`Options::ldap`](crate::Options) asks
//! for it: set up by `scripts/ldap-init`, started and stopped by
//! `scripts/ldap-slapd` (the same scripts an installer uses), so the test
//! network exercises the real setup rather than a copy of it.
//!
//! Each peer's directory lives in `PEER/ldap` (its CA key apart, in
//! `PEER/ldap-ca`), listens on `ldaps://` at the peer's own address on a port
//! of its own, and is described in the peer's `center.toml` (`[ldap]`) and in
//! the network's JSON. Readiness is the script's polled search with a
//! deadline; nothing here sleeps.
//!
//! slapd is not one of the peer's daemons: `stop`/`start` of a peer (an
//! outage of center) leave it running, [`Testnet::stop_ldap`] and
//! [`Testnet::start_ldap`] restart it alone, and `down` stops it.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::{PeerInfo, Testnet, toml_string};

/// The first peer's ldaps port; peer N (from 0) listens on `LDAP_PORT + N`.
pub const LDAP_PORT: u16 = 16360;

/// Every peer's directory suffix (each peer has its own directory).
pub const LDAP_BASE: &str = "dc=tilde,dc=test";

/// How each peer's slapd is set up.
#[derive(Debug, Clone)]
pub struct LdapOptions {
    /// Failed binds that lock an account (ppolicy `pwdMaxFailure`).
    pub max_failure: u32,
    /// How long the lock lasts (ppolicy `pwdLockoutDuration`).
    pub lockout_seconds: u32,
}

impl Default for LdapOptions {
    fn default() -> LdapOptions {
        LdapOptions {
            max_failure: 5,
            lockout_seconds: 300,
        }
    }
}

/// One peer's slapd: where it is and how a client trusts it.
#[derive(Debug, Clone)]
pub struct PeerLdap {
    /// The peer it belongs to.
    pub peer: String,
    /// Everything `scripts/ldap-init --dir` made.
    pub dir: PathBuf,
    /// `ldaps://IP:PORT/`.
    pub uri: String,
    pub base: String,
    /// The CA certificate that verifies this slapd, and no other.
    pub ca: PathBuf,
    /// The ldapi socket (root manages the directory through it).
    pub ldapi: PathBuf,
}

impl PeerLdap {
    /// The ldapi socket as a URL (`ldapi://%2F…/`), for `-H`.
    pub fn ldapi_url(&self) -> String {
        let mut url = String::from("ldapi://");
        for byte in self.ldapi.to_string_lossy().bytes() {
            if byte.is_ascii_alphanumeric() || b"._~-".contains(&byte) {
                url.push(char::from(byte));
            } else {
                url.push_str(&format!("%{byte:02X}"));
            }
        }
        url.push('/');
        url
    }

    /// `DIR/slapd.log`, where slapd logs.
    pub fn log(&self) -> PathBuf {
        self.dir.join("slapd.log")
    }
}

/// The directory holding `ldap-init` and `ldap-slapd`: `CENTER_SCRIPTS_DIR`,
/// else the source tree's `scripts/`.
pub fn scripts_dir() -> PathBuf {
    match std::env::var_os("CENTER_SCRIPTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts"),
    }
}

impl Testnet {
    /// The slapd of a peer, if the network runs one per peer.
    pub fn ldap(&self, peer: &PeerInfo) -> Option<&PeerLdap> {
        self.ldap.iter().find(|l| l.peer == peer.name)
    }

    /// Stops the slapd of peer `name` (its center daemons keep running).
    pub fn stop_ldap(&self, name: &str) -> anyhow::Result<()> {
        stop(self.peer_ldap(name)?)
    }

    /// Starts the slapd of peer `name` again; returns once it answers.
    pub fn start_ldap(&self, name: &str) -> anyhow::Result<()> {
        start(self.peer_ldap(name)?)
    }

    fn peer_ldap(&self, name: &str) -> anyhow::Result<&PeerLdap> {
        let peer = self.peer(name)?;
        self.ldap(peer).with_context(|| {
            format!("this network runs no slapd (start it with --ldap); peer {name}")
        })
    }
}

/// Sets up a slapd for each peer (not started) and adds `[ldap]` to each
/// peer's `center.toml`.
pub(crate) fn init_all(peers: &[PeerInfo], options: &LdapOptions) -> anyhow::Result<Vec<PeerLdap>> {
    let mut all = Vec::new();
    for (index, peer) in peers.iter().enumerate() {
        let port = u16::try_from(index)
            .ok()
            .and_then(|i| LDAP_PORT.checked_add(i))
            .context("too many peers for the ldap ports")?;
        all.push(init_peer(peer, port, options)?);
    }
    Ok(all)
}

fn init_peer(peer: &PeerInfo, port: u16, options: &LdapOptions) -> anyhow::Result<PeerLdap> {
    let dir = peer.dir.join("ldap");
    let output = Command::new(scripts_dir().join("ldap-init"))
        .arg("--dir")
        .arg(&dir)
        .arg("--ca-dir")
        .arg(peer.dir.join("ldap-ca"))
        .args(["--base", LDAP_BASE, "--host"])
        .arg(peer.addr.ip().to_string())
        .arg("--port")
        .arg(port.to_string())
        .arg("--max-failure")
        .arg(options.max_failure.to_string())
        .arg("--lockout-seconds")
        .arg(options.lockout_seconds.to_string())
        .output()
        .context("cannot run scripts/ldap-init (set CENTER_SCRIPTS_DIR?)")?;
    if !output.status.success() {
        bail!(
            "peer {}: ldap-init failed: {}",
            peer.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let doc: Value = serde_json::from_slice(
        &fs::read(dir.join("ldap.json")).context("ldap-init wrote no ldap.json")?,
    )
    .context("ldap-init wrote a broken ldap.json")?;
    let ldap = from_peer_json(&peer.name, &dir, &doc)?;
    let section = format!(
        "\n[ldap]\nldap_uri = {uri}\nldap_base = {base}\nldap_ca = {ca}\nldapi = {ldapi}\n",
        uri = Value::String(ldap.uri.clone()),
        base = Value::String(ldap.base.clone()),
        ca = toml_string(&ldap.ca),
        ldapi = toml_string(&ldap.ldapi),
    );
    fs::OpenOptions::new()
        .append(true)
        .open(&peer.config)
        .and_then(|mut file| file.write_all(section.as_bytes()))
        .with_context(|| format!("cannot add [ldap] to {}", peer.config.display()))?;
    Ok(ldap)
}

/// Starts a slapd unless it runs; returns once it answers.
pub(crate) fn start(ldap: &PeerLdap) -> anyhow::Result<()> {
    slapd_ctl(ldap, "start")
}

/// Stops a slapd if it runs and waits for it to exit.
pub(crate) fn stop(ldap: &PeerLdap) -> anyhow::Result<()> {
    slapd_ctl(ldap, "stop")
}

fn slapd_ctl(ldap: &PeerLdap, action: &str) -> anyhow::Result<()> {
    let output = Command::new(scripts_dir().join("ldap-slapd"))
        .arg("--dir")
        .arg(&ldap.dir)
        .arg(action)
        .output()
        .context("cannot run scripts/ldap-slapd (set CENTER_SCRIPTS_DIR?)")?;
    if !output.status.success() {
        bail!(
            "peer {}: ldap-slapd {action} failed: {}",
            ldap.peer,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Adds `ldap_uri`, `ldap_base`, `ldap_ca`, `ldapi` and `ldap_dir` to each
/// peer object (matched by `name`) of the network's JSON.
pub(crate) fn annotate(peers: &mut [Value], all: &[PeerLdap]) {
    for peer in peers {
        let Some(object) = peer.as_object_mut() else {
            continue;
        };
        let name = object.get("name").and_then(Value::as_str).unwrap_or("");
        if let Some(ldap) = all.iter().find(|l| l.peer == name) {
            let extra = json!({
                "ldap_uri": ldap.uri,
                "ldap_base": ldap.base,
                "ldap_ca": ldap.ca,
                "ldapi": ldap.ldapi,
                "ldap_dir": ldap.dir,
            });
            if let Value::Object(extra) = extra {
                object.extend(extra);
            }
        }
    }
}

/// The slapds recorded in a `testnet.json` (none if it ran without them).
pub(crate) fn from_doc(doc: &Value) -> anyhow::Result<Vec<PeerLdap>> {
    let mut all = Vec::new();
    for peer in doc["peers"].as_array().map_or(&[][..], Vec::as_slice) {
        let Some(dir) = peer["ldap_dir"].as_str() else {
            continue;
        };
        let name = peer["name"]
            .as_str()
            .context("testnet.json: peer lacks name")?;
        all.push(from_peer_json(name, Path::new(dir), peer)?);
    }
    Ok(all)
}

/// Reads the `ldap_*` keys of `ldap.json` or of a peer in `testnet.json`.
fn from_peer_json(peer: &str, dir: &Path, doc: &Value) -> anyhow::Result<PeerLdap> {
    let object: &Map<String, Value> = doc.as_object().context("ldap JSON is not an object")?;
    let text = |key: &str| -> anyhow::Result<String> {
        Ok(object
            .get(key)
            .and_then(Value::as_str)
            .with_context(|| format!("peer {peer}: ldap JSON lacks {key}"))?
            .to_owned())
    };
    Ok(PeerLdap {
        peer: peer.to_owned(),
        dir: dir.to_owned(),
        uri: text("ldap_uri")?,
        base: text("ldap_base")?,
        ca: PathBuf::from(text("ldap_ca")?),
        ldapi: PathBuf::from(text("ldapi")?),
    })
}
