//! One slapd per peer (`center-testnet --ldap`, set up by `scripts/ldap-init`),
//! checked with the OpenLDAP command-line clients as independent witnesses:
//! TLS with each peer's own CA, argon2id binds, no cleartext binds, the
//! ppolicy lockout, slapo-unique, the optional SSH key, password-free
//! management over ldapi, restarts, and `down` leaving nothing behind.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output},
    time::Instant,
};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, SaltString},
};
use center_testnet::{Formation, LdapOptions, PeerLdap, Testnet};
use serde_json::Value;

use crate::support::{
    PATIENCE, STRANGER, live_processes_mentioning, network_with, ok, require_root, wait_until,
};

/// An OpenLDAP client aimed at `ldap`'s peer, trusting `ca` and nothing
/// from /etc/ldap/ldap.conf.
pub(crate) fn tool(name: &str, ca: &Path) -> Command {
    let mut command = Command::new(name);
    command
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/dev/null")
        .env("LDAPTLS_CACERT", ca)
        .env("LDAPTLS_REQCERT", "demand");
    command
}

/// The clients' exit code is the LDAP result code.
pub(crate) fn rc(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Whether the client got no LDAP answer at all: nothing listening, or a
/// TLS handshake it refused (a certificate its CA does not verify).
fn unreachable(output: &Output) -> bool {
    String::from_utf8_lossy(&output.stderr).contains("Can't contact LDAP server (-1)")
}

fn user_dn(ldap: &PeerLdap, name: &str) -> String {
    format!("uid={name},ou=people,{}", ldap.base)
}

/// `ldapwhoami -x` over ldaps as `name`, verified with `ca`.
pub(crate) fn whoami(ldap: &PeerLdap, ca: &Path, name: &str, password: &str) -> Output {
    tool("ldapwhoami", ca)
        .args([
            "-x",
            "-H",
            &ldap.uri,
            "-D",
            &user_dn(ldap, name),
            "-w",
            password,
        ])
        .output()
        .expect("run ldapwhoami")
}

/// An LDAP tool run as root over ldapi with SASL EXTERNAL, fed `ldif`.
fn as_root(ldap: &PeerLdap, tool_name: &str, ldif: &str) -> Output {
    external(ldap, tool_name, ldif, None)
}

fn external(ldap: &PeerLdap, tool_name: &str, ldif: &str, uid: Option<u32>) -> Output {
    use std::{io::Write, os::unix::process::CommandExt, process::Stdio};
    let mut command = tool(tool_name, &ldap.ca);
    command
        .args(["-Q", "-Y", "EXTERNAL", "-H", &ldap.ldapi_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let mut child = command.spawn().expect("run an ldap tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldif.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `ldapsearch` as root over ldapi: the LDIF of `dn` with `attrs`.
fn read_entry(ldap: &PeerLdap, dn: &str, attrs: &[&str]) -> String {
    let output = tool("ldapsearch", &ldap.ca)
        .args([
            "-LLL",
            "-Q",
            "-o",
            "ldif-wrap=no",
            "-Y",
            "EXTERNAL",
            "-H",
            &ldap.ldapi_url(),
            "-s",
            "base",
            "-b",
            dn,
        ])
        .args(attrs)
        .output()
        .unwrap();
    ok(output)
}

/// An argon2id PHC string from the Rust crate userd will use, as slapd
/// stores it (`{ARGON2}` + PHC).
fn argon2id(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).unwrap();
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    format!("{{ARGON2}}{hash}")
}

/// A user entry as userd will write it (CEP 8 draft).
fn user_ldif(ldap: &PeerLdap, name: &str, number: u32, password: &str) -> String {
    format!(
        "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         objectClass: shadowAccount\nobjectClass: ldapPublicKey\nuid: {name}\ncn: {name}\n\
         sn: {name}\nuidNumber: {number}\ngidNumber: {number}\nhomeDirectory: /home/{name}\n\
         loginShell: /bin/bash\nuserPassword: {hash}\n\
         sshPublicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOs6uGmbyFvGWjgKHGWm2vWmP0KKqRGxGMbnAxdIMaxN {name}@test\n",
        dn = user_dn(ldap, name),
        hash = argon2id(password),
    )
}

pub(crate) fn peer_ldap<'a>(net: &'a Testnet, name: &str) -> &'a PeerLdap {
    net.ldap(net.peer(name).unwrap())
        .expect("the network runs slapd")
}

#[test]
fn each_peer_has_its_own_slapd_over_tls() {
    let (_dir, net) = network_with(2, Formation::Wired, Some(LdapOptions::default()));
    let alpha = peer_ldap(&net, "alpha");
    let bravo = peer_ldap(&net, "bravo");
    assert_ne!(alpha.uri, bravo.uri);
    assert_ne!(
        alpha.uri.rsplit_once(':').unwrap().1,
        bravo.uri.rsplit_once(':').unwrap().1,
        "distinct ports"
    );
    // The peer's config says where its slapd is, and validates.
    let config = center_config::Config::load(&net.peer("alpha").unwrap().config).unwrap();
    assert_eq!(config.ldap.uri, alpha.uri);
    assert_eq!(config.ldap.base, alpha.base);
    assert_eq!(config.ldap.ca, alpha.ca);
    assert_eq!(config.ldap.ldapi, alpha.ldapi);
    // Keys: the server's readable only by its owner, the CA's kept apart.
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&alpha.dir.join("tls/server.key")), 0o600);
    let ca_key = net.peer("alpha").unwrap().dir.join("ldap-ca/ca.key");
    assert_eq!(mode(&ca_key), 0o600);
    assert!(!ca_key.starts_with(&alpha.dir));

    // Root adds alice over ldapi (no password anywhere), with an argon2id hash.
    ok(as_root(
        alpha,
        "ldapadd",
        &user_ldif(alpha, "alice", 1_000_000_001, "correct horse"),
    ));
    let out = ok(whoami(alpha, &alpha.ca, "alice", "correct horse"));
    assert_eq!(out.trim(), format!("dn:{}", user_dn(alpha, "alice")));
    assert_eq!(rc(&whoami(alpha, &alpha.ca, "alice", "wrong")), 49);

    // Bravo's CA verifies bravo's slapd, and not alpha's.
    let root_dse = |ldap: &PeerLdap, ca: &Path| {
        tool("ldapsearch", ca)
            .args(["-x", "-LLL", "-H", &ldap.uri, "-s", "base", "-b", ""])
            .output()
            .unwrap()
    };
    ok(root_dse(bravo, &bravo.ca));
    assert!(unreachable(&root_dse(alpha, &bravo.ca)));
    assert!(unreachable(&whoami(
        alpha,
        &bravo.ca,
        "alice",
        "correct horse"
    )));

    // No cleartext: nothing speaks plain LDAP on the network, and a simple
    // bind over the (unencrypted) ldapi socket is refused as such.
    let host = alpha
        .uri
        .trim_start_matches("ldaps://")
        .trim_end_matches('/');
    for plain in [
        format!("ldap://{host}/"),
        format!("ldap://{}:389/", host.rsplit_once(':').unwrap().0),
    ] {
        let output = tool("ldapwhoami", &alpha.ca)
            .args([
                "-x",
                "-H",
                &plain,
                "-D",
                &user_dn(alpha, "alice"),
                "-w",
                "correct horse",
            ])
            .output()
            .unwrap();
        assert!(unreachable(&output), "{plain} answered: {output:?}");
    }
    let output = tool("ldapwhoami", &alpha.ca)
        .args([
            "-x",
            "-H",
            &alpha.ldapi_url(),
            "-D",
            &user_dn(alpha, "alice"),
            "-w",
            "correct horse",
        ])
        .output()
        .unwrap();
    assert_eq!(rc(&output), 13, "confidentiality required");

    // userPassword is readable by nobody, not even root or alice herself.
    let entry = read_entry(
        alpha,
        &user_dn(alpha, "alice"),
        &["userPassword", "uidNumber"],
    );
    assert!(entry.contains("uidNumber: 1000000001"), "{entry}");
    assert!(!entry.contains("userPassword"), "{entry}");
    let own = tool("ldapsearch", &alpha.ca)
        .args([
            "-x",
            "-LLL",
            "-H",
            &alpha.uri,
            "-D",
            &user_dn(alpha, "alice"),
        ])
        .args([
            "-w",
            "correct horse",
            "-s",
            "base",
            "-b",
            &user_dn(alpha, "alice"),
        ])
        .args(["userPassword", "uid"])
        .output()
        .unwrap();
    let own = ok(own);
    assert!(
        own.contains("uid: alice") && !own.contains("userPassword"),
        "{own}"
    );

    // slapo-unique: a second account with alice's uidNumber, or her
    // gidNumber, is refused with 19 (constraint violation).
    let bob = user_ldif(alpha, "bob", 1_000_000_001, "x")
        .replace("gidNumber: 1000000001", "gidNumber: 1000000002");
    assert_eq!(rc(&as_root(alpha, "ldapadd", &bob)), 19);
    let bob = user_ldif(alpha, "bob", 1_000_000_002, "x")
        .replace("gidNumber: 1000000002", "gidNumber: 1000000001");
    assert_eq!(rc(&as_root(alpha, "ldapadd", &bob)), 19);
    ok(as_root(
        alpha,
        "ldapadd",
        &user_ldif(alpha, "bob", 1_000_000_002, "x"),
    ));

    // Deleting alice's last SSH key works; she keeps ldapPublicKey.
    let delete_key = format!(
        "dn: {}\nchangetype: modify\ndelete: sshPublicKey\n",
        user_dn(alpha, "alice")
    );
    ok(as_root(alpha, "ldapmodify", &delete_key));
    let entry = read_entry(
        alpha,
        &user_dn(alpha, "alice"),
        &["sshPublicKey", "objectClass"],
    );
    assert!(!entry.contains("sshPublicKey:"), "{entry}");
    assert!(entry.contains("objectClass: ldapPublicKey"), "{entry}");

    // Another local user gets in over ldapi, but may not change anything.
    let shell = format!(
        "dn: {}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/sh\n",
        user_dn(alpha, "alice")
    );
    assert_eq!(
        rc(&external(alpha, "ldapmodify", &shell, Some(STRANGER))),
        50
    );
    ok(as_root(alpha, "ldapmodify", &shell));
    assert!(
        read_entry(alpha, &user_dn(alpha, "alice"), &["loginShell"])
            .contains("loginShell: /bin/sh")
    );

    // A restarted slapd still has everything, and still binds.
    net.stop_ldap("alpha").unwrap();
    assert!(unreachable(&whoami(
        alpha,
        &alpha.ca,
        "alice",
        "correct horse"
    )));
    net.start_ldap("alpha").unwrap();
    ok(whoami(alpha, &alpha.ca, "alice", "correct horse"));
    ok(whoami(alpha, &alpha.ca, "bob", "x"));
}

#[test]
fn failed_binds_lock_an_account_on_that_peer_only_for_a_while() {
    let (_dir, net) = network_with(
        2,
        Formation::Wired,
        Some(LdapOptions {
            max_failure: 3,
            lockout_seconds: 2,
        }),
    );
    let alpha = peer_ldap(&net, "alpha");
    let bravo = peer_ldap(&net, "bravo");
    for ldap in [alpha, bravo] {
        ok(as_root(
            ldap,
            "ldapadd",
            &user_ldif(ldap, "alice", 1_000_000_001, "right"),
        ));
    }
    for _ in 0..3 {
        assert_eq!(rc(&whoami(alpha, &alpha.ca, "alice", "wrong")), 49);
    }
    let locked_at = Instant::now();
    // Locked: even the right password gets 49, on alpha only.
    assert_eq!(rc(&whoami(alpha, &alpha.ca, "alice", "right")), 49);
    let entry = read_entry(alpha, &user_dn(alpha, "alice"), &["pwdAccountLockedTime"]);
    assert!(entry.contains("pwdAccountLockedTime:"), "{entry}");
    ok(whoami(bravo, &bravo.ca, "alice", "right"));
    // After the lockout time it works again (by itself: nobody unlocks it).
    wait_until("alice was still locked out on alpha", || {
        rc(&whoami(alpha, &alpha.ca, "alice", "right")) == 0
    });
    let waited = locked_at.elapsed();
    assert!(
        waited.as_millis() >= 1000 && waited < PATIENCE,
        "unlocked after {waited:?}, the lockout is 2 s"
    );
}

#[test]
fn cli_up_with_ldap_prints_the_directory_and_down_stops_it() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("center-e2e-ldap-")
        .tempdir()
        .unwrap();
    let bin = center_testnet::default_bin_dir()
        .unwrap()
        .join("center-testnet");
    let dir_arg = dir.path().to_str().unwrap();
    let output = ok(Command::new(&bin)
        .args(["up", "--peers", "2", "--ldap", "--dir", dir_arg])
        .output()
        .unwrap());
    let doc: Value = serde_json::from_str(&output).unwrap();
    for peer in doc["peers"].as_array().unwrap() {
        for key in ["ldap_uri", "ldap_base", "ldap_ca", "ldapi"] {
            assert!(peer[key].is_string(), "peer lacks {key}: {peer}");
        }
        let addr = peer["addr"].as_str().unwrap();
        let ip = addr.rsplit_once(':').unwrap().0;
        let uri = peer["ldap_uri"].as_str().unwrap();
        assert!(uri.starts_with(&format!("ldaps://{ip}:")), "{uri}");
        // It answers with its CA.
        let ca = Path::new(peer["ldap_ca"].as_str().unwrap());
        ok(tool("ldapsearch", ca)
            .args(["-x", "-LLL", "-H", uri, "-s", "base", "-b", ""])
            .output()
            .unwrap());
    }
    let slapds = |dir: &str| {
        live_processes_mentioning(dir)
            .into_iter()
            .filter(|p| p.contains("slapd -F"))
            .count()
    };
    assert_eq!(slapds(dir_arg), 2, "one slapd per peer");
    // A later process finds them again, and `down` stops them.
    let net = Testnet::open(dir.path()).unwrap();
    assert!(net.ldap(net.peer("bravo").unwrap()).is_some());
    ok(Command::new(&bin)
        .args(["down", "--dir", dir_arg])
        .output()
        .unwrap());
    assert_eq!(live_processes_mentioning(dir_arg), Vec::<String>::new());
}
