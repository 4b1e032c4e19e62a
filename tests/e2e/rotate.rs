//! Key rotation (CEP 7) on real processes: after `peer rotate-keys` on
//! bravo, alpha and charlie take every event of bravo's feed before and
//! after in order, direct messages flow on new sessions, a restart keeps
//! the new keys, and an event signed with bravo's old key after the
//! rotation is refused while the new key's is stored. A peer that joins
//! later gets bravo's retired key in the roster hand-off, with its proof.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use center_feed::{EventBody, EventHash, FeedEvent};
use center_identity::{Identity, IdentityPaths};
use center_proto::{EventName, Timestamp};
use center_testnet::{Formation, PeerInfo, Testnet};
use serde_json::{Value, json};

use crate::{
    feeds::{stored_event, wait_for_head},
    mallory::Mallory,
    support::{PATIENCE, Tail, ctl, network, network_formed, ok, roster_entry, wait_until},
};

fn publish(net: &Testnet, peer: &PeerInfo, n: u64) {
    ok(ctl(
        net,
        peer,
        &[
            "bus",
            "publish",
            "notes.posted",
            "--data",
            &json!({ "n": n }).to_string(),
        ],
    ));
}

/// Sends `demo.direct` from `from` to `to` and waits until `to` has it.
fn direct(net: &Testnet, from: &PeerInfo, to: &PeerInfo, n: u64) {
    let tail = Tail::start(net, to, None, &["demo.*", "--count", "1"]);
    ok(ctl(
        net,
        from,
        &[
            "bus",
            "publish",
            "demo.direct",
            "--data",
            &json!({ "n": n }).to_string(),
            "--to",
            &to.uuid.to_string(),
        ],
    ));
    let event = tail.next();
    assert_eq!(event["data"]["n"], n, "{event}");
    assert_eq!(event["meta"]["from"], from.uuid.to_string(), "{event}");
    assert_eq!(tail.wait(), Some(0));
}

fn identity_dir(peer: &PeerInfo) -> std::path::PathBuf {
    peer.state_dir.join("dispatchd/identity")
}

/// Copies an identity directory (what a thief of the keys would hold).
fn copy_identity(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn log(peer: &PeerInfo) -> String {
    fs::read_to_string(peer.log_dir.join("dispatchd.log")).unwrap_or_default()
}

fn whoami_fingerprint(net: &Testnet, peer: &PeerInfo) -> String {
    let me: serde_json::Value =
        serde_json::from_str(&ok(ctl(net, peer, &["--json", "peer", "whoami"]))).unwrap();
    me["fingerprint"].as_str().unwrap().to_owned()
}

#[test]
fn after_rotate_keys_peers_take_the_new_keys_and_refuse_the_old() {
    let (dir, net) = network(3);
    let (alpha, bravo, charlie) = (
        net.peer("alpha").unwrap(),
        net.peer("bravo").unwrap(),
        net.peer("charlie").unwrap(),
    );
    let tails: Vec<(Tail, &PeerInfo)> = [alpha, charlie]
        .into_iter()
        .map(|peer| {
            (
                Tail::start(&net, peer, None, &["notes.*", "--count", "4"]),
                peer,
            )
        })
        .collect();
    publish(&net, bravo, 1);
    publish(&net, bravo, 2);
    for peer in [alpha, charlie] {
        wait_for_head(&net, peer, bravo, 2, PATIENCE);
    }
    direct(&net, alpha, bravo, 1);
    let old_keys = dir.path().join("bravo-old-identity");
    copy_identity(&identity_dir(bravo), &old_keys);
    let old_fingerprint = whoami_fingerprint(&net, bravo);

    // Seq 3 of bravo's feed is the rotation.
    let said = ok(ctl(&net, bravo, &["peer", "rotate-keys"]));
    let new_fingerprint = whoami_fingerprint(&net, bravo);
    assert_ne!(new_fingerprint, old_fingerprint);
    assert!(said.contains(&new_fingerprint), "{said}");
    // A restart right after keeps the new identity.
    net.stop("bravo").unwrap();
    net.start("bravo").unwrap();
    let reloaded = Identity::load(&IdentityPaths::new(identity_dir(bravo))).unwrap();
    assert_eq!(reloaded.fingerprint(), new_fingerprint);
    drop(reloaded);

    publish(&net, bravo, 3);
    publish(&net, bravo, 4);
    for (tail, peer) in tails {
        for (n, seq) in [(1, 1), (2, 2), (3, 4), (4, 5)] {
            let event = tail.next();
            assert_eq!(event["data"]["n"], n, "on {}: {event}", peer.name);
            assert_eq!(event["feed"]["seq"], seq, "on {}: {event}", peer.name);
            assert_eq!(event["feed"]["origin"], bravo.uuid.to_string());
        }
        assert_eq!(tail.wait(), Some(0));
        assert_eq!(
            roster_entry(&net, peer, bravo)["fingerprint"],
            new_fingerprint.as_str(),
            "on {}",
            peer.name
        );
        wait_until(&format!("{} did not log the rotation", peer.name), || {
            log(peer).contains(&format!("peer {} rotated its keys at seq 3", bravo.uuid))
        });
    }
    // Direct messages both ways, on sessions made with the new Olm keys.
    direct(&net, alpha, bravo, 2);
    direct(&net, bravo, charlie, 3);

    // Someone with bravo's old key writes seq 6 and has it relayed to
    // alpha: refused, logged, nothing stored. The same seq signed with the
    // new key is stored.
    let sign = |identity: &Identity, seq: u64, prev: EventHash| {
        let body = EventBody {
            origin: bravo.uuid,
            seq,
            prev,
            name: EventName::parse("notes.posted").unwrap(),
            iat: Timestamp::now(),
            data: json!({ "n": 5 }),
        };
        FeedEvent::sign(body, |input| identity.sign(input)).unwrap()
    };
    let e5 = stored_event(alpha, bravo, 5);
    let thief = Identity::load(&IdentityPaths::new(&old_keys)).unwrap();
    assert_eq!(thief.fingerprint(), old_fingerprint);
    let forged = sign(&thief, 6, e5.hash());
    let mallory = Mallory::create(dir.path(), &net, &[alpha]);
    let mut relay = Mallory::connect(&mallory, alpha);
    let bravo_id = bravo.uuid.to_string();
    assert_eq!(
        relay.send_events(&[forged.as_bytes().to_vec()])[&bravo_id],
        5
    );
    let refused = log(alpha);
    assert!(
        refused.contains(&format!("event 6 of {}: bad signature", bravo.uuid)),
        "alpha's log:\n{refused}"
    );
    let owner = Identity::load(&IdentityPaths::new(identity_dir(bravo))).unwrap();
    let good = sign(&owner, 6, e5.hash());
    assert_eq!(relay.send_events(&[good.as_bytes().to_vec()])[&bravo_id], 6);
}

#[test]
fn a_peer_that_was_down_learns_the_new_keys_from_the_hello() {
    // Two peers: alpha can hear of bravo's rotation only from bravo, whose
    // frames are all signed with its new key by then.
    let (_dir, net) = network(2);
    let (alpha, bravo) = (net.peer("alpha").unwrap(), net.peer("bravo").unwrap());
    publish(&net, bravo, 1);
    wait_for_head(&net, alpha, bravo, 1, PATIENCE);
    net.stop("alpha").unwrap();
    ok(ctl(&net, bravo, &["peer", "rotate-keys"]));
    let new_fingerprint = whoami_fingerprint(&net, bravo);
    publish(&net, bravo, 2);
    net.start("alpha").unwrap();
    // Seq 2 is the rotation, 3 the event after it.
    wait_for_head(&net, alpha, bravo, 3, PATIENCE);
    assert_eq!(
        roster_entry(&net, alpha, bravo)["fingerprint"],
        new_fingerprint.as_str()
    );
    assert!(log(alpha).contains(&format!("peer {} rotated its keys at seq 2", bravo.uuid)));
    direct(&net, alpha, bravo, 1);
    direct(&net, bravo, alpha, 2);
}

/// Bravo's entry in `peer`'s roster file.
fn roster_file_entry(peer: &PeerInfo, of: &PeerInfo) -> Value {
    let text = fs::read_to_string(peer.state_dir.join("dispatchd/roster.json")).unwrap();
    let roster: Value = serde_json::from_str(&text).unwrap();
    roster["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["description"]["uuid"] == of.uuid.to_string())
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_peer_that_joins_after_a_rotation_gets_the_retired_key_with_its_proof() {
    let (_dir, net) = network_formed(3, Formation::Alone);
    let [alpha, bravo, delta] = [0, 1, 2].map(|i| &net.peers()[i]);
    net.join_through(bravo, alpha).unwrap();
    net.wait_for_roster(alpha, &[bravo.uuid.to_string()])
        .unwrap();
    publish(&net, bravo, 1);
    publish(&net, bravo, 2);
    wait_for_head(&net, alpha, bravo, 2, PATIENCE);
    // Seq 3 is the rotation, seq 4 the new key's.
    ok(ctl(&net, bravo, &["peer", "rotate-keys"]));
    publish(&net, bravo, 3);
    wait_for_head(&net, alpha, bravo, 4, PATIENCE);
    // At its start, alpha keeps the rotation event with bravo's retired key.
    net.stop("alpha").unwrap();
    net.start("alpha").unwrap();
    let held = roster_file_entry(alpha, bravo);
    assert_eq!(held["retired"][0]["last_seq"], 3, "{held}");
    assert_eq!(held["retired"][0]["rotation"]["seq"], 3, "{held}");
    // Delta joins through alpha: the hand-off carries the key with its
    // proof, so delta verifies bravo's events before the rotation too.
    net.join_through(delta, alpha).unwrap();
    wait_for_head(&net, delta, bravo, 4, PATIENCE);
    assert_eq!(roster_file_entry(delta, bravo)["retired"], held["retired"]);
}
