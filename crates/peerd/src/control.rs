//! peerd's control socket: one JSON request line, one JSON answer line per
//! connection ([`center_bus::membership`]). Only root and peerd's own
//! account may speak (the kernel's `SO_PEERCRED` says who does); a request
//! that does not parse gets an answer saying why and changes nothing.

use std::{path::Path, sync::Arc, time::Duration};

use center_bus::membership::{ControlReply, ControlRequest, MAX_CONTROL_LINE};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::Peerd;

/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket, replacing a stale one, mode 0600.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!("cannot remove the old socket {}: {err}", path.display())
        }
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Answers control connections, one at a time per connection, forever.
pub async fn serve(listener: UnixListener, peerd: Arc<Peerd>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::error!(error = %err, "control accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peerd = peerd.clone();
        tokio::spawn(async move { answer(stream, &peerd).await });
    }
}

async fn answer(stream: UnixStream, peerd: &Peerd) {
    let me = nix::unistd::geteuid().as_raw();
    let reply = match getsockopt(&stream, PeerCredentials) {
        Err(err) => ControlReply::failed(format!("cannot tell who is asking: {err}")),
        Ok(creds) if creds.uid() != 0 && creds.uid() != me => {
            tracing::warn!(uid = creds.uid(), "control request refused: not root");
            ControlReply::failed("only root may manage this peer's membership")
        }
        Ok(creds) => {
            let (read, mut write) = stream.into_split();
            let reply = match read_request(read).await {
                Ok(request) => {
                    tracing::debug!(uid = creds.uid(), ?request, "control request");
                    peerd.control(request).await
                }
                Err(reason) => ControlReply::failed(reason),
            };
            write_reply(&mut write, &reply).await;
            return;
        }
    };
    let (_, mut write) = stream.into_split();
    write_reply(&mut write, &reply).await;
}

async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<ControlRequest, String> {
    let mut line = Vec::new();
    let limited = BufReader::new(read.take(MAX_CONTROL_LINE as u64 + 1));
    let mut limited = limited;
    tokio::time::timeout(REQUEST_TIMEOUT, limited.read_until(b'\n', &mut line))
        .await
        .map_err(|_| "the request did not arrive in time".to_owned())?
        .map_err(|err| format!("cannot read the request: {err}"))?;
    if line.len() > MAX_CONTROL_LINE {
        return Err(format!("a request is at most {MAX_CONTROL_LINE} bytes"));
    }
    serde_json::from_slice(&line).map_err(|err| format!("bad request: {err}"))
}

async fn write_reply(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &ControlReply) {
    let mut bytes = serde_json::to_vec(reply).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
    let _ = write.shutdown().await;
}
