//! Mallory: a peer the test drives by hand, speaking CEP 5 with the
//! dispatcher's own sealing and opening code, to send what an honest
//! dispatcher never would (altered, reordered, replayed or equivocating
//! feed events). The sysadmin of the peer it talks to has trusted it
//! (`peer add`), as a peer that later misbehaves would be.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use center_identity::{Identity, IdentityPaths, PeerDescription, PeerKeys};
use center_proto::{Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp};
use center_testnet::{PeerInfo, Testnet};
use dispatchd::peer::{
    self, Receiver, ReplayCache, SaveSessions, Sessions, Verified, seal_gpg, seal_gpg_plus,
};
use serde_json::{Value, json};

use crate::support::{PATIENCE, ctl, ok};

pub struct Mallory {
    identity: Identity,
    sessions: Sessions,
    replay: ReplayCache,
    peer: PeerId,
    peer_keys: PeerKeys,
    stream: TcpStream,
    /// Frontiers the peer sent, newest last.
    pub frontiers: Vec<Value>,
    /// Pages of events sent.
    pages: u64,
    /// The peer's log, shown when it does not answer.
    log: PathBuf,
}

impl Mallory {
    /// Makes Mallory's identity under `dir` and has every peer in
    /// `trusting` add it to its roster; returns its state directory.
    pub fn create(dir: &Path, net: &Testnet, trusting: &[&PeerInfo]) -> PathBuf {
        let state = dir.join("mallory");
        // An address nobody listens on: peers that dial it get refused.
        let identity = Identity::create(
            &IdentityPaths::new(state.join("identity")),
            "mallory",
            "127.0.0.1:9",
        )
        .expect("mallory's identity");
        let description = dir.join("mallory.json");
        std::fs::write(
            &description,
            serde_json::to_vec(&identity.describe().unwrap().to_json()).unwrap(),
        )
        .unwrap();
        for trusting in trusting {
            ok(ctl(
                net,
                trusting,
                &["peer", "add", "--from", description.to_str().unwrap()],
            ));
        }
        state
    }

    /// Connects to `peer` as the Mallory of `state` (one at a time: the
    /// identity is locked while loaded), with an Olm session.
    pub fn connect(state: &Path, peer: &PeerInfo) -> Mallory {
        let identity = Identity::load(&IdentityPaths::new(state.join("identity"))).unwrap();
        let sessions = Sessions::open(state.join("sessions"), *identity.pickle_key()).unwrap();
        let peer_description =
            PeerDescription::from_json(&std::fs::read(&peer.description).unwrap()).unwrap();
        let stream = TcpStream::connect(peer.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut mallory = Mallory {
            identity,
            sessions,
            replay: ReplayCache::new(1024, 1024),
            peer: peer.uuid,
            peer_keys: PeerKeys::from_description(&peer_description),
            stream,
            frontiers: Vec::new(),
            pages: 0,
            log: peer.log_dir.join("dispatchd.log"),
        };
        mallory.send_gpg(peer::HELLO, json!({ "nonce": super::feeds::nonce() }));
        let hello = mallory.recv();
        assert_eq!(hello.envelope.name.as_str(), peer::HELLO);
        // The second hello answers the peer's challenge (CEP 5).
        let theirs = hello.envelope.data["nonce"].clone();
        mallory.send_gpg(
            peer::HELLO,
            json!({ "nonce": super::feeds::nonce(), "echo": theirs }),
        );
        if !mallory.sessions.has_session(&peer.uuid) {
            mallory.start_session();
        }
        mallory
    }

    /// Sets up the Olm session as CEP 5 says: the lower UUID starts it.
    fn start_session(&mut self) {
        if self.identity.uuid() < self.peer {
            self.send_gpg(
                peer::KEY_REQUEST,
                json!({ "request": super::feeds::nonce() }),
            );
            let otk = loop {
                let answer = self.recv();
                if answer.envelope.name.as_str() == peer::KEY_ANSWER {
                    break answer.envelope.data["one_time_key"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                }
            };
            self.sessions
                .start_outbound(&self.identity, &self.peer_keys, &otk)
                .unwrap();
            self.send_gpg_plus(peer::PING, json!({ "nonce": super::feeds::nonce() }));
        } else {
            // The peer starts the session (it may already have asked for a
            // key, which `recv` answers) and says so with an encrypted ping.
            while !self.sessions.has_session(&self.peer) {
                self.recv();
            }
        }
    }

    /// Sends a page of feed events and waits for the frontier that answers
    /// it; returns that frontier's heads.
    pub fn send_events(&mut self, events: &[Vec<u8>]) -> Value {
        let values: Vec<Value> = events
            .iter()
            .map(|bytes| serde_json::from_slice(bytes).unwrap())
            .collect();
        let answered = self.frontiers.len();
        self.send_gpg_plus(peer::EVENTS, json!({ "events": values }));
        let pages = self.pages_sent();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(frontier) = self.frontiers.get(answered..).and_then(|new| {
                new.iter()
                    .find(|f| f["pages"].as_u64() >= Some(pages))
                    .cloned()
            }) {
                return frontier["heads"].clone();
            }
            assert!(Instant::now() < deadline, "no frontier answered the page");
            self.recv();
        }
    }

    /// Sends a frontier with these heads (origin → seq), counting the
    /// pages sent so far.
    pub fn send_frontier(&mut self, heads: Value) {
        let pages = self.pages;
        self.send_gpg_plus(peer::FRONTIER, json!({ "heads": heads, "pages": pages }));
    }

    /// Sends a direct message to the peer and waits for its
    /// acknowledgement (panics if none comes).
    pub fn send_direct(&mut self, name: &str, data: Value) {
        self.send_gpg_plus(name, data);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let verified = self.recv();
            if std::iter::once(&verified.envelope)
                .chain(&verified.rest)
                .any(|e| e.name.as_str() == peer::ACK)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the direct message was not acknowledged"
            );
        }
    }

    /// Sends a direct message to the peer; whether it was acknowledged
    /// within `wait`.
    pub fn send_direct_within(&mut self, name: &str, data: Value, wait: Duration) -> bool {
        self.send_gpg_plus(name, data);
        let deadline = Instant::now() + wait;
        let mut len = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Wait for a frame's first byte at most until the deadline.
            self.stream.set_read_timeout(Some(left)).unwrap();
            let peeked = self.stream.peek(&mut len);
            self.stream.set_read_timeout(Some(PATIENCE)).unwrap();
            if peeked.is_err() {
                return false;
            }
            let verified = self.recv();
            if std::iter::once(&verified.envelope)
                .chain(&verified.rest)
                .any(|e| e.name.as_str() == peer::ACK)
            {
                return true;
            }
        }
    }

    pub fn uuid(&self) -> PeerId {
        self.identity.uuid()
    }

    fn pages_sent(&mut self) -> u64 {
        self.pages += 1;
        self.pages
    }

    fn send_gpg(&mut self, name: &str, data: Value) {
        let frame = seal_gpg(&self.identity, self.peer, &self.envelope(name, data)).unwrap();
        self.stream.write_all(&frame.to_frame()).unwrap();
    }

    fn send_gpg_plus(&mut self, name: &str, data: Value) {
        let envelope = self.envelope(name, data);
        let frame =
            seal_gpg_plus(&self.identity, &mut self.sessions, self.peer, &envelope).unwrap();
        self.stream.write_all(&frame.to_frame()).unwrap();
    }

    fn envelope(&self, name: &str, data: Value) -> Envelope {
        let iat = Timestamp::now();
        Envelope {
            name: EventName::parse(name).unwrap(),
            meta: Meta {
                from: self.identity.uuid(),
                to: Destination::Peer(self.peer),
                iat,
                exp: iat.saturating_add(Duration::from_secs(300)),
            },
            data,
        }
    }

    /// The next frame from the peer, opened with CEP 5's checks; frontiers
    /// are remembered on the way.
    fn recv(&mut self) -> Verified {
        let mut len = [0u8; 4];
        if let Err(err) = self.stream.read_exact(&mut len) {
            panic!(
                "no frame from the peer ({err}); its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let keys = self.peer_keys.clone();
        let lookup = move |_: &PeerId| Some(keys.clone());
        let mut receiver = Receiver {
            identity: &mut self.identity,
            keys: &lookup,
            sessions: &mut self.sessions,
            replay: &mut self.replay,
            limits: &Limits::DEFAULT,
            save: SaveSessions::Now,
        };
        let verified = peer::open(&mut receiver, &body, Some(self.peer), Timestamp::now())
            .expect("the peer's frame opens");
        for envelope in std::iter::once(&verified.envelope).chain(&verified.rest) {
            match envelope.name.as_str() {
                peer::FRONTIER => self.frontiers.push(envelope.data.clone()),
                // The lower UUID asks for a key: answer as a dispatcher does.
                peer::KEY_REQUEST => {
                    let otk = self.identity.one_time_keys(1).unwrap().remove(0);
                    let request = envelope.data["request"].clone();
                    self.send_gpg(
                        peer::KEY_ANSWER,
                        json!({ "one_time_key": otk, "request": request }),
                    );
                }
                _ => {}
            }
        }
        verified
    }
}
