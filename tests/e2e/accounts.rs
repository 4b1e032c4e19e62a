//! Accounts on every peer (CEP 8): `centerctl user …` on one peer, userd
//! on every peer, each peer's own slapd checked with the OpenLDAP clients
//! (`ldapwhoami` over TLS with that peer's CA, `ldapsearch` over ldapi).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    os::unix::process::CommandExt,
    process::{Output, Stdio},
    time::Duration,
};

use center_testnet::{Formation, LdapOptions, PeerInfo, Testnet, USERD};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use userd::account::{self, BLOCK_SIZE, block_range};

use crate::{
    ldap::{peer_ldap, rc, tool, whoami},
    support::{
        PATIENCE, STRANGER, bus_client, ctl, ctl_as, network_with, ok, roster_entry, wait_until,
    },
};

pub(crate) const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOs6uGmbyFvGWjgKHGWm2vWmP0KKqRGxGMbnAxdIMaxN alice@test";

pub(crate) fn ldap_network(peers: usize) -> (tempfile::TempDir, Testnet) {
    network_with(peers, Formation::Wired, Some(LdapOptions::default()))
}

/// `centerctl ARGS` as root with `input` on standard input.
pub(crate) fn ctl_stdin(net: &Testnet, peer: &PeerInfo, args: &[&str], input: &str) -> Output {
    ctl_stdin_as(net, peer, None, args, input)
}

/// `centerctl ARGS` as `uid` (root if `None`) with `input` on standard
/// input.
fn ctl_stdin_as(
    net: &Testnet,
    peer: &PeerInfo,
    uid: Option<u32>,
    args: &[&str],
    input: &str,
) -> Output {
    let mut command = net.centerctl(peer);
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run centerctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Whether `name` binds with `password` on `peer`'s slapd (ldaps, that
/// peer's CA).
pub(crate) fn binds(net: &Testnet, peer: &str, name: &str, password: &str) -> bool {
    let ldap = peer_ldap(net, peer);
    rc(&whoami(ldap, &ldap.ca, name, password)) == 0
}

/// `attr` of every account on `peer`'s slapd, by `ldapsearch` over ldapi
/// as root: (uid, value) pairs.
pub(crate) fn people(net: &Testnet, peer: &str, attr: &str) -> Vec<(String, String)> {
    let ldap = peer_ldap(net, peer);
    let out = tool("ldapsearch", &ldap.ca)
        .args(["-LLL", "-Q", "-o", "ldif-wrap=no", "-Y", "EXTERNAL", "-H"])
        .arg(ldap.ldapi_url())
        .args(["-b", &format!("ou=people,{}", ldap.base), "-s", "one"])
        // Paged: slapd answers at most 500 entries per search.
        .args(["-E", "pr=400/noprompt"])
        .args(["(objectClass=posixAccount)", "uid", attr])
        .output()
        .unwrap();
    let text = ok(out);
    let mut found = Vec::new();
    for entry in text.split("\n\n") {
        let value = |key: &str| {
            entry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}: ")))
                .map(str::to_owned)
        };
        if let (Some(uid), Some(v)) = (value("uid"), value(attr)) {
            found.push((uid, v));
        }
    }
    found.sort();
    found
}

pub(crate) fn uid_number(net: &Testnet, peer: &str, name: &str) -> Option<String> {
    people(net, peer, "uidNumber")
        .into_iter()
        .find(|(uid, _)| uid == name)
        .map(|(_, n)| n)
}

/// Publishes `count` accounts `user0…` numbered from `block` as `peer`'s
/// feed events, raw through the bus as root. One hash for all, made with
/// the least argon2id cost so that binding every account stays quick:
/// hashing is not what is tested, and any argon2id hash is valid.
fn publish_accounts(peer: &PeerInfo, block: u32, count: u32) {
    let hash = cheap_hash("pw");
    let now = now_ms();
    let events: Vec<account::AccountEvent> = (0..count)
        .map(|i| {
            let name = format!("user{i}");
            account::AccountEvent::Created(account::Created {
                uid_number: block_range(block).start + 1 + i,
                name,
                shell: "/bin/sh".to_owned(),
                display_name: String::new(),
                password_hash: hash.clone(),
                ssh_keys: Vec::new(),
                // Within the five minutes of the event's iat every peer
                // allows (CEP 8, "Authority").
                created: now + u64::from(i),
                user_key: None,
            })
        })
        .collect();
    publish_raw(peer, &events);
}

/// `{ARGON2}` + an argon2id PHC string of `password` at the least cost.
pub(crate) fn cheap_hash(password: &str) -> String {
    use argon2::{
        Algorithm, Argon2, Params, Version,
        password_hash::{PasswordHasher, SaltString},
    };
    let params = Params::new(Params::MIN_M_COST.max(64), 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).unwrap();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap();
    format!("{{ARGON2}}{phc}")
}

/// Whether every `(name, password)` binds on `peer` with `ldapwhoami`
/// (over TLS, checked with the peer's CA), four at a time; the names
/// that do not.
fn not_binding(net: &Testnet, peer: &str, names: &[String], password: &str) -> Vec<String> {
    let ldap = peer_ldap(net, peer);
    let chunks: Vec<&[String]> = names.chunks(names.len().div_ceil(4).max(1)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter(|name| rc(&whoami(ldap, &ldap.ca, name, password)) != 0)
                        .cloned()
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// `centerctl status --json` on `peer`.
pub(crate) fn status(net: &Testnet, peer: &PeerInfo) -> Value {
    serde_json::from_str(&ok(ctl(net, peer, &["--json", "status"]))).unwrap()
}

/// The head of `peer`'s own feed, as its `centerctl status` reports it.
fn own_head(net: &Testnet, peer: &PeerInfo) -> u64 {
    let report = status(net, peer);
    report["membership"]["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["origin"] == peer.uuid.to_string())
        .map_or(0, |o| o["held"].as_u64().unwrap())
}

/// The block `peer`'s userd holds, once it holds one.
pub(crate) fn block_of(peer: &PeerInfo) -> u32 {
    let read = || {
        userd::blocks::read_block(&peer.state_dir.join("userd"), &peer.uuid.to_string()).unwrap()
    };
    wait_until(&format!("{}'s number block", peer.name), || {
        read().is_some()
    });
    read().unwrap()
}

pub(crate) fn userd_log(net: &Testnet, peer: &PeerInfo) -> String {
    std::fs::read_to_string(net.daemon_files(peer, USERD).log).unwrap_or_default()
}

pub(crate) fn show(net: &Testnet, peer: &PeerInfo, name: &str) -> Value {
    serde_json::from_str(&ok(ctl(net, peer, &["--json", "user", "show", name]))).unwrap()
}

#[test]
fn an_account_made_on_one_peer_works_on_every_peer() {
    let (_dir, net) = ldap_network(3);
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap().clone());
    let key_file = net.dir().join("alice.pub");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let added = ok(ctl_stdin(
        &net,
        &a,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--ssh-key",
            key_file.to_str().unwrap(),
            "--name",
            "Alice Liddell",
        ],
        "correct horse\n",
    ));
    assert!(added.contains("alice: created as uid"), "{added}");
    for peer in ["bravo", "charlie"] {
        wait_until(&format!("alice binds on {peer}"), || {
            binds(&net, peer, "alice", "correct horse")
        });
    }
    assert!(binds(&net, "alpha", "alice", "correct horse"));
    assert!(!binds(&net, "bravo", "alice", "wrong horse"));
    let numbers: Vec<Option<String>> = ["alpha", "bravo", "charlie"]
        .iter()
        .map(|p| uid_number(&net, p, "alice"))
        .collect();
    assert!(numbers[0].is_some());
    assert!(numbers.iter().all(|n| *n == numbers[0]), "{numbers:?}");
    let shown = show(&net, &c, "alice");
    assert_eq!(shown["joined_from"], json!(a.uuid.to_string()));
    assert!(shown["created"].as_u64().unwrap() > 0);
    assert_eq!(shown["uid_number"].to_string(), numbers[0].clone().unwrap());
    let number: u32 = numbers[0].clone().unwrap().parse().unwrap();
    assert_eq!(number % BLOCK_SIZE, 1, "the first number of alpha's block");

    // The password changed on B, which is not her home: it counts because
    // she signs it with the key her current password gives. The new one
    // works on A and C, the old one nowhere.
    ok(ctl_stdin(
        &net,
        &b,
        &[
            "user",
            "passwd",
            "alice",
            "--current-password-stdin",
            "--password-stdin",
        ],
        "correct horse\nbattery staple\n",
    ));
    for peer in ["alpha", "bravo", "charlie"] {
        wait_until(&format!("the new password binds on {peer}"), || {
            binds(&net, peer, "alice", "battery staple")
        });
        assert!(!binds(&net, peer, "alice", "correct horse"), "{peer}");
    }

    // Keys for sshd: on every peer, nothing for an unknown name.
    let keys = ok(ctl_as(
        &net,
        &c,
        STRANGER,
        &["user", "authorized-keys", "alice", &number.to_string()],
    ));
    assert_eq!(keys, format!("{KEY}\n"));
    for name in ["nobody1", "ROOT", "../x"] {
        assert_eq!(
            ok(ctl(&net, &c, &["user", "authorized-keys", name, "0"])),
            ""
        );
    }
    // A local user who only shares the name (another uid) gets none of
    // the account's keys: sshd passes the uid (`%U`).
    assert_eq!(
        ok(ctl(&net, &c, &["user", "authorized-keys", "alice", "0"])),
        ""
    );
    // A user other than root may not change someone else's account.
    let out = ctl_as(&net, &b, STRANGER, &["user", "key", "add", "alice", KEY]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only your own account"));

    // Removal reaches every peer: on C, which is not her home, only
    // with her signature.
    let out = ctl(&net, &c, &["user", "remove", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only that peer"));
    ok(ctl_stdin(
        &net,
        &c,
        &["user", "remove", "alice", "--current-password-stdin"],
        "battery staple\n",
    ));
    for peer in ["alpha", "bravo", "charlie"] {
        wait_until(&format!("alice is gone on {peer}"), || {
            uid_number(&net, peer, "alice").is_none()
        });
    }
    assert_eq!(
        ok(ctl(
            &net,
            &a,
            &["user", "authorized-keys", "alice", &number.to_string()]
        )),
        ""
    );
}

#[test]
fn the_same_name_made_on_two_peers_at_once_has_one_owner() {
    let (_dir, net) = ldap_network(3);
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap().clone());
    // Both requests must be made before either peer hears of the other's:
    // every peer is cut from the others while both are made.
    for peer in [&a, &b] {
        // Its block is claimed already.
        block_of(peer);
    }
    let alone: Vec<Vec<String>> = [&a, &b, &c].map(|p| vec![p.name.clone()]).into();
    net.partition(&alone).unwrap();
    let heads = [&a, &b].map(|peer| own_head(&net, peer));
    let adds: Vec<_> = [&a, &b]
        .map(|peer| {
            let mut command = net.centerctl(peer);
            command.args(["user", "add", "bob"]);
            std::thread::spawn(move || command.output().unwrap())
        })
        .into_iter()
        .collect();
    // Each add waits for the other peers to confirm; once both requests
    // are on their peers' feeds, heal while the adds wait.
    for (peer, head) in [&a, &b].into_iter().zip(heads) {
        wait_until(&format!("{}'s request on its feed", peer.name), || {
            own_head(&net, peer) > head
        });
    }
    net.heal().unwrap();
    let outputs: Vec<Output> = adds.into_iter().map(|h| h.join().unwrap()).collect();
    let owner = |peer: &PeerInfo| show(&net, peer, "bob");
    wait_until("one owner everywhere", || {
        let shown: Vec<Value> = [&a, &b, &c].iter().map(|p| owner(p)).collect();
        let holder = |v: &Value| v.get("holder").cloned().unwrap_or_else(|| v.clone());
        let first = holder(&shown[0]);
        first["joined_from"].is_string()
            && shown.iter().all(|v| {
                let h = holder(v);
                h["joined_from"] == first["joined_from"] && h["uid_number"] == first["uid_number"]
            })
    });
    let on_c = owner(&c);
    let winner = on_c["joined_from"].as_str().unwrap().to_owned();
    let (won, lost) = if winner == a.uuid.to_string() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(owner(won)["state"], "active");
    // The loser shows the winner's account, and its own request as refused.
    let on_loser = owner(lost);
    assert_eq!(on_loser["state"], "refused", "{on_loser}");
    let holder = on_loser.get("holder").cloned().unwrap_or(on_loser);
    assert_eq!(holder["joined_from"], winner);
    // Each `user add` told its caller how it ended: the winner's created
    // the account, the loser's reports the refusal.
    let texts: Vec<(bool, String)> = outputs
        .iter()
        .map(|o| {
            (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            )
        })
        .collect();
    let (won_at, lost_at) = if won.uuid == a.uuid { (0, 1) } else { (1, 0) };
    assert!(
        texts[won_at].0 && texts[won_at].1.contains("created as uid"),
        "{texts:?}"
    );
    assert!(
        !texts[lost_at].0
            && texts[lost_at]
                .1
                .contains("was refused: the name was created first on"),
        "{texts:?}"
    );
}

/// Publishes account events on `peer`'s feed, raw through the bus as root
/// (no check of what the peer holds, as a remote peer's events).
pub(crate) fn publish_raw(peer: &PeerInfo, events: &[account::AccountEvent]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = bus_client(peer, "centerctl", Duration::from_secs(5)).await;
        for event in events {
            let (name, data) = event.to_event();
            client
                .publish(center_bus::Publish::feed(name, data))
                .await
                .unwrap();
        }
    });
}

/// Whether `peer`'s slapd records a deletion of `name` (`ou=deleted`).
fn deletion_recorded(net: &Testnet, peer: &str, name: &str) -> bool {
    let ldap = peer_ldap(net, peer);
    let out = tool("ldapsearch", &ldap.ca)
        .args(["-LLL", "-Q", "-Y", "EXTERNAL", "-H"])
        .arg(ldap.ldapi_url())
        .args(["-b", &format!("ou=deleted,{}", ldap.base), "-s", "one"])
        .arg(format!("(uid={name})"))
        .arg("uid")
        .output()
        .unwrap();
    ok(out).contains(&format!("uid: {name}"))
}

pub(crate) fn now_ms() -> u64 {
    center_proto::Timestamp::now().as_millis()
}

#[test]
fn a_creation_that_arrives_after_its_deletion_stays_dead() {
    let (_dir, net) = ldap_network(3);
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap().clone());
    let block = block_of(&a);
    // Alpha makes zed while bravo and charlie are stopped, then stops.
    net.stop("bravo").unwrap();
    net.stop("charlie").unwrap();
    // zed's own key: the deletion below, made on another peer than her
    // home, counts because she signs it (CEP 8, "Authority").
    let zed = userd::authority::derive_user_key("zed", "pw").unwrap();
    publish_raw(
        &a,
        &[account::AccountEvent::Created(account::Created {
            name: "zed".to_owned(),
            uid_number: block_range(block).start + 1,
            shell: "/bin/sh".to_owned(),
            display_name: String::new(),
            password_hash: cheap_hash("pw"),
            ssh_keys: Vec::new(),
            created: now_ms(),
            user_key: Some(userd::authority::public_key(&zed)),
        })],
    );
    wait_until("zed on alpha", || {
        uid_number(&net, "alpha", "zed").is_some()
    });
    net.stop("alpha").unwrap();
    // Bravo deletes zed, never having seen it; charlie hears of the
    // deletion from bravo only.
    net.start("bravo").unwrap();
    net.start("charlie").unwrap();
    publish_raw(
        &b,
        &[userd::authority::sign(
            account::AccountEvent::Deleted {
                name: "zed".to_owned(),
                stamp: account::Stamp {
                    at: now_ms(),
                    auth: None,
                },
            },
            &zed,
        )],
    );
    for peer in ["bravo", "charlie"] {
        wait_until(&format!("the deletion recorded on {peer}"), || {
            deletion_recorded(&net, peer, "zed")
        });
    }
    // Now the creation arrives everywhere, after its deletion: it stays
    // dead, and alpha deletes its own copy.
    net.start("alpha").unwrap();
    wait_until("zed gone on alpha", || {
        uid_number(&net, "alpha", "zed").is_none()
    });
    for peer in [&b, &c] {
        wait_until(&format!("{} has applied everything", peer.name), || {
            status(&net, peer)["membership"]["state"] == "member"
        });
    }
    for peer in ["alpha", "bravo", "charlie"] {
        assert_eq!(uid_number(&net, peer, "zed"), None, "zed on {peer}");
        assert!(!binds(&net, peer, "zed", "pw"), "zed binds on {peer}");
    }
    // A new account of that name, made after the deletion, is a new one.
    let added = ok(ctl(&net, &c, &["user", "add", "zed"]));
    assert!(added.contains("created as uid"), "{added}");
    for peer in ["alpha", "bravo", "charlie"] {
        wait_until(&format!("the new zed on {peer}"), || {
            uid_number(&net, peer, "zed").is_some()
        });
    }
}

#[test]
fn forged_and_malformed_account_events_change_nothing() {
    let (_dir, net) = ldap_network(2);
    let [a, b] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    let block = block_of(&a);
    let mine = block_range(block).start + 7;
    let other_block = block_range((block + 1) % account::BLOCKS).start + 7;
    let hash = account::hash_password("pw").unwrap();
    let good = |name: &str, uid: u32| {
        json!({
            "name": name, "uid_number": uid, "gid_number": uid,
            "shell": "/bin/sh", "display_name": "", "password_hash": hash, "ssh_keys": [],
            "created": now_ms(), "user_key": "",
        })
    };
    let mut cases = vec![
        ("someone else's block", good("mallory", other_block)),
        ("a bad name", good("Mallory", mine)),
        ("uid 0", good("mallory", 0)),
    ];
    let mut wrong_hash = good("mallory", mine);
    wrong_hash["password_hash"] = json!("{SSHA}c2VjcmV0c2VjcmV0");
    cases.push(("a hash in the wrong format", wrong_hash));
    let mut clear = good("mallory", mine);
    clear["password_hash"] = json!("hunter2");
    cases.push(("a cleartext password", clear));
    let mut missing = good("mallory", mine);
    missing.as_object_mut().unwrap().remove("shell");
    cases.push(("a missing field", missing));
    let mut forged_origin = good("mallory", mine);
    forged_origin["joined_from"] = json!(b.uuid.to_string());
    cases.push(("a claimed origin", forged_origin));
    for (what, data) in &cases {
        ok(ctl(
            &net,
            &a,
            &[
                "bus",
                "publish",
                "account.created",
                "--data",
                &data.to_string(),
            ],
        ));
        eprintln!("published {what}");
    }
    // Nonsense for the other events, and a change to an unknown account.
    ok(ctl(
        &net,
        &a,
        &[
            "bus",
            "publish",
            "account.password",
            "--data",
            r#"{"name":"alice"}"#,
        ],
    ));
    ok(ctl(
        &net,
        &a,
        &[
            "bus",
            "publish",
            "account.block",
            "--data",
            r#"{"index":99999}"#,
        ],
    ));
    // A sentinel after them: once it is everywhere, the rest was seen.
    ok(ctl(&net, &a, &["user", "add", "carol"]));
    wait_until("carol on bravo", || {
        uid_number(&net, "bravo", "carol").is_some()
    });
    for peer in ["alpha", "bravo"] {
        let names: Vec<String> = people(&net, peer, "uidNumber")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["carol"], "{peer}");
    }
    for peer in [&a, &b] {
        let log = userd_log(&net, peer);
        for reason in [
            "outside the number block of its origin",
            "`name` must match",
            "`uid_number` is outside every peer's block",
            "`password_hash` must be {ARGON2}",
            "`data` lacks `shell`",
            "unknown member `joined_from`",
            "`data` lacks `password_hash`",
            "`index` must be below 879",
        ] {
            assert!(
                log.contains(reason),
                "{}: no `{reason}` in\n{log}",
                peer.name
            );
        }
    }
}

/// Issue 20: `user add` picked one more than the highest number this
/// peer's slapd held, so two adds at once got one number and every slapd
/// refused the later account after its sysadmin was told it was made. userd
/// numbers them now, each number once.
#[test]
fn twenty_adds_at_once_on_one_peer_make_twenty_accounts_everywhere() {
    let (_dir, net) = ldap_network(3);
    let alpha = net.peer("alpha").unwrap().clone();
    let names: Vec<String> = (0..20).map(|i| format!("rush{i}")).collect();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let (net, alpha) = (&net, &alpha);
                scope.spawn(move || ok(ctl(net, alpha, &["user", "add", name])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answer in &answers {
        assert!(answer.contains("created as uid"), "{answer}");
    }
    let mut everywhere = Vec::new();
    for peer in ["alpha", "bravo", "charlie"] {
        let numbers = || -> BTreeMap<String, String> {
            people(&net, peer, "uidNumber")
                .into_iter()
                .filter(|(uid, _)| names.contains(uid))
                .collect()
        };
        wait_until(&format!("20 accounts on {peer}"), || numbers().len() == 20);
        everywhere.push(numbers());
    }
    let distinct: BTreeSet<&String> = everywhere[0].values().collect();
    assert_eq!(distinct.len(), 20, "one number each: {:?}", everywhere[0]);
    assert!(
        everywhere.iter().all(|n| *n == everywhere[0]),
        "the same numbers on every peer: {everywhere:?}"
    );
    // Each answer named the number every peer holds.
    for (name, answer) in names.iter().zip(&answers) {
        assert!(
            answer.contains(&format!("uid {}", everywhere[0][name])),
            "{answer}"
        );
    }
    // Creating is root's: a local user asking userd for an account (one
    // for someone else's name, or with a number of her choosing) is refused.
    let data = json!({"name": "mallory", "shell": "/bin/sh", "display_name": "",
        "password_hash": account::unusable_password_hash().unwrap(), "ssh_keys": [],
        "created": now_ms(), "user_key": ""});
    let answer = control_request(
        &alpha,
        STRANGER,
        &json!({"event": "account.created", "data": data}),
    );
    assert!(answer.contains("only root may create accounts"), "{answer}");
    let mut numbered = data.clone();
    numbered["uid_number"] = json!(everywhere[0]["rush0"].parse::<u32>().unwrap());
    numbered["gid_number"] = numbered["uid_number"].clone();
    let answer = control_request(
        &alpha,
        0,
        &json!({"event": "account.created", "data": numbered}),
    );
    assert!(answer.contains("names no number"), "{answer}");
    assert!(uid_number(&net, "alpha", "mallory").is_none());
}

#[test]
fn userd_killed_mid_stream_of_200_accounts_loses_none() {
    let (_dir, net) = ldap_network(2);
    let [a, b] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    let block = block_of(&a);
    publish_accounts(&a, block, 200);
    // Killed while it applies them, then started again.
    wait_until("bravo applies some", || {
        people(&net, "bravo", "uidNumber").len() >= 20
    });
    net.signal_daemon(&b, USERD, Signal::SIGKILL).unwrap();
    let at_kill = people(&net, "bravo", "uidNumber").len();
    net.start_daemon(&b, USERD).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE * 4;
    for peer in ["bravo", "alpha"] {
        while people(&net, peer, "uidNumber").len() < 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "{peer} never got all 200"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!("{at_kill} of 200 were applied when userd was killed");
    for peer in ["alpha", "bravo"] {
        let found = people(&net, peer, "uidNumber");
        assert_eq!(found.len(), 200, "{peer}");
        for (name, number) in found {
            let i: u32 = name.trim_start_matches("user").parse().unwrap();
            assert_eq!(number, (block_range(block).start + 1 + i).to_string());
        }
    }
    assert!(binds(&net, "bravo", "user199", "pw"));
}

#[test]
fn userd_waits_out_a_slapd_restart() {
    let (_dir, net) = ldap_network(2);
    let [a, _b] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    ok(ctl(&net, &a, &["user", "add", "dave"]));
    wait_until("dave on bravo", || {
        uid_number(&net, "bravo", "dave").is_some()
    });
    net.stop_ldap("bravo").unwrap();
    ok(ctl(&net, &a, &["user", "add", "erin"]));
    // Bravo's userd meets a closed connection and waits for slapd.
    wait_until("bravo's userd notices", || {
        userd_log(&net, &net.peer("bravo").unwrap().clone()).contains("slapd unreachable")
    });
    net.start_ldap("bravo").unwrap();
    wait_until("erin on bravo after the restart", || {
        uid_number(&net, "bravo", "erin").is_some()
    });
}

#[test]
fn a_ban_holds_on_its_peer_only_and_lockout_stays_local() {
    let (_dir, net) = ldap_network(3);
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).unwrap().clone());
    let key_file = net.dir().join("alice.pub");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let add = [
        "user",
        "add",
        "alice",
        "--password-stdin",
        "--ssh-key",
        key_file.to_str().unwrap(),
    ];
    ok(ctl_stdin(&net, &a, &add, "correct horse\n"));
    wait_until("alice binds on charlie", || {
        binds(&net, "charlie", "alice", "correct horse")
    });
    let uid = uid_number(&net, "alpha", "alice").unwrap();
    let keys = |peer: &PeerInfo| ok(ctl(&net, peer, &["user", "authorized-keys", "alice", &uid]));

    // Banned on C, then her password changed on A.
    ok(ctl(
        &net,
        &c,
        &["user", "ban", "alice", "--reason", "spam on irc"],
    ));
    assert!(!binds(&net, "charlie", "alice", "correct horse"));
    assert_eq!(keys(&c), "");
    ok(ctl_stdin(
        &net,
        &a,
        &["user", "passwd", "alice", "--password-stdin"],
        "battery staple\n",
    ));
    for peer in ["alpha", "bravo"] {
        wait_until(&format!("the new password binds on {peer}"), || {
            binds(&net, peer, "alice", "battery staple")
        });
    }
    wait_until("charlie applied the change", || {
        userd_log(&net, &c).contains("password replaced")
    });
    assert!(!binds(&net, "charlie", "alice", "battery staple"));
    assert!(!binds(&net, "charlie", "alice", "correct horse"));
    assert_eq!(
        ok(ctl_as(
            &net,
            &c,
            STRANGER,
            &["user", "authorized-keys", "alice", &uid]
        )),
        ""
    );
    assert_eq!(show(&net, &c, "alice")["state"], "banned");
    assert_eq!(show(&net, &a, "alice")["state"], "active");
    // The others' sysadmins see why.
    for peer in [&a, &b] {
        wait_until(&format!("the notice reaches {}", peer.name), || {
            ok(ctl(&net, peer, &["user", "notices"])).contains("spam on irc")
        });
    }
    assert_eq!(keys(&a), format!("{KEY}\n"));
    ok(ctl(&net, &c, &["user", "unban", "alice"]));
    assert!(binds(&net, "charlie", "alice", "battery staple"));
    assert_eq!(keys(&c), format!("{KEY}\n"));

    // Six wrong passwords on B lock her on B only.
    for _ in 0..6 {
        assert!(!binds(&net, "bravo", "alice", "wrong"));
    }
    assert!(!binds(&net, "bravo", "alice", "battery staple"));
    assert!(binds(&net, "alpha", "alice", "battery staple"));
    assert!(binds(&net, "charlie", "alice", "battery staple"));

    // A ban is on the name: her home deleting and re-creating her does
    // not lift it on C (CEP 8, Part 5).
    ok(ctl(
        &net,
        &c,
        &["user", "ban", "alice", "--reason", "again"],
    ));
    ok(ctl(&net, &a, &["user", "remove", "alice"]));
    wait_until("alice gone on charlie", || {
        uid_number(&net, "charlie", "alice").is_none()
    });
    ok(ctl_stdin(&net, &a, &add, "fresh start\n"));
    wait_until("the new alice on charlie", || {
        uid_number(&net, "charlie", "alice").is_some()
    });
    assert_eq!(show(&net, &c, "alice")["state"], "banned");
    assert!(!binds(&net, "charlie", "alice", "fresh start"));
    assert!(binds(&net, "bravo", "alice", "fresh start"));
}

/// Four peers with their own slapds: bravo and charlie joined through
/// alpha by the join flow; delta alone, to join later.
fn three_joined_and_a_newcomer() -> (tempfile::TempDir, Testnet, [PeerInfo; 4]) {
    let (dir, net) = network_with(4, Formation::Alone, Some(LdapOptions::default()));
    let peers = ["alpha", "bravo", "charlie", "delta"].map(|n| net.peer(n).unwrap().clone());
    let [a, b, c, _] = &peers;
    net.join_through(b, a).unwrap();
    net.join_through(c, a).unwrap();
    (dir, net, peers)
}

#[test]
fn a_new_peer_gets_every_account() {
    let (_dir, net, [a, b, _, d]) = three_joined_and_a_newcomer();
    let block = block_of(&a);
    publish_accounts(&a, block, 1000);
    // D joins a network that has 1,000 accounts; its userd is killed -9
    // while it catches up.
    net.join_through(&d, &b).unwrap();
    wait_until("delta applies some", || {
        !people(&net, "delta", "uidNumber").is_empty()
    });
    net.signal_daemon(&d, USERD, Signal::SIGKILL).unwrap();
    // Without its userd, delta is not a full member, and says why.
    wait_until("delta waits for its userd", || {
        let report = status(&net, &d);
        let membership = &report["membership"];
        membership["state"] == "syncing"
            && membership["consumers"][0]["service"] == "userd"
            && membership["consumers"][0]["connected"] == false
    });
    let text = ok(ctl(&net, &d, &["status"]));
    assert!(text.contains("applied by   userd: not connected"), "{text}");
    net.start_daemon(&d, USERD).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE * 4;
    loop {
        let report = status(&net, &d);
        let membership = &report["membership"];
        if membership["state"] == "member" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delta never became a member: {report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Once delta says it is a full member, all 1,000 are there and bind.
    let on_d = people(&net, "delta", "uidNumber");
    assert_eq!(on_d.len(), 1000);
    assert_eq!(on_d, people(&net, "alpha", "uidNumber"));
    let names: Vec<String> = on_d.into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        not_binding(&net, "delta", &names, "pw"),
        Vec::<String>::new()
    );
    assert!(!binds(&net, "delta", "user7", "not it"));
    // Past slapd's 500 entries per search: the CLI reads page by page.
    let list: Value =
        serde_json::from_str(&ok(ctl(&net, &d, &["--json", "user", "list"]))).unwrap();
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1000);
}

#[test]
fn accounts_made_on_a_peer_that_left_reach_a_peer_that_joins_later() {
    let (_dir, net, [a, b, c, d]) = three_joined_and_a_newcomer();
    let added = ok(ctl_stdin(
        &net,
        &c,
        &["user", "add", "carol", "--password-stdin"],
        "hers\n",
    ));
    assert!(added.contains("created as uid"), "{added}");
    let number = uid_number(&net, "charlie", "carol").unwrap();
    wait_until("carol on bravo", || {
        uid_number(&net, "bravo", "carol").is_some()
    });
    // Alpha and bravo, every member but charlie, vote to excommunicate
    // it (one vote would remove it only on the voter); each cuts it at
    // the head it holds, so they first hold charlie's feed alike.
    let charlie = c.uuid.to_string();
    let head_of_charlie = |peer: &PeerInfo| -> u64 {
        let status: Value =
            serde_json::from_str(&ok(ctl(&net, peer, &["--json", "feed", "status"]))).unwrap();
        status["origins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["origin"] == charlie.as_str())
            .map_or(0, |o| o["head_seq"].as_u64().unwrap())
    };
    wait_until("alpha and bravo hold charlie's feed alike", || {
        head_of_charlie(&a) == head_of_charlie(&b)
    });
    for peer in [&a, &b] {
        ok(ctl(
            &net,
            peer,
            &["peer", "excommunicate", &charlie, "--reason", "gone"],
        ));
    }
    for peer in [&a, &b] {
        wait_until(&format!("{} drops charlie", peer.name), || {
            roster_entry(&net, peer, &c) == Value::Null
        });
    }
    net.stop("charlie").unwrap();
    // Delta joins after: the hand-off carries charlie's keys for the events
    // it published before it was expelled, so carol is there once delta
    // says it is a full member; delta never trusts charlie (the old
    // announcement of charlie on alpha's feed does not bring it back).
    net.join_through(&d, &b).unwrap();
    // Delta says member only once it took bravo's hand-off (which names
    // charlie) and heard fresh frontiers that count charlie's feed.
    wait_until("delta is a full member", || {
        status(&net, &d)["membership"]["state"] == "member"
    });
    assert_eq!(uid_number(&net, "delta", "carol"), Some(number));
    assert!(binds(&net, "delta", "carol", "hers"));
    assert_eq!(roster_entry(&net, &d, &c), Value::Null);
    // Charlie's feed ends at the same seq everywhere: where the voters cut
    // it, which delta got in bravo's hand-off.
    let end = |peer: &PeerInfo| -> Value {
        let text = std::fs::read_to_string(peer.state_dir.join("dispatchd/roster.json")).unwrap();
        let roster: Value = serde_json::from_str(&text).unwrap();
        roster["departed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["description"]["uuid"] == charlie.as_str())
            .map(|e| e["until"].clone())
            .unwrap_or(Value::Null)
    };
    let on_alpha = end(&a);
    assert!(on_alpha.as_u64().is_some_and(|n| n > 0), "{on_alpha}");
    assert_eq!(end(&b), on_alpha);
    assert_eq!(end(&d), on_alpha);
    let log = std::fs::read_to_string(d.log_dir.join("peerd.log")).unwrap();
    assert!(
        !log.lines()
            .any(|l| l.contains("peer trusted") && l.contains(&charlie)),
        "delta trusted charlie:\n{log}"
    );
}

/// A local Unix account whose name is also a network account: what a
/// user logged in on a real server is (sssd or nslcd give her the
/// account's own number).
const SELF_USER: &str = "ctlself";

/// The local user `name` with uid `uid` (no group of the name: it would
/// shadow the account's own); one left with another uid is made again.
fn ensure_local_user(name: &str, uid: u32) {
    match nix::unistd::User::from_name(name).unwrap() {
        Some(user) if user.uid.as_raw() == uid => return,
        Some(_) => remove_local_user(name),
        None => {}
    }
    let status = std::process::Command::new("useradd")
        .args([
            "--no-create-home",
            "-N",
            "--shell",
            "/usr/sbin/nologin",
            "-u",
        ])
        .arg(uid.to_string())
        .arg(name)
        .status()
        .unwrap();
    assert!(status.success(), "useradd {name}: {status}");
}

fn remove_local_user(name: &str) {
    if nix::unistd::User::from_name(name).unwrap().is_some() {
        let status = std::process::Command::new("userdel")
            .arg(name)
            .status()
            .unwrap();
        assert!(status.success(), "userdel {name}: {status}");
    }
}

/// Sends one raw request to userd's control socket as `uid`.
fn control_request(peer: &PeerInfo, uid: u32, request: &Value) -> String {
    let config = center_config::Config::load(&peer.config).unwrap();
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode()+b'\\n')\nprint(s.makefile().readline())";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&config.accounts.control_socket)
        .arg(request.to_string())
        .uid(uid)
        .gid(uid)
        .output()
        .expect("python3 speaks to the socket as the user");
    ok(out)
}

#[test]
fn a_user_changes_their_own_password_and_nobody_else_s() {
    remove_local_user(SELF_USER);
    let (_dir, net) = ldap_network(2);
    let [a, b] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    for (name, password) in [(SELF_USER, "old one"), ("alice", "hers")] {
        ok(ctl_stdin(
            &net,
            &a,
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        ));
    }
    wait_until("both on bravo", || {
        uid_number(&net, "bravo", SELF_USER).is_some()
            && uid_number(&net, "bravo", "alice").is_some()
    });
    let uid: u32 = uid_number(&net, "alpha", SELF_USER)
        .unwrap()
        .parse()
        .unwrap();
    ensure_local_user(SELF_USER, uid);
    let passwd_as_user = |stdin: &str, args: &[&str]| {
        let mut all = vec!["user", "passwd", SELF_USER, "--password-stdin"];
        all.extend_from_slice(args);
        ctl_stdin_as(&net, &b, Some(uid), &all, stdin)
    };
    // On bravo, which is not her home, an unsigned change is refused by
    // userd: no peer would take it.
    let out = passwd_as_user("new one\n", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no peer would take this change"), "{err}");
    // A wrong current password is told at once.
    let out = passwd_as_user("not it\nnew one\n", &["--current-password-stdin"]);
    assert!(!out.status.success());
    // The user, on bravo, signs with the key her password gives, through
    // userd's socket (not the bus: no grant).
    ok(passwd_as_user(
        "old one\nnew one\n",
        &["--current-password-stdin"],
    ));
    wait_until("the new password binds on alpha", || {
        binds(&net, "alpha", SELF_USER, "new one")
    });
    assert!(!binds(&net, "alpha", SELF_USER, "old one"));
    // Someone else's account: refused by centerctl, and by userd itself
    // when the request comes straight to its socket.
    let out = ctl_as(&net, &b, uid, &["user", "key", "add", "alice", KEY]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only your own account"));
    let hash = account::hash_password("mine now").unwrap();
    let request = json!({"event": "account.password", "data": {
        "name": "alice", "password_hash": hash, "user_key": "", "at": now_ms(), "auth": ""}});
    let answer = control_request(&b, uid, &request);
    assert!(
        answer.contains("may change only its own account"),
        "{answer}"
    );
    assert!(binds(&net, "alpha", "alice", "hers"));
    assert!(userd_log(&net, &b).contains("account change refused"));
    // Her own account, with a hash that would make every peer's slapd
    // spend 4 TiB at each bind: refused before it is published.
    let cheap = cheap_hash("x");
    let costly = cheap.replacen("$m=64,", "$m=4294967295,", 1);
    assert_ne!(cheap, costly);
    let request = json!({"event": "account.password", "data": {
        "name": SELF_USER, "password_hash": costly, "user_key": "", "at": now_ms(), "auth": ""}});
    let answer = control_request(&b, uid, &request);
    assert!(answer.contains("`password_hash` must be"), "{answer}");
}
