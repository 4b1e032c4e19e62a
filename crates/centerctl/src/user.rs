//! `centerctl user …`: the network's accounts (CEP 8). Changes are account
//! events published on this peer's feed through the bus (as the service
//! `centerctl`), which every peer's userd applies, this one's included;
//! reads come from this peer's own slapd over ldapi (SASL EXTERNAL: the
//! kernel says who asks, no password is stored).
//!
//! Passwords are hashed here (Argon2id) and never leave this process in
//! clear. A user other than root may change only their own password and
//! keys: the request goes to userd's control socket, where userd asks the
//! kernel who is calling (`SO_PEERCRED`); this command refuses early too.

use std::{
    io::BufRead,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use center_bus::{AdminOp, PeerEntry, PeerState, Publish};
use serde_json::{Value, json};
use userd::{
    account::{self, AccountEvent, Created, block_range},
    blocks,
    directory::{Account, Directory},
};

use crate::{
    cli::{Cli, KeyCommand, UserCommand},
    connect, output,
};

const PATIENCE: Duration = Duration::from_secs(5);
/// How long `user add` waits for this peer's userd to apply the account.
const APPLIED_WITHIN: Duration = Duration::from_secs(15);
/// How long `user add` then waits for the other peers to confirm.
const SETTLED_WITHIN: Duration = Duration::from_secs(15);

pub async fn run(cli: &Cli, command: &UserCommand) -> anyhow::Result<()> {
    let config = center_config::Config::load(&cli.config)?;
    let mut directory = Directory::new(&config.ldap.ldapi, &config.ldap.base);
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            ssh_key,
            shell,
            display_name,
            dry_run,
        } => {
            require_root("user add")?;
            check_name(name)?;
            let password_hash = if *password_stdin {
                account::hash_password(&read_password()?).map_err(anyhow::Error::msg)?
            } else {
                account::unusable_password_hash().map_err(anyhow::Error::msg)?
            };
            let ssh_keys = match ssh_key {
                Some(path) => vec![read_key(&path.display().to_string(), Some(path))?],
                None => Vec::new(),
            };
            if directory.account(name).await?.is_some() {
                bail!("the account `{name}` exists already");
            }
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let me = client.welcome().peer.to_string();
            let block = wait_for_block(&config.paths.daemon_state(userd::SERVICE), &me).await?;
            let range = block_range(block);
            let highest = directory
                .accounts()
                .await?
                .iter()
                .map(|a| a.uid_number)
                .filter(|n| range.contains(n))
                .max()
                .unwrap_or(range.start);
            let uid_number = highest + 1;
            if !range.contains(&uid_number) {
                bail!("this peer's number block {block} is full");
            }
            let created = Created {
                name: name.clone(),
                uid_number,
                home: format!("/home/{name}"),
                shell: shell.clone(),
                display_name: display_name.clone(),
                password_hash,
                ssh_keys,
                created: center_proto::Timestamp::now().as_millis(),
            };
            let event = AccountEvent::Created(created);
            // The reader every peer runs: refuse here what they would refuse.
            let (event_name, data) = event.to_event();
            AccountEvent::read(event_name, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
            if *dry_run {
                return report(
                    cli,
                    name,
                    &format!("would be created as uid {uid_number} (dry run)"),
                );
            }
            // A refusal of an earlier request for the name is history now.
            directory.forget_refusal(name).await?;
            publish(&mut client, &event).await?;
            // Wait for our userd to apply it, or to refuse it.
            let deadline = Instant::now() + APPLIED_WITHIN;
            loop {
                if outcome(&mut directory, name, &me).await?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    return report(
                        cli,
                        name,
                        "published; not applied here yet (is userd running?)",
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Two peers may have made the name at once: the answer is final
            // once every reachable peer holds our request and we have
            // applied every request it held then (CEP 8).
            let unconfirmed = settle(&mut client).await?;
            match outcome(&mut directory, name, &me).await? {
                Some(Ok(uid_number)) if unconfirmed.is_empty() => {
                    report(cli, name, &format!("created as uid {uid_number}"))
                }
                Some(Ok(uid_number)) => report(
                    cli,
                    name,
                    &format!(
                        "created as uid {uid_number} here; not yet confirmed by {} \
                         (a request for `{name}` made there before it hears of this one \
                         would still win; `centerctl user show {name}` tells)",
                        unconfirmed.join(", ")
                    ),
                ),
                Some(Err(reason)) => bail!("the account `{name}` was {reason}"),
                None => bail!("the account `{name}` was removed while it was made"),
            }
        }
        UserCommand::Passwd { name, .. } => {
            check_name(name)?;
            require_self_or_root(name)?;
            let password_hash =
                account::hash_password(&read_password()?).map_err(anyhow::Error::msg)?;
            existing(&mut directory, name).await?;
            let event = AccountEvent::Password {
                name: name.clone(),
                password_hash,
            };
            publish_change(cli, &config, &event).await?;
            report(cli, name, "password changed")
        }
        UserCommand::Key(KeyCommand::Add { name, key }) => {
            check_name(name)?;
            require_self_or_root(name)?;
            let key = read_key(key, None)?;
            let mut keys = existing(&mut directory, name).await?.ssh_keys;
            if keys.iter().any(|k| same_key(k, &key)) {
                return report(cli, name, "has that key already");
            }
            keys.push(key);
            publish_keys(cli, &config, name, keys).await
        }
        UserCommand::Key(KeyCommand::Remove { name, key }) => {
            check_name(name)?;
            require_self_or_root(name)?;
            let key = read_key(key, None)?;
            let mut keys = existing(&mut directory, name).await?.ssh_keys;
            let before = keys.len();
            keys.retain(|k| !same_key(k, &key));
            if keys.len() == before {
                bail!("`{name}` has no such key");
            }
            publish_keys(cli, &config, name, keys).await
        }
        UserCommand::List => {
            let accounts = directory.accounts().await?;
            if cli.json {
                let list: Vec<Value> = accounts.iter().map(account_json).collect();
                output::json(&json!({ "accounts": list }))?;
            } else {
                let rows: Vec<Vec<String>> = accounts
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.clone(),
                            a.uid_number.to_string(),
                            a.claim
                                .as_ref()
                                .map_or_else(String::new, |c| c.joined_from.clone()),
                            if a.banned { "banned" } else { "active" }.to_owned(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "UID", "JOINED FROM", "STATE"], &rows)?;
            }
            Ok(())
        }
        UserCommand::Show { name } => {
            check_name(name)?;
            let found = directory.account(name).await?;
            let refusal = directory.refusal(name).await?;
            match (found, refusal) {
                (found, Some(refusal)) => {
                    // Our request for the name lost; the account, if any, is another's.
                    let mut value =
                        json!({ "name": name, "state": "refused", "reason": refusal.reason });
                    if let Some(a) = &found {
                        value["holder"] = account_json(a);
                    }
                    if cli.json {
                        output::json(&value)?;
                    } else {
                        output::text(&format!("{name}: our request was {}\n", refusal.reason))?;
                    }
                    Ok(())
                }
                (Some(a), None) => {
                    if cli.json {
                        output::json(&account_json(&a))?;
                    } else {
                        let value = account_json(&a);
                        let mut text = String::new();
                        for key in [
                            "name",
                            "uid_number",
                            "display_name",
                            "home",
                            "shell",
                            "joined_from",
                            "created",
                            "state",
                        ] {
                            let shown = match &value[key] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            text.push_str(&format!("{key:<13} {shown}\n"));
                        }
                        for key in &a.ssh_keys {
                            text.push_str(&format!("{:<13} {key}\n", "ssh_key"));
                        }
                        output::text(&text)?;
                    }
                    Ok(())
                }
                (None, None) => bail!("no account `{name}` on this peer"),
            }
        }
        UserCommand::Remove { name, dry_run } => {
            check_name(name)?;
            require_root("user remove")?;
            let account = existing(&mut directory, name).await?;
            if *dry_run {
                return report(cli, name, "would be removed (dry run)");
            }
            // Every claim on the name up to now dies with it; a creation
            // stamped by a clock ahead of ours is covered too.
            let deleted = center_proto::Timestamp::now()
                .as_millis()
                .max(account.claim.map_or(0, |c| c.created));
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let event = AccountEvent::Deleted {
                name: name.clone(),
                deleted,
            };
            publish(&mut client, &event).await?;
            report(cli, name, "removed")
        }
        UserCommand::Ban { name, reason } | UserCommand::Unban { name, reason } => {
            let banned = matches!(command, UserCommand::Ban { .. });
            check_name(name)?;
            require_root(if banned { "user ban" } else { "user unban" })?;
            let event = AccountEvent::Notice {
                name: name.clone(),
                banned,
                reason: reason.clone(),
            };
            let (event_name, data) = event.to_event();
            AccountEvent::read(event_name, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
            if !directory.set_ban(name, banned).await? {
                bail!("no account `{name}` on this peer");
            }
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            publish(&mut client, &event).await?;
            report(
                cli,
                name,
                if banned {
                    "banned on this peer; the other peers were told why"
                } else {
                    "unbanned on this peer; the other peers were told"
                },
            )
        }
        UserCommand::Notices => {
            require_root("user notices")?;
            let notices = directory.notices().await?;
            if cli.json {
                let list: Vec<Value> = notices
                    .iter()
                    .map(|(name, texts)| json!({ "name": name, "notices": texts }))
                    .collect();
                output::json(&json!({ "notices": list }))?;
            } else {
                let rows: Vec<Vec<String>> = notices
                    .iter()
                    .flat_map(|(name, texts)| texts.iter().map(|t| vec![name.clone(), t.clone()]))
                    .collect();
                output::table(&["NAME", "NOTICE"], &rows)?;
            }
            Ok(())
        }
        UserCommand::AuthorizedKeys { name } => {
            // sshd asks for any name it is given: a name that cannot be an
            // account simply has no keys.
            if !account::valid_name(name) {
                return Ok(());
            }
            let keys = directory.usable_keys(name).await?;
            let mut text = String::new();
            for key in keys.iter().filter(|k| account::valid_key(k)) {
                text.push_str(key);
                text.push('\n');
            }
            output::text(&text)?;
            Ok(())
        }
    }
}

async fn publish_keys(
    cli: &Cli,
    config: &center_config::Config,
    name: &str,
    ssh_keys: Vec<String>,
) -> anyhow::Result<()> {
    let event = AccountEvent::Keys {
        name: name.to_owned(),
        ssh_keys,
    };
    let (event_name, data) = event.to_event();
    AccountEvent::read(event_name, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
    publish_change(cli, config, &event).await?;
    report(cli, name, "SSH keys changed")
}

/// Root publishes through the bus as `centerctl`; anyone else asks userd,
/// which checks with the kernel that the account is the caller's own.
async fn publish_change(
    cli: &Cli,
    config: &center_config::Config,
    event: &AccountEvent,
) -> anyhow::Result<()> {
    if nix::unistd::getuid().is_root() {
        let mut client = connect(cli, "centerctl", PATIENCE).await?;
        publish(&mut client, event).await
    } else {
        userd::control::request(&config.accounts.control_socket, event).await
    }
}

async fn publish(client: &mut center_bus::Client, event: &AccountEvent) -> anyhow::Result<()> {
    let (name, data) = event.to_event();
    client
        .publish(Publish::feed(name, data))
        .await
        .with_context(|| format!("cannot publish {name}"))
}

fn report(cli: &Cli, name: &str, what: &str) -> anyhow::Result<()> {
    if cli.json {
        output::json(&json!({ "name": name, "result": what }))?;
    } else {
        output::text(&format!("{name}: {what}\n"))?;
    }
    Ok(())
}

fn account_json(a: &Account) -> Value {
    json!({
        "name": a.name,
        "uid_number": a.uid_number,
        "gid_number": a.uid_number,
        "display_name": a.display_name,
        "home": a.home,
        "shell": a.shell,
        "ssh_keys": a.ssh_keys,
        "joined_from": a.claim.as_ref().map(|c| c.joined_from.clone()),
        "created": a.claim.as_ref().map(|c| c.created),
        "state": if a.banned { "banned" } else { "active" },
    })
}

/// What became of our request for `name`: `Ok(uid)` if the account here is
/// the one this peer made, `Err(reason)` if it was refused, `None` while
/// neither is known.
async fn outcome(
    directory: &mut Directory,
    name: &str,
    me: &str,
) -> anyhow::Result<Option<Result<u32, String>>> {
    if let Some(refusal) = directory.refusal(name).await? {
        return Ok(Some(Err(refusal.reason)));
    }
    Ok(directory
        .account(name)
        .await?
        .filter(|found| found.claim.as_ref().is_some_and(|c| c.joined_from == me))
        .map(|found| Ok(found.uid_number)))
}

/// Waits until every roster peer that is not down holds every feed event
/// this peer holds (our request among them), and this peer then holds
/// everything they hold and its consumers (userd) have applied it. Returns
/// the peers that did not confirm, by name: the down ones, and any still
/// behind when the wait ran out.
async fn settle(client: &mut center_bus::Client) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + SETTLED_WITHIN;
    loop {
        let peers = client.admin(AdminOp::PeerList {}).await?.peers;
        let unconfirmed: Vec<&PeerEntry> = peers
            .iter()
            .filter(|p| p.state != PeerState::Up || p.feed_lag > 0)
            .collect();
        // Down peers are reported, not waited for.
        let waiting = unconfirmed.iter().any(|p| p.state != PeerState::Down);
        let applied = client
            .admin(AdminOp::Status {})
            .await?
            .status
            .is_some_and(|s| {
                s.membership.origins.iter().all(|o| o.held >= o.known)
                    && s.membership.consumers.iter().all(|c| c.caught_up)
            });
        if (!waiting && applied) || Instant::now() > deadline {
            return Ok(unconfirmed
                .iter()
                .map(|p| match p.state {
                    PeerState::Down => format!("{} (down)", p.name),
                    _ => p.name.clone(),
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn existing(directory: &mut Directory, name: &str) -> anyhow::Result<Account> {
    directory
        .account(name)
        .await?
        .with_context(|| format!("no account `{name}` on this peer"))
}

/// This peer's number block, as userd recorded it; userd claims one when it
/// first starts, so give it a moment.
async fn wait_for_block(state: &Path, me: &str) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(block) = blocks::read_block(state, me)? {
            return Ok(block);
        }
        if Instant::now() > deadline {
            bail!(
                "this peer holds no number block yet: userd claims one when it starts (is it running? see `journalctl -u userd`)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !account::valid_name(name) {
        bail!("`{name}` is not an account name (^[a-z][a-z0-9]{{1,31}}$)");
    }
    Ok(())
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !nix::unistd::getuid().is_root() {
        bail!("only root may run `centerctl {what}`");
    }
    Ok(())
}

/// Root may change any account; anyone else only the one named like their
/// Unix account.
fn require_self_or_root(name: &str) -> anyhow::Result<()> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Ok(());
    }
    let me = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    if me.as_deref() != Some(name) {
        bail!(
            "you may change only your own account ({}), not `{name}`",
            me.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// One line of standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("the password read from standard input is empty");
    }
    Ok(password)
}

/// A key given as a file or as text, normalized and checked.
fn read_key(text: &str, file: Option<&Path>) -> anyhow::Result<String> {
    let path = file.unwrap_or(Path::new(text));
    let raw = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    } else if file.is_some() {
        bail!("{} is not a readable file", path.display());
    } else {
        text.to_owned()
    };
    let key = account::normalize_key(&raw);
    if !account::valid_key(&key) {
        bail!("not an SSH public key (ssh-ed25519, ssh-rsa or ecdsa-sha2-*, one line)");
    }
    Ok(key)
}

/// Two keys are the same if type and base64 agree (comments may differ).
fn same_key(a: &str, b: &str) -> bool {
    let head = |k: &str| k.split(' ').take(2).collect::<Vec<_>>().join(" ");
    head(a) == head(b)
}
