//! The DHT of addresses (CEP 7) on real processes: a peer that moved to
//! another address is found again with nobody editing a roster, and a
//! forged record for its UUID, put straight into another peer's DHT node by
//! a node the test runs itself, is refused.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use center_dht::{Contact, Dht, DhtConfig, Verifier};
use center_identity::{Identity, IdentityPaths, statement};
use center_testnet::{Formation, PeerInfo};
use serde_json::{Value, json};

use crate::support::{Tail, ctl, network_formed, ok, roster_entry};

/// How long finding a moved peer may take (the issue says a minute).
const FIND: Duration = Duration::from_secs(60);

fn log(peer: &PeerInfo, daemon: &str) -> String {
    std::fs::read_to_string(peer.log_dir.join(format!("{daemon}.log"))).unwrap_or_default()
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The DHT contact `peer` announced (kept in peerd's state).
fn contact_of(peer: &PeerInfo) -> Contact {
    let state: Value = serde_json::from_slice(
        &std::fs::read(peer.state_dir.join("peerd/membership.json")).unwrap(),
    )
    .unwrap();
    Contact::parse(state["announced_contact"].as_str().unwrap()).unwrap()
}

/// A forger's verifier: it stores anything.
struct Anything;

impl Verifier for Anything {
    fn verify(&self, _key: &[u8], _value: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_moved_peer_is_found_through_the_dht_and_forged_records_are_refused() {
    let (dir, net) = network_formed(3, Formation::Joined);
    let [a, b, c] = [0, 1, 2].map(|i| &net.peers()[i]);
    for peer in [a, b, c] {
        wait_for(
            &format!("{} published its address record", peer.name),
            FIND,
            || log(peer, "peerd").contains("address record published"),
        );
    }

    // A forged record for C's uuid: C's real description, a newer time,
    // signed by another key; and another peer's genuine-looking record
    // stored under C's uuid. A's node refuses both.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let forger_host = match c.addr {
        SocketAddr::V4(v4) => {
            let [x, y, z, _] = v4.ip().octets();
            std::net::Ipv4Addr::new(x, y, z, 200)
        }
        SocketAddr::V6(_) => panic!("the test network is IPv4"),
    };
    let mallory = Identity::create(
        &IdentityPaths::new(dir.path().join("mallory")),
        "mallory",
        "127.0.0.1:9",
    )
    .unwrap();
    let c_description: Value =
        serde_json::from_slice(&std::fs::read(&c.description).unwrap()).unwrap();
    let issued = center_proto::Timestamp::now().as_millis() + 3_600_000;
    let message = statement::dht_record(c.uuid, &c_description, issued).unwrap();
    let forged = json!({
        "description": c_description,
        "issued": issued,
        "signature": statement::base64_encode(mallory.sign(&message).unwrap()),
    });
    let own_description = mallory.describe().unwrap().to_json();
    let message = statement::dht_record(mallory.uuid(), &own_description, issued).unwrap();
    let foreign = json!({
        "description": own_description,
        "issued": issued,
        "signature": statement::base64_encode(mallory.sign(&message).unwrap()),
    });
    runtime.block_on(async {
        let forger = Dht::start(
            DhtConfig::new(
                SocketAddr::new(forger_host.into(), 0),
                dir.path().join("forger.key"),
            ),
            Arc::new(Anything),
        )
        .await
        .unwrap();
        forger.add_contacts(&[contact_of(a)]).await.unwrap();
        // Put again until A has answered both (a put whose query times out
        // on a loaded machine reaches nobody).
        let deadline = std::time::Instant::now() + FIND;
        while log(a, "peerd").matches("refused a record put").count() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "A refused the forged records"
            );
            for record in [&forged, &foreign] {
                forger
                    .publish_unverified(
                        c.uuid.to_string().into_bytes(),
                        serde_json::to_vec(record).unwrap(),
                    )
                    .await
                    .unwrap();
            }
        }
        forger.shutdown().await;
    });
    let peerd_log = log(a, "peerd");
    assert!(peerd_log.contains("bad signature"), "{peerd_log}");
    assert!(peerd_log.contains("not of"), "{peerd_log}");
    assert_eq!(
        roster_entry(&net, a, c)["address"],
        c.addr.to_string(),
        "a forged record changed nothing"
    );

    // C moves to another address of its network, with its daemons stopped.
    let moved = SocketAddr::new(
        match c.addr {
            SocketAddr::V4(v4) => {
                let [x, y, z, _] = v4.ip().octets();
                std::net::Ipv4Addr::new(x, y, z, 100).into()
            }
            SocketAddr::V6(_) => unreachable!(),
        },
        c.addr.port(),
    );
    net.stop(&c.name).unwrap();
    ok(ctl(&net, c, &["peer", "set-address", &moved.to_string()]));
    net.start(&c.name).unwrap();
    wait_for("A found C's new address", FIND, || {
        roster_entry(&net, a, c)["address"] == moved.to_string()
    });
    wait_for("A logs the lookup", FIND, || {
        log(a, "peerd").contains("found a peer at a new address in the DHT")
    });
    wait_for("B found C's new address", FIND, || {
        roster_entry(&net, b, c)["address"] == moved.to_string()
    });
    // And a direct message from A reaches C there.
    let tail = Tail::start(&net, c, None, &["dht.after-move"]);
    ok(ctl(
        &net,
        a,
        &[
            "bus",
            "publish",
            "dht.after-move",
            "--data",
            "{}",
            "--to",
            &c.uuid.to_string(),
        ],
    ));
    assert_eq!(tail.next()["meta"]["from"], a.uuid.to_string());
}
