//! The outbound task of one peer: use the connection to it (or dial one),
//! make sure there is an Olm session, send the outbox in batches of
//! [`BATCH`](super::BATCH) and wait until the peer acknowledged each. One
//! batch in flight; on failure, jittered exponential backoff from 1 s to
//! 60 s, cut short as soon as anything authenticated is heard from that peer.

use std::{collections::HashSet, sync::Arc, time::Duration};

use center_proto::{Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp};
use serde_json::Value;
use tokio::time::Instant;

use super::{
    BATCH, Crypto, Links, Signals,
    conn::{self, ConnHandle},
    lock,
};
use crate::peer::seal_gpg_plus_batch;

/// Envelopes sealed together into one frame within a batch, at most.
const CHUNK: usize = 10;
/// Bytes of envelopes sealed together into one frame, at most (one larger
/// envelope goes alone); well under the `GPG+` payload limit.
const CHUNK_BYTES: usize = 256 * 1024;
/// How long the peer may take to answer a key request or a batch.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The backoff from which a failure raises `peer.unreachable` on the bus.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Lifetime of the session-setup and acknowledgement envelopes.
const CONTROL_TTL: Duration = Duration::from_secs(300);

/// Runs for as long as dispatchd does, or until the peer leaves the
/// roster: keeps a connection to the peer (the feeds flow over it, CEP 6)
/// and delivers the outbox over it.
pub(super) async fn run(links: Arc<Links>, peer: PeerId, signals: Arc<Signals>) {
    let mut backoff = Duration::ZERO;
    loop {
        {
            // Under the roster lock, so a peer added back meanwhile gets a
            // task of its own (`Links::signals` finds no entry and spawns).
            let roster = links.roster();
            if roster.get(&peer).is_none() {
                lock(&links.signals).remove(&peer);
                drop(roster);
                tracing::info!(%peer, "no longer in the roster; not connecting");
                return;
            }
        }
        match deliver(&links, peer, &signals).await {
            Ok(conn) => {
                backoff = Duration::ZERO;
                links.set_status(peer, true, backoff);
                // Until there is new work or the connection goes.
                tokio::select! {
                    () = signals.work.notified() => {}
                    () = conn.closed() => {}
                }
            }
            Err(reason) => {
                backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                let delay = backoff.mul_f64(rand::random_range(0.8..1.4));
                tracing::warn!(%peer, reason, retry_in = ?delay, "cannot reach peer");
                links.set_status(peer, false, backoff);
                // After a few failures, peerd may know a newer address
                // (the DHT, CEP 7): tell it.
                if backoff >= UNREACHABLE_AFTER {
                    links.unreachable(peer, &reason);
                }
                let until = Instant::now() + delay;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break,
                        () = signals.work.notified() => {
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

/// Sends the outbox over the peer's connection (dialling it if there is
/// none) until it is empty; returns the connection.
async fn deliver(
    links: &Arc<Links>,
    peer: PeerId,
    signals: &Signals,
) -> Result<Arc<ConnHandle>, String> {
    let conn = match links.connection(peer) {
        Some(conn) => conn,
        None => conn::dial(links, peer).await?,
    };
    if links.store().depth(peer).map_err(|err| err.to_string())? == 0 {
        return Ok(conn);
    }
    conn::wait_for_session(links, peer, &conn, Some(ANSWER_TIMEOUT)).await?;
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
            return Ok(conn);
        }
        let mut waiting = HashSet::new();
        let mut envelopes = Vec::with_capacity(batch.len());
        let mut sizes = Vec::with_capacity(batch.len());
        for item in &batch {
            match Envelope::parse(&item.envelope, now, &Limits::DEFAULT) {
                Ok(envelope) => {
                    envelopes.push(envelope);
                    sizes.push(item.envelope.len());
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
        // Each chunk is one frame (one signature, one encryption, one
        // session save before it leaves), so the peer opens the first chunk
        // while this side seals the next; still one batch, one acknowledgement.
        let mut sessions = signals.session.subscribe();
        let mut sealed_with = None;
        for chunk in chunks(&envelopes, &sizes) {
            let frame = {
                let mut crypto = links.crypto();
                let Crypto {
                    identity, sessions, ..
                } = &mut *crypto;
                sealed_with = sessions.current_id(&peer);
                seal_gpg_plus_batch(identity, sessions, peer, chunk)
                    .map_err(|err| err.to_string())?
            };
            conn.send(frame.to_body()).await?;
        }
        // The connection's reader removes what the peer acknowledges.
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let still = links
                .store()
                .still_queued(peer, &waiting)
                .map_err(|err| err.to_string())?;
            waiting.retain(|digest| still.contains(digest));
            if waiting.is_empty() {
                break;
            }
            tokio::select! {
                () = signals.acked.notified() => {}
                _ = sessions.changed() => {
                    // The peer could not open what we sealed and a new
                    // session replaced ours: what it dropped goes again.
                    if links.crypto().sessions.current_id(&peer) != sealed_with {
                        return Err("a new olm session replaced the one this batch was sealed with".to_owned());
                    }
                }
                () = conn.closed() => return Err("the connection closed before the peer acknowledged".to_owned()),
                () = tokio::time::sleep_until(deadline) => {
                    conn.close();
                    return Err(format!("no acknowledgement from the peer within {ANSWER_TIMEOUT:?}"));
                }
            }
        }
    }
}

/// Splits the envelopes of a batch into frames: at most [`CHUNK`] each and
/// [`CHUNK_BYTES`] of envelope bytes, never empty. `sizes` are their encoded
/// lengths.
fn chunks<'a>(envelopes: &'a [Envelope], sizes: &[usize]) -> Vec<&'a [Envelope]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, &size) in sizes.iter().take(envelopes.len()).enumerate() {
        if index > start && (index - start >= CHUNK || bytes + size > CHUNK_BYTES) {
            out.extend(envelopes.get(start..index));
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    out.extend(envelopes.get(start..).filter(|rest| !rest.is_empty()));
    out
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
