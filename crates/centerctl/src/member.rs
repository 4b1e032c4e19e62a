//! `centerctl peer invite|join|requests|approve|reject|challenge|remove|
//! leave|excommunicate`: the membership commands (CEP 7), answered by
//! peerd over its control socket.
//!
//! The invitation's secret is written here, by root, into the newcomer's
//! sysadmin's home on this peer: a random SHA-256 value in a randomly named
//! file only that account can read, created without following links.

use std::{
    fs,
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use center_bus::membership::{ControlReply, ControlRequest, MAX_CONTROL_LINE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::{cli::Cli, output};

/// Sends one request to peerd and returns its answer, or its error.
async fn ask(cli: &Cli, request: &ControlRequest) -> anyhow::Result<ControlReply> {
    let config = center_config::Config::load(&cli.config)?;
    let path = &config.membership.control_socket;
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| format!("cannot reach peerd at {} (is it running?)", path.display()))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = Vec::new();
    BufReader::new(read.take(MAX_CONTROL_LINE as u64 + 1))
        .read_until(b'\n', &mut answer)
        .await?;
    let reply: ControlReply =
        serde_json::from_slice(&answer).context("peerd's answer is not understood")?;
    if !reply.ok {
        bail!(
            "{}",
            reply
                .error
                .as_deref()
                .unwrap_or("peerd refused without a reason")
        );
    }
    Ok(reply)
}

/// A command whose answer is one sentence.
pub async fn simple(cli: &Cli, request: ControlRequest) -> anyhow::Result<()> {
    let reply = ask(cli, &request).await?;
    if cli.json {
        output::json(&serde_json::to_value(&reply)?)?;
    } else if let Some(message) = reply.message {
        println!("{message}");
    }
    Ok(())
}

/// `peer invite --admin USER` (and `challenge`, with `for_peer`).
pub async fn invite(cli: &Cli, admin: &str, for_peer: Option<String>) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("only root can write an invitation into another account's home");
    }
    let config = center_config::Config::load(&cli.config)?;
    let description = crate::peer::this_peer(&config)?;
    let user = nix::unistd::User::from_name(admin)
        .with_context(|| format!("cannot look up account `{admin}`"))?
        .with_context(|| format!("there is no account `{admin}` on this peer"))?;
    let secret = random_hex(32)?;
    let secret = hex(&Sha256::digest(secret.as_bytes()));
    let file = format!("center-join-{}", random_hex(6)?);
    let path = user.dir.join(&file);
    write_secret(&path, &secret, user.uid.as_raw(), user.gid.as_raw())?;
    let request = ControlRequest::Invite {
        admin: admin.to_owned(),
        file: file.clone(),
        secret,
        for_peer: for_peer.clone(),
    };
    let reply = match ask(cli, &request).await {
        Ok(reply) => reply,
        Err(err) => {
            let _ = fs::remove_file(&path);
            return Err(err);
        }
    };
    let expires = reply
        .data
        .as_ref()
        .and_then(|d| d.get("expires"))
        .and_then(Value::as_u64)
        .unwrap_or_default();
    if cli.json {
        output::json(&serde_json::json!({
            "via": description.address(),
            "uuid": description.uuid().to_string(),
            "fingerprint": description.fingerprint(),
            "admin": admin,
            "secret_file": file,
            "path": path,
            "expires": expires,
        }))?;
        return Ok(());
    }
    println!(
        "invitation written to {} (readable by {admin} only)",
        path.display()
    );
    if let Some(peer) = for_peer {
        println!("it challenges the request of {peer}: its sysadmin joins again with this file");
    }
    println!(
        "the newcomer's sysadmin copies that file to the new peer, keeping its name, and runs there:"
    );
    println!(
        "  centerctl peer join --via {} --uuid {} --fingerprint {} --secret-file PATH/{file} --admin {admin}",
        description.address(),
        description.uuid(),
        description.fingerprint()
    );
    Ok(())
}

/// Creates `path` (never through a link, never over an existing file),
/// readable by its owner only, and gives it to `uid`.
fn write_secret(path: &Path, secret: &str, uid: u32, gid: u32) -> anyhow::Result<()> {
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    out.write_all(format!("{secret}\n").as_bytes())?;
    std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
        .with_context(|| format!("cannot give {} to uid {uid}", path.display()))?;
    out.sync_all()?;
    Ok(())
}

/// `peer challenge UUID`: a new invitation for the same account, bound to
/// that requester.
pub async fn challenge(cli: &Cli, uuid: &str) -> anyhow::Result<()> {
    let reply = ask(cli, &ControlRequest::Requests {}).await?;
    let admin = reply
        .data
        .as_ref()
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|r| r.get("uuid").and_then(Value::as_str) == Some(uuid))
        })
        .and_then(|r| r.get("admin").and_then(Value::as_str))
        .map(str::to_owned)
        .with_context(|| {
            format!("no join request from {uuid} waits (`centerctl peer requests`)")
        })?;
    invite(cli, &admin, Some(uuid.to_owned())).await
}

/// `peer join`.
pub async fn join(
    cli: &Cli,
    via: &str,
    uuid: &str,
    fingerprint: &str,
    secret_file: &PathBuf,
    admin: &str,
) -> anyhow::Result<()> {
    let name = secret_file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", secret_file.display()))?
        .to_owned();
    let mut text = String::new();
    fs::File::open(secret_file)
        .with_context(|| format!("cannot read {}", secret_file.display()))?
        .take(1024)
        .read_to_string(&mut text)
        .with_context(|| format!("{} is not text", secret_file.display()))?;
    let secret = text.trim().to_ascii_lowercase();
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} does not hold an invitation secret (64 hexadecimal characters)",
            secret_file.display()
        );
    }
    simple(
        cli,
        ControlRequest::Join {
            via: via.to_owned(),
            uuid: uuid.to_owned(),
            fingerprint: fingerprint.to_owned(),
            admin: admin.to_owned(),
            secret_file: name,
            secret,
        },
    )
    .await
}

/// `peer requests`.
pub async fn requests(cli: &Cli) -> anyhow::Result<()> {
    let reply = ask(cli, &ControlRequest::Requests {}).await?;
    let list = reply.data.unwrap_or(Value::Array(Vec::new()));
    if cli.json {
        return Ok(output::json(&list)?);
    }
    let now = output::now_ms();
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let description = r.get("description").cloned().unwrap_or_default();
            vec![
                text(r, "uuid"),
                text(&description, "name"),
                text(&description, "address"),
                text(&description, "fingerprint"),
                text(r, "source"),
                text(r, "admin"),
                r.get("proofs")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string(),
                output::ago(
                    now,
                    r.get("received").and_then(Value::as_u64).unwrap_or(now),
                ),
            ]
        })
        .collect();
    output::table(
        &[
            "UUID",
            "NAME",
            "ADDRESS",
            "FINGERPRINT",
            "SOURCE",
            "ADMIN",
            "PROOFS",
            "RECEIVED",
        ],
        &rows,
    )?;
    Ok(())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
