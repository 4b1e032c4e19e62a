//! The peer listener: accepts TCP connections from other dispatchers, opens
//! each frame with CEP 5's checks, answers key requests, hands direct
//! messages to local subscribers once (by digest, durably recorded) and
//! acknowledges them.
//!
//! A refusal at the frame, sender or signature steps closes the connection
//! with a logged reason; a later refusal drops only the frame. `NEW` frames
//! (join requests) are rate-limited per source address, checked, and handed
//! to the local bus for the membership service; nothing else happens on
//! their connection.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use center_proto::{
    Limits, PeerId, Timestamp,
    peer_frame::{PeerFrame, Prefix},
};
use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::Instant,
};

use super::{
    Crypto, Links, lock,
    outbound::control,
    store::digest,
    wire::{self, FrameReader, WireError, write_frame},
};
use crate::{
    bus::Broker,
    peer::{self, SaveSessions, seal_gpg, seal_gpg_plus},
};

/// Simultaneous peer connections.
const MAX_CONNECTIONS: usize = 256;
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "peer connection refused: too many connections");
            continue;
        };
        let (links, broker, new_limit) = (links.clone(), broker.clone(), new_limit.clone());
        tokio::spawn(async move {
            let reason = handle(stream, remote, &links, &broker, &new_limit).await;
            tracing::info!(%remote, reason, "peer connection closed");
            drop(permit);
        });
    }
}

async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    links: &Arc<Links>,
    broker: &Broker,
    new_limit: &Mutex<HashMap<IpAddr, (Instant, u32)>>,
) -> String {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, wire::IDLE);
    let mut connection_peer: Option<PeerId> = None;
    // Direct messages accepted and not yet acknowledged: (digest, exp).
    let mut unacked: Vec<(String, Timestamp)> = Vec::new();
    loop {
        let body = match reader.next().await {
            Ok(body) => body,
            Err(WireError::Closed) => return "closed by the peer".to_owned(),
            Err(err) => {
                tracing::warn!(%remote, peer = ?connection_peer, error = %err, "peer connection refused");
                return err.to_string();
            }
        };
        if is_new_frame(&body) {
            // Over the per-address limit: dropped unparsed, and not logged
            // line by line, so a flood costs little and floods nothing.
            if admit_new(new_limit, remote.ip()) {
                hand_new_to_bus(&body, remote, links.me(), broker);
            }
            return "NEW frame".to_owned();
        }
        let now = Timestamp::now();
        let opened = links.open_frame(
            &body,
            connection_peer,
            now,
            SaveSessions::BeforeAcknowledging,
        );
        let verified = match opened {
            Ok(verified) => verified,
            Err(refusal) => {
                tracing::warn!(%remote, peer = ?connection_peer, %refusal, "peer frame refused");
                if refusal.closes_connection() {
                    return refusal.to_string();
                }
                continue;
            }
        };
        let from = verified.envelope.meta.from;
        connection_peer = Some(from);
        links.heard_from(from);
        let name = verified.envelope.name.as_str();
        if verified.prefix == Prefix::Gpg && name == peer::KEY_REQUEST {
            if let Err(err) = answer_key_request(links, &mut write, from).await {
                return err;
            }
            continue;
        }
        if name.starts_with(peer::RESERVED_PREFIX) {
            tracing::warn!(%from, name, "unexpected session frame on an inbound connection; dropped");
            continue;
        }
        let Ok(bytes) = verified.envelope.canonical_bytes() else {
            continue;
        };
        let key = digest(&bytes);
        // Bound first: the store's lock must be released before the broker
        // takes its own locks (subscribers, then store).
        let seen = links.store().seen(from, &key);
        match seen {
            Ok(true) => {
                tracing::debug!(%from, "duplicate direct message; acknowledged again, not delivered")
            }
            Ok(false) => {
                if let Err(err) = broker.deliver_remote(&verified.envelope) {
                    // Not kept, so not acknowledged: the sender retries.
                    tracing::error!(%from, error = err.as_str(), "direct message not kept");
                    return err;
                }
            }
            Err(err) => return format!("store failed: {err}"),
        }
        unacked.push((key, verified.envelope.meta.exp));
        // Acknowledge once the frames already here are handled (a batch
        // arrives together), so a burst costs one acknowledgement.
        if (!reader.has_buffered() || unacked.len() >= super::BATCH)
            && let Err(err) = acknowledge(links, &mut write, from, &mut unacked).await
        {
            return err;
        }
    }
}

/// Records what was delivered, then tells the sender it may forget it.
async fn acknowledge(
    links: &Arc<Links>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    from: PeerId,
    unacked: &mut Vec<(String, Timestamp)>,
) -> Result<(), String> {
    links
        .store()
        .record(from, unacked, Timestamp::now())
        .map_err(|err| format!("store failed: {err}"))?;
    let received: Vec<&str> = unacked.iter().map(|(d, _)| d.as_str()).collect();
    let ack = control(peer::ACK, links.me(), from, json!({ "received": received }))?;
    let frame = {
        let mut crypto = links.crypto();
        let Crypto {
            identity, sessions, ..
        } = &mut *crypto;
        seal_gpg_plus(identity, sessions, from, &ack).map_err(|err| err.to_string())?
    };
    write_frame(write, &frame.to_body())
        .await
        .map_err(|err| err.to_string())?;
    unacked.clear();
    Ok(())
}

async fn answer_key_request(
    links: &Arc<Links>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    from: PeerId,
) -> Result<(), String> {
    let frame = {
        let mut crypto = links.crypto();
        let otk = crypto
            .identity
            .one_time_keys(1)
            .map_err(|err| err.to_string())?;
        let otk = otk.first().ok_or("no one-time key generated")?.clone();
        let answer = control(
            peer::KEY_ANSWER,
            links.me(),
            from,
            json!({ "one_time_key": otk }),
        )?;
        seal_gpg(&crypto.identity, from, &answer).map_err(|err| err.to_string())?
    };
    write_frame(write, &frame.to_body())
        .await
        .map_err(|err| err.to_string())
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
    match checked {
        Ok(envelope) => match broker.deliver_remote(&envelope) {
            Ok(()) => {
                tracing::info!(%remote, from = %envelope.meta.from, "join request (NEW) handed to the bus")
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
