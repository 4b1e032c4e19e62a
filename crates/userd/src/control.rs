//! The socket where a local user changes their own account (CEP 8): any
//! local user may connect; userd asks the kernel who they are
//! (`SO_PEERCRED`) and publishes the change only if the account it names
//! has the caller's uid as its `uidNumber` (root may name any), and only
//! if every peer will take it: signed by the user's key, or this peer is
//! the account's home, or a peer she delegated the change to (CEP 8,
//! "Authority"). She may also sign a delegation to this peer here. The
//! password was hashed, and the user key derived, by the caller; no
//! password reaches this socket.
//! Each uid other than root gets [`PER_UID`] requests a minute.
//!
//! One request per connection, one JSON line: `{"event": NAME, "data":
//! {...}}` with NAME `account.password`, `account.keys` or
//! `account.delegated` and `data` as on
//! the feeds; one JSON line back: `{"ok": true}` or `{"error": TEXT}`.
//!
//! Root also creates accounts here (`centerctl user add`): NAME
//! `account.created` with `data` as on the feeds but without `uid_number`
//! and `gid_number`, and optionally `"dry_run": true`. userd numbers the
//! account from this peer's block ([`crate::numbers`]: each number once,
//! recorded before it is published), publishes it and answers `{"ok":
//! true, "uid_number": N}`; a dry run answers the number it would give.
//! This module owns its own bus connection (as the service `userd`); the
//! event loop's is not shared.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use anyhow::Context;
use center_bus::{Client, Publish};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Mutex,
};

use crate::{
    account::{self, AccountEvent, block_range},
    authority,
    directory::{Account, Directory},
    names,
    numbers::Numbers,
};

/// Longest request line.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most requests served at once; more wait to be accepted.
const MAX_CLIENTS: usize = 32;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a creation waits for this peer's first block.
const BLOCK_WITHIN: Duration = Duration::from_secs(10);
/// Requests one uid other than root may make in [`RATE_WINDOW`].
pub const PER_UID: u32 = 10;
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Requests counted per uid in the current window (root is not counted).
#[derive(Debug, Default)]
struct Rate {
    window: Option<std::time::Instant>,
    counts: std::collections::HashMap<u32, u32>,
}

impl Rate {
    /// Counts a request of `uid`; `false` past its share.
    fn allow(&mut self, uid: u32, now: std::time::Instant) -> bool {
        if uid == 0 {
            return true;
        }
        if self
            .window
            .is_none_or(|start| now.duration_since(start) >= RATE_WINDOW)
        {
            self.window = Some(now);
            self.counts.clear();
        }
        let count = self.counts.entry(uid).or_default();
        *count += 1;
        *count <= PER_UID
    }
}

/// Binds the socket (a stale file is replaced), mode 0666: who may change
/// what is decided per request.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// What one request handler shares with the others: the bus connection,
/// the directory connection (to find the named account), the counts, and
/// what numbering a new account needs.
struct Shared {
    bus: Mutex<Client>,
    directory: Mutex<Directory>,
    rate: std::sync::Mutex<Rate>,
    /// This peer's UUID (is it the account's home?).
    me: String,
    /// The numbers given; held from numbering to publishing, so creations
    /// are published in the order they were numbered.
    numbers: Mutex<Numbers>,
    /// The block this peer holds, as the event loop last saw it.
    block: tokio::sync::watch::Receiver<Option<u32>>,
    /// `[accounts] reserved_names`.
    reserved: Vec<String>,
}

/// What the control task needs besides its socket.
pub struct Control {
    /// Its own bus connection (the event loop's is not shared).
    pub bus: Client,
    /// Its own directory connection.
    pub directory: Directory,
    /// This peer's UUID.
    pub me: String,
    pub numbers: Numbers,
    /// The block this peer holds, kept current by the event loop.
    pub block: tokio::sync::watch::Receiver<Option<u32>>,
    pub reserved: Vec<String>,
}

/// Serves requests until the task is aborted.
pub async fn serve(listener: UnixListener, control: Control) {
    let shared = std::sync::Arc::new(Shared {
        bus: Mutex::new(control.bus),
        directory: Mutex::new(control.directory),
        rate: std::sync::Mutex::new(Rate::default()),
        me: control.me,
        numbers: Mutex::new(control.numbers),
        block: control.block,
        reserved: control.reserved,
    });
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            // Held until this request is answered.
            let _slot = slot;
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            let (reader, mut writer) = stream.into_split();
            let reply = match uid {
                Some(uid) => answer(&shared, uid, reader).await,
                None => Err("cannot tell who is asking".to_owned()),
            };
            let line = match reply {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(?uid, error, "account change refused");
                    json!({ "error": error })
                }
            };
            let _ = writer.write_all(format!("{line}\n").as_bytes()).await;
        });
    }
}

/// One request of `uid`: read, counted, decided, published; the answer.
async fn answer(
    shared: &Shared,
    uid: u32,
    reader: tokio::net::unix::OwnedReadHalf,
) -> Result<Value, String> {
    let allowed = shared
        .rate
        .lock()
        .map(|mut rate| rate.allow(uid, std::time::Instant::now()))
        .unwrap_or(false);
    if !allowed {
        return Err(format!(
            "uid {uid} made more than {PER_UID} requests this minute; try again later"
        ));
    }
    let value = read_request(reader).await?;
    if value.get("event").and_then(Value::as_str) == Some(account::CREATED) {
        return create(shared, uid, &value).await;
    }
    let event = parse(&value)?;
    let name = event.account().unwrap_or_default().to_owned();
    let (held, delegations) = {
        let mut directory = shared.directory.lock().await;
        let held = directory.account(&name).await;
        let delegations = directory.delegations(&name).await;
        (held, delegations)
    };
    let read = |e: crate::directory::DirError| format!("cannot read the account: {e}");
    let (held, delegations) = (held.map_err(read)?, delegations.map_err(read)?);
    check_caller(uid, &event, held.as_ref(), &shared.me, &delegations)?;
    publish(&shared.bus, uid, &event).await?;
    Ok(json!({ "ok": true }))
}

/// A creation asked for by root: checked, numbered, published; the answer
/// names the number.
async fn create(shared: &Shared, uid: u32, request: &Value) -> Result<Value, String> {
    if uid != 0 {
        return Err("only root may create accounts".to_owned());
    }
    let (mut data, dry_run) = parse_create(request)?;
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| account::valid_name(n))
        .ok_or("`data.name` is not an account name")?
        .to_owned();
    if let Some(reason) = names::conflict(&name, 0, names::nss(&name), &shared.reserved) {
        return Err(format!(
            "{reason}: no account of that name can be made here"
        ));
    }
    // Just after userd's first start, its claim may still be on its way.
    let mut watch = shared.block.clone();
    let block = match tokio::time::timeout(BLOCK_WITHIN, watch.wait_for(Option::is_some)).await {
        Ok(Ok(held)) => *held,
        _ => None,
    }
    .ok_or(
        "this peer holds no number block yet: userd claims one when it starts, and it \
         counts once the claim is on this peer's feed (is dispatchd running?)",
    )?;
    let mut numbers = shared.numbers.lock().await;
    let highest = {
        let mut directory = shared.directory.lock().await;
        let read = |e: crate::directory::DirError| format!("cannot read the directory: {e}");
        if directory.account(&name).await.map_err(read)?.is_some() {
            return Err(format!("the account `{name}` exists already"));
        }
        if numbers.needs_directory(block) {
            let range = block_range(block);
            directory
                .accounts()
                .await
                .map_err(read)?
                .iter()
                .map(|a| a.uid_number)
                .filter(|n| range.contains(n))
                .max()
        } else {
            None
        }
    };
    let number = numbers
        .peek(block, highest)
        .ok_or_else(|| format!("this peer's number block {block} is full"))?;
    data.insert("uid_number".to_owned(), json!(number));
    data.insert("gid_number".to_owned(), json!(number));
    // Read as every peer will, before the number is spent on it.
    let event =
        AccountEvent::read(account::CREATED, &Value::Object(data)).map_err(|e| e.to_string())?;
    if dry_run {
        return Ok(json!({ "ok": true, "uid_number": number, "dry_run": true }));
    }
    let taken = numbers.take(block, highest).map_err(|e| e.to_string())?;
    debug_assert_eq!(taken, number);
    publish(&shared.bus, uid, &event).await?;
    Ok(json!({ "ok": true, "uid_number": number }))
}

/// The members of a creation request: `data` without numbers, and
/// whether it is a dry run.
pub fn parse_create(request: &Value) -> Result<(serde_json::Map<String, Value>, bool), String> {
    let object = request.as_object().ok_or("the request is not an object")?;
    if object
        .keys()
        .any(|k| k != "event" && k != "data" && k != "dry_run")
    {
        return Err("the request has an unknown member".to_owned());
    }
    let dry_run = match object.get("dry_run") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`dry_run` is not a boolean".to_owned()),
    };
    let data = object
        .get("data")
        .and_then(Value::as_object)
        .ok_or("the request lacks `data`")?;
    if data.contains_key("uid_number") || data.contains_key("gid_number") {
        return Err("userd numbers the account: the request names no number".to_owned());
    }
    Ok((data.clone(), dry_run))
}

async fn read_request(reader: tokio::net::unix::OwnedReadHalf) -> Result<Value, String> {
    let mut line = Vec::new();
    let mut limited = BufReader::new(tokio::io::AsyncReadExt::take(
        reader,
        MAX_REQUEST as u64 + 1,
    ));
    tokio::time::timeout(REQUEST_TIMEOUT, limited.read_until(b'\n', &mut line))
        .await
        .map_err(|_| "no request in time".to_owned())?
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if line.len() > MAX_REQUEST {
        return Err("the request is too long".to_owned());
    }
    serde_json::from_slice(&line).map_err(|_| "the request is not JSON".to_owned())
}

/// The change asked for: a password or key change, or a delegation, read
/// as strictly as every peer will read it.
pub fn parse(request: &Value) -> Result<AccountEvent, String> {
    let object = request.as_object().ok_or("the request is not an object")?;
    if object.keys().any(|k| k != "event" && k != "data") {
        return Err("the request has an unknown member".to_owned());
    }
    let name = object
        .get("event")
        .and_then(Value::as_str)
        .ok_or("the request lacks `event`")?;
    if ![account::PASSWORD, account::KEYS, account::DELEGATED].contains(&name) {
        return Err(format!(
            "`{}` cannot be asked for here",
            name.chars().take(64).collect::<String>()
        ));
    }
    let data = object.get("data").ok_or("the request lacks `data`")?;
    AccountEvent::read(name, data).map_err(|e| e.to_string())
}

/// Whether the caller `uid` may publish `event` on this peer (`me`), for
/// the account `held` here: it is the caller's own (its `uidNumber` is the
/// caller's uid; root may name any), and every peer will take it (signed
/// by the user's key, or this peer is the account's home).
pub fn check_caller(
    uid: u32,
    event: &AccountEvent,
    held: Option<&Account>,
    me: &str,
    delegations: &[authority::Delegated],
) -> Result<(), String> {
    let target = event.account().unwrap_or_default();
    let Some(held) = held else {
        return Err(format!("there is no account `{target}` on this peer"));
    };
    if uid != 0 && held.uid_number != uid {
        return Err(format!(
            "uid {uid} may change only its own account, and `{target}` is uid {}",
            held.uid_number
        ));
    }
    if let AccountEvent::Delegated(d) = event
        && d.peer != me
    {
        return Err("a delegation asked for here must be to this peer".to_owned());
    }
    let home = held.claim.as_ref().map(|c| c.home()).unwrap_or_default();
    authority::authorize(me, home, held.user_key.as_deref(), delegations, event)
        .map(|_| ())
        .map_err(|e| {
            format!("no peer would take this change: {e} (give the current password to sign it)")
        })
}

async fn publish(bus: &Mutex<Client>, uid: u32, event: &AccountEvent) -> Result<(), String> {
    let (name, data) = event.to_event();
    bus.lock()
        .await
        .publish(Publish::feed(name, data))
        .await
        .map_err(|e| format!("cannot publish: {e}"))?;
    tracing::info!(
        uid,
        name,
        account = event.account(),
        "account change published for its owner"
    );
    Ok(())
}

/// The client side (`centerctl`): sends one request, returns the answer.
pub async fn request(path: &Path, event: &AccountEvent) -> anyhow::Result<()> {
    let (name, data) = event.to_event();
    exchange(path, &json!({ "event": name, "data": data })).await?;
    Ok(())
}

/// The client side of a creation (`centerctl user add`, as root): `data`
/// as on the feeds without the numbers; returns the number userd gave (or
/// would give, for a dry run).
pub async fn request_create(path: &Path, data: Value, dry_run: bool) -> anyhow::Result<u32> {
    let reply = exchange(
        path,
        &json!({ "event": account::CREATED, "data": data, "dry_run": dry_run }),
    )
    .await?;
    reply
        .get("uid_number")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .context("userd's answer names no number")
}

/// One request line out, one answer line back.
async fn exchange(path: &Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(path)
        .await
        .with_context(|| format!("cannot reach userd at {} (is it running?)", path.display()))?;
    stream.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    tokio::time::timeout(
        REQUEST_TIMEOUT * 2,
        BufReader::new(stream).read_line(&mut line),
    )
    .await
    .context("userd did not answer in time")??;
    let reply: Value = serde_json::from_str(&line).context("userd's answer is not JSON")?;
    match reply.get("error").and_then(Value::as_str) {
        Some(error) => anyhow::bail!("userd refused: {error}"),
        None if reply["ok"] == true => Ok(reply),
        None => anyhow::bail!("userd answered something unexpected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{AccountClaim, Stamps};

    const HOME: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const OTHER: &str = "bbbbbbbb-0000-4000-8000-000000000002";

    fn alice(key: Option<String>) -> Account {
        Account {
            name: "alice".to_owned(),
            uid_number: 1_003_000_001,
            home: "/home/alice".to_owned(),
            shell: "/bin/sh".to_owned(),
            display_name: String::new(),
            ssh_keys: Vec::new(),
            claim: Some(AccountClaim {
                created: 1,
                joined_from: HOME.to_owned(),
            }),
            banned: false,
            user_key: key,
            stamps: Stamps::at(1),
        }
    }

    #[test]
    fn only_the_own_account_and_only_passwords_and_keys() {
        let hash = account::hash_password("x").unwrap();
        let passwd = |name: &str| json!({"event": "account.password", "data": {"name": name, "password_hash": hash, "user_key": "", "at": 5, "auth": ""}});
        let event = parse(&passwd("alice")).unwrap();
        // root may change anyone, on the home peer.
        assert!(check_caller(0, &event, Some(&alice(None)), HOME, &[]).is_ok());
        // The account's own uid may; another may not, whatever its name.
        assert!(check_caller(1_003_000_001, &event, Some(&alice(None)), HOME, &[]).is_ok());
        let err = check_caller(60_001, &event, Some(&alice(None)), HOME, &[]).unwrap_err();
        assert!(err.contains("only its own account"), "{err}");
        assert!(
            check_caller(0, &event, None, HOME, &[])
                .unwrap_err()
                .contains("no account")
        );
        // Elsewhere than home, only with the user's signature.
        let err = check_caller(1_003_000_001, &event, Some(&alice(None)), OTHER, &[]).unwrap_err();
        assert!(err.contains("no peer would take this change"), "{err}");
        let key = authority::derive_user_key("alice", "pw").unwrap();
        let signed = authority::sign(event, &key);
        let held = alice(Some(authority::public_key(&key)));
        assert!(check_caller(1_003_000_001, &signed, Some(&held), OTHER, &[]).is_ok());
        let created = json!({"event": "account.created", "data": {}});
        assert!(parse(&created).unwrap_err().contains("cannot be asked"));
        let extra = json!({"event": "account.keys", "data": {"name": "alice", "ssh_keys": [], "at": 5, "auth": ""}, "x": 1});
        assert!(parse(&extra).unwrap_err().contains("unknown member"));
        let bad = json!({"event": "account.password", "data": {"name": "alice", "password_hash": "pw", "user_key": "", "at": 5, "auth": ""}});
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn a_creation_request_names_no_number() {
        let data = json!({"name": "alice", "shell": "/bin/sh"});
        let (got, dry) = parse_create(&json!({"event": "account.created", "data": data})).unwrap();
        assert_eq!(Value::Object(got), data);
        assert!(!dry);
        let (_, dry) =
            parse_create(&json!({"event": "account.created", "data": data, "dry_run": true}))
                .unwrap();
        assert!(dry);
        for (request, why) in [
            (
                json!({"event": "account.created", "data": {"name": "a", "uid_number": 0}}),
                "names no number",
            ),
            (
                json!({"event": "account.created", "data": {"name": "a", "gid_number": 0}}),
                "names no number",
            ),
            (
                json!({"event": "account.created", "data": data, "dry_run": 1}),
                "not a boolean",
            ),
            (
                json!({"event": "account.created", "data": data, "uid": 0}),
                "unknown member",
            ),
            (json!({"event": "account.created"}), "lacks `data`"),
            (json!([1]), "not an object"),
        ] {
            let err = parse_create(&request).unwrap_err();
            assert!(err.contains(why), "{request}: {err}");
        }
    }

    #[test]
    fn each_uid_gets_its_share() {
        let mut rate = Rate::default();
        let t = std::time::Instant::now();
        for _ in 0..PER_UID {
            assert!(rate.allow(1000, t));
        }
        assert!(!rate.allow(1000, t));
        assert!(rate.allow(1001, t), "another uid has its own share");
        assert!(rate.allow(0, t), "root is not counted");
        assert!(rate.allow(1000, t + RATE_WINDOW), "a new window");
    }
}
