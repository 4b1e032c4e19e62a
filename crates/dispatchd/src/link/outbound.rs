//! The outbound task of one peer: connect, start an Olm session if there is
//! none, send the outbox in batches of [`BATCH`](super::BATCH) and remove what
//! the peer acknowledged. One batch in flight; on failure, jittered
//! exponential backoff from 1 s to 60 s, cut short as soon as anything
//! authenticated is heard from that peer.

use std::{collections::HashSet, sync::Arc, time::Duration};

use center_proto::{Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp};
use serde_json::{Value, json};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::Notify,
    time::Instant,
};

use super::{
    BATCH, Crypto, Links,
    wire::{self, FrameReader, write_frame},
};
use crate::peer::{self, Verified, seal_gpg, seal_gpg_plus_batch};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envelopes sealed (and their session saved) together within a batch.
const CHUNK: usize = 10;
/// How long the peer may take to answer a key request or a batch.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Lifetime of the session-setup and acknowledgement envelopes.
const CONTROL_TTL: Duration = Duration::from_secs(300);

/// Runs for as long as dispatchd does.
pub(super) async fn run(links: Arc<Links>, peer: PeerId, wake: Arc<Notify>) {
    let mut backoff = Duration::ZERO;
    loop {
        while links.store().depth(peer).unwrap_or(0) == 0 {
            wake.notified().await;
        }
        match deliver(&links, peer).await {
            Ok(()) => {
                backoff = Duration::ZERO;
                links.set_status(peer, true, backoff);
            }
            Err(reason) => {
                backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                let delay = backoff.mul_f64(rand::random_range(0.8..1.4));
                tracing::warn!(%peer, reason, retry_in = ?delay, "cannot deliver to peer");
                links.set_status(peer, false, backoff);
                let until = Instant::now() + delay;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break,
                        () = wake.notified() => {
                            // New work does not cut the wait; hearing from the peer does.
                            if links.status(peer).0.backoff.is_zero() {
                                backoff = Duration::ZERO;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One connection's worth of delivery; returns when the outbox is empty.
async fn deliver(links: &Arc<Links>, peer: PeerId) -> Result<(), String> {
    let address = links
        .roster()
        .get(&peer)
        .map(|p| p.description.address().to_owned())
        .ok_or_else(|| "the peer is no longer in the roster".to_owned())?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect(links, &address))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, wire::IDLE);
    let me = links.me();

    if !links.crypto().sessions.has_session(&peer) {
        let request = control(peer::KEY_REQUEST, me, peer, json!({}))?;
        let frame =
            seal_gpg(&links.crypto().identity, peer, &request).map_err(|err| err.to_string())?;
        write_frame(&mut write, &frame.to_body())
            .await
            .map_err(|err| err.to_string())?;
        let answer = expect(links, &mut reader, peer, peer::KEY_ANSWER).await?;
        let otk = answer.envelope.data["one_time_key"]
            .as_str()
            .ok_or("key answer without one_time_key")?;
        let keys = links
            .keys(&peer)
            .ok_or("the peer is no longer in the roster")?;
        let mut crypto = links.crypto();
        let Crypto {
            identity, sessions, ..
        } = &mut *crypto;
        sessions
            .start_outbound(identity, &keys, otk)
            .map_err(|err| err.to_string())?;
        tracing::info!(%peer, "olm session started");
    }

    loop {
        let now = Timestamp::now();
        let (batch, dropped) = links
            .store()
            .pending(peer, BATCH, now)
            .map_err(|err| err.to_string())?;
        if dropped > 0 {
            tracing::warn!(%peer, dropped, "direct messages expired before delivery and were dropped");
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut waiting = HashSet::new();
        let mut envelopes = Vec::with_capacity(batch.len());
        for item in &batch {
            match Envelope::parse(&item.envelope, now, &Limits::DEFAULT) {
                Ok(envelope) => {
                    envelopes.push(envelope);
                    waiting.insert(super::store::digest(&item.envelope));
                }
                Err(err) => {
                    // Cannot happen for what the broker queued; never retry it forever.
                    tracing::error!(%peer, error = %err, "dropping an unreadable queued message");
                    let digest = super::store::digest(&item.envelope);
                    links
                        .store()
                        .acknowledged(peer, &[digest])
                        .map_err(|err| err.to_string())?;
                }
            }
        }
        // Sealed and sent a chunk at a time (one session save per chunk,
        // before any of it leaves), so the peer opens the first chunk while
        // this side seals the next; still one batch, one acknowledgement.
        for chunk in envelopes.chunks(CHUNK) {
            let frames = {
                let mut crypto = links.crypto();
                let Crypto {
                    identity, sessions, ..
                } = &mut *crypto;
                seal_gpg_plus_batch(identity, sessions, peer, chunk)
                    .map_err(|err| err.to_string())?
            };
            for frame in &frames {
                write_frame(&mut write, &frame.to_body())
                    .await
                    .map_err(|err| err.to_string())?;
            }
        }
        while !waiting.is_empty() {
            let ack = expect(links, &mut reader, peer, peer::ACK).await?;
            let received: Vec<String> = match &ack.envelope.data["received"] {
                Value::Array(items) => items
                    .iter()
                    .take(2 * BATCH)
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect(),
                _ => return Err("acknowledgement without `received`".to_owned()),
            };
            for digest in &received {
                waiting.remove(digest);
            }
            links
                .store()
                .acknowledged(peer, &received)
                .map_err(|err| err.to_string())?;
        }
    }
}

/// Connects from this peer's own address when it is an IP (so the other side
/// sees who is calling, as it would between machines), else from any.
async fn connect(links: &Links, address: &str) -> std::io::Result<TcpStream> {
    let target = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = links
        .local_ip()
        .filter(|ip| ip.is_ipv4() == target.is_ipv4())
    {
        socket.bind(std::net::SocketAddr::new(local, 0))?;
    }
    socket.connect(target).await
}

/// Reads frames until one opens to an envelope named `wanted`.
async fn expect(
    links: &Arc<Links>,
    reader: &mut FrameReader,
    peer: PeerId,
    wanted: &str,
) -> Result<Verified, String> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let body = tokio::time::timeout_at(deadline, reader.next())
            .await
            .map_err(|_| format!("no `{wanted}` from the peer within {ANSWER_TIMEOUT:?}"))?
            .map_err(|err| err.to_string())?;
        let opened = links.open_frame(&body, Some(peer), Timestamp::now(), peer::SaveSessions::Now);
        match opened {
            Ok(verified) if verified.envelope.name.as_str() == wanted => {
                links.heard_from(peer);
                return Ok(verified);
            }
            Ok(other) => {
                tracing::warn!(%peer, name = other.envelope.name.as_str(), "unexpected frame on an outbound link")
            }
            Err(refusal) if refusal.closes_connection() => return Err(refusal.to_string()),
            Err(refusal) => tracing::warn!(%peer, %refusal, "frame dropped"),
        }
    }
}

/// A session-control envelope (key request, acknowledgement).
pub(super) fn control(
    name: &str,
    from: PeerId,
    to: PeerId,
    data: Value,
) -> Result<Envelope, String> {
    let iat = Timestamp::now();
    Ok(Envelope {
        name: EventName::parse(name).map_err(|err| err.to_string())?,
        meta: Meta {
            from,
            to: Destination::Peer(to),
            iat,
            exp: iat.saturating_add(CONTROL_TTL),
        },
        data,
    })
}
