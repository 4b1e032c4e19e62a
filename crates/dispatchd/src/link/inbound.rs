//! The peer listener: accepts TCP connections. A connection whose first
//! frame is `NEW` (a join request) is rate-limited per source address,
//! checked, handed to the local bus for the membership service, and closed;
//! any other must open with a signed hello and becomes the peer's connection
//! ([`conn`]), where each frame gets CEP 5's checks: a refusal at the frame,
//! sender or signature steps closes it with a logged reason, a later refusal
//! drops only the frame.
//!
//! Bounds (CEP 5, "Bounds"): at most [`MAX_CONNECTIONS`] connections, of
//! which [`MAX_PER_IP`] from one source address, before any hello; `NEW`
//! frames are kept on the bus for [`NEW_LIFE`] at most, and no more than
//! [`MAX_NEW_KEPT`] of them at once (further ones are refused until some
//! expire).

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use center_proto::{Limits, PeerId, Timestamp, peer_frame::PeerFrame};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::Instant,
};

use super::{Links, conn, lock, quiet::Quiet, wire::WireError};
use crate::bus::Broker;

/// Simultaneous peer connections.
const MAX_CONNECTIONS: usize = 256;
/// Of them, connections that have not yet proved (by their hellos) that a
/// roster peer speaks: the rest, 64, stay for roster peers, whatever
/// unauthenticated hosts hold.
const MAX_UNAUTHENTICATED: usize = 192;
/// Simultaneous connections from one source address, at most: a single
/// host cannot take every slot while its hellos time out.
const MAX_PER_IP: usize = 8;
/// How long a join request (`NEW`) is kept for the membership service, at
/// most, whatever its own `exp` says.
const NEW_LIFE: Duration = Duration::from_secs(3600);
/// Join requests kept at once, at most, from all sources together.
const MAX_NEW_KEPT: u64 = 256;
/// `NEW` frames accepted per source address per window, and the window.
const NEW_PER_ADDRESS: u32 = 5;
const NEW_WINDOW: Duration = Duration::from_secs(3600);
/// Source addresses tracked for the `NEW` limit (older windows are forgotten).
const NEW_TRACKED: usize = 4096;

/// Accepts peer connections until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    links: Arc<Links>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let unauthenticated = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let per_ip = crate::slots::Slots::<IpAddr>::new(MAX_PER_IP);
    let new_limit = Arc::new(Mutex::new(HashMap::<IpAddr, (Instant, u32)>::new()));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::error!(error = %err, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = per_ip.take(remote.ip()) else {
            if let Some(skipped) = PER_IP_FULL.allow() {
                tracing::warn!(%remote, max = MAX_PER_IP, lines_left_out = skipped,
                    "peer connection refused: too many connections from this address");
            }
            continue;
        };
        let (Ok(permit), Ok(pending)) = (
            permits.clone().try_acquire_owned(),
            unauthenticated.clone().try_acquire_owned(),
        ) else {
            if let Some(skipped) = ALL_FULL.allow() {
                tracing::warn!(%remote, lines_left_out = skipped,
                    "peer connection refused: too many connections (or too many not yet authenticated)");
            }
            continue;
        };
        let (links, broker, new_limit) = (links.clone(), broker.clone(), new_limit.clone());
        tokio::spawn(async move {
            let reason = handle(stream, remote, &links, &broker, &new_limit, pending).await;
            tracing::info!(%remote, reason, "peer connection closed");
            drop(permit);
            drop(slot);
        });
    }
}

static PER_IP_FULL: Quiet = Quiet::new();
static ALL_FULL: Quiet = Quiet::new();

async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    links: &Arc<Links>,
    broker: &Broker,
    new_limit: &Mutex<HashMap<IpAddr, (Instant, u32)>>,
    pending: tokio::sync::OwnedSemaphorePermit,
) -> String {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = conn::first_reader(read);
    let first = match reader.next().await {
        Ok(body) => body,
        Err(WireError::Closed) => return "closed by the peer".to_owned(),
        Err(err) => {
            tracing::warn!(%remote, error = %err, "peer connection refused");
            return err.to_string();
        }
    };
    if is_new_frame(&first) {
        // Over the per-address limit: dropped unparsed, and not logged
        // line by line, so a flood costs little and floods nothing.
        if admit_new(new_limit, remote.ip()) {
            hand_new_to_bus(&first, remote, links.me(), broker);
        }
        return "NEW frame".to_owned();
    }
    if let Some(reason) = super::join::accept_welcome(&first, remote, links, broker) {
        return reason;
    }
    conn::accepted(links, remote, reader, write, &first, pending).await
}

/// Checks a join request and hands it to the local bus, where the
/// membership service and the sysadmin decide; the dispatcher never acts on
/// it. The connection closes after it either way.
fn hand_new_to_bus(body: &[u8], remote: SocketAddr, me: PeerId, broker: &Broker) {
    let checked = PeerFrame::parse(body)
        .map_err(|err| err.to_string())
        .and_then(|frame| {
            if frame.to() == me {
                frame
                    .new_peer_request(Timestamp::now(), &Limits::DEFAULT)
                    .map_err(|err| err.to_string())
            } else {
                Err(format!("it is for {}, not for this peer", frame.to()))
            }
        });
    static FULL: Quiet = Quiet::new();
    let keep_until = Timestamp::now().saturating_add(NEW_LIFE);
    match checked {
        Ok(envelope) => match broker.deliver_join_request(&envelope, keep_until, MAX_NEW_KEPT) {
            Ok(true) => {
                tracing::info!(%remote, from = %envelope.meta.from, "join request (NEW) handed to the bus")
            }
            Ok(false) => {
                if let Some(skipped) = FULL.allow() {
                    tracing::warn!(%remote, max = MAX_NEW_KEPT, lines_left_out = skipped,
                        "join request (NEW) refused: as many as are kept wait already");
                }
            }
            Err(err) => {
                tracing::error!(%remote, error = err.as_str(), "join request (NEW) not kept")
            }
        },
        Err(reason) => tracing::warn!(%remote, reason, "join request (NEW) refused"),
    }
}

/// Whether a body is a `NEW` frame, by its `prefix` member only (the frame
/// is not parsed further before the rate limit).
fn is_new_frame(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("prefix").and_then(|p| p.as_str()).map(|p| p == "NEW"))
        .unwrap_or(false)
}

/// Counts a `NEW` frame from `ip`; false once it is over its limit.
fn admit_new(limit: &Mutex<HashMap<IpAddr, (Instant, u32)>>, ip: IpAddr) -> bool {
    let mut limit = lock(limit);
    let now = Instant::now();
    if limit.len() >= NEW_TRACKED {
        limit.retain(|_, (start, _)| now.duration_since(*start) < NEW_WINDOW);
    }
    if limit.len() >= NEW_TRACKED {
        return false;
    }
    let entry = limit.entry(ip).or_insert((now, 0));
    if now.duration_since(entry.0) >= NEW_WINDOW {
        *entry = (now, 0);
    }
    entry.1 += 1;
    entry.1 <= NEW_PER_ADDRESS
}
