//! Helpers every test module shares: peers with real identities, stores in
//! temporary directories, and events signed by hand.

use std::collections::HashMap;

use center_feed::{
    EventBody, EventHash, FeedBudget, FeedConfig, FeedEvent, FeedStore, OriginKeys, Outcome,
};
use center_identity::{Identity, IdentityPaths, PeerKeys};
use center_proto::{EventName, PeerId, Timestamp};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The clock of the tests: 2026-11-22T00:00:00Z.
pub const NOW: Timestamp = Timestamp::from_millis(1_795_305_600_000);

/// One peer: an identity in its own temporary directory, and its public keys.
pub struct Peer {
    _dir: TempDir,
    pub identity: Identity,
    pub keys: PeerKeys,
}

impl Peer {
    pub fn new(name: &str) -> Peer {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = IdentityPaths::new(dir.path().join("identity"));
        let identity = Identity::create(&paths, name, "127.0.0.1:7350").expect("create identity");
        let keys = PeerKeys::from_description(&identity.describe().expect("describe"));
        Peer {
            _dir: dir,
            identity,
            keys,
        }
    }

    pub fn id(&self) -> PeerId {
        self.identity.uuid()
    }

    /// Event `seq` of this peer's feed, after `prev`, with `data`.
    pub fn event(&self, seq: u64, prev: EventHash, data: Value) -> FeedEvent {
        let body = EventBody {
            origin: self.id(),
            seq,
            prev,
            name: EventName::parse("test.event").expect("name"),
            iat: NOW,
            data,
        };
        FeedEvent::sign(body, |message| self.identity.sign(message)).expect("sign")
    }

    /// Events 1 to `n`, chained, each with `{"n": seq, "branch": branch}`.
    pub fn chain(&self, n: u64, branch: &str) -> Vec<FeedEvent> {
        self.extend(&[], n, branch)
    }

    /// `chain` continued to seq `n` with another branch name.
    pub fn extend(&self, chain: &[FeedEvent], n: u64, branch: &str) -> Vec<FeedEvent> {
        let mut events = chain.to_vec();
        let start = u64::try_from(events.len()).expect("length") + 1;
        for seq in start..=n {
            let prev = events.last().map_or(EventHash::ZERO, FeedEvent::hash);
            events.push(self.event(seq, prev, json!({ "n": seq, "branch": branch })));
        }
        events
    }
}

/// The roster of `peers`, as `accept` asks for it.
pub fn roster(peers: &[&Peer]) -> impl Fn(&PeerId) -> Option<OriginKeys> + use<> {
    let keys: HashMap<PeerId, OriginKeys> = peers
        .iter()
        .map(|p| (p.id(), OriginKeys::from(p.keys.clone())))
        .collect();
    move |id| keys.get(id).cloned()
}

/// A store in its own temporary directory.
pub struct Store {
    pub dir: TempDir,
    pub store: FeedStore,
}

impl Store {
    pub fn new(budget: FeedBudget) -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(&dir, budget);
        Store { dir, store }
    }

    /// Closes the store and opens the same file again.
    pub fn reopen(self, budget: FeedBudget) -> Store {
        let Store { dir, store } = self;
        drop(store);
        let store = open(&dir, budget);
        Store { dir, store }
    }
}

fn open(dir: &TempDir, budget: FeedBudget) -> FeedStore {
    let config = FeedConfig {
        budget,
        ..FeedConfig::default()
    };
    FeedStore::open(&dir.path().join("feeds.sqlite"), config).expect("open store")
}

/// The canonical bytes of `events`.
pub fn bytes(events: &[FeedEvent]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.as_bytes().to_vec()).collect()
}

/// One line per outcome, with peer ids replaced by their names.
pub fn render(outcomes: &[Outcome], names: &[(&Peer, &str)]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let mut line = match outcome {
            Outcome::Refused(refusal) => format!("refused: {refusal}"),
            other => format!("{other:?}"),
        };
        for (peer, name) in names {
            line = line.replace(&peer.id().to_string(), name);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
