//! Membership (CEP 7) on real processes: networks formed with the RFC's
//! join flow only, join requests that must change nothing, and peers that
//! leave, are removed or excommunicated.

use std::{io::Write, net::TcpStream, path::Path, time::Duration};

use center_identity::{Identity, IdentityPaths, statement};
use center_proto::{
    Destination, Envelope, EventName, Meta, PeerId, Timestamp,
    peer_frame::{Auth, PeerFrame, encode_frame},
};
use center_testnet::{Formation, PeerInfo, TEST_ADMIN, Testnet};
use serde_json::{Value, json};

use crate::support::{
    PATIENCE, Tail, bus_client, ctl, network_formed, ok, refused, roster_entry, wait_until,
};

/// Publishes a feed event as root through `centerctl`.
fn publish(net: &Testnet, peer: &PeerInfo, name: &str, data: &str) {
    ok(ctl(net, peer, &["bus", "publish", name, "--data", data]));
}

fn uuids(peers: &[&PeerInfo]) -> Vec<String> {
    peers.iter().map(|p| p.uuid.to_string()).collect()
}

fn log(peer: &PeerInfo, daemon: &str) -> String {
    std::fs::read_to_string(peer.log_dir.join(format!("{daemon}.log"))).unwrap_or_default()
}

fn wait_for_log(peer: &PeerInfo, daemon: &str, needle: &str) {
    wait_until(
        &format!("{}'s {daemon} never logged `{needle}`", peer.name),
        || log(peer, daemon).contains(needle),
    );
}

#[test]
fn four_peers_form_a_network_with_the_join_flow_only() {
    let (_dir, net) = network_formed(4, Formation::Alone);
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| &net.peers()[i]);
    for peer in [a, b, c, d] {
        assert!(
            net.roster(peer).unwrap().is_empty(),
            "nobody trusts anybody yet"
        );
    }
    net.join_through(b, a).unwrap();
    net.join_through(c, a).unwrap();
    net.join_through(d, b).unwrap();
    for peer in [a, b, c, d] {
        let others: Vec<String> = uuids(&[a, b, c, d])
            .into_iter()
            .filter(|u| *u != peer.uuid.to_string())
            .collect();
        net.wait_for_roster(peer, &others).unwrap();
    }
    // C learned D from B's announcement, D learned C from B's hand-off
    // (peerd logs it once dispatchd has added the peer).
    wait_until("charlie logs delta's announcement", || {
        log(c, "peerd").contains(&format!("announced by {}", b.uuid))
    });
    wait_until("delta logs bravo's hand-off", || {
        log(d, "peerd").contains(&format!("in the roster handed over by {}", b.uuid))
    });
    // An event published on D reaches A.
    let tail = Tail::start(&net, a, None, &["membership.hello"]);
    publish(&net, d, "membership.hello", r#"{"from":"delta"}"#);
    let event = tail.next();
    assert_eq!(event["meta"]["from"], d.uuid.to_string());
    assert_eq!(event["data"]["from"], "delta");
}

/// A newcomer the test plays by hand, with an identity of its own that no
/// daemon runs, sending `new-peer-server` frames it builds itself.
struct Newcomer {
    identity: Identity,
}

impl Newcomer {
    fn create(dir: &Path, name: &str) -> Newcomer {
        let identity = Identity::create(
            &IdentityPaths::new(dir.join(name).join("identity")),
            name,
            "127.0.0.1:9",
        )
        .unwrap();
        Newcomer { identity }
    }

    fn uuid(&self) -> PeerId {
        self.identity.uuid()
    }

    /// The body of a `new-peer-server` frame to `to`, with the secret
    /// signed by `signer`.
    fn request(&self, to: PeerId, file: &str, secret: &str, signer: &Identity) -> Vec<u8> {
        let message = statement::join_secret(self.uuid(), to, TEST_ADMIN, file, secret).unwrap();
        let signature = statement::base64_encode(signer.sign(&message).unwrap());
        let now = Timestamp::now();
        let envelope = Envelope {
            name: EventName::parse("new-peer-server").unwrap(),
            meta: Meta {
                from: self.uuid(),
                to: Destination::Peer(to),
                iat: now,
                exp: now.saturating_add(Duration::from_secs(3600)),
            },
            data: json!({
                "admin": TEST_ADMIN,
                "secret_file": file,
                "signature": signature,
                "description": self.identity.describe().unwrap().to_json(),
            }),
        };
        PeerFrame::new(
            self.uuid(),
            to,
            Auth::New,
            envelope.canonical_bytes().unwrap(),
        )
        .unwrap()
        .to_body()
    }
}

fn send_frame(peer: &PeerInfo, body: &[u8]) {
    let mut stream = TcpStream::connect(peer.addr).unwrap();
    stream.write_all(&encode_frame(body).unwrap()).unwrap();
}

fn secret_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

fn waiting(net: &Testnet, peer: &PeerInfo) -> Vec<Value> {
    net.requests(peer).unwrap()
}

#[test]
fn refused_forged_replayed_or_unapproved_joins_change_nothing() {
    let (dir, net) = network_formed(2, Formation::Alone);
    let [a, b] = [0, 1].map(|i| &net.peers()[i]);

    // A wrong secret, through the real command: refused, nothing waits.
    let invitation = net.invite(a, TEST_ADMIN).unwrap();
    let forged = dir
        .path()
        .join("wrong")
        .join(invitation.path.file_name().unwrap());
    std::fs::create_dir_all(forged.parent().unwrap()).unwrap();
    std::fs::write(&forged, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut wrong = invitation.clone();
    wrong.path = forged;
    net.join(b, &wrong).unwrap();
    wait_for_log(a, "peerd", "does not prove the secret");
    assert!(waiting(&net, a).is_empty());

    // A right secret signed by a key that is not the newcomer's.
    let mallory = Newcomer::create(dir.path(), "mallory");
    let other = Newcomer::create(dir.path(), "other");
    let file = invitation.path.file_name().unwrap().to_str().unwrap();
    let secret = secret_of(&invitation.path);
    send_frame(a, &mallory.request(a.uuid, file, &secret, &other.identity));
    wait_until("the forged signature is refused", || {
        log(a, "peerd").matches("does not prove the secret").count() == 2
    });
    assert!(waiting(&net, a).is_empty());

    // A valid request, rejected; then the same frame replayed: refused.
    let valid = mallory.request(a.uuid, file, &secret, &mallory.identity);
    send_frame(a, &valid);
    let request = net
        .wait_for_request(a, &mallory.uuid().to_string())
        .unwrap();
    assert_eq!(request["proofs"], json!([file]));
    ok(ctl(
        &net,
        a,
        &["peer", "reject", &mallory.uuid().to_string()],
    ));
    send_frame(a, &valid);
    wait_for_log(a, "peerd", "a replay of a request already taken");
    assert!(waiting(&net, a).is_empty());
    // The invitation was used by the valid request: a fresh frame with it
    // is refused too.
    send_frame(
        a,
        &mallory.request(a.uuid, file, &secret, &mallory.identity),
    );
    wait_for_log(a, "peerd", "no valid invitation");
    assert!(waiting(&net, a).is_empty());

    // A real join request left unapproved: it waits, and nobody trusts
    // anybody. A challenge asks the newcomer for a second secret.
    let invitation = net.invite(a, TEST_ADMIN).unwrap();
    net.join(b, &invitation).unwrap();
    net.wait_for_request(a, &b.uuid.to_string()).unwrap();
    let challenge = net.challenge(a, &b.uuid.to_string()).unwrap();
    net.join(b, &challenge).unwrap();
    wait_until("the challenge is answered", || {
        waiting(&net, a)
            .first()
            .is_some_and(|r| r["proofs"].as_array().is_some_and(|p| p.len() == 2))
    });
    assert!(net.roster(a).unwrap().is_empty());
    assert!(net.roster(b).unwrap().is_empty());
    // Approving something that does not wait is refused, and changes nothing.
    refused(ctl(
        &net,
        a,
        &["peer", "approve", &mallory.uuid().to_string()],
    ));
    assert!(net.roster(a).unwrap().is_empty());
    // The newcomer's dispatcher refuses an add-peer-server it does not
    // expect (from mallory, whose key B never pinned).
    net.approve(a, &b.uuid.to_string()).unwrap();
    net.wait_for_roster(b, &[a.uuid.to_string()]).unwrap();
    assert_eq!(net.roster(b).unwrap(), vec![a.uuid.to_string()]);
}

#[test]
fn removed_departed_and_excommunicated_peers_are_refused() {
    let (_dir, net) = network_formed(4, Formation::Joined);
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| &net.peers()[i]);

    // A removes D: A stops talking to it and refuses its new events, which
    // B (still trusting D) takes.
    ok(ctl(
        &net,
        a,
        &["peer", "remove", &d.uuid.to_string(), "--reason", "test"],
    ));
    assert_eq!(roster_entry(&net, a, d), Value::Null);
    let on_b = Tail::start(&net, b, None, &["membership.after"]);
    publish(&net, d, "membership.after", "{}");
    assert_eq!(on_b.next()["meta"]["from"], d.uuid.to_string());
    let d_head_on = |peer: &PeerInfo| -> u64 {
        let status: Value =
            serde_json::from_str(&ok(ctl(&net, peer, &["--json", "feed", "status"]))).unwrap();
        status["origins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["origin"] == d.uuid.to_string())
            .map_or(0, |o| o["head_seq"].as_u64().unwrap())
    };
    let on_b_head = d_head_on(b);
    // Once A has an event B published after that, B has offered A its
    // whole frontier, D's event included: A refused it.
    let on_a = Tail::start(&net, a, None, &["membership.marker"]);
    publish(&net, b, "membership.marker", "{}");
    assert_eq!(on_a.next()["meta"]["from"], b.uuid.to_string());
    assert!(
        d_head_on(a) < on_b_head,
        "A took an event of a peer it removed"
    );

    // B votes to excommunicate C: B removes it at once (its sysadmin's
    // right), but one peer's vote removes it nowhere else. On D, which
    // counts A, B and D as members who may vote on C, 2 votes are needed.
    let excommunicate = |peer: &PeerInfo| {
        ok(ctl(
            &net,
            peer,
            &[
                "peer",
                "excommunicate",
                &c.uuid.to_string(),
                "--reason",
                "test",
            ],
        ))
    };
    excommunicate(b);
    assert_eq!(roster_entry(&net, b, c), Value::Null);
    for peer in [a, d] {
        wait_for_log(peer, "peerd", "excommunication pending");
        assert_ne!(
            roster_entry(&net, peer, c),
            Value::Null,
            "one peer's vote removed charlie on {}",
            peer.name
        );
    }
    assert!(
        log(d, "peerd").contains("votes=1 needed=2"),
        "{}",
        log(d, "peerd")
    );
    // A votes too: a quorum of distinct members, so D removes C (A at once).
    excommunicate(a);
    assert_eq!(roster_entry(&net, a, c), Value::Null);
    wait_until("delta still trusts charlie after a quorum's votes", || {
        roster_entry(&net, d, c) == Value::Null
    });
    // peerd logs the departure once dispatchd has removed the peer.
    wait_for_log(d, "peerd", "how=\"excommunicated\"");
    wait_for_log(d, "peerd", "voted by 2 members");

    // D retires: B, which still trusted it, removes it.
    ok(ctl(&net, d, &["peer", "leave", "--reason", "moving on"]));
    wait_until("bravo still trusts delta", || {
        roster_entry(&net, b, d) == Value::Null
    });
    wait_until("bravo's peerd logs the leave", || {
        log(b, "peerd").contains("how=\"left\"")
    });
}

#[test]
fn a_roster_hand_off_after_the_join_changes_nothing() {
    let (dir, net) = network_formed(3, Formation::Joined);
    let [a, b, c] = [0, 1, 2].map(|i| &net.peers()[i]);
    // B took A's hand-off when it joined through A: the only one it takes.
    wait_for_log(b, "peerd", "roster hand-off taken");
    // A hostile A (root speaks for its peerd on its bus) hands B a roster
    // again, with a stranger in it; so does C, which B never joined
    // through.
    let mallory = Identity::create(
        &IdentityPaths::new(dir.path().join("mallory")),
        "mallory",
        "127.0.0.1:7399",
    )
    .unwrap();
    let forged = json!({ "peers": [{ "description": mallory.describe().unwrap().to_json() }] });
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for sender in [a, c] {
            let mut client = bus_client(sender, "peerd", PATIENCE).await;
            client
                .publish(center_bus::Publish::direct(
                    b.uuid,
                    "peer.roster",
                    forged.clone(),
                ))
                .await
                .unwrap();
        }
    });
    wait_for_log(b, "peerd", "a roster is taken once");
    wait_for_log(
        b,
        "peerd",
        "a roster is taken only from a peer this peer asked to join through",
    );
    let mut roster = net.roster(b).unwrap();
    roster.sort();
    let mut expected = uuids(&[a, c]);
    expected.sort();
    assert_eq!(roster, expected);
    assert!(!log(b, "dispatchd").contains(&mallory.uuid().to_string()));
}

#[test]
fn one_sponsor_has_a_bounded_number_of_peers_trusted_at_once() {
    let (_dir, net) = network_formed(4, Formation::Alone);
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| &net.peers()[i]);
    // Charlie trusts at most one peer a day announced by one sponsor.
    net.stop(&c.name).unwrap();
    let config = std::fs::read_to_string(&c.config).unwrap();
    let config = config.replacen(
        "[membership]\n",
        "[membership]\nmax_announced_per_day = 1\n",
        1,
    );
    std::fs::write(&c.config, config).unwrap();
    net.start(&c.name).unwrap();
    net.join_through(c, a).unwrap();
    // Alpha announces bravo, then delta: charlie trusts bravo at once, and
    // keeps delta waiting for its sysadmin.
    net.join_through(b, a).unwrap();
    net.wait_for_roster(c, &uuids(&[a, b])).unwrap();
    net.join_through(d, a).unwrap();
    net.wait_for_request(c, &d.uuid.to_string()).unwrap();
    wait_for_log(c, "peerd", "its sponsor already added");
    assert_eq!(roster_entry(&net, c, d), Value::Null);
    // The sysadmin decides.
    net.approve(c, &d.uuid.to_string()).unwrap();
    assert_ne!(roster_entry(&net, c, d), Value::Null);
}
