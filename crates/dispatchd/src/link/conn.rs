//! One connection to one peer, used both ways (CEP 5 "Connections").
//!
//! Either side may dial. Each side first proves who it is with a signed
//! `session.hello` that answers the other's fresh nonce: the dialer's hello
//! carries its nonce, the listener's answer echoes it and carries its own,
//! and the dialer's second hello echoes that (CEP 5, "Connections"), so a
//! recorded hello, replayed after a restart, opens nothing. Then the
//! connection is registered (one per peer pair,
//! see [`Links::register`]) and two tasks serve it: the writer sends what
//! the rest of dispatchd queues on the [`ConnHandle`] (control frames first)
//! and a signed `session.ping` every keepalive interval, whatever else
//! flows (CEP 7); the reader opens every frame and acts on it: heartbeats
//! (a ping is answered with a `session.pong` echoing its nonce, a pong gives
//! the round-trip time), acknowledgements, key requests and answers, and
//! direct messages, which it hands to the bus once each and acknowledges. A
//! connection that stays silent for three keepalive intervals is half-open
//! or dead and is closed.
//!
//! Olm sessions are only ever started by the peer with the lower UUID, from
//! a one-time key of the other: asked for with `session.key-request`, or
//! offered unasked by the higher peer when it needs a session. So two peers
//! that need a session at the same moment still make one.

use std::{
    collections::{HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use center_proto::{Envelope, PeerId, Timestamp, peer_frame::Prefix};
use serde_json::{Value, json};
use tokio::{
    net::{
        TcpSocket, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{mpsc, watch},
    time::{Instant, MissedTickBehavior},
};

use super::{
    BATCH, Crypto, Links, lock,
    outbound::control,
    quiet::Quiet,
    store::digest,
    wire::{self, FrameReader, WireError, write_frame},
};
use crate::peer::{self, Refusal, SaveSessions, Verified, seal_gpg, seal_gpg_plus};

/// Direct messages from one peer kept in the inbox (unexpired) at most;
/// past it, what the peer sends is neither kept nor acknowledged until
/// some expire, so its outbox holds them (CEP 5, "Bounds").
pub const MAX_INBOX_PER_PEER: u64 = 10_000;

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames of data queued for the writer (the sender waits for room).
const DATA_QUEUE: usize = 64;
/// Control frames queued for the writer; a peer that lets more pile up is
/// not reading, and its connection is closed.
const CONTROL_QUEUE: usize = 1024;
/// How often we may ask for (or offer) a one-time key, per peer.
const SETUP_PACE: Duration = Duration::from_secs(5);
/// How long a session we started may go unanswered before an offer from
/// the peer counts as a sign that it lost it.
const SETUP_GRACE: Duration = Duration::from_secs(30);
/// Heartbeats awaiting their answer, at most; an older one is forgotten.
const PINGS_OUT: usize = 4;
/// How often, at most, we answer a ping (each answer costs a signature).
const PONG_PACE: Duration = Duration::from_millis(250);
/// The longest nonce a heartbeat may carry (ours are 32 hex digits).
const MAX_NONCE: usize = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The handle the rest of dispatchd holds on a live connection.
pub(super) struct ConnHandle {
    pub id: u64,
    /// Who dialled: this peer or the other.
    pub dialer: PeerId,
    data: mpsc::Sender<Vec<u8>>,
    control: mpsc::Sender<Vec<u8>>,
    closed: watch::Sender<bool>,
    /// The feeds the peer last said it holds (CEP 6).
    pub frontier: watch::Sender<Option<super::feeds::TheirFrontier>>,
    /// Feed pages received and accepted on this connection.
    pages: AtomicU64,
    /// Heartbeats sent and not yet answered: (nonce, when sent), oldest
    /// first. Written by the writer task, read by the reader task.
    pings: Mutex<VecDeque<(String, Instant)>>,
    /// When the reader last answered a ping, to pace answers.
    last_pong: Mutex<Option<Instant>>,
}

impl ConnHandle {
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Closes the connection: both of its tasks stop.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Completes once the connection is closed.
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Queues a frame body of data, waiting for room.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        tokio::select! {
            sent = self.data.send(body) => sent.map_err(|_| "the connection closed".to_owned()),
            () = self.closed() => Err("the connection closed".to_owned()),
        }
    }

    /// Feed pages received and handled on this connection so far.
    pub fn pages_received(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// Whether the peer's frontier has arrived on this connection.
    pub fn has_frontier(&self) -> bool {
        self.frontier.borrow().is_some()
    }

    /// Remembers a heartbeat just sealed, to time its answer.
    fn ping_sent(&self, nonce: String) {
        let mut pings = lock(&self.pings);
        if pings.len() >= PINGS_OUT {
            pings.pop_front();
        }
        pings.push_back((nonce, Instant::now()));
    }

    /// The round-trip time of the heartbeat `nonce` answers, if we sent it
    /// and it is not answered yet; it and older ones are forgotten.
    fn pong_received(&self, nonce: &str) -> Option<Duration> {
        let mut pings = lock(&self.pings);
        let at = pings.iter().position(|(sent, _)| sent == nonce)?;
        let (_, sent) = pings.drain(..=at).next_back()?;
        Some(sent.elapsed())
    }

    /// Queues a control frame (acknowledgement, key, ping) without waiting.
    pub fn send_control(&self, body: Vec<u8>) -> Result<(), String> {
        self.control.try_send(body).map_err(|_| {
            self.close();
            "the peer is not reading; connection closed".to_owned()
        })
    }
}

/// Dials `peer`, proves who we are, and returns the connection to use (ours,
/// or the one the peer dialled if that one wins the tie-break).
pub(super) async fn dial(links: &Arc<Links>, peer: PeerId) -> Result<Arc<ConnHandle>, String> {
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
    let remote = stream
        .peer_addr()
        .map_err(|err| format!("connection to {address} failed: {err}"))?;
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, wire::HELLO_TIMEOUT);
    let ours = nonce();
    write_frame(&mut write, &hello(links, peer, &ours, None)?)
        .await
        .map_err(|err| err.to_string())?;
    let body = reader.next().await.map_err(|err| match err {
        WireError::Closed => "the peer closed the connection before its hello".to_owned(),
        err => err.to_string(),
    })?;
    let verified = open_hello(links, &body, Some(peer)).map_err(|refusal| refusal.to_string())?;
    if verified.prefix != Prefix::Gpg || verified.envelope.name.as_str() != peer::HELLO {
        return Err(format!(
            "the peer answered `{}` instead of a hello",
            verified.envelope.name.as_str()
        ));
    }
    if echo(&verified.envelope.data) != Some(ours.as_str()) {
        return Err("the peer's hello does not answer ours (no echo of our nonce)".to_owned());
    }
    let Some(theirs) = heartbeat_nonce(&verified.envelope.data) else {
        return Err("the peer's hello has no nonce to answer".to_owned());
    };
    write_frame(&mut write, &hello(links, peer, &nonce(), Some(theirs))?)
        .await
        .map_err(|err| err.to_string())?;
    links.heard_from(peer);
    let me = links.me();
    start(links, peer, me, remote, reader, write);
    links
        .connection(peer)
        .ok_or_else(|| "the connection closed right after it opened".to_owned())
}

/// Serves a connection the listener accepted, whose first frame was not a
/// `NEW` one; returns why it ended. The connection is registered only once
/// the dialer's second hello has echoed the nonce of our answer; then it
/// gives back its `unauthenticated` slot (CEP 5, "Bounds").
pub(super) async fn accepted(
    links: &Arc<Links>,
    remote: SocketAddr,
    mut reader: FrameReader,
    mut write: OwnedWriteHalf,
    first: &[u8],
    unauthenticated: tokio::sync::OwnedSemaphorePermit,
) -> String {
    let verified = match open_hello(links, first, None) {
        Ok(verified) => verified,
        Err(refusal) => {
            tracing::warn!(%remote, %refusal, "peer frame refused");
            return refusal.to_string();
        }
    };
    let peer = verified.envelope.meta.from;
    if verified.prefix != Prefix::Gpg || verified.envelope.name.as_str() != peer::HELLO {
        tracing::warn!(%remote, %peer, name = verified.envelope.name.as_str(), "a connection must open with a hello");
        return "the first frame was not a hello".to_owned();
    }
    let Some(theirs) = heartbeat_nonce(&verified.envelope.data) else {
        tracing::warn!(%remote, %peer, "hello refused: no nonce to answer");
        return "a hello without a nonce".to_owned();
    };
    let ours = nonce();
    let answer = match hello(links, peer, &ours, Some(theirs)) {
        Ok(answer) => answer,
        Err(err) => return err,
    };
    if let Err(err) = write_frame(&mut write, &answer).await {
        return err.to_string();
    }
    // The dialer's second hello, echoing our nonce: a replayed first hello
    // cannot produce it.
    let body = match reader.next().await {
        Ok(body) => body,
        Err(WireError::Closed) => return "closed by the peer before its second hello".to_owned(),
        Err(err) => {
            tracing::warn!(%remote, %peer, error = %err, "peer connection refused before its second hello");
            return err.to_string();
        }
    };
    let second = match links.open_frame(&body, Some(peer), Timestamp::now(), SaveSessions::Now) {
        Ok(second) => second,
        Err(refusal) => {
            tracing::warn!(%remote, %peer, %refusal, "peer frame refused");
            return refusal.to_string();
        }
    };
    if second.prefix != Prefix::Gpg
        || second.envelope.name.as_str() != peer::HELLO
        || echo(&second.envelope.data) != Some(ours.as_str())
    {
        tracing::warn!(%remote, %peer, name = second.envelope.name.as_str(),
            "hello refused: the second hello does not echo our nonce (a replayed hello?)");
        return "the second hello did not answer ours".to_owned();
    }
    // A roster peer speaks: it no longer holds a slot of the unproved.
    drop(unauthenticated);
    links.heard_from(peer);
    let conn = start(links, peer, peer, remote, reader, write);
    conn.closed().await;
    "closed".to_owned()
}

/// Registers a connection whose hellos were exchanged and starts its tasks.
fn start(
    links: &Arc<Links>,
    peer: PeerId,
    dialer: PeerId,
    remote: SocketAddr,
    mut reader: FrameReader,
    write: OwnedWriteHalf,
) -> Arc<ConnHandle> {
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let conn = Arc::new(ConnHandle {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        dialer,
        data,
        control,
        closed: watch::Sender::new(false),
        frontier: watch::Sender::new(None),
        pages: AtomicU64::new(0),
        pings: Mutex::new(VecDeque::new()),
        last_pong: Mutex::new(None),
    });
    reader.set_idle(links.keepalive * 3);
    if links.register(peer, &conn) {
        tracing::info!(%peer, %remote, dialled_by = %dialer, "peer connection up");
        tokio::spawn(super::feeds::sync(links.clone(), peer, conn.clone()));
    }
    tokio::spawn(write_loop(
        links.clone(),
        peer,
        conn.clone(),
        write,
        data_rx,
        control_rx,
    ));
    let (links, reading) = (links.clone(), conn.clone());
    tokio::spawn(async move {
        let reason = read_loop(&links, peer, &reading, reader).await;
        reading.close();
        links.unregister(peer, &reading);
        tracing::info!(%peer, %remote, reason, "peer connection closed");
    });
    conn
}

/// Sends what is queued, control first, and a heartbeat every keepalive
/// interval (the first at once, so the round-trip time is known early).
async fn write_loop(
    links: Arc<Links>,
    peer: PeerId,
    conn: Arc<ConnHandle>,
    mut write: OwnedWriteHalf,
    mut data: mpsc::Receiver<Vec<u8>>,
    mut control: mpsc::Receiver<Vec<u8>>,
) {
    let mut closed = conn.closed.subscribe();
    let mut heartbeat = tokio::time::interval(links.keepalive);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // The heartbeat comes before queued frames: it is due once per
        // interval, so it cannot starve them, and traffic cannot delay it.
        let body = tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => break,
            _ = heartbeat.tick() => match ping(&links, peer) {
                Ok((nonce, body)) => {
                    conn.ping_sent(nonce);
                    body
                }
                Err(err) => {
                    tracing::error!(%peer, error = err.as_str(), "cannot seal a heartbeat");
                    break;
                }
            },
            Some(body) = control.recv() => body,
            Some(body) = data.recv() => body,
        };
        if let Err(err) = write_frame(&mut write, &body).await {
            tracing::warn!(%peer, error = %err, "cannot write to the peer");
            break;
        }
    }
    conn.close();
}

/// Opens every frame from the peer and acts on it; returns why it stopped.
async fn read_loop(
    links: &Arc<Links>,
    peer: PeerId,
    conn: &ConnHandle,
    mut reader: FrameReader,
) -> String {
    let mut closed = conn.closed.subscribe();
    // Direct messages opened and not yet kept: (digest, envelope).
    let mut incoming: Vec<(String, Envelope)> = Vec::new();
    // Direct messages kept and not yet acknowledged: (digest, exp).
    let mut unacked: Vec<(String, Timestamp)> = Vec::new();
    loop {
        let body = tokio::select! {
            _ = closed.wait_for(|closed| *closed) => return "closed here".to_owned(),
            body = reader.next() => body,
        };
        let body = match body {
            Ok(body) => body,
            Err(WireError::Closed) => return "closed by the peer".to_owned(),
            Err(err) => {
                tracing::warn!(%peer, error = %err, "peer connection refused");
                return err.to_string();
            }
        };
        let opened = links.open_frame(
            &body,
            Some(peer),
            Timestamp::now(),
            SaveSessions::BeforeAcknowledging,
        );
        let verified = match opened {
            Ok(verified) => verified,
            Err(refusal) => {
                tracing::warn!(%peer, %refusal, "peer frame refused");
                if refusal.closes_connection() {
                    return refusal.to_string();
                }
                if matches!(refusal, Refusal::Decrypt { .. })
                    && let Err(err) = ask_for_session(links, peer, conn, true)
                {
                    return err;
                }
                continue;
            }
        };
        links.heard_from(peer);
        if verified.new_session {
            tracing::info!(%peer, "olm session started by the peer");
            links.session_appeared(peer);
        }
        let Verified { envelope, rest, .. } = verified;
        for envelope in std::iter::once(envelope).chain(rest) {
            let page = match handle(links, peer, conn, envelope, &mut incoming) {
                Ok(page) => page,
                Err(err) => return err,
            };
            if let Some(page) = page {
                // Counted once the page is stored, so that no frontier (the
                // periodic one included) claims a page its heads do not yet
                // reflect. Only this task writes the count.
                let pages = conn.pages_received() + 1;
                if let Err(err) = super::feeds::accept_page(links, peer, conn, &page, pages).await {
                    return err;
                }
                conn.pages.store(pages, Ordering::Relaxed);
            }
        }
        // Keep what arrived together in one commit, once the frames already
        // here are handled (a batch arrives together).
        if !incoming.is_empty()
            && (!reader.has_buffered() || incoming.len() >= BATCH)
            && let Err(err) = keep(links, peer, &mut incoming, &mut unacked)
        {
            return err;
        }
        // Acknowledge once the frames already here are handled (a batch
        // arrives together), so a burst costs one acknowledgement.
        if !unacked.is_empty()
            && (!reader.has_buffered() || unacked.len() >= BATCH)
            && let Err(err) = acknowledge(links, peer, conn, &mut unacked)
        {
            return err;
        }
    }
}

/// Acts on one envelope from the peer; direct messages wait in `incoming`
/// to be kept together, and a feed page is returned for the caller to
/// accept (off the runtime). Err closes the connection.
fn handle(
    links: &Arc<Links>,
    peer: PeerId,
    conn: &ConnHandle,
    envelope: Envelope,
    incoming: &mut Vec<(String, Envelope)>,
) -> Result<Option<Envelope>, String> {
    match envelope.name.as_str() {
        peer::HELLO => {}
        peer::PING => answer_ping(links, peer, conn, &envelope.data)?,
        peer::PONG => match heartbeat_nonce(&envelope.data).and_then(|n| conn.pong_received(n)) {
            Some(rtt) => links.record_rtt(peer, rtt),
            None => tracing::debug!(%peer, "answer to no heartbeat of ours; ignored"),
        },
        peer::EVENTS => return Ok(Some(envelope)),
        peer::FRONTIER => {
            static UNKNOWN: Quiet = Quiet::new();
            static MALFORMED: Quiet = Quiet::new();
            let Some(mut frontier) = super::feeds::parse_frontier(&envelope.data) else {
                if let Some(skipped) = MALFORMED.allow() {
                    tracing::warn!(%peer, lines_left_out = skipped, "malformed feed frontier; dropped");
                }
                return Ok(None);
            };
            // Only origins of the roster (departed ones up to their end
            // included) are recorded, compared or counted toward lag.
            let known = super::feeds::known_origins(links);
            let recorded = links.feeds().record_peer_frontier(
                peer,
                &frontier.heads,
                |origin| known.contains(origin),
                Timestamp::now(),
            );
            match recorded {
                Err(err) => {
                    tracing::error!(%peer, error = %err, "cannot record a peer's frontier")
                }
                Ok(ignored) if ignored > 0 => {
                    if let Some(skipped) = UNKNOWN.allow() {
                        tracing::warn!(
                            %peer,
                            ignored,
                            lines_left_out = skipped,
                            "frontier origins not in the roster ignored"
                        );
                    }
                }
                Ok(_) => {}
            }
            frontier.heads.retain(|origin, _| known.contains(origin));
            links.frontier_heard(peer);
            conn.frontier.send_replace(Some(frontier));
        }
        peer::KEY_REQUEST => answer_key_request(links, peer, conn, &envelope.data)?,
        peer::KEY_ANSWER => key_received(links, peer, conn, &envelope.data)?,
        peer::ACK => {
            let Value::Array(items) = &envelope.data["received"] else {
                tracing::warn!(%peer, "acknowledgement without `received`; dropped");
                return Ok(None);
            };
            let received: Vec<String> = items
                .iter()
                .take(2 * BATCH)
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect();
            links
                .store()
                .acknowledged(peer, &received)
                .map_err(|err| format!("store failed: {err}"))?;
            links.acked(peer);
        }
        name if name.starts_with(peer::RESERVED_PREFIX) => {
            tracing::warn!(%peer, name, "unknown session frame; dropped");
        }
        _ => {
            let bytes = envelope
                .canonical_bytes()
                .map_err(|err| format!("cannot encode a verified envelope: {err}"))?;
            incoming.push((digest(&bytes), envelope));
        }
    }
    Ok(None)
}

/// Hands the new ones among `incoming` to the bus in one commit (a message
/// the peer delivered before is not handed on again) and moves them to
/// `unacked`. Past the peer's inbox quota ([`MAX_INBOX_PER_PEER`] kept and
/// unexpired) the rest is neither kept nor acknowledged: the sender keeps
/// it and sends it again later. A message no local service could receive
/// is acknowledged and not kept. Err: they could not be kept, and are not
/// acknowledged, so the sender sends them again.
fn keep(
    links: &Links,
    peer: PeerId,
    incoming: &mut Vec<(String, Envelope)>,
    unacked: &mut Vec<(String, Timestamp)>,
) -> Result<(), String> {
    static OVER_QUOTA: Quiet = Quiet::new();
    static UNRECEIVABLE: Quiet = Quiet::new();
    let mut fresh = Vec::new();
    let mut delivered: Vec<(String, Timestamp)> = Vec::new();
    let mut refused = 0usize;
    {
        // Released before the broker takes its own locks (subscribers, then store).
        let store = links.store();
        let held = store
            .inbox_held(&peer.to_string(), Timestamp::now())
            .map_err(|err| format!("store failed: {err}"))?;
        let mut room = MAX_INBOX_PER_PEER.saturating_sub(held);
        let mut in_batch = HashSet::new();
        for (key, envelope) in incoming.iter() {
            if !in_batch.insert(key.as_str()) {
                continue;
            }
            if store
                .seen(peer, key)
                .map_err(|err| format!("store failed: {err}"))?
            {
                tracing::debug!(%peer, "duplicate direct message; acknowledged again, not delivered");
            } else if room == 0 {
                refused += 1;
                continue;
            } else {
                room -= 1;
                fresh.push(envelope.clone());
            }
            delivered.push((key.clone(), envelope.meta.exp));
        }
    }
    if refused > 0
        && let Some(skipped) = OVER_QUOTA.allow()
    {
        tracing::warn!(
            %peer,
            refused,
            quota = MAX_INBOX_PER_PEER,
            lines_left_out = skipped,
            "direct messages refused: the peer's inbox quota is full; not acknowledged, it sends them again later"
        );
    }
    if !fresh.is_empty() {
        let kept = match links.broker() {
            Some(broker) => broker.deliver_remote_batch(&fresh, peer, &delivered),
            None => Err("the bus is gone".to_owned()),
        };
        match kept {
            Err(err) => {
                tracing::error!(%peer, error = err.as_str(), "direct messages not kept");
                return Err(err);
            }
            Ok(dropped) if !dropped.is_empty() => {
                if let Some(skipped) = UNRECEIVABLE.allow() {
                    tracing::warn!(
                        %peer,
                        dropped = dropped.len(),
                        name = dropped.first().map_or("", String::as_str),
                        lines_left_out = skipped,
                        "direct messages dropped: no grant and no subscriber here receives them; acknowledged, not kept"
                    );
                }
            }
            Ok(_) => {}
        }
    }
    incoming.clear();
    unacked.extend(delivered);
    Ok(())
}

/// Tells the sender it may forget what was kept (and recorded with it).
fn acknowledge(
    links: &Links,
    peer: PeerId,
    conn: &ConnHandle,
    unacked: &mut Vec<(String, Timestamp)>,
) -> Result<(), String> {
    // At most a batch's worth of digests per acknowledgement, as the sender
    // reads no more than twice that.
    for piece in unacked.chunks(BATCH) {
        let received: Vec<&str> = piece.iter().map(|(d, _)| d.as_str()).collect();
        let ack = control(peer::ACK, links.me(), peer, json!({ "received": received }))?;
        // Sealing saves the peer's sessions, with the decryptions of what
        // this acknowledges.
        let frame = {
            let mut crypto = links.crypto();
            let Crypto {
                identity, sessions, ..
            } = &mut *crypto;
            seal_gpg_plus(identity, sessions, peer, &ack).map_err(|err| err.to_string())?
        };
        conn.send_control(frame.to_body())?;
    }
    unacked.clear();
    Ok(())
}

/// The nonce a hello echoes, if it has a sane one.
fn echo(data: &Value) -> Option<&str> {
    sane_nonce(data, "echo")
}

/// The nonce of a heartbeat's (or a hello's) data, if it has a sane one.
fn heartbeat_nonce(data: &Value) -> Option<&str> {
    sane_nonce(data, "nonce")
}

fn sane_nonce<'a>(data: &'a Value, member: &str) -> Option<&'a str> {
    data.get(member)
        .and_then(Value::as_str)
        .filter(|nonce| !nonce.is_empty() && nonce.len() <= MAX_NONCE)
}

/// Answers a heartbeat with a signed pong echoing its nonce, at most once
/// per [`PONG_PACE`] (a peer that pings faster gets fewer answers, not our
/// signing time).
fn answer_ping(links: &Links, peer: PeerId, conn: &ConnHandle, data: &Value) -> Result<(), String> {
    let Some(nonce) = heartbeat_nonce(data) else {
        tracing::debug!(%peer, "heartbeat without a usable nonce; not answered");
        return Ok(());
    };
    {
        let mut last = lock(&conn.last_pong);
        if last.is_some_and(|last| last.elapsed() < PONG_PACE) {
            tracing::debug!(%peer, "heartbeats too close together; this one not answered");
            return Ok(());
        }
        *last = Some(Instant::now());
    }
    let pong = control(peer::PONG, links.me(), peer, json!({ "nonce": nonce }))?;
    let body = seal_gpg(&links.crypto().identity, peer, &pong)
        .map_err(|err| err.to_string())?
        .to_body();
    conn.send_control(body)
}

/// Answers a key request with a fresh one-time key.
fn answer_key_request(
    links: &Links,
    peer: PeerId,
    conn: &ConnHandle,
    data: &Value,
) -> Result<(), String> {
    let Some(request) = data["request"].as_str().filter(|r| r.len() <= 64) else {
        tracing::warn!(%peer, "key request without a request id; dropped");
        return Ok(());
    };
    if links.me() < peer {
        tracing::warn!(%peer, "key request from the peer with the higher UUID; dropped (sessions are started by the lower)");
        return Ok(());
    }
    let body = offer(links, peer, Some(request), false)?;
    conn.send_control(body)
}

/// A one-time key arrived: start the session with it if we asked for it, or
/// if the peer offered it and has no usable session of ours.
fn key_received(
    links: &Arc<Links>,
    peer: PeerId,
    conn: &ConnHandle,
    data: &Value,
) -> Result<(), String> {
    if links.me() > peer {
        tracing::warn!(%peer, "one-time key from the peer with the lower UUID; dropped (it starts sessions, not us)");
        return Ok(());
    }
    let Some(otk) = data["one_time_key"].as_str() else {
        tracing::warn!(%peer, "key answer without one_time_key; dropped");
        return Ok(());
    };
    let unconfirmed = links.crypto().sessions.unconfirmed(&peer);
    {
        let mut setup = lock(&links.setup);
        let entry = setup.entry(peer).or_default();
        match data["request"].as_str() {
            Some(id) if entry.request.as_deref() == Some(id) => entry.request = None,
            Some(_) => {
                tracing::debug!(%peer, "answer to an older key request; ignored");
                return Ok(());
            }
            None if entry.request.is_some() => {
                tracing::debug!(%peer, "key offered while our own request is out; ignored");
                return Ok(());
            }
            // A renewal: the peer could not open what our session sent.
            None if data["renew"] == Value::Bool(true) => {}
            None => {
                let recent = entry
                    .started
                    .is_some_and(|started| started.elapsed() < SETUP_GRACE);
                if recent && unconfirmed {
                    tracing::debug!(%peer, "key offered while our new session is on its way; ignored");
                    return Ok(());
                }
            }
        }
        entry.started = Some(Instant::now());
    }
    let keys = links
        .keys(&peer)
        .ok_or("the peer is no longer in the roster")?;
    let frame = {
        let mut crypto = links.crypto();
        let Crypto {
            identity, sessions, ..
        } = &mut *crypto;
        sessions
            .start_outbound(identity, &keys, otk)
            .map_err(|err| err.to_string())?;
        // The first message tells the peer the session at once.
        let ping = control(peer::PING, links.me(), peer, json!({ "nonce": nonce() }))?;
        seal_gpg_plus(identity, sessions, peer, &ping).map_err(|err| err.to_string())?
    };
    tracing::info!(%peer, "olm session started");
    conn.send_control(frame.to_body())?;
    links.session_appeared(peer);
    Ok(())
}

/// Asks the peer for a session: a key request from the lower UUID, a key
/// offer from the higher. Paced per peer; `force` asks even if a session
/// exists (ours could not decrypt what the peer sent).
pub(super) fn ask_for_session(
    links: &Links,
    peer: PeerId,
    conn: &ConnHandle,
    force: bool,
) -> Result<(), String> {
    if !force && links.crypto().sessions.has_session(&peer) {
        return Ok(());
    }
    let request = {
        let mut setup = lock(&links.setup);
        let entry = setup.entry(peer).or_default();
        if entry
            .last_attempt
            .is_some_and(|last| last.elapsed() < SETUP_PACE)
        {
            return Ok(());
        }
        entry.last_attempt = Some(Instant::now());
        if links.me() < peer {
            let id = nonce();
            entry.request = Some(id.clone());
            Some(id)
        } else {
            None
        }
    };
    let body = match request {
        Some(id) => {
            let request = control(
                peer::KEY_REQUEST,
                links.me(),
                peer,
                json!({ "request": id }),
            )?;
            seal_gpg(&links.crypto().identity, peer, &request)
                .map_err(|err| err.to_string())?
                .to_body()
        }
        None => offer(links, peer, None, force)?,
    };
    tracing::info!(%peer, recovering = force, "asking the peer for an olm session");
    conn.send_control(body)
}

/// Waits until there is an Olm session with `peer`, asking for one (paced)
/// while there is not; `within` bounds the wait. Wakes when a session
/// appears, or to ask again.
pub(super) async fn wait_for_session(
    links: &Arc<Links>,
    peer: PeerId,
    conn: &ConnHandle,
    within: Option<Duration>,
) -> Result<(), String> {
    let mut appeared = links.signals(peer).session.subscribe();
    let deadline = within.map(|within| Instant::now() + within);
    loop {
        if links.crypto().sessions.has_session(&peer) {
            return Ok(());
        }
        ask_for_session(links, peer, conn, false)?;
        let retry = Instant::now() + SETUP_PACE;
        tokio::select! {
            _ = appeared.changed() => {}
            () = conn.closed() => return Err("the connection closed before a session was made".to_owned()),
            () = tokio::time::sleep_until(deadline.map_or(retry, |d| d.min(retry))) => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err("no olm session with the peer in time".to_owned());
        }
    }
}

/// A signed frame carrying a fresh one-time key of ours: the answer to
/// `request`, or an offer; `renew` says ours could not open what the
/// peer's current session sent, so it must start another.
fn offer(
    links: &Links,
    peer: PeerId,
    request: Option<&str>,
    renew: bool,
) -> Result<Vec<u8>, String> {
    let mut crypto = links.crypto();
    let otk = crypto
        .identity
        .one_time_keys(1)
        .map_err(|err| err.to_string())?
        .into_iter()
        .next()
        .ok_or("no one-time key generated")?;
    let answer = control(
        peer::KEY_ANSWER,
        links.me(),
        peer,
        json!({ "one_time_key": otk, "request": request, "renew": renew }),
    )?;
    Ok(seal_gpg(&crypto.identity, peer, &answer)
        .map_err(|err| err.to_string())?
        .to_body())
}

/// Our hello: a nonce, and our latest key rotations (CEP 7), which a peer
/// that has not yet switched needs to verify a hello signed by our new key.
fn hello(links: &Links, peer: PeerId, nonce: &str, echo: Option<&str>) -> Result<Vec<u8>, String> {
    let rotations = links.own_rotations();
    let mut data = json!({ "nonce": nonce });
    if let Some(echo) = echo {
        data["echo"] = json!(echo);
    }
    if !rotations.is_empty() {
        data["rotations"] = json!(rotations);
    }
    let envelope = control(peer::HELLO, links.me(), peer, data)?;
    Ok(seal_gpg(&links.crypto().identity, peer, &envelope)
        .map_err(|err| err.to_string())?
        .to_body())
}

/// Opens a hello; one whose signature fails gets a second chance after
/// the key rotations it carries are applied.
fn open_hello(
    links: &Arc<Links>,
    body: &[u8],
    connection_peer: Option<PeerId>,
) -> Result<Verified, Refusal> {
    match links.open_frame(body, connection_peer, Timestamp::now(), SaveSessions::Now) {
        Err(Refusal::Signature { .. }) if links.rotations_in_hello(body) => {
            links.open_frame(body, connection_peer, Timestamp::now(), SaveSessions::Now)
        }
        other => other,
    }
}

/// A heartbeat and its nonce.
fn ping(links: &Links, peer: PeerId) -> Result<(String, Vec<u8>), String> {
    let nonce = nonce();
    let body = signed_control(links, peer::PING, peer, nonce.clone())?;
    Ok((nonce, body))
}

/// A `GPG` frame of a control envelope with a fresh nonce (so no two are
/// alike and none trips the replay check).
fn signed_control(
    links: &Links,
    name: &str,
    peer: PeerId,
    nonce: String,
) -> Result<Vec<u8>, String> {
    let envelope = control(name, links.me(), peer, json!({ "nonce": nonce }))?;
    Ok(seal_gpg(&links.crypto().identity, peer, &envelope)
        .map_err(|err| err.to_string())?
        .to_body())
}

fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Connects from this peer's own address when it is an IP (so the other side
/// sees who is calling, as it would between machines), else from any.
pub(super) async fn connect(links: &Links, address: &str) -> std::io::Result<TcpStream> {
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

/// The reading half before the connection is registered (for the listener).
pub(super) fn first_reader(read: OwnedReadHalf) -> FrameReader {
    FrameReader::new(read, wire::HELLO_TIMEOUT)
}
