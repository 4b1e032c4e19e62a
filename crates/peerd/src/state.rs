//! What peerd remembers, in one small JSON file (`state_dir/peerd/
//! membership.json`, mode 0600 since it holds invitation secrets), replaced
//! atomically: a change is on disk before anyone is told it happened.
//!
//! - invitations: the secrets this peer's sysadmin handed out, until used
//!   or expired;
//! - requests: join requests (and, under the manual policy, announced
//!   peers) waiting for the sysadmin;
//! - seen: digests of the `new-peer-server` envelopes already taken, until
//!   they expire, so a replayed request is recognised;
//! - departed: peers that left or were removed or excommunicated, never to
//!   be added back by an announcement;
//! - votes: the `peer.excommunicate` votes seen, until a quorum of
//!   distinct members removes the target (or it departs otherwise);
//! - sponsored: when each sponsor's announced peers were trusted, to bound
//!   how many one member adds per day;
//! - joining: the peers this peer asked to join through, whose roster
//!   hand-off it takes once, after their welcome;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Invitations kept at most.
pub const MAX_INVITATIONS: usize = 1000;
/// Requests waiting at most; more are refused (and logged).
pub const MAX_REQUESTS: usize = 100;
/// Request digests remembered at most.
const MAX_SEEN: usize = 10_000;

/// One invitation: a secret in a file in `admin`'s home.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    pub file: String,
    pub admin: String,
    pub secret: String,
    pub created: u64,
    pub expires: u64,
    /// A challenge for this requester only (`centerctl peer challenge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_peer: Option<String>,
}

/// A peer waiting for the sysadmin's decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub uuid: String,
    /// Its verified description, as received.
    pub description: Value,
    /// `new-peer-server`, or `announced by UUID` (manual policy).
    pub source: String,
    /// The account whose secret files it proved it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// The secret files it proved it knows, in order.
    #[serde(default)]
    pub proofs: Vec<String>,
    pub received: u64,
}

/// Why a peer departed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Departed {
    /// `left`, `removed` or `excommunicated`.
    pub how: String,
    pub reason: String,
    pub at: u64,
}

/// A join this peer asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Joining {
    pub address: String,
    pub fingerprint: String,
    pub asked: u64,
    /// When its `add-peer-server` came (the peer is in the roster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcomed: Option<u64>,
    /// When its roster hand-off was taken: the join is complete, and no
    /// other hand-off is taken from it (CEP 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over: Option<u64>,
}

impl Joining {
    /// Why a roster hand-off from this peer is refused now, if it is:
    /// one is taken once, after its welcome, before any other (CEP 7).
    pub fn hand_off_refusal(joining: Option<&Joining>) -> Option<&'static str> {
        match joining {
            None => Some("a roster is taken only from a peer this peer asked to join through"),
            Some(Joining { welcomed: None, .. }) => {
                Some("a roster is taken only once the peer joined through has welcomed this one")
            }
            Some(Joining {
                handed_over: Some(_),
                ..
            }) => Some("this peer already took the roster of its join; a roster is taken once"),
            Some(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    #[serde(default)]
    pub invitations: Vec<Invitation>,
    #[serde(default)]
    pub requests: Vec<Request>,
    /// Envelope digest → its expiry (ms).
    #[serde(default)]
    pub seen: BTreeMap<String, u64>,
    #[serde(default)]
    pub departed: BTreeMap<String, Departed>,
    #[serde(default)]
    pub joining: BTreeMap<String, Joining>,
    /// Other peers' DHT nodes (`peer.dht-contact`), by uuid, to bootstrap
    /// from after a restart.
    #[serde(default)]
    pub contacts: BTreeMap<String, String>,
    /// This peer's own DHT contact as last announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_contact: Option<String>,
    /// Excommunication votes seen on the feeds and not yet decided:
    /// target uuid → voter uuid → its vote (each origin once).
    #[serde(default)]
    pub votes: BTreeMap<String, BTreeMap<String, crate::quorum::Vote>>,
    /// When each sponsor's announcements were trusted here under the
    /// `auto` policy (ms, the last day's only): sponsor uuid → times.
    #[serde(default)]
    pub sponsored: BTreeMap<String, Vec<u64>>,
}

/// A day, in ms: the period of `[membership] max_announced_per_day`.
pub const DAY_MS: u64 = 24 * 3600 * 1000;

/// Whether a sponsor that had peers trusted here at `times` (ms) may
/// have one more trusted at `now` under the `auto` policy: fewer than
/// `limit` in the day before `now`.
pub fn sponsor_may_add(times: &[u64], now: u64, limit: usize) -> bool {
    times
        .iter()
        .filter(|t| now.saturating_sub(**t) < DAY_MS)
        .count()
        < limit
}

/// The state and its file.
pub struct State {
    path: PathBuf,
    pub now: Membership,
}

impl State {
    /// Reads `dir/membership.json` (missing: empty); creates `dir` 0700.
    pub fn open(dir: &Path) -> anyhow::Result<State> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let path = dir.join("membership.json");
        let now = match fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Membership::default(),
            Err(err) => anyhow::bail!("cannot read {}: {err}", path.display()),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                anyhow::anyhow!(
                    "{} is corrupt ({err}); restore it from a backup or remove it",
                    path.display()
                )
            })?,
        };
        Ok(State { path, now })
    }

    /// Applies `change` to a copy, writes it, and only then keeps it: a
    /// failed write changes nothing.
    pub fn update<T>(
        &mut self,
        change: impl FnOnce(&mut Membership) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut next = self.now.clone();
        let out = change(&mut next)?;
        let now = center_proto::Timestamp::now().as_millis();
        next.invitations.retain(|i| i.expires > now);
        next.seen.retain(|_, exp| *exp > now);
        next.votes.retain(|_, votes| !votes.is_empty());
        for times in next.sponsored.values_mut() {
            times.retain(|t| now.saturating_sub(*t) < DAY_MS);
        }
        next.sponsored.retain(|_, times| !times.is_empty());
        while next.seen.len() > MAX_SEEN {
            let Some(oldest) = next
                .seen
                .iter()
                .min_by_key(|(_, exp)| **exp)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            next.seen.remove(&oldest);
        }
        write(&self.path, &next)
            .map_err(|err| format!("cannot write {}: {err}", self.path.display()))?;
        self.now = next;
        Ok(out)
    }
}

fn write(path: &Path, state: &Membership) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    center_config::durable::replace_file(path, &bytes, 0o600)
}
