//! Peer identity and the roster: `centerctl init`, `peer whoami`, `peer add`,
//! `peer list`, on real processes, with descriptions verified by dispatchd.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support::{STRANGER, ctl, ctl_as, network, ok, refused};

#[test]
fn each_peer_has_an_identity_and_trusts_the_others() {
    let (_dir, net) = network(3);
    let alpha = net.peer("alpha").unwrap();
    let me: Value =
        serde_json::from_str(&ok(ctl(&net, alpha, &["--json", "peer", "whoami"]))).unwrap();
    assert_eq!(me["uuid"], alpha.uuid.to_string());
    assert_eq!(me["address"], alpha.addr.to_string());
    for key in [
        "fingerprint",
        "cert",
        "olm_curve25519",
        "olm_ed25519",
        "binding",
    ] {
        assert!(
            me[key].as_str().is_some_and(|v| !v.is_empty()),
            "whoami lacks {key}: {me}"
        );
    }
    // Any local user may read the public description.
    let as_stranger: Value = serde_json::from_str(&ok(ctl_as(
        &net,
        alpha,
        STRANGER,
        &["--json", "peer", "whoami"],
    )))
    .unwrap();
    assert_eq!(as_stranger["uuid"], me["uuid"]);

    // Secrets are the daemon's alone.
    let identity = alpha.state_dir.join("dispatchd/identity");
    assert_eq!(
        std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for secret in ["cert.asc", "olm-account.pickle", "pickle.key"] {
        let mode = std::fs::metadata(identity.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }

    let roster: Value =
        serde_json::from_str(&ok(ctl(&net, alpha, &["--json", "peer", "list"]))).unwrap();
    let mut uuids: Vec<&str> = roster
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["uuid"].as_str().unwrap())
        .collect();
    uuids.sort_unstable();
    let mut want: Vec<String> = ["bravo", "charlie"]
        .iter()
        .map(|n| net.peer(n).unwrap().uuid.to_string())
        .collect();
    want.sort_unstable();
    assert_eq!(uuids, want);

    // Init twice is refused and changes nothing.
    let err = refused(ctl(
        &net,
        alpha,
        &["init", "--name", "other", "--address", "127.0.0.1:1"],
    ));
    assert!(err.contains("this peer already has an identity"), "{err}");
    let again: Value =
        serde_json::from_str(&ok(ctl(&net, alpha, &["--json", "peer", "whoami"]))).unwrap();
    assert_eq!(again, me);
}

#[test]
fn forged_descriptions_are_refused_and_change_nothing() {
    let (dir, net) = network(2);
    let alpha = net.peer("alpha").unwrap();
    let bravo = net.peer("bravo").unwrap();
    let genuine: Value =
        serde_json::from_slice(&std::fs::read(&bravo.description).unwrap()).unwrap();
    let before = roster(&net, alpha);
    let mine: Value =
        serde_json::from_str(&ok(ctl(&net, alpha, &["--json", "peer", "whoami"]))).unwrap();

    let cases: Vec<(&str, Value)> = vec![
        (
            "a moved address",
            with(&genuine, "address", "127.9.9.9:7350"),
        ),
        (
            "another olm key",
            with(
                &genuine,
                "olm_curve25519",
                mine["olm_curve25519"].as_str().unwrap(),
            ),
        ),
        (
            "another certificate",
            with(&genuine, "cert", mine["cert"].as_str().unwrap()),
        ),
        (
            "another uuid",
            with(&genuine, "uuid", "00000000-0000-4000-8000-000000000000"),
        ),
        ("this peer itself", mine.clone()),
        ("not a description", serde_json::json!({"hello": "world"})),
    ];
    for (what, description) in cases {
        let file = dir.path().join("forged.json");
        std::fs::write(&file, serde_json::to_vec(&description).unwrap()).unwrap();
        let err = refused(ctl(
            &net,
            alpha,
            &["peer", "add", "--from", file.to_str().unwrap()],
        ));
        assert!(err.contains("(bad-event)"), "{what}: {err}");
    }
    assert_eq!(roster(&net, alpha), before, "the roster is unchanged");
    // Only root manages the roster.
    let err = refused(ctl_as(&net, alpha, STRANGER, &["peer", "list"]));
    assert!(
        err.contains("not approved") || err.contains("not-root"),
        "{err}"
    );
}

#[test]
fn direct_messages_to_an_unknown_peer_are_refused() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let err = refused(ctl(
        &net,
        alpha,
        &[
            "bus",
            "publish",
            "demo.direct",
            "--to",
            "00000000-0000-4000-8000-000000000000",
        ],
    ));
    assert!(err.contains("is not in this peer's roster"), "{err}");
    let err = refused(ctl(
        &net,
        alpha,
        &["bus", "publish", "session.ack", "--data", "{}", "--local"],
    ));
    assert!(err.contains("reserved for dispatchers"), "{err}");
}

#[test]
fn dispatchd_without_an_identity_refuses_to_start() {
    crate::support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(
        &config,
        format!(
            "[paths]\nstate_dir = \"{0}/state\"\ncenter_root = \"{0}/center\"\n[bus]\nsocket = \"{0}/bus.sock\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let bin = center_testnet::default_bin_dir().unwrap().join("dispatchd");
    let output = std::process::Command::new(bin)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("this peer has no identity")
            && err.contains("centerctl init --name NAME --address HOST:PORT"),
        "{err}"
    );
}

/// The roster as `peer list` shows it, without what changes by itself
/// (reachability, last heard, queue, backoff).
fn roster(net: &center_testnet::Testnet, peer: &center_testnet::PeerInfo) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&ok(ctl(net, peer, &["--json", "peer", "list"]))).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::json!({
                "uuid": p["uuid"], "name": p["name"], "address": p["address"],
                "fingerprint": p["fingerprint"], "added": p["added"],
            })
        })
        .collect()
}

fn with(description: &Value, key: &str, value: &str) -> Value {
    let mut changed = description.clone();
    changed[key] = Value::String(value.to_owned());
    changed
}
