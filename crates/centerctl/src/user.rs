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
//! A creation also goes through that socket: userd numbers the account
//! (each number once, recorded before it is published) and publishes it.

use std::{
    io::BufRead,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use center_bus::{AdminOp, PeerEntry, PeerState, Publish};
use serde_json::{Value, json};
use userd::{
    account::{self, AccountEvent, Created, Stamp},
    authority,
    directory::{Account, Directory},
};

use crate::{
    cli::{Cli, KeyCommand, UserCommand},
    connect, output,
};

const PATIENCE: Duration = Duration::from_secs(5);
/// Longest delegation `user delegate` signs: 30 days (CEP 8).
const MAX_DELEGATION_HOURS: u64 = 30 * 24;
/// How long `user add` waits for this peer's userd to apply the account
/// (a userd restarted meanwhile catches up first).
const APPLIED_WITHIN: Duration = Duration::from_secs(30);
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
            if directory.account(name).await?.is_some() {
                bail!("the account `{name}` exists already");
            }
            // This peer's userd would not make it (CEP 8, "Names").
            if let Some(reason) = userd::names::conflict(
                name,
                0,
                userd::names::nss(name),
                &config.accounts.reserved_names,
            ) {
                bail!("{reason}: no account of that name can be made here");
            }
            let (password_hash, user_key) = if *password_stdin {
                let password = read_password()?;
                let key =
                    authority::derive_user_key(name, &password).map_err(anyhow::Error::msg)?;
                (
                    account::hash_password(&password).map_err(anyhow::Error::msg)?,
                    Some(authority::public_key(&key)),
                )
            } else {
                (
                    account::unusable_password_hash().map_err(anyhow::Error::msg)?,
                    None,
                )
            };
            let ssh_keys = match ssh_key {
                Some(path) => vec![read_key(&path.display().to_string(), Some(path))?],
                None => Vec::new(),
            };
            let created = Created {
                name: name.clone(),
                // userd numbers it: these are left out of the request.
                uid_number: 0,
                shell: shell.clone(),
                display_name: display_name.clone(),
                password_hash,
                ssh_keys,
                created: center_proto::Timestamp::now().as_millis(),
                user_key,
            };
            let (_, mut data) = AccountEvent::Created(created).to_event();
            if let Some(object) = data.as_object_mut() {
                object.remove("uid_number");
                object.remove("gid_number");
            }
            let socket = &config.accounts.control_socket;
            if *dry_run {
                let uid_number = userd::control::request_create(socket, data, true).await?;
                return report(
                    cli,
                    name,
                    &format!("would be created as uid {uid_number} (dry run)"),
                );
            }
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let me = client.welcome().peer.to_string();
            // A refusal of an earlier request for the name is history now.
            directory.forget_refusal(name).await?;
            // userd numbers it (each number once) and publishes it.
            let uid_number = userd::control::request_create(socket, data, false).await?;
            // Wait for our userd to apply it, or to refuse it. Until then
            // nothing is known: that is an error, not a success.
            let deadline = Instant::now() + APPLIED_WITHIN;
            loop {
                if outcome(&mut directory, name, &me).await?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "`{name}` was published as uid {uid_number} but is not applied here \
                         yet (is userd running?); `centerctl user show {name}` tells what \
                         became of it"
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
        UserCommand::Passwd {
            name,
            current_password_stdin,
            ..
        } => {
            check_name(name)?;
            let held = existing(&mut directory, name).await?;
            require_self_or_root(&held)?;
            let signer = if *current_password_stdin {
                Some(user_key(&held, &read_password()?)?)
            } else {
                None
            };
            let password = read_password()?;
            let password_hash = account::hash_password(&password).map_err(anyhow::Error::msg)?;
            let new_key =
                authority::derive_user_key(name, &password).map_err(anyhow::Error::msg)?;
            let event = AccountEvent::Password {
                name: name.clone(),
                password_hash,
                user_key: Some(authority::public_key(&new_key)),
                stamp: stamp_after(held.stamps.password),
            };
            let event = signed(event, signer.as_ref());
            publish_change(cli, &config, &mut directory, &held, event).await?;
            report(cli, name, "password changed")
        }
        UserCommand::Delegate {
            name,
            hours,
            scopes,
        } => {
            check_name(name)?;
            let held = existing(&mut directory, name).await?;
            require_self_or_root(&held)?;
            if !(1..=MAX_DELEGATION_HOURS).contains(hours) {
                bail!("--hours must be 1 to {MAX_DELEGATION_HOURS} (30 days)");
            }
            let scopes = scopes
                .iter()
                .map(|s| account::Scope::parse(s).context("a scope is `keys` or `files`"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let key = user_key(&held, &read_password()?)?;
            let me = crate::peer::this_peer(&config)?.uuid().to_string();
            let not_before = center_proto::Timestamp::now().as_millis();
            let event = AccountEvent::Delegated(account::Delegation {
                name: name.clone(),
                peer: me,
                scopes,
                not_after: not_before + hours * 3_600_000,
                stamp: Stamp {
                    at: not_before,
                    auth: None,
                },
            });
            let event = authority::sign(event, &key);
            let (event_name, data) = event.to_event();
            AccountEvent::read(event_name, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
            publish_change(cli, &config, &mut directory, &held, event).await?;
            report(
                cli,
                name,
                &format!("this peer may act for `{name}` for {hours} hours"),
            )
        }
        UserCommand::Key(command) => {
            let (KeyCommand::Add {
                name,
                key,
                current_password_stdin,
            }
            | KeyCommand::Remove {
                name,
                key,
                current_password_stdin,
            }) = command;
            check_name(name)?;
            let held = existing(&mut directory, name).await?;
            require_self_or_root(&held)?;
            let key = read_key(key, None)?;
            let signer = signer(&held, *current_password_stdin)?;
            let mut keys = held.ssh_keys.clone();
            let had = keys.iter().any(|k| same_key(k, &key));
            match command {
                KeyCommand::Add { .. } if had => return report(cli, name, "has that key already"),
                KeyCommand::Add { .. } => keys.push(key),
                KeyCommand::Remove { .. } if !had => bail!("`{name}` has no such key"),
                KeyCommand::Remove { .. } => keys.retain(|k| !same_key(k, &key)),
            }
            publish_keys(cli, &config, &mut directory, &held, keys, signer.as_ref()).await
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
                    // What the user let peers do for her, as held here.
                    let now = center_proto::Timestamp::now().as_millis();
                    let delegations: Vec<Value> = directory
                        .delegations(name)
                        .await?
                        .iter()
                        .filter(|d| d.not_after >= now && a.user_key.as_ref() == Some(&d.key))
                        .map(|d| {
                            let scopes: Vec<&str> = d.scopes.iter().map(|s| s.as_str()).collect();
                            json!({ "peer": d.peer, "scopes": scopes, "until": d.not_after })
                        })
                        .collect();
                    let mut value = account_json(&a);
                    value["delegations"] = Value::Array(delegations.clone());
                    if cli.json {
                        output::json(&value)?;
                    } else {
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
                        for d in &delegations {
                            text.push_str(&format!(
                                "{:<13} {} may do {} until {} ms\n",
                                "delegation", d["peer"], d["scopes"], d["until"]
                            ));
                        }
                        output::text(&text)?;
                    }
                    Ok(())
                }
                (None, None) => bail!("no account `{name}` on this peer"),
            }
        }
        UserCommand::Remove {
            name,
            dry_run,
            current_password_stdin,
        } => {
            check_name(name)?;
            require_root("user remove")?;
            let account = existing(&mut directory, name).await?;
            let signer = signer(&account, *current_password_stdin)?;
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let me = client.welcome().peer.to_string();
            let home = account.claim.as_ref().map(|c| c.home().to_owned());
            if signer.is_none() && home.as_deref() != Some(me.as_str()) {
                bail!(
                    "`{name}` was made on {} and only that peer, or `{name}` herself, may remove it: \
                     give her password with --current-password-stdin, or ban the account here \
                     (`centerctl user ban`)",
                    home.as_deref().unwrap_or("another peer")
                );
            }
            if *dry_run {
                return report(cli, name, "would be removed (dry run)");
            }
            // Every claim on the name up to now dies with it; a creation
            // stamped by a clock ahead of ours is covered too.
            let deleted = center_proto::Timestamp::now()
                .as_millis()
                .max(account.claim.map_or(0, |c| c.created));
            let event = signed(
                AccountEvent::Deleted {
                    name: name.clone(),
                    stamp: Stamp {
                        at: deleted,
                        auth: None,
                    },
                },
                signer.as_ref(),
            );
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
            // The ban is on the name, kept apart from the account: it
            // outlives a deletion and a new creation (CEP 8, Part 5).
            let recorded = directory.ban_recorded(name).await?;
            let held = directory.set_ban(name, banned).await?;
            if !held && !banned && !recorded {
                bail!("no account `{name}` on this peer, and no ban of the name");
            }
            let record = format!(
                "at {} ms: {reason}",
                center_proto::Timestamp::now().as_millis()
            );
            directory
                .record_ban(name, banned.then_some(record.as_str()))
                .await?;
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
        UserCommand::AuthorizedKeys { name, uid } => {
            // sshd asks for any name it is given: a name that cannot be an
            // account simply has no keys, and a local user who only shares
            // the name (another uid) has none of the account's.
            if !account::valid_name(name) {
                return Ok(());
            }
            // One read: nothing for an unknown or banned account.
            let Some(held) = directory.account(name).await? else {
                return Ok(());
            };
            if held.uid_number != *uid || held.banned {
                return Ok(());
            }
            let mut text = String::new();
            for key in held.ssh_keys.iter().filter(|k| account::valid_key(k)) {
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
    directory: &mut Directory,
    held: &Account,
    ssh_keys: Vec<String>,
    signer: Option<&vodozemac::Ed25519SecretKey>,
) -> anyhow::Result<()> {
    let event = AccountEvent::Keys {
        name: held.name.clone(),
        ssh_keys,
        stamp: stamp_after(held.stamps.keys),
    };
    let (event_name, data) = event.to_event();
    AccountEvent::read(event_name, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
    publish_change(cli, config, directory, held, signed(event, signer)).await?;
    report(cli, &held.name, "SSH keys changed")
}

/// A change, not yet signed, stamped now, or just after the account's last change of its
/// kind (`held`) if this clock is behind it: the later stamp wins on every
/// peer (CEP 8), so a clock stepped back must not make this change lose
/// to an older one after it was reported as made.
fn stamp_after(held: u64) -> Stamp {
    Stamp {
        at: center_proto::Timestamp::now()
            .as_millis()
            .max(held.saturating_add(1)),
        auth: None,
    }
}

/// `event`, signed with the user's key if there is one.
fn signed(event: AccountEvent, signer: Option<&vodozemac::Ed25519SecretKey>) -> AccountEvent {
    match signer {
        Some(key) => authority::sign(event, key),
        None => event,
    }
}

/// The user's key, derived from the password read from standard input, if
/// asked for.
fn signer(
    held: &Account,
    current_password_stdin: bool,
) -> anyhow::Result<Option<vodozemac::Ed25519SecretKey>> {
    if !current_password_stdin {
        return Ok(None);
    }
    Ok(Some(user_key(held, &read_password()?)?))
}

/// The user key derived from `password`, checked against the one the
/// account holds here, so a typo is told now rather than refused by every
/// peer.
fn user_key(held: &Account, password: &str) -> anyhow::Result<vodozemac::Ed25519SecretKey> {
    let Some(expected) = &held.user_key else {
        bail!(
            "`{}` has no user key (made without a password): only its home peer may change it",
            held.name
        );
    };
    let key = authority::derive_user_key(&held.name, password).map_err(anyhow::Error::msg)?;
    if authority::public_key(&key) != *expected {
        bail!("the current password of `{}` is not that one", held.name);
    }
    Ok(key)
}

/// Root publishes through the bus as `centerctl`, once the rule every
/// peer applies (CEP 8, "Authority") says they would take the change; anyone
/// else asks userd, which checks the same, and with the kernel that the
/// account is the caller's own.
async fn publish_change(
    cli: &Cli,
    config: &center_config::Config,
    directory: &mut Directory,
    held: &Account,
    event: AccountEvent,
) -> anyhow::Result<()> {
    if nix::unistd::getuid().is_root() {
        let me = crate::peer::this_peer(config)?.uuid().to_string();
        let delegations = directory.delegations(&held.name).await?;
        userd::control::check_caller(0, &event, Some(held), &me, &delegations)
            .map_err(anyhow::Error::msg)?;
        let mut client = connect(cli, "centerctl", PATIENCE).await?;
        publish(&mut client, &event).await?;
    } else {
        userd::control::request(&config.accounts.control_socket, &event).await?;
    }
    applied_here(directory, &held.name, &event).await
}

/// Waits until this peer's userd has applied a password, keys or profile
/// change (the account's stamp of that kind reached the change's): only
/// then is it reported as made. A later change of the same kind counts
/// too: it replaced this one everywhere.
async fn applied_here(
    directory: &mut Directory,
    name: &str,
    event: &AccountEvent,
) -> anyhow::Result<()> {
    let (at, kind): (u64, fn(&userd::directory::Stamps) -> u64) = match event {
        AccountEvent::Password { stamp, .. } => (stamp.at, |s| s.password),
        AccountEvent::Keys { stamp, .. } => (stamp.at, |s| s.keys),
        AccountEvent::Profile { stamp, .. } => (stamp.at, |s| s.profile),
        _ => return Ok(()),
    };
    let deadline = Instant::now() + APPLIED_WITHIN;
    loop {
        if let Some(held) = directory.account(name).await?
            && kind(&held.stamps) >= at
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the change to `{name}` was published but is not applied here yet (is userd \
                 running?); `centerctl user show {name}` tells when it is"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Root may change any account; anyone else only the one whose number is
/// their uid (userd checks the same with the kernel's word).
fn require_self_or_root(held: &Account) -> anyhow::Result<()> {
    let uid = nix::unistd::getuid();
    if uid.is_root() || uid.as_raw() == held.uid_number {
        return Ok(());
    }
    bail!(
        "you may change only your own account (uid {}), and `{}` is uid {}",
        uid.as_raw(),
        held.name,
        held.uid_number
    );
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
