//! Key rotation (CEP 7) on real processes: after `peer rotate-keys` on
//! bravo, alpha and charlie take every event of bravo's feed before and
//! after in order, direct messages flow on new sessions, a restart keeps
//! the new keys, and an event signed with bravo's old key after the
//! rotation is refused while the new key's is stored. A peer that joins
//! later gets bravo's retired key in the roster hand-off, with its proof,
//! without the introducer restarting. A thief of bravo's old key cannot
//! switch a peer that is behind on bravo's feed with a forged rotation in
//! a hello (issue 13, item 6): that peer learns the genuine key from the
//! feed.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::Duration,
};

use center_feed::{EventBody, EventHash, FeedEvent, rotation_data};
use center_identity::{Identity, IdentityPaths};
use center_proto::{Destination, Envelope, EventName, Meta, Timestamp};
use center_testnet::{Formation, PeerInfo, Testnet};
use dispatchd::peer::{self, seal_gpg};
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
    // Alpha keeps the rotation event with bravo's retired key as soon as
    // it applies the rotation, not only at its next start.
    wait_until("alpha did not keep the rotation's proof", || {
        roster_file_entry(alpha, bravo)["retired"][0]["rotation"]["seq"] == 3
    });
    let held = roster_file_entry(alpha, bravo);
    assert_eq!(held["retired"][0]["last_seq"], 3, "{held}");
    // Delta joins through alpha, which has not restarted: the hand-off
    // carries the key with its proof, so delta verifies bravo's events
    // before the rotation too.
    net.join_through(delta, alpha).unwrap();
    wait_for_head(&net, delta, bravo, 4, PATIENCE);
    assert_eq!(roster_file_entry(delta, bravo)["retired"], held["retired"]);
    // And alpha keeps the proof across a restart.
    net.stop("alpha").unwrap();
    net.start("alpha").unwrap();
    assert_eq!(roster_file_entry(alpha, bravo)["retired"], held["retired"]);
}

/// Sends `peer` a hello from `from` (as a dialer's first frame) signed by
/// `identity`, carrying `rotations`; waits until `peer` closes the
/// connection (it refuses the hello) and returns whether it answered.
fn send_hello(
    peer: &PeerInfo,
    from: &PeerInfo,
    identity: &Identity,
    rotations: &[&FeedEvent],
) -> bool {
    let rotations: Vec<Value> = rotations
        .iter()
        .map(|e| serde_json::from_slice(e.as_bytes()).unwrap())
        .collect();
    let iat = Timestamp::now();
    let envelope = Envelope {
        name: EventName::parse(peer::HELLO).unwrap(),
        meta: Meta {
            from: from.uuid,
            to: Destination::Peer(peer.uuid),
            iat,
            exp: iat.saturating_add(Duration::from_secs(300)),
        },
        data: json!({ "nonce": crate::feeds::nonce(), "rotations": rotations }),
    };
    let frame = seal_gpg(identity, peer.uuid, &envelope).unwrap();
    let mut stream = TcpStream::connect(peer.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(&frame.to_frame()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    !answer.is_empty()
}

/// Issue 13, item 6: charlie is down while bravo publishes and rotates.
/// Someone holding bravo's OLD keys makes a rotation of its own at the
/// same seq, to keys of its choosing, and greets charlie with a hello
/// signed by those keys, carrying it. Charlie holds bravo's feed only up
/// to an earlier seq, so it cannot check the rotation against the events
/// before it: it does not switch (logged), and later learns bravo's
/// genuine key from the feed.
#[test]
fn a_forged_rotation_in_a_hello_does_not_switch_a_peer_behind_on_the_feed() {
    let (dir, net) = network(3);
    let (alpha, bravo, charlie) = (
        net.peer("alpha").unwrap(),
        net.peer("bravo").unwrap(),
        net.peer("charlie").unwrap(),
    );
    publish(&net, bravo, 1);
    for peer in [alpha, charlie] {
        wait_for_head(&net, peer, bravo, 1, PATIENCE);
    }
    let old_keys = dir.path().join("bravo-old-identity");
    copy_identity(&identity_dir(bravo), &old_keys);
    let old_fingerprint = whoami_fingerprint(&net, bravo);
    net.stop("charlie").unwrap();
    // Seq 2 an event, seq 3 the genuine rotation, seq 4 the new key's.
    publish(&net, bravo, 2);
    ok(ctl(&net, bravo, &["peer", "rotate-keys"]));
    let new_fingerprint = whoami_fingerprint(&net, bravo);
    publish(&net, bravo, 3);
    wait_for_head(&net, alpha, bravo, 4, PATIENCE);
    // Charlie comes back with nobody to fetch bravo's feed from.
    net.stop("alpha").unwrap();
    net.stop("bravo").unwrap();
    net.start("charlie").unwrap();

    // The thief's rotation at seq 3, signed by the old key, to its keys.
    let mut thief = Identity::load(&IdentityPaths::new(&old_keys)).unwrap();
    assert_eq!(thief.fingerprint(), old_fingerprint);
    let prepared = thief.prepare_rotation().unwrap();
    let forged_fingerprint = prepared.description().fingerprint().to_owned();
    let body = EventBody {
        origin: bravo.uuid,
        seq: 3,
        prev: EventHash::digest(b"whatever charlie lacks"),
        name: EventName::parse(center_feed::ROTATE_EVENT).unwrap(),
        iat: Timestamp::now(),
        data: rotation_data(prepared.description(), &old_fingerprint),
    };
    let forged = FeedEvent::sign(body, |input| thief.sign(input)).unwrap();
    thief.commit_rotation(prepared).unwrap();
    assert_eq!(thief.fingerprint(), forged_fingerprint);
    assert!(
        !send_hello(charlie, bravo, &thief, &[&forged]),
        "charlie answered the thief's hello"
    );
    wait_until("charlie did not log why it keeps bravo's keys", || {
        log(charlie).contains(
            "a key rotation in a hello is not applied: this peer holds that feed only up to seq 1, \
             so the rotation at seq 3 cannot be checked",
        )
    });
    assert_eq!(
        roster_entry(&net, charlie, bravo)["fingerprint"],
        old_fingerprint.as_str()
    );
    assert!(!log(charlie).contains(&format!("peer {} rotated its keys", bravo.uuid)));

    // The feed brings bravo's genuine rotation: charlie switches to it.
    net.start("alpha").unwrap();
    net.start("bravo").unwrap();
    wait_for_head(&net, charlie, bravo, 4, PATIENCE);
    assert_eq!(
        roster_entry(&net, charlie, bravo)["fingerprint"],
        new_fingerprint.as_str()
    );
    wait_until("charlie did not log bravo's rotation", || {
        log(charlie).contains(&format!("peer {} rotated its keys at seq 3", bravo.uuid))
    });
    // Once caught up, the forged hello changes nothing either.
    assert!(!send_hello(charlie, bravo, &thief, &[&forged]));
    assert_eq!(
        roster_entry(&net, charlie, bravo)["fingerprint"],
        new_fingerprint.as_str()
    );
    direct(&net, charlie, bravo, 1);
    direct(&net, bravo, charlie, 2);
}
