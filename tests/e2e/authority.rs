//! Whose act an account change is (CEP 8, "Authority" and "Names"), tried
//! by a hostile member: bravo's root speaks for its own feed (its keys are
//! the test's), signing whatever the test asks, as a compromised peer
//! would. Each attack is refused by every honest peer with a logged
//! reason and changes nothing; what a user is entitled to still works,
//! also after her home peer has left.

use center_testnet::{PeerInfo, USERD};
use nix::sys::signal::Signal;
use userd::{
    account::{AccountEvent, Created, Stamp, block_range},
    authority,
};

use crate::{
    accounts::{
        KEY, binds, block_of, cheap_hash, ctl_stdin, ldap_network, now_ms, publish_raw, show,
        uid_number, userd_log,
    },
    support::{ctl, ok, wait_until},
};

/// Another key of alice's.
const PHONE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBs6uGmbyFvGWjgKHGWm2vWmP0KKqRGxGMbnAxdIMaxN alice@phone";

/// A name that exists on this machine (every test peer shares it), as a
/// local user with its own uid and no group of the name.
const LOCAL: &str = "ctllocal";

fn ensure_local(name: &str) -> u32 {
    if let Some(user) = nix::unistd::User::from_name(name).unwrap() {
        return user.uid.as_raw();
    }
    let status = std::process::Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "-N",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .arg(name)
        .status()
        .unwrap();
    assert!(
        status.success() || status.code() == Some(9),
        "useradd: {status}"
    );
    nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// An account bravo creates from its own block, stamped `created`.
fn created(block: u32, n: u32, name: &str, created: u64, key: Option<String>) -> AccountEvent {
    AccountEvent::Created(Created {
        name: name.to_owned(),
        uid_number: block_range(block).start + n,
        shell: "/bin/sh".to_owned(),
        display_name: String::new(),
        password_hash: cheap_hash("mallory"),
        ssh_keys: vec![KEY.to_owned()],
        created,
        user_key: key,
    })
}

fn stamp(at: u64) -> Stamp {
    Stamp { at, auth: None }
}

/// Waits until `peer`'s userd logged `needle` (a refusal's reason).
fn refused(net: &center_testnet::Testnet, peer: &PeerInfo, needle: &str) {
    wait_until(&format!("{}: `{needle}` logged", peer.name), || {
        userd_log(net, peer).contains(needle)
    });
}

/// alice changes her password on `peer`, signing with her current one.
fn passwd_signed(net: &center_testnet::Testnet, peer: &PeerInfo, current: &str, new: &str) {
    let args = [
        "user",
        "passwd",
        "alice",
        "--current-password-stdin",
        "--password-stdin",
    ];
    ok(ctl_stdin(net, peer, &args, &format!("{current}\n{new}\n")));
}

#[test]
fn a_hostile_member_cannot_act_for_users_or_for_local_identities() {
    let local_uid = ensure_local(LOCAL);
    let (_dir, net) = ldap_network(3);
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap().clone());
    let block = block_of(&b);
    // A name that is local to charlie alone (its sysadmin reserved it):
    // made on alpha and bravo, never on charlie.
    let config = std::fs::read_to_string(&c.config).unwrap();
    let reserved = config.replace(
        "[accounts]\n",
        "[accounts]\nreserved_names = [\"carlos\"]\n",
    );
    assert_ne!(config, reserved);
    std::fs::write(&c.config, reserved).unwrap();
    net.signal_daemon(&c, USERD, Signal::SIGTERM).unwrap();
    net.start_daemon(&c, USERD).unwrap();
    ok(ctl(&net, &a, &["user", "add", "carlos"]));
    for peer in ["alpha", "bravo"] {
        wait_until(&format!("carlos on {peer}"), || {
            uid_number(&net, peer, "carlos").is_some()
        });
    }
    refused(&net, &c, "`carlos` is reserved on this peer");
    assert_eq!(uid_number(&net, "charlie", "carlos"), None);
    // Each peer puts homes where it chose.
    let home = |peer: &PeerInfo| show(&net, peer, "carlos")["home"].clone();
    assert_eq!(home(&a), serde_json::json!(a.dir.join("home/carlos")));
    assert_eq!(home(&b), serde_json::json!(b.dir.join("home/carlos")));

    // alice joins on alpha, her home.
    ok(ctl_stdin(
        &net,
        &a,
        &["user", "add", "alice", "--password-stdin"],
        "hers\n",
    ));
    for peer in ["bravo", "charlie"] {
        wait_until(&format!("alice on {peer}"), || {
            binds(&net, peer, "alice", "hers")
        });
    }
    let alice_uid = uid_number(&net, "alpha", "alice").unwrap();

    // Root through a name: bravo makes `root`, `sudo` and a name this
    // machine has as a local user, each with an attacker's key.
    let now = now_ms();
    publish_raw(
        &b,
        &[
            created(block, 1, "root", now, None),
            created(block, 2, "sudo", now, None),
            created(block, 3, LOCAL, now, None),
        ],
    );
    // And the user-side attacks on alice, from bravo, which is not her
    // home: a password and key change with no signature, one signed by
    // the attacker's key, a deletion, a creation dated at 1 to win the
    // name, a deletion dated in the year 3000.
    let mallory = vodozemac::Ed25519SecretKey::new();
    let takeover = AccountEvent::Password {
        name: "alice".to_owned(),
        password_hash: cheap_hash("mallory"),
        user_key: Some(authority::public_key(&mallory)),
        stamp: stamp(now),
    };
    publish_raw(
        &b,
        &[
            takeover.clone(),
            authority::sign(takeover, &mallory),
            AccountEvent::Keys {
                name: "alice".to_owned(),
                ssh_keys: vec![KEY.to_owned()],
                stamp: stamp(now),
            },
            AccountEvent::Deleted {
                name: "alice".to_owned(),
                stamp: stamp(now),
            },
            created(block, 4, "alice", 1, None),
            AccountEvent::Deleted {
                name: "bob".to_owned(),
                stamp: stamp(32_503_680_000_000),
            },
        ],
    );
    for peer in [&a, &c] {
        refused(&net, peer, "`root` is a reserved name");
        refused(&net, peer, "`sudo` is a reserved name");
        refused(
            &net,
            peer,
            &format!("`{LOCAL}` is a local user of this peer"),
        );
        refused(
            &net,
            peer,
            "neither signed by its user nor published by its home peer",
        );
        refused(
            &net,
            peer,
            "signed by a key that is not the account's user key",
        );
        refused(&net, peer, "deletion kept, but neither signed by its user");
        refused(&net, peer, "`created` (1 ms) is more than 5 minutes");
        refused(
            &net,
            peer,
            "`deleted` (32503680000000 ms) is more than 5 minutes",
        );
    }
    for peer in [&a, &b, &c] {
        for name in ["root", "sudo", LOCAL] {
            assert_eq!(
                uid_number(&net, &peer.name, name),
                None,
                "{name} on {}",
                peer.name
            );
        }
        // No key login as the local user, nor as root.
        for (name, uid) in [("root", "0".to_owned()), (LOCAL, local_uid.to_string())] {
            assert_eq!(
                ok(ctl(&net, peer, &["user", "authorized-keys", name, &uid])),
                "",
                "{name} on {}",
                peer.name
            );
        }
        assert!(
            binds(&net, &peer.name, "alice", "hers"),
            "alice on {}",
            peer.name
        );
        assert!(!binds(&net, &peer.name, "alice", "mallory"));
        assert_eq!(show(&net, peer, "alice")["ssh_keys"], serde_json::json!([]));
        assert_eq!(
            show(&net, peer, "alice")["joined_from"],
            serde_json::json!(a.uuid.to_string())
        );
    }
    // Each honest sysadmin is told about the names it refused, in its
    // notices and its status.
    for peer in [&a, &c] {
        let notices = ok(ctl(&net, peer, &["user", "notices"]));
        assert!(notices.contains("`root` is a reserved name"), "{notices}");
        let status: serde_json::Value =
            serde_json::from_str(&ok(ctl(&net, peer, &["--json", "status"]))).unwrap();
        let names = &status["accounts"]["not_made_here"];
        for name in ["root", "sudo", LOCAL] {
            assert!(
                names.as_array().unwrap().iter().any(|n| n == name),
                "{name} not in {}'s status: {names}",
                peer.name
            );
        }
    }
    let shown = ok(ctl(&net, &c, &["status"]));
    assert!(shown.contains("carlos"), "{shown}");
    // The sysadmin's own `user add` of such a name is refused at once.
    let out = ctl(&net, &a, &["user", "add", LOCAL]);
    assert!(!out.status.success());

    // alice signs a password change on charlie. A change she signed
    // earlier (with the key she holds now), replayed by bravo on its own
    // feed, changes nothing: it is older than what is held.
    passwd_signed(&net, &c, "hers", "second");
    for peer in ["alpha", "bravo"] {
        wait_until(&format!("alice's own change on {peer}"), || {
            binds(&net, peer, "alice", "second")
        });
    }
    let key = authority::derive_user_key("alice", "second").unwrap();
    let first = authority::sign(
        AccountEvent::Password {
            name: "alice".to_owned(),
            password_hash: cheap_hash("hers"),
            user_key: Some(authority::public_key(&key)),
            stamp: stamp(now + 1),
        },
        &key,
    );
    publish_raw(&b, &[first]);
    for peer in [&a, &c] {
        refused(&net, peer, "older than the change already applied");
        assert!(binds(&net, &peer.name, "alice", "second"));
    }

    // alice lets charlie, the peer she uses, change her keys for a day:
    // charlie's root then adds one without her password, and every peer
    // takes it; bravo, which she never delegated to, still cannot.
    ok(ctl_stdin(
        &net,
        &c,
        &["user", "delegate", "alice", "--scope", "keys"],
        "second\n",
    ));
    wait_until("alpha holds alice's delegation to charlie", || {
        show(&net, &a, "alice")["delegations"][0]["peer"] == serde_json::json!(c.uuid.to_string())
    });
    let refusals = |peer: &PeerInfo| {
        userd_log(&net, peer)
            .matches("nor by a peer she delegated it to")
            .count()
    };
    let before = refusals(&a);
    publish_raw(
        &b,
        &[AccountEvent::Keys {
            name: "alice".to_owned(),
            ssh_keys: vec![KEY.to_owned()],
            stamp: stamp(now_ms()),
        }],
    );
    wait_until("bravo's key change for alice refused on alpha", || {
        refusals(&a) > before
    });
    ok(ctl(&net, &c, &["user", "key", "add", "alice", PHONE]));
    for peer in [&a, &b] {
        wait_until(
            &format!("charlie's delegated key change on {}", peer.name),
            || show(&net, peer, "alice")["ssh_keys"] == serde_json::json!([PHONE]),
        );
    }

    // Her home leaves the network for good: alice still changes her own
    // password, from charlie, and bravo takes it.
    ok(ctl(&net, &a, &["peer", "leave", "--reason", "closing"]));
    wait_until("charlie no longer trusts alpha", || {
        crate::support::roster_entry(&net, &c, &a) == serde_json::Value::Null
    });
    net.stop("alpha").unwrap();
    passwd_signed(&net, &c, "second", "third");
    wait_until("alice's change on bravo after her home left", || {
        binds(&net, "bravo", "alice", "third")
    });
    assert_eq!(uid_number(&net, "bravo", "alice").unwrap(), alice_uid);
    // Her new password ended the delegation: charlie's root can no longer
    // change her keys without her.
    let out = ctl(&net, &c, &["user", "key", "remove", "alice", PHONE]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no peer would take this change"), "{err}");
}
