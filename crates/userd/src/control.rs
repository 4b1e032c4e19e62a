//! The socket where a local user changes their own account (CEP 8): any
//! local user may connect; userd asks the kernel who they are
//! (`SO_PEERCRED`) and publishes the change only if it names the caller's
//! own account (root may name any). The password was hashed by the caller;
//! no password reaches this socket.
//!
//! One request per connection, one JSON line: `{"event": NAME, "data":
//! {...}}` with NAME `account.password` or `account.keys` and `data` as on
//! the feeds; one JSON line back: `{"ok": true}` or `{"error": TEXT}`.
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

use crate::account::{self, AccountEvent};

/// Longest request line.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most requests served at once; more wait to be accepted.
const MAX_CLIENTS: usize = 32;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the socket (a stale file is replaced), mode 0666: who may change
/// what is decided per request.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Serves requests until the task is aborted.
pub async fn serve(listener: UnixListener, bus: Client) {
    let bus = std::sync::Arc::new(Mutex::new(bus));
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let bus = bus.clone();
        tokio::spawn(async move {
            // Held until this request is answered.
            let _slot = slot;
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            let (reader, mut writer) = stream.into_split();
            let reply = match uid {
                Some(uid) => match read_request(reader).await {
                    Ok(value) => match decide(uid, &value) {
                        Ok(event) => publish(&bus, uid, &event).await,
                        Err(err) => Err(err),
                    },
                    Err(err) => Err(err),
                },
                None => Err("cannot tell who is asking".to_owned()),
            };
            let line = match reply {
                Ok(()) => json!({ "ok": true }),
                Err(error) => {
                    tracing::warn!(?uid, error, "account change refused");
                    json!({ "error": error })
                }
            };
            let _ = writer.write_all(format!("{line}\n").as_bytes()).await;
        });
    }
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

/// What the caller `uid` may publish: a password or key change of their
/// own account, read as strictly as every peer will read it.
pub fn decide(uid: u32, request: &Value) -> Result<AccountEvent, String> {
    let object = request.as_object().ok_or("the request is not an object")?;
    if object.keys().any(|k| k != "event" && k != "data") {
        return Err("the request has an unknown member".to_owned());
    }
    let name = object
        .get("event")
        .and_then(Value::as_str)
        .ok_or("the request lacks `event`")?;
    if name != account::PASSWORD && name != account::KEYS {
        return Err(format!(
            "`{}` cannot be asked for here",
            name.chars().take(64).collect::<String>()
        ));
    }
    let data = object.get("data").ok_or("the request lacks `data`")?;
    let event = AccountEvent::read(name, data).map_err(|e| e.to_string())?;
    let target = event.account().unwrap_or_default();
    if uid != 0 {
        let me = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        if me.as_deref() != Some(target) {
            return Err(format!(
                "uid {uid} may change only its own account ({}), not `{target}`",
                me.as_deref().unwrap_or("it has no name")
            ));
        }
    }
    Ok(event)
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
    let mut stream = UnixStream::connect(path)
        .await
        .with_context(|| format!("cannot reach userd at {} (is it running?)", path.display()))?;
    stream
        .write_all(format!("{}\n", json!({ "event": name, "data": data })).as_bytes())
        .await?;
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
        None if reply["ok"] == true => Ok(()),
        None => anyhow::bail!("userd answered something unexpected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_own_account_and_only_passwords_and_keys() {
        let hash = account::hash_password("x").unwrap();
        let passwd = |name: &str| json!({"event": "account.password", "data": {"name": name, "password_hash": hash}});
        // root may change anyone.
        assert!(decide(0, &passwd("alice")).is_ok());
        // uid 60001 has no name here: nobody's account is its own.
        assert!(
            decide(60_001, &passwd("alice"))
                .unwrap_err()
                .contains("only its own")
        );
        let created = json!({"event": "account.created", "data": {}});
        assert!(decide(0, &created).unwrap_err().contains("cannot be asked"));
        let extra =
            json!({"event": "account.keys", "data": {"name": "alice", "ssh_keys": []}, "x": 1});
        assert!(decide(0, &extra).unwrap_err().contains("unknown member"));
        let bad =
            json!({"event": "account.password", "data": {"name": "alice", "password_hash": "pw"}});
        assert!(decide(0, &bad).is_err());
    }
}
