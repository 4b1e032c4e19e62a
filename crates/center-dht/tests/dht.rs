//! The DHT over real libp2p TCP connections on 127.0.0.x: values travel
//! between nodes that do not know each other directly, forged and misplaced
//! values are refused on store and on lookup, and a node that comes back on
//! another address with the same key file is found again.
//!
//! The test verifier stands in for peerd's signed records: a key is the
//! protobuf encoding of an ed25519 public key, and a value is
//! `seq (8 bytes, big-endian) || payload || signature`, the signature by that
//! key over `key || seq || payload`. A higher seq supersedes a lower one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use center_dht::{Contact, Dht, DhtConfig, DhtError, Verifier};
use libp2p::identity::{Keypair, PublicKey};

const DEADLINE: Duration = Duration::from_secs(30);
const SIG_LEN: usize = 64;

/// The signed-value check, remembering what it refused.
#[derive(Default)]
struct TestVerifier {
    refused: Mutex<Vec<Vec<u8>>>,
}

impl TestVerifier {
    fn check(key: &[u8], value: &[u8]) -> Result<u64, String> {
        let public = PublicKey::try_decode_protobuf(key).map_err(|e| format!("key: {e}"))?;
        if value.len() < 8 + SIG_LEN {
            return Err("value too short".to_owned());
        }
        let (signed, sig) = value.split_at(value.len() - SIG_LEN);
        let msg = [key, signed].concat();
        if !public.verify(&msg, sig) {
            return Err("bad signature".to_owned());
        }
        let seq: [u8; 8] = signed[..8].try_into().map_err(|_| "seq")?;
        Ok(u64::from_be_bytes(seq))
    }

    fn has_refused(&self, value: &[u8]) -> bool {
        self.refused.lock().unwrap().iter().any(|v| v == value)
    }
}

impl Verifier for TestVerifier {
    fn verify(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        Self::check(key, value).map(|_| ()).inspect_err(|_| {
            self.refused.lock().unwrap().push(value.to_vec());
        })
    }

    fn supersedes(&self, key: &[u8], stored: &[u8], incoming: &[u8]) -> bool {
        let newer = match (Self::check(key, stored), Self::check(key, incoming)) {
            (Ok(old), Ok(new)) => new > old,
            (Err(_), _) => true,
            (Ok(_), Err(_)) => false,
        };
        if !newer {
            self.refused.lock().unwrap().push(incoming.to_vec());
        }
        newer
    }
}

/// A record owner (a stand-in for a peer's OpenPGP identity).
struct Owner(Keypair);

impl Owner {
    fn new() -> Owner {
        Owner(Keypair::generate_ed25519())
    }

    fn key(&self) -> Vec<u8> {
        self.0.public().encode_protobuf()
    }

    fn value(&self, seq: u64, payload: &str) -> Vec<u8> {
        self.value_under(&self.key(), seq, payload)
    }

    /// A value signed by this owner over another key: valid-looking, misplaced.
    fn value_under(&self, key: &[u8], seq: u64, payload: &str) -> Vec<u8> {
        let signed = [&seq.to_be_bytes()[..], payload.as_bytes()].concat();
        let sig = self.0.sign(&[key, &signed].concat()).unwrap();
        [signed, sig].concat()
    }
}

struct Node {
    dht: Dht,
    verifier: Arc<TestVerifier>,
}

/// The network tests run one at a time: each starts several swarms, and
/// on a loaded two-core machine four at once let queries time out.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(dir: &Path, name: &str, ip: u8) -> Node {
    start_with(dir, name, ip, |_| {}).await
}

async fn start_with(dir: &Path, name: &str, ip: u8, tune: impl FnOnce(&mut DhtConfig)) -> Node {
    let listen = format!("127.0.0.{ip}:0").parse().unwrap();
    let mut cfg = DhtConfig::new(listen, dir.join(format!("{name}.key")));
    cfg.query_timeout = Duration::from_secs(5);
    tune(&mut cfg);
    let verifier = Arc::new(TestVerifier::default());
    let dht = Dht::start(cfg, verifier.clone()).await.unwrap();
    Node { dht, verifier }
}

/// Looks `key` up from `node` until `want` holds of the values, or panics at the deadline.
async fn lookup_until(node: &Node, key: &[u8], want: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = node.dht.lookup(key.to_vec()).await.unwrap();
        if want(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "lookup still returns {found:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `check` holds, or panics at the deadline.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn local_value(node: &Node, key: Vec<u8>) -> Option<Vec<u8>> {
    node.dht.local_record(key).await.unwrap().map(|(v, _)| v)
}

fn contacts(nodes: &[&Node]) -> Vec<Contact> {
    nodes.iter().map(|n| n.dht.contact().clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_reaches_a_node_that_knows_only_a_neighbour() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let n1 = start(dir.path(), "n1", 11).await;
    let n2 = start(dir.path(), "n2", 12).await;
    let n3 = start(dir.path(), "n3", 13).await;
    let n4 = start(dir.path(), "n4", 14).await;
    n2.dht.add_contacts(&contacts(&[&n1])).await.unwrap();
    n3.dht.add_contacts(&contacts(&[&n1])).await.unwrap();
    n4.dht.add_contacts(&contacts(&[&n2])).await.unwrap();

    let owner = Owner::new();
    let value = owner.value(1, "/ip4/192.0.2.1/tcp/4001");
    n1.dht.publish(owner.key(), value.clone()).await.unwrap();
    let found = lookup_until(&n4, &owner.key(), |f| !f.is_empty()).await;
    assert_eq!(found, vec![value]);

    // A key nobody published: the lookup ends, empty, within the query deadline.
    let started = Instant::now();
    let nothing = n4.dht.lookup(Owner::new().key()).await.unwrap();
    assert!(nothing.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // The local verifier refuses before anything is stored or sent.
    let refused = n1.dht.publish(owner.key(), b"unsigned".to_vec()).await;
    assert!(matches!(refused, Err(DhtError::Refused(_))), "{refused:?}");

    for n in [n1, n2, n3, n4] {
        n.dht.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_misplaced_and_replayed_values_are_refused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a", 21).await;
    let b = start(dir.path(), "b", 22).await;
    let c = start(dir.path(), "c", 23).await;
    let forger = start(dir.path(), "forger", 24).await;
    b.dht.add_contacts(&contacts(&[&a])).await.unwrap();
    c.dht.add_contacts(&contacts(&[&a])).await.unwrap();
    forger.dht.add_contacts(&contacts(&[&b])).await.unwrap();
    let honest = [&a, &b, &c];

    // A's owner publishes seq 1 then seq 2, which everyone ends up holding.
    let alice = Owner::new();
    let old = alice.value(1, "old address");
    let new = alice.value(2, "new address");
    a.dht.publish(alice.key(), old.clone()).await.unwrap();
    a.dht.publish(alice.key(), new.clone()).await.unwrap();
    for n in honest {
        lookup_until(n, &alice.key(), |f| f == [new.clone()]).await;
    }
    // Forget what was judged so far (seq 1 may have been ranked below seq 2
    // already): what follows is judged anew.
    for n in honest {
        n.verifier.refused.lock().unwrap().clear();
    }

    // 1. A forged value under the forger's own key: bad signature.
    let mallory = Owner::new();
    let mut forged = mallory.value(7, "evil address");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // 2. Alice's genuine value put under Carol's key.
    let carol = Owner::new();
    let misplaced = alice.value(3, "alice's address, carol's key");
    // 3. Alice's old, genuine value replayed over the new one.
    forger
        .dht
        .publish_unverified(mallory.key(), forged.clone())
        .await
        .unwrap();
    forger
        .dht
        .publish_unverified(carol.key(), misplaced.clone())
        .await
        .unwrap();
    forger
        .dht
        .publish_unverified(alice.key(), old.clone())
        .await
        .unwrap();
    // The forger's own store holds them; no honest node does, once it has judged them.
    assert_eq!(
        local_value(&forger, carol.key()).await,
        Some(misplaced.clone())
    );
    for n in honest {
        until("the honest nodes to judge every forgery", || {
            n.verifier.has_refused(&forged)
                && n.verifier.has_refused(&misplaced)
                && n.verifier.has_refused(&old)
        })
        .await;
        assert_eq!(local_value(n, mallory.key()).await, None);
        assert_eq!(local_value(n, carol.key()).await, None);
        assert_eq!(local_value(n, alice.key()).await, Some(new.clone()));
        // Lookups reach the forger, which serves its forgeries; none is returned.
        assert!(n.dht.lookup(mallory.key()).await.unwrap().is_empty());
        assert!(n.dht.lookup(carol.key()).await.unwrap().is_empty());
    }
    for n in [a, b, c, forger] {
        n.dht.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_on_a_new_address_is_found_again() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a", 31).await;
    let b = start(dir.path(), "b", 32).await;
    let c = start(dir.path(), "c", 33).await;
    let mover = start(dir.path(), "mover", 34).await;
    b.dht.add_contacts(&contacts(&[&a])).await.unwrap();
    c.dht.add_contacts(&contacts(&[&b])).await.unwrap();
    mover.dht.add_contacts(&contacts(&[&a, &b])).await.unwrap();
    let old_contact = mover.dht.contact().clone();

    let owner = Owner::new();
    let first = owner.value(1, "/ip4/127.0.0.34/tcp/1");
    mover.dht.publish(owner.key(), first.clone()).await.unwrap();
    lookup_until(&c, &owner.key(), |f| f == [first.clone()]).await;

    // The node moves: same key file, another IP, and it bootstraps from the
    // contacts it had; nobody else is told anything.
    mover.dht.shutdown().await;
    let moved = start(dir.path(), "mover", 35).await;
    assert_eq!(moved.dht.contact().peer_id, old_contact.peer_id);
    assert_ne!(moved.dht.contact().addr, old_contact.addr);
    moved.dht.add_contacts(&contacts(&[&a, &b])).await.unwrap();
    let second = owner.value(2, "/ip4/127.0.0.35/tcp/1");
    moved
        .dht
        .publish(owner.key(), second.clone())
        .await
        .unwrap();

    // C's lookup returns the new value, and C's store replaced the old one.
    let found = lookup_until(&c, &owner.key(), |f| f.contains(&second)).await;
    let newest = found
        .iter()
        .max_by_key(|v| TestVerifier::check(&owner.key(), v).unwrap())
        .unwrap();
    assert_eq!(newest, &second);
    for n in [a, b, c, moved] {
        n.dht.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_pushes_the_expiry_forward_everywhere() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = start_with(dir.path(), "publisher", 41, |c| {
        c.republish_every = Duration::from_millis(500);
    })
    .await;
    let holder = start(dir.path(), "holder", 42).await;
    holder
        .dht
        .add_contacts(&contacts(&[&publisher]))
        .await
        .unwrap();

    let owner = Owner::new();
    let value = owner.value(1, "x");
    publisher
        .dht
        .publish(owner.key(), value.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let first = loop {
        if let Some((v, expires)) = holder.dht.local_record(owner.key()).await.unwrap() {
            assert_eq!(v, value);
            break expires.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the holder never stored the value"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Explicit and within the TTL (24 h by default).
    assert!(first <= Instant::now() + Duration::from_secs(24 * 3600));
    loop {
        let (_, expires) = holder.dht.local_record(owner.key()).await.unwrap().unwrap();
        if expires.unwrap() > first {
            break;
        }
        assert!(Instant::now() < deadline, "the expiry was never refreshed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    publisher.dht.shutdown().await;
    holder.dht.shutdown().await;
}
