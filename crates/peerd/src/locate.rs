//! Finding peers whose address changed (CEP 7): peerd runs a node of the
//! DHT (`center-dht`), publishes this peer's signed address record under
//! its UUID, and looks a peer up when dispatchd cannot reach it
//! (`peer.unreachable`), when the peer announces a new DHT contact, and
//! every republish interval. A record is stored, returned and used only if
//! it is signed by the key the roster trusts for that UUID; a newer record
//! whose address differs replaces the roster's description.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use center_bus::AdminOp;
use center_dht::{Contact, Dht, DhtConfig, Verifier};
use center_proto::PeerId;

use crate::{Peerd, dht::Record};

/// Looking the same peer up again sooner than this is skipped.
const LOOKUP_PACE: Duration = Duration::from_secs(10);
/// Largest record the node stores.
const MAX_VALUE: usize = 64 * 1024;

/// The fingerprint the roster trusts for each uuid (this peer's included),
/// which is what a record must be signed with.
#[derive(Clone, Default)]
pub struct Trusted(Arc<RwLock<HashMap<PeerId, String>>>);

impl Trusted {
    fn get(&self, peer: &PeerId) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(peer)
            .cloned()
    }

    pub fn replace(&self, all: HashMap<PeerId, String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = all;
    }
}

/// The DHT's check of a value: a record of the uuid it is stored under,
/// signed by the key trusted for that uuid.
struct RosterVerifier {
    trusted: Trusted,
}

fn key_uuid(key: &[u8]) -> Result<PeerId, String> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.parse::<PeerId>().ok())
        .ok_or_else(|| "a key is a peer uuid".to_owned())
}

impl Verifier for RosterVerifier {
    fn verify(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let uuid = key_uuid(key)?;
        let fingerprint = self
            .trusted
            .get(&uuid)
            .ok_or_else(|| format!("{uuid} is not a peer this peer trusts"))?;
        Record::from_bytes(value)?.verify(uuid, &fingerprint)
    }

    fn supersedes(&self, _key: &[u8], stored: &[u8], incoming: &[u8]) -> bool {
        match (Record::from_bytes(stored), Record::from_bytes(incoming)) {
            (Ok(stored), Ok(incoming)) => incoming.issued > stored.issued,
            (Err(_), Ok(_)) => true,
            _ => false,
        }
    }
}

/// peerd's DHT node and what it remembers of its lookups.
pub struct Locator {
    dht: Dht,
    trusted: Trusted,
    /// When each peer was last looked up, and the newest record used.
    looked: std::sync::Mutex<HashMap<PeerId, (Instant, u64)>>,
}

impl Locator {
    /// Starts the node on `listen`, its key in `state_dir/dht.key`.
    pub async fn start(
        listen: SocketAddr,
        state_dir: &Path,
        membership: &center_config::Membership,
        trusted: Trusted,
    ) -> anyhow::Result<Locator> {
        let mut config = DhtConfig::new(listen, state_dir.join("dht.key"));
        config.record_ttl = membership.dht_record_ttl;
        config.republish_every = membership.dht_republish;
        config.max_value_bytes = MAX_VALUE;
        let verifier = Arc::new(RosterVerifier {
            trusted: trusted.clone(),
        });
        let dht = Dht::start(config, verifier).await?;
        tracing::info!(contact = %dht.contact(), "DHT node up");
        Ok(Locator {
            dht,
            trusted,
            looked: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn contact(&self) -> &Contact {
        self.dht.contact()
    }

    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }

    /// Adds other peers' nodes and bootstraps from them.
    pub async fn add_contacts(&self, contacts: &[Contact]) {
        if contacts.is_empty() {
            return;
        }
        if let Err(err) = self.dht.add_contacts(contacts).await {
            tracing::warn!(error = %err, "DHT contacts not added");
        }
    }

    /// Publishes this peer's signed record (made by dispatchd).
    pub async fn publish_own(&self, peerd: &Peerd) -> Result<(), String> {
        let record = peerd
            .admin_op(AdminOp::DhtRecord {})
            .await?
            .value
            .ok_or("dispatchd made no DHT record")?;
        let me = peerd.me();
        self.dht
            .publish(
                me.to_string().into_bytes(),
                serde_json::to_vec(&record).map_err(|err| err.to_string())?,
            )
            .await
            .map_err(|err| err.to_string())?;
        tracing::info!(peer = %me, "address record published in the DHT");
        Ok(())
    }

    /// Looks `peer` up; if a newer record has another address, the roster
    /// takes its description (same keys, new address).
    pub async fn find(&self, peerd: &Peerd, peer: PeerId) -> Result<(), String> {
        let newest_used = {
            let mut looked = self.looked.lock().unwrap_or_else(|p| p.into_inner());
            let entry = looked
                .entry(peer)
                .or_insert((Instant::now() - LOOKUP_PACE * 2, 0));
            if entry.0.elapsed() < LOOKUP_PACE {
                return Ok(());
            }
            entry.0 = Instant::now();
            entry.1
        };
        let Some(fingerprint) = self.trusted.get(&peer) else {
            return Ok(());
        };
        let values = self
            .dht
            .lookup(peer.to_string().into_bytes())
            .await
            .map_err(|err| err.to_string())?;
        let newest = values
            .iter()
            .filter_map(|v| Record::from_bytes(v).ok())
            .filter(|r| r.verify(peer, &fingerprint).is_ok())
            .max_by_key(|r| r.issued);
        let Some(record) = newest else {
            tracing::info!(%peer, "no address record in the DHT");
            return Ok(());
        };
        if record.issued <= newest_used {
            return Ok(());
        }
        let known = peerd.roster_address(peer).await?;
        if known.as_deref() != Some(record.description.address()) {
            peerd
                .admin_op(AdminOp::PeerAdd {
                    description: record.description.to_json(),
                    announced: false,
                })
                .await?;
            tracing::warn!(
                %peer,
                old = known.as_deref().unwrap_or("-"),
                new = record.description.address(),
                "found a peer at a new address in the DHT; roster updated"
            );
        }
        self.looked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .and_modify(|e| e.1 = e.1.max(record.issued));
        Ok(())
    }
}
