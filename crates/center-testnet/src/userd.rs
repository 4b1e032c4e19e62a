//! userd on the test network: with `ldap` on, each peer also runs userd
//! (CEP 8), started after its slapd and dispatchd, as root, with the bus
//! grant a sysadmin would approve (`account.*` both ways). Without `ldap`
//! nothing here runs.

use nix::sys::signal::Signal;

use crate::{PeerInfo, Testnet, membership::output};

/// The daemon's binary name.
pub const USERD: &str = "userd";

impl Testnet {
    /// Whether `peer` has a slapd, hence a userd.
    pub fn runs_userd(&self, peer: &PeerInfo) -> bool {
        self.ldap.iter().any(|l| l.peer == peer.name)
    }

    /// Approves userd's grant and starts it, if the peer has a slapd.
    pub(crate) fn start_userd(&self, peer: &PeerInfo) -> anyhow::Result<()> {
        if !self.runs_userd(peer) {
            return Ok(());
        }
        let mut command = self.centerctl(peer);
        command.args([
            "service",
            "approve",
            USERD,
            "--user",
            "root",
            "--receive",
            "account.*",
            "--send",
            "account.*",
        ]);
        output(command, &format!("peer {}: approving userd", peer.name))?;
        self.start_daemon(peer, USERD)
    }

    /// Stops userd (SIGTERM), if it runs.
    pub(crate) fn stop_userd(&self, peer: &PeerInfo) -> anyhow::Result<()> {
        self.signal_daemon(peer, USERD, Signal::SIGTERM)
    }
}
