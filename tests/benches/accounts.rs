//! Benchmark of accounts (CEP 8): how long userd takes to apply 10,000
//! accounts to a peer's slapd that has none, next to a raw `ldapadd` of
//! the same 10,000 entries (each account's person and group) into another
//! empty slapd in the same run, and their ratio (the target: at
//! most 2). It prints one JSON document on stdout and asserts nothing.
//!
//! Run it as root with daemons built in the same profile: `cargo build
//! --release --workspace --bins && cargo bench -p center-e2e --bench
//! accounts` (or `--profile dev` after `cargo build --workspace --bins`).
//!
//! - alpha publishes 10,000 `account.created` (one hash for all) while
//!   bravo's userd is stopped; once bravo's dispatchd holds all of them,
//!   bravo's userd starts and the time runs until the last account is in
//!   bravo's slapd (one origin's events apply in order).
//! - Raw: the same entries as LDIF, `ldapadd -Y EXTERNAL` over ldapi into
//!   charlie's empty slapd (charlie's userd is stopped first).
//!
//! Started by `cargo test` (without `--bench`), it only says how to run it.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use center_bus::{Client, ClientConfig, Publish};
use center_testnet::{
    Formation, LdapOptions, Options, PeerInfo, PeerLdap, Testnet, USERD, default_bin_dir,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use userd::account::{AccountEvent, Created, block_range, hash_password};

const ACCOUNTS: u32 = 10_000;
const STALL: Duration = Duration::from_secs(600);

fn main() {
    center_e2e::bench::main(
        "accounts",
        "cargo build --release --workspace --bins && cargo bench -p center-e2e --bench accounts",
        run,
    );
}

fn run() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("center-bench-accounts-")
        .tempdir()?;
    let net = Testnet::up(&Options {
        dir: dir.path().to_owned(),
        peers: 3,
        bin_dir: default_bin_dir()?,
        formation: Formation::Wired,
        ldap: Some(LdapOptions::default()),
    })?;
    let [a, b, c] = ["alpha", "bravo", "charlie"].map(|n| net.peer(n).cloned());
    let (a, b, c) = (a?, b?, c?);
    let block = wait_for(|| {
        userd::blocks::read_block(&a.state_dir.join(USERD), &a.uuid.to_string())
            .ok()
            .flatten()
    })?;
    net.signal_daemon(&b, USERD, Signal::SIGTERM)?;
    net.signal_daemon(&c, USERD, Signal::SIGTERM)?;

    let created = accounts(block)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = Client::connect(ClientConfig {
            socket: a.bus_socket.clone(),
            service: "centerctl".to_owned(),
            reconnect_for: Some(Duration::from_secs(5)),
        })
        .await?;
        for c in &created {
            let (name, data) = AccountEvent::Created(c.clone()).to_event();
            client.publish(Publish::feed(name, data)).await?;
        }
        anyhow::Ok(())
    })?;
    let head = |peer: &PeerInfo| -> Option<u64> {
        let out = net
            .centerctl(peer)
            .args(["--json", "feed", "status"])
            .output()
            .ok()?;
        let status: Value = serde_json::from_slice(&out.stdout).ok()?;
        status["origins"]
            .as_array()?
            .iter()
            .find(|o| o["origin"] == a.uuid.to_string())?["head_seq"]
            .as_u64()
    };
    let alpha_head = head(&a).context("alpha's own feed status")?;
    wait_for(|| (head(&b)? >= alpha_head).then_some(()))?;

    let last = created.last().context("no accounts")?.name.clone();
    let bravo = net.ldap(&b).context("bravo's slapd")?;
    let started = Instant::now();
    net.start_daemon(&b, USERD)?;
    wait_for(|| has(bravo, &last).then_some(()))?;
    let userd_seconds = started.elapsed().as_secs_f64();

    let ldif = ldif(net.ldap(&c).context("charlie's slapd")?, &created);
    let charlie = net.ldap(&c).context("charlie's slapd")?;
    let started = Instant::now();
    let mut child = Command::new("ldapadd")
        .env("LDAPCONF", "/dev/null")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &charlie.ldapi_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("ldapadd's stdin")?
        .write_all(ldif.as_bytes())?;
    if !child.wait()?.success() {
        bail!("ldapadd failed");
    }
    let ldapadd_seconds = started.elapsed().as_secs_f64();

    let report = json!({
        "benchmark": "accounts",
        "accounts": ACCOUNTS,
        "userd_apply_seconds": round(userd_seconds),
        "ldapadd_seconds": round(ldapadd_seconds),
        "ratio": round(userd_seconds / ldapadd_seconds),
        "target_ratio": 2.0,
        "userd_accounts_per_second": round(f64::from(ACCOUNTS) / userd_seconds),
    });
    println!("{report}");
    if std::env::var_os("CENTER_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        net.detach();
        eprintln!("accounts: network kept in {}", kept.display());
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn accounts(block: u32) -> anyhow::Result<Vec<Created>> {
    let hash = hash_password("bench").map_err(anyhow::Error::msg)?;
    // Within the five minutes of the events' iat that every peer allows.
    let now = center_proto::Timestamp::now().as_millis();
    Ok((0..ACCOUNTS)
        .map(|i| Created {
            name: format!("bench{i}"),
            uid_number: block_range(block).start + 1 + i,
            shell: "/bin/sh".to_owned(),
            display_name: String::new(),
            password_hash: hash.clone(),
            ssh_keys: Vec::new(),
            created: now + u64::from(i),
            user_key: None,
        })
        .collect())
}

/// The entries userd writes, as LDIF.
fn ldif(ldap: &PeerLdap, created: &[Created]) -> String {
    let mut out = String::new();
    for c in created {
        let n = c.uid_number;
        let name = &c.name;
        out.push_str(&format!(
            "dn: uid={name},ou=people,{base}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             objectClass: shadowAccount\nobjectClass: ldapPublicKey\nuid: {name}\ncn: {name}\nsn: {name}\n\
             uidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/{name}\nloginShell: {shell}\n\
             userPassword: {hash}\ndescription: joined_from=x created={created}\n\n\
             dn: cn={name},ou=groups,{base}\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {n}\n\
             memberUid: {name}\n\n",
            base = ldap.base,
            shell = c.shell,
            hash = c.password_hash,
            created = c.created,
        ));
    }
    out
}

/// Whether `name` is in the slapd's people (a search as root over ldapi).
fn has(ldap: &PeerLdap, name: &str) -> bool {
    Command::new("ldapsearch")
        .env("LDAPCONF", "/dev/null")
        .args(["-LLL", "-Q", "-Y", "EXTERNAL", "-H", &ldap.ldapi_url()])
        .args([
            "-b",
            &format!("uid={name},ou=people,{}", ldap.base),
            "-s",
            "base",
            "1.1",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Polls `probe` until it yields, or fails after `STALL`.
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + STALL;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("stalled for {STALL:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
