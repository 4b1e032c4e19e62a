//! The async bus client: connect, subscribe, publish, next event, and the
//! sysadmin's grant, roster and feed operations.
//!
//! A `Client` survives broker restarts: when the connection drops it
//! reconnects with jittered exponential backoff, says `hello` again and
//! sends every `subscribe` it had sent, with the same `start`, so a service
//! needs no reconnect loop of its own. It acknowledges each kept direct
//! message (`ack`) and each feed event (`feed-ack`) when the caller asks
//! for the next event, so what a crash interrupts comes again. Refusals by
//! policy (`not-approved`, `out-of-grant`, …) are never retried; they come
//! back as [`BusError::Refused`] at once.
//!
//! Ownership: each connection has one reader task that owns the socket's read
//! half and forwards decoded replies into a bounded channel; the `Client`
//! owns the write half and the receiving end. Dropping the `Client` drops the
//! write half and the receiver, which ends the reader task. So
//! `next_delivery` is cancel-safe (it only receives from a channel) and
//! memory is bounded by the channel capacity plus [`MAX_BUFFERED_EVENTS`].

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use center_proto::{Envelope, Limits, PeerId, Timestamp};
use serde_json::Value;
use tokio::{
    io::AsyncWriteExt,
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
};

use crate::{
    AdminOp, ErrorCode, FeedPosition, FeedStatus, Grant, Pattern, PeerEntry, Reply, Request, Start,
    StatusReport,
    frame::{FrameError, encode_frame, read_frame},
    wire::PROTOCOL_VERSION,
};

/// Events received while waiting for a reply are kept up to this many; past
/// it the connection is treated as broken (the broker would have disconnected
/// us as a slow subscriber anyway).
pub const MAX_BUFFERED_EVENTS: usize = 4096;

/// The largest frame any broker may send (the cap on `bus.max_frame_bytes`).
const BROKER_MAX_FRAME: u32 = 16 << 20;

/// Replies read ahead of the caller per connection.
const READ_AHEAD: usize = 256;

/// How to reach the bus and who we are.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The bus socket, `bus.socket` in the peer's config.
    pub socket: PathBuf,
    /// The service name this process speaks for; the sysadmin approved it for
    /// our Unix account (root may use any name).
    pub service: String,
    /// How long to keep trying to connect or reconnect before giving up;
    /// `None` tries forever (what a daemon wants).
    pub reconnect_for: Option<Duration>,
}

/// What the broker told us in its `welcome`: identity as the kernel sees it.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub service: String,
    pub uid: u32,
    pub pid: i32,
    /// The UUID of the peer this bus belongs to.
    pub peer: PeerId,
    pub max_frame: u32,
    pub receive: Vec<Pattern>,
    pub send: Vec<Pattern>,
}

/// What a sysadmin operation answered (empty lists where it says nothing).
#[derive(Debug, Clone, Default)]
pub struct AdminReply {
    pub grants: Vec<Grant>,
    pub peers: Vec<PeerEntry>,
    /// Present in the answer to `feed-status` only.
    pub feeds: Option<FeedStatus>,
    /// The document answering `peer-descriptions` or `dht-record`.
    pub value: Option<Value>,
    /// Present in the answer to `status` only.
    pub status: Option<StatusReport>,
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The event name (CEP 2 grammar).
    pub name: String,
    /// The payload; must be a JSON object.
    pub data: Value,
    /// A direct message to this peer. `None` is a feed event (CEP 6):
    /// appended to this peer's feed, replicated to every peer, durable;
    /// or, with `local`, a broadcast to this peer's subscribers only.
    pub to: Option<PeerId>,
    /// Lifetime; the broker's default when `None`. Feed events never
    /// expire whatever it says.
    pub ttl: Option<Duration>,
    /// Without `to`: deliver to this peer's current subscribers only and
    /// keep it nowhere (the broker refuses it together with `to`).
    pub local: bool,
}

impl Publish {
    /// A feed event (CEP 6): signed into this peer's feed, replicated to
    /// every peer.
    pub fn feed(name: impl Into<String>, data: Value) -> Publish {
        Publish {
            name: name.into(),
            data,
            to: None,
            ttl: None,
            local: false,
        }
    }

    /// A broadcast to this peer's current subscribers only, kept nowhere.
    pub fn local(name: impl Into<String>, data: Value) -> Publish {
        Publish {
            local: true,
            ..Publish::feed(name, data)
        }
    }

    /// A direct message to one peer (CEP 5), with the broker's default
    /// lifetime.
    pub fn direct(to: PeerId, name: impl Into<String>, data: Value) -> Publish {
        Publish {
            to: Some(to),
            ..Publish::feed(name, data)
        }
    }
}

/// One event handed to the subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope: Envelope,
    /// Where it sits in the feeds, for a feed event: apply each
    /// (origin, seq) once, since an event not acknowledged comes again.
    pub feed: Option<FeedPosition>,
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker refused by policy; retrying will not help.
    #[error("{message} ({code})")]
    Refused { code: ErrorCode, message: String },
    /// No connection could be made (or remade) in the allowed time.
    #[error("cannot reach the bus at {socket}: {reason} (is dispatchd running?)")]
    Unreachable { socket: PathBuf, reason: String },
    /// The broker sent something this client does not understand.
    #[error("bus protocol error: {0}")]
    Protocol(String),
}

/// A connection to the local bus that reconnects by itself.
pub struct Client {
    config: ClientConfig,
    conn: Option<Conn>,
    welcome: Welcome,
    /// Every subscription made so far, in order, sent again after a
    /// reconnect.
    subscriptions: Vec<Subscription>,
    /// Events that arrived while we waited for a reply.
    buffered: VecDeque<Incoming>,
    /// What the last event handed out needs acknowledged, sent when the
    /// next one is asked for (so a crash in between means it comes again).
    unacked: Option<Pending>,
    next_id: u64,
}

/// One `subscribe` as it was sent.
struct Subscription {
    patterns: Vec<Pattern>,
    start: Start,
}

/// An event received and not yet handed out.
struct Incoming {
    delivery: Delivery,
    ack: Option<Pending>,
}

/// The acknowledgement an event handed out is owed.
#[derive(Debug)]
enum Pending {
    /// A kept direct message: `ack` (cumulative).
    Direct(u64),
    /// A feed event: `feed-ack` for its origin.
    Feed(FeedPosition),
}

struct Conn {
    writer: OwnedWriteHalf,
    /// Fed by this connection's reader task; closed when the socket is.
    replies: mpsc::Receiver<Result<Reply, String>>,
    max_frame: u32,
}

enum Attempt<T> {
    Done(T),
    /// The connection broke; reconnect and try again.
    Retry(String),
}

impl Client {
    /// Connects and says hello, retrying for `config.reconnect_for`.
    pub async fn connect(config: ClientConfig) -> Result<Client, BusError> {
        let deadline = config.reconnect_for.map(|d| Instant::now() + d);
        let (conn, welcome) = establish(&config, deadline).await?;
        Ok(Client {
            config,
            conn: Some(conn),
            welcome,
            subscriptions: Vec::new(),
            buffered: VecDeque::new(),
            unacked: None,
            next_id: 1,
        })
    }

    /// What the broker said about us on the current connection.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Subscribes to more event names. Fails with `out-of-grant` if the grant
    /// does not cover a pattern; nothing is subscribed then. A subscriber
    /// (this uid and service) new to the feeds starts at the oldest event
    /// this peer retains; see [`Client::subscribe_with`].
    pub async fn subscribe(&mut self, patterns: Vec<Pattern>) -> Result<(), BusError> {
        self.subscribe_with(patterns, Start::Oldest).await
    }

    /// Subscribes to more event names, saying where in the feeds a
    /// subscriber that never subscribed before starts (CEP 6); afterwards
    /// its cursors decide and `start` changes nothing.
    pub async fn subscribe_with(
        &mut self,
        patterns: Vec<Pattern>,
        start: Start,
    ) -> Result<(), BusError> {
        loop {
            let id = self.fresh_id();
            let request = Request::Subscribe {
                id,
                patterns: patterns.clone(),
                start,
            };
            match self.request(&request, id).await? {
                Attempt::Done(_) => break,
                Attempt::Retry(reason) => self.reconnect(&reason).await?,
            }
        }
        self.subscriptions.push(Subscription { patterns, start });
        Ok(())
    }

    /// Publishes an event and waits for the broker's acknowledgement (for a
    /// feed event, once it is on disk). If the connection breaks before the
    /// acknowledgement, the event is sent again on the next connection:
    /// delivery is at least once, and a feed event may be appended twice.
    pub async fn publish(&mut self, publish: Publish) -> Result<(), BusError> {
        loop {
            let id = self.fresh_id();
            let request = Request::Publish {
                id,
                name: publish.name.clone(),
                data: publish.data.clone(),
                to: publish.to.map(|peer| peer.to_string()),
                ttl_ms: publish
                    .ttl
                    .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
                local: publish.local,
            };
            match self.request(&request, id).await? {
                Attempt::Done(_) => return Ok(()),
                Attempt::Retry(reason) => self.reconnect(&reason).await?,
            }
        }
    }

    /// Runs a sysadmin operation (root only; others get `not-root`).
    pub async fn admin(&mut self, op: AdminOp) -> Result<AdminReply, BusError> {
        loop {
            let id = self.fresh_id();
            match self
                .request(&Request::Admin { id, op: op.clone() }, id)
                .await?
            {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Retry(reason) => self.reconnect(&reason).await?,
            }
        }
    }

    /// The next event for this subscriber, without where it sits in the
    /// feeds; see [`Client::next_delivery`].
    pub async fn next_event(&mut self) -> Result<Envelope, BusError> {
        Ok(self.next_delivery().await?.envelope)
    }

    /// The next event for this subscriber, with its feed position if it is
    /// a feed event. Asking for it acknowledges the previous one (kept
    /// direct messages and feed events come again until then).
    /// Cancel-safe while it waits for an event.
    pub async fn next_delivery(&mut self) -> Result<Delivery, BusError> {
        self.ack().await;
        loop {
            if let Some(incoming) = self.buffered.pop_front() {
                self.unacked = incoming.ack;
                return Ok(incoming.delivery);
            }
            let step = match self.conn.as_mut() {
                None => Attempt::Retry("not connected".to_owned()),
                Some(conn) => match conn.replies.recv().await {
                    None => Attempt::Retry("connection closed".to_owned()),
                    Some(Err(reason)) => Attempt::Retry(reason),
                    Some(Ok(Reply::Event { event, seq, feed })) => {
                        Attempt::Done(incoming(event, seq, feed)?)
                    }
                    Some(Ok(Reply::Error {
                        id: None,
                        code,
                        message,
                    })) => connection_error(code, message)?,
                    Some(Ok(other)) => {
                        return Err(BusError::Protocol(format!(
                            "unexpected frame while waiting for events: {other:?}"
                        )));
                    }
                },
            };
            match step {
                Attempt::Done(incoming) => {
                    self.unacked = incoming.ack;
                    return Ok(incoming.delivery);
                }
                Attempt::Retry(reason) => self.reconnect(&reason).await?,
            }
        }
    }

    /// Acknowledges the last event handed out, if it needs it: `ack` for a
    /// kept direct message, `feed-ack` for a feed event. A lost
    /// acknowledgement only means the event comes again after a reconnect.
    pub async fn ack(&mut self) {
        let (Some(pending), Some(conn)) = (self.unacked.take(), self.conn.as_mut()) else {
            return;
        };
        let request = match pending {
            Pending::Direct(seq) => Request::Ack { seq },
            Pending::Feed(FeedPosition { origin, seq }) => Request::FeedAck { origin, seq },
        };
        if let Ok(frame) = encode_frame(&request.to_bytes()) {
            let _ = conn.writer.write_all(&frame).await;
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends one request and waits for its reply, buffering events.
    async fn request(
        &mut self,
        request: &Request,
        id: u64,
    ) -> Result<Attempt<AdminReply>, BusError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Attempt::Retry("not connected".to_owned()));
        };
        let body = request.to_bytes();
        if body.len() > conn.max_frame as usize {
            return Err(BusError::Refused {
                code: ErrorCode::Oversize,
                message: format!(
                    "request of {} bytes is over the bus limit of {} bytes",
                    body.len(),
                    conn.max_frame
                ),
            });
        }
        let frame = encode_frame(&body).map_err(|err| BusError::Protocol(err.to_string()))?;
        if let Err(err) = conn.writer.write_all(&frame).await {
            return Ok(Attempt::Retry(format!("write failed: {err}")));
        }
        loop {
            match conn.replies.recv().await {
                None => return Ok(Attempt::Retry("connection closed".to_owned())),
                Some(Err(reason)) => return Ok(Attempt::Retry(reason)),
                Some(Ok(Reply::Ok {
                    id: got,
                    grants,
                    peers,
                    feeds,
                    value,
                    status,
                })) if got == id => {
                    return Ok(Attempt::Done(AdminReply {
                        grants: grants.unwrap_or_default(),
                        peers: peers.unwrap_or_default(),
                        feeds,
                        value,
                        status: status.map(|status| *status),
                    }));
                }
                Some(Ok(Reply::Error {
                    id: Some(got),
                    code,
                    message,
                })) if got == id => {
                    return Err(BusError::Refused { code, message });
                }
                Some(Ok(Reply::Error {
                    id: None,
                    code,
                    message,
                })) => return connection_error(code, message),
                Some(Ok(Reply::Event { event, seq, feed })) => {
                    if self.buffered.len() >= MAX_BUFFERED_EVENTS {
                        return Ok(Attempt::Retry(
                            "too many events buffered while waiting for a reply".to_owned(),
                        ));
                    }
                    self.buffered.push_back(incoming(event, seq, feed)?);
                }
                Some(Ok(other)) => {
                    return Err(BusError::Protocol(format!(
                        "unexpected frame while waiting for reply {id}: {other:?}"
                    )));
                }
            }
        }
    }

    /// Drops the broken connection and makes a new one, sending every
    /// subscription again, in order, each with its own `start`.
    async fn reconnect(&mut self, reason: &str) -> Result<(), BusError> {
        tracing::warn!(socket = %self.config.socket.display(), reason, "bus connection lost; reconnecting");
        self.conn = None;
        // What was not acknowledged comes again on the new connection.
        self.unacked = None;
        let deadline = self.config.reconnect_for.map(|d| Instant::now() + d);
        'connect: loop {
            let (conn, welcome) = establish(&self.config, deadline).await?;
            self.conn = Some(conn);
            self.welcome = welcome;
            for index in 0..self.subscriptions.len() {
                let id = self.fresh_id();
                let request = Request::Subscribe {
                    id,
                    patterns: self.subscriptions[index].patterns.clone(),
                    start: self.subscriptions[index].start,
                };
                if let Attempt::Retry(reason) = self.request(&request, id).await? {
                    tracing::warn!(reason, "bus connection lost while re-subscribing");
                    self.conn = None;
                    continue 'connect;
                }
            }
            return Ok(());
        }
    }
}

/// An error frame without an id is about the whole connection.
fn connection_error<T>(code: ErrorCode, message: String) -> Result<Attempt<T>, BusError> {
    if code.is_permanent() {
        Err(BusError::Refused { code, message })
    } else {
        Ok(Attempt::Retry(format!(
            "broker closed the connection: {message}"
        )))
    }
}

/// Checks an event frame's contents and notes what it must be acknowledged
/// with.
fn incoming(
    event: Value,
    seq: Option<u64>,
    feed: Option<FeedPosition>,
) -> Result<Incoming, BusError> {
    let ack = match (seq, &feed) {
        (None, None) => None,
        (Some(seq), None) => Some(Pending::Direct(seq)),
        (None, Some(position)) => Some(Pending::Feed(position.clone())),
        (Some(_), Some(_)) => {
            return Err(BusError::Protocol(
                "broker sent an event with both `seq` and `feed`".to_owned(),
            ));
        }
    };
    // Expired events are not an error here: the broker decides what to
    // deliver, and a feed event's `exp` means nothing (feeds never expire;
    // catching up delivers events long past it).
    let limits = match feed {
        // `iat` is the origin's claim, not checked against our clock (CEP 6).
        Some(_) => Limits {
            max_skew: Duration::MAX,
            ..Limits::DEFAULT
        },
        None => Limits::DEFAULT,
    };
    let envelope = Envelope::from_value(event, Timestamp::now(), &limits)
        .map_err(|err| BusError::Protocol(format!("broker sent an invalid envelope: {err}")))?;
    Ok(Incoming {
        delivery: Delivery { envelope, feed },
        ack,
    })
}

/// Connects and says hello, retrying with backoff until `deadline`.
async fn establish(
    config: &ClientConfig,
    deadline: Option<Instant>,
) -> Result<(Conn, Welcome), BusError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match try_establish(config).await {
            Ok(done) => return Ok(done),
            Err(Fail::Final(err)) => return Err(err),
            Err(Fail::Transient(reason)) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(BusError::Unreachable {
                        socket: config.socket.clone(),
                        reason,
                    });
                }
                tracing::debug!(reason, ?delay, "bus not reachable yet");
                let jittered = delay.mul_f64(rand::random_range(0.8..1.2));
                let wait =
                    deadline.map_or(jittered, |d| jittered.min(d.saturating_duration_since(now)));
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

enum Fail {
    Final(BusError),
    Transient(String),
}

async fn try_establish(config: &ClientConfig) -> Result<(Conn, Welcome), Fail> {
    let stream = UnixStream::connect(&config.socket)
        .await
        .map_err(|err| Fail::Transient(err.to_string()))?;
    let (reader, mut writer) = stream.into_split();
    let hello = Request::Hello {
        service: config.service.clone(),
        protocol: PROTOCOL_VERSION,
    };
    let frame = encode_frame(&hello.to_bytes())
        .map_err(|err| Fail::Final(BusError::Protocol(err.to_string())))?;
    writer
        .write_all(&frame)
        .await
        .map_err(|err| Fail::Transient(err.to_string()))?;
    let (tx, mut replies) = mpsc::channel(READ_AHEAD);
    tokio::spawn(read_replies(reader, tx));
    let welcome = match replies.recv().await {
        None => {
            return Err(Fail::Transient(
                "connection closed before welcome".to_owned(),
            ));
        }
        Some(Err(reason)) => return Err(Fail::Transient(reason)),
        Some(Ok(Reply::Welcome {
            service,
            uid,
            pid,
            peer,
            max_frame,
            receive,
            send,
        })) => {
            let peer = peer.parse().map_err(|err| {
                Fail::Final(BusError::Protocol(format!(
                    "broker sent a bad peer id: {err}"
                )))
            })?;
            Welcome {
                service,
                uid,
                pid,
                peer,
                max_frame,
                receive,
                send,
            }
        }
        Some(Ok(Reply::Error { code, message, .. })) if code.is_permanent() => {
            return Err(Fail::Final(BusError::Refused { code, message }));
        }
        Some(Ok(Reply::Error { message, .. })) => return Err(Fail::Transient(message)),
        Some(Ok(other)) => {
            return Err(Fail::Final(BusError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))));
        }
    };
    let max_frame = welcome.max_frame;
    Ok((
        Conn {
            writer,
            replies,
            max_frame,
        },
        welcome,
    ))
}

/// The reader task of one connection: decodes frames until the socket closes
/// or the `Client` drops the receiver.
async fn read_replies(mut reader: OwnedReadHalf, tx: mpsc::Sender<Result<Reply, String>>) {
    loop {
        // Any frame up to the largest limit a broker can be configured with
        // (`bus.max_frame_bytes`, at most 16 MiB) is accepted; the task
        // starts before the welcome that says the broker's own limit.
        let item = match read_frame(&mut reader, BROKER_MAX_FRAME).await {
            Ok(body) => serde_json::from_slice::<Reply>(&body)
                .map_err(|err| format!("undecodable frame from broker: {err}")),
            Err(FrameError::Closed) => Err("connection closed".to_owned()),
            Err(err) => Err(err.to_string()),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}
