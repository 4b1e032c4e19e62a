//! A real OpenSSH server per peer, configured as the README tells a
//! sysadmin to: public keys come from the peer's own slapd through
//! `AuthorizedKeysCommand centerctl user authorized-keys %u %U`, run as
//! `nobody`. A key added on one peer logs in on every peer; a ban on one
//! peer stops key logins there only (CEP 8, part 5).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

use center_testnet::{LdapOptions, PeerInfo, Testnet};

use crate::support::{PATIENCE, ctl, network_with, ok, wait_until};

/// A local Unix account whose name is also a network account: what the
/// `passwd` entry of a real server is (sssd or nslcd would give it).
const USER: &str = "sshuser";

/// Makes the local account if it is missing: a shell, and a password field
/// that is not locked (`*`: no password, key logins allowed).
fn ensure_local_user(uid: u32) {
    let found = nix::unistd::User::from_name(USER).unwrap();
    if found.as_ref().is_some_and(|u| u.uid.as_raw() != uid) {
        remove_local_user();
    }
    if found.is_none_or(|u| u.uid.as_raw() != uid) {
        // -N: no user-private group of the name, which would be a local
        // group shadowing the account's own (CEP 8, "Names").
        let status = Command::new("useradd")
            .args(["--no-create-home", "-N", "--shell", "/bin/sh", "-u"])
            .arg(uid.to_string())
            .arg(USER)
            .status()
            .unwrap();
        // 9: made meanwhile by another run.
        assert!(
            status.success() || status.code() == Some(9),
            "useradd: {status}"
        );
    }
    let status = Command::new("usermod")
        .args(["-p", "*", USER])
        .status()
        .unwrap();
    assert!(status.success(), "usermod: {status}");
}

/// No local user of the name: one left by an earlier run with another uid
/// would be a local user the account must not be made over.
fn remove_local_user() {
    if nix::unistd::User::from_name(USER).unwrap().is_some() {
        let status = Command::new("userdel").arg(USER).status().unwrap();
        assert!(status.success(), "userdel: {status}");
    }
}

/// An sshd in the foreground, killed when dropped.
struct Sshd {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts sshd for `peer` on its own IP, port 2222, with the README's key
/// lookup; returns once it says it listens.
fn start_sshd(net: &Testnet, peer: &PeerInfo, dir: &Path) -> Sshd {
    // sshd's privilege separation directory (the package makes it at boot).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let host_key = dir.join(format!("{}-host-key", peer.name));
    if !host_key.exists() {
        keygen(&host_key);
    }
    let addr = SocketAddr::new(peer.addr.ip(), 2222);
    let config = dir.join(format!("{}-sshd_config", peer.name));
    std::fs::write(
        &config,
        format!(
            "ListenAddress {addr}\n\
             HostKey {host_key}\n\
             PidFile none\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             AuthorizedKeysFile none\n\
             AuthorizedKeysCommand {centerctl} --config {peer_config} user authorized-keys %u %U\n\
             AuthorizedKeysCommandUser nobody\n\
             StrictModes no\n\
             LogLevel VERBOSE\n",
            host_key = host_key.display(),
            centerctl = net.bin("centerctl").display(),
            peer_config = peer.config.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/sbin/sshd (openssh-server)");
    // Its log read on a thread of its own, drained to the end so that sshd
    // never blocks on a full pipe; ready once it says it listens.
    let stderr = child.stderr.take().unwrap();
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match log.recv_timeout(PATIENCE) {
            Ok(line) if line.contains("Server listening on") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("sshd for {} did not start: {seen:?}", peer.name),
        }
    }
    Sshd { child, addr }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen: {status}");
}

/// Whether `ssh -i key USER@sshd true` logs in.
fn logs_in(sshd: &Sshd, key: &Path) -> bool {
    Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
        ])
        .arg(sshd.addr.port().to_string())
        .arg(format!("{USER}@{}", sshd.addr.ip()))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
        .status
        .success()
}

#[test]
fn a_key_added_on_one_peer_logs_in_on_every_peer_and_a_ban_stops_it_there_only() {
    remove_local_user();
    let (dir, net) = network_with(
        2,
        center_testnet::Formation::Wired,
        Some(LdapOptions::default()),
    );
    let [a, b] = ["alpha", "bravo"].map(|n| net.peer(n).unwrap().clone());
    let key = dir.path().join("user-key");
    keygen(&key);
    let public = dir.path().join("user-key.pub");
    let public_text = std::fs::read_to_string(&public).unwrap();
    let added = ok(ctl(
        &net,
        &a,
        &[
            "user",
            "add",
            USER,
            "--ssh-key",
            &public.display().to_string(),
        ],
    ));
    assert!(added.contains("created as uid"), "{added}");
    let uid: u32 = added
        .rsplit("uid ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no uid in {added}"));
    // What sssd would give sshd on a real server: the account as a local
    // user, with its own number.
    ensure_local_user(uid);
    let key_body = public_text.split_whitespace().nth(1).unwrap().to_owned();
    wait_until("the key on bravo", || {
        ok(ctl(
            &net,
            &b,
            &["user", "authorized-keys", USER, &uid.to_string()],
        ))
        .contains(&key_body)
    });
    let sshd_a = start_sshd(&net, &a, dir.path());
    let sshd_b = start_sshd(&net, &b, dir.path());
    assert!(logs_in(&sshd_a, &key), "no key login on alpha");
    assert!(logs_in(&sshd_b, &key), "no key login on bravo");
    // Another key is not let in.
    let stranger = dir.path().join("stranger-key");
    keygen(&stranger);
    assert!(!logs_in(&sshd_a, &stranger));

    // Banned on bravo: key logins stop there, and only there.
    ok(ctl(&net, &b, &["user", "ban", USER, "--reason", "spam"]));
    assert!(!logs_in(&sshd_b, &key), "a banned user logged in on bravo");
    assert!(logs_in(&sshd_a, &key), "the ban on bravo stopped alpha");

    ok(ctl(
        &net,
        &b,
        &["user", "unban", USER, "--reason", "settled"],
    ));
    assert!(
        logs_in(&sshd_b, &key),
        "no key login on bravo after the unban"
    );

    // The key removed on alpha: it stops working everywhere once the
    // change arrives.
    ok(ctl(
        &net,
        &a,
        &["user", "key", "remove", USER, &public.display().to_string()],
    ));
    wait_until("the removed key stops logging in", || {
        !logs_in(&sshd_a, &key) && !logs_in(&sshd_b, &key)
    });
}
