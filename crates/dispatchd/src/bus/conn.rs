//! One bus connection from accept to close: kernel credentials, hello, the
//! request loop, and the writer task.
//!
//! Ownership and shutdown: the accept loop owns the listener, a semaphore
//! of `max_connections` permits and the per-uid counts ([`MAX_PER_UID`]
//! connections for a uid other than root, asked of the kernel at accept,
//! so one local user cannot take every slot); each connection task holds a
//! permit and its uid's slot, the
//! read half, and the `JoinHandle` of its writer task. The writer owns the
//! write half, the receiving end of the connection's bounded queue and the
//! `kick` receiver. A connection ends when (a) the client closes or sends a
//! broken frame, (b) the broker kicks it (slow subscriber, grant change), or
//! (c) the writer fails. In every case the writer writes at most one last
//! error frame, with a short timeout, and closes; the reader notices the
//! writer's end and unregisters.

use std::{future::Future, sync::Arc, time::Duration};

use center_bus::{
    ErrorCode, Reply, Request,
    frame::{FrameError, encode_frame, read_frame},
    wire::PROTOCOL_VERSION,
};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream, unix::OwnedWriteHalf},
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
};

use super::{Answer, Broker, Outgoing};

/// How long a last error frame may take to leave before the socket is closed.
const LAST_WORDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections one uid other than root may hold at once (of
/// `max_connections`, 512 by default): services keep one or two each.
pub const MAX_PER_UID: usize = 32;

/// A hello is small; an unauthenticated connection gets no bigger buffer.
const HELLO_MAX_FRAME: u32 = 4096;

/// Who is on the other end, as the kernel says.
#[derive(Debug, Clone, Copy)]
struct Creds {
    uid: u32,
    pid: i32,
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    listener: UnixListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(broker.limits().max_connections));
    let per_uid = crate::slots::Slots::<u32>::new(MAX_PER_UID);
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors or memory: back off briefly instead of spinning.
                tracing::error!(error = %err, "bus accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        next_id += 1;
        // Who it is, before it may hold anything (root is not counted).
        let uid = getsockopt(&stream, PeerCredentials).map(|c| c.uid());
        let slot = match uid {
            Ok(0) | Err(_) => Ok(None),
            Ok(uid) => per_uid.take(uid).map(Some).ok_or(uid),
        };
        let refusal = match (slot, permits.clone().try_acquire_owned()) {
            (Ok(slot), Ok(permit)) => {
                let broker = broker.clone();
                tokio::spawn(async move {
                    handle(stream, next_id, &broker).await;
                    drop((permit, slot));
                });
                continue;
            }
            (Err(uid), _) => {
                tracing::warn!(
                    uid,
                    limit = MAX_PER_UID,
                    "bus connection refused: too many connections of this uid"
                );
                format!("uid {uid} holds {MAX_PER_UID} bus connections already; close some first")
            }
            (Ok(_), Err(_)) => {
                tracing::warn!(
                    limit = broker.limits().max_connections,
                    "bus connection refused: too many connections"
                );
                "the bus is at its connection limit; try again later".to_owned()
            }
        };
        tokio::spawn(async move {
            let (_, mut writer) = stream.into_split();
            last_words(
                &mut writer,
                Reply::Error {
                    id: None,
                    code: ErrorCode::TooManyConnections,
                    message: refusal,
                },
            )
            .await;
        });
    }
}

async fn handle(stream: UnixStream, id: u64, broker: &Broker) {
    let creds = match getsockopt(&stream, PeerCredentials) {
        Ok(cred) => Creds {
            uid: cred.uid(),
            pid: cred.pid(),
        },
        Err(err) => {
            tracing::warn!(error = %err, "bus connection without credentials closed");
            return;
        }
    };
    let limits = broker.limits().clone();
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);

    // Hello: the first frame, within the hello timeout.
    let hello = match tokio::time::timeout(
        limits.hello_timeout,
        read_frame(&mut reader, limits.max_frame.min(HELLO_MAX_FRAME)),
    )
    .await
    {
        Err(_) => Err((
            ErrorCode::Timeout,
            "no hello within the time allowed".to_owned(),
        )),
        Ok(Err(FrameError::Closed)) => {
            // Someone checking whether the socket is alive; nothing to refuse.
            tracing::debug!(
                uid = creds.uid,
                pid = creds.pid,
                "bus connection closed before hello"
            );
            return;
        }
        Ok(Ok(body)) => match decode_request(&body) {
            Ok(Request::Hello { service, protocol }) if protocol == PROTOCOL_VERSION => Ok(service),
            Ok(Request::Hello { protocol, .. }) => Err((
                ErrorCode::Protocol,
                format!(
                    "bus protocol {protocol} is not supported; this broker speaks {PROTOCOL_VERSION}"
                ),
            )),
            Ok(_) => Err((
                ErrorCode::Protocol,
                "the first frame must be hello".to_owned(),
            )),
            Err((code, message)) => Err((code, format!("bad hello: {message}"))),
        },
        Ok(Err(err)) => Err(frame_refusal(&err)),
    };
    let service = match hello.and_then(|service| {
        broker
            .rights(creds.uid, &service)
            .map(|rights| (service, rights))
    }) {
        Ok((service, rights)) => (service, rights),
        Err((code, message)) => {
            tracing::warn!(uid = creds.uid, pid = creds.pid, %code, reason = message.as_str(), "bus hello refused");
            last_words(
                &mut writer,
                Reply::Error {
                    id: None,
                    code,
                    message,
                },
            )
            .await;
            return;
        }
    };
    let (service, rights) = service;
    let (receive, send, membership) = (rights.receive, rights.send, rights.membership);

    let (queue, queue_rx) = mpsc::channel(limits.queue_depth);
    let (kick, kick_rx) = oneshot::channel();
    let welcome = Reply::Welcome {
        service: service.clone(),
        uid: creds.uid,
        pid: creds.pid,
        peer: broker.peer.to_string(),
        max_frame: limits.max_frame,
        receive: receive.clone(),
        send: send.clone(),
    };
    // The queue is empty, so this cannot fail.
    let _ = queue.try_send(Outgoing::Frame(Arc::new(
        encode_frame(&welcome.to_bytes()).unwrap_or_default(),
    )));
    broker.register(id, creds.uid, &service, receive, queue.clone(), kick);
    tracing::debug!(
        uid = creds.uid,
        pid = creds.pid,
        service,
        "bus client connected"
    );
    let mut writer_task: JoinHandle<()> = tokio::spawn(write_loop(writer, queue_rx, kick_rx));

    loop {
        // Waiting for the next frame may take forever (an idle subscriber);
        // once its first byte is here, the whole frame must follow in time.
        let started = tokio::select! {
            _ = &mut writer_task => break,
            started = reader.fill_buf() => started.map(|buf| !buf.is_empty()),
        };
        let body = match started {
            Ok(true) => tokio::select! {
                _ = &mut writer_task => break,
                read = tokio::time::timeout(limits.frame_timeout, read_frame(&mut reader, limits.max_frame)) => read,
            },
            Ok(false) | Err(_) => break,
        };
        let body = match body {
            Ok(Ok(body)) => body,
            Ok(Err(FrameError::Closed)) => break,
            Ok(Err(err)) => {
                // A framing problem: the stream can no longer be trusted.
                let (code, message) = frame_refusal(&err);
                tracing::warn!(uid = creds.uid, pid = creds.pid, service, %code, reason = message.as_str(), "bus connection closed");
                broker.kick_conn(id, code, message);
                let _ = (&mut writer_task).await;
                break;
            }
            Err(_) => {
                let message = "frame did not arrive in time".to_owned();
                tracing::warn!(
                    uid = creds.uid,
                    pid = creds.pid,
                    service,
                    reason = message.as_str(),
                    "bus connection closed"
                );
                broker.kick_conn(id, ErrorCode::Timeout, message);
                let _ = (&mut writer_task).await;
                break;
            }
        };
        // A kicked connection (grant revoked, too slow) acts on nothing more,
        // even while its last words are still being written.
        if !broker.is_live(id) {
            let _ = (&mut writer_task).await;
            break;
        }
        let reply = match dispatch(broker, id, creds, membership, &send, &body).await {
            // An acknowledgement has no answer.
            Ok(None) => continue,
            Ok(Some(reply)) => reply,
            Err((code, message)) => {
                tracing::warn!(uid = creds.uid, pid = creds.pid, service, %code, reason = message.as_str(), "bus request refused");
                Reply::Error {
                    id: request_id(&body),
                    code,
                    message,
                }
            }
        };
        if queue
            .try_send(Outgoing::Frame(Arc::new(
                encode_frame(&reply.to_bytes()).unwrap_or_default(),
            )))
            .is_err()
        {
            tracing::warn!(
                uid = creds.uid,
                pid = creds.pid,
                service,
                "client disconnected: it does not read its replies"
            );
            broker.kick_conn(
                id,
                ErrorCode::QueueFull,
                "disconnected: replies were waiting unread".to_owned(),
            );
        }
    }
    broker.unregister(id);
    drop(queue);
    writer_task.abort();
    tracing::debug!(uid = creds.uid, pid = creds.pid, service, "bus client gone");
}

/// Handles one request frame after hello. The sysadmin operations that
/// talk to another peer (a join's two messages) are awaited here: the
/// connection that asked waits for its answer, no other does.
async fn dispatch(
    broker: &Broker,
    conn: u64,
    creds: Creds,
    membership: bool,
    send: &[center_bus::Pattern],
    body: &[u8],
) -> Result<Option<Reply>, (ErrorCode, String)> {
    let request = decode_request(body)
        .map_err(|(code, message)| (code, format!("bad request: {message}")))?;
    match request {
        Request::Ack { seq } => {
            broker.ack(conn, seq);
            return Ok(None);
        }
        Request::FeedAck { origin, seq } => {
            broker.feed_ack(conn, &origin, seq);
            return Ok(None);
        }
        Request::Admin {
            id,
            op:
                op @ (center_bus::AdminOp::PeerJoin { .. } | center_bus::AdminOp::PeerWelcome { .. }),
        } if creds.uid == 0 || membership => return broker.admin_remote(id, op).await.map(Some),
        _ => {}
    }
    answer(broker, conn, creds, membership, send, request).map(Some)
}

/// Handles a request that is answered.
fn answer(
    broker: &Broker,
    conn: u64,
    creds: Creds,
    membership: bool,
    send: &[center_bus::Pattern],
    request: Request,
) -> Answer {
    match request {
        Request::Ack { .. } | Request::FeedAck { .. } => Err((
            ErrorCode::Internal,
            "acknowledgements have no answer".to_owned(),
        )),
        Request::Hello { .. } => Err((
            ErrorCode::Protocol,
            "hello was already said on this connection".to_owned(),
        )),
        Request::Subscribe {
            id,
            patterns,
            start,
        } => {
            broker.subscribe(conn, patterns, start)?;
            Ok(Reply::ok(id))
        }
        Request::Publish {
            id,
            name,
            data,
            to,
            ttl_ms,
            local,
        } => broker.publish(send, id, &name, data, to.as_deref(), ttl_ms, local),
        Request::Admin { op, .. } if creds.uid != 0 && !(membership && op.is_membership()) => {
            Err((
                ErrorCode::NotRoot,
                format!(
                    "only root may manage grants and the roster (this is uid {}); {}",
                    creds.uid,
                    admin_name(&op)
                ),
            ))
        }
        Request::Admin { id, op } => broker.admin(conn, id, op),
    }
}

fn admin_name(op: &center_bus::AdminOp) -> &'static str {
    match op {
        center_bus::AdminOp::Approve { .. } => "approve refused",
        center_bus::AdminOp::Revoke { .. } => "revoke refused",
        center_bus::AdminOp::List {} => "list refused",
        center_bus::AdminOp::PeerAdd { .. } => "peer add refused",
        center_bus::AdminOp::FeedStatus {} => "feed status refused",
        center_bus::AdminOp::FeedResolve { .. } => "feed resolve refused",
        center_bus::AdminOp::PeerList {} => "peer list refused",
        center_bus::AdminOp::PeerJoin { .. } => "peer join refused",
        center_bus::AdminOp::PeerWelcome { .. } => "peer welcome refused",
        center_bus::AdminOp::PeerRemove { .. } => "peer remove refused",
        center_bus::AdminOp::PeerDescriptions {} => "peer descriptions refused",
        center_bus::AdminOp::DhtRecord {} => "dht record refused",
        center_bus::AdminOp::PeerImport { .. } => "peer import refused",
        center_bus::AdminOp::HandOffTaken {} => "hand-off-taken refused",
        center_bus::AdminOp::Status {} => "status refused",
        center_bus::AdminOp::RotateKeys {} => "rotate keys refused",
    }
}

/// Decodes a request frame: a JSON object (serde would also take an array),
/// no duplicate keys, integers only (CEP 2's rules), then the typed request.
fn decode_request(body: &[u8]) -> Result<Request, (ErrorCode, String)> {
    let value = center_proto::parse_canonical_value(body)
        .map_err(|err| (ErrorCode::Malformed, err.to_string()))?;
    if !value.is_object() {
        return Err((
            ErrorCode::Malformed,
            "a frame must be a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|err| (ErrorCode::Malformed, err.to_string()))
}

/// The `id` of a request, if it has one, so a refusal can name it even when
/// the rest of the frame is unusable.
fn request_id(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("id")?
        .as_u64()
}

fn frame_refusal(err: &FrameError) -> (ErrorCode, String) {
    match err {
        FrameError::Oversize { .. } => (ErrorCode::Oversize, err.to_string()),
        _ => (ErrorCode::Malformed, err.to_string()),
    }
}

/// The writer task: sends queued frames in order until the queue closes or
/// the connection is kicked; a kick's error frame is the last thing written.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Outgoing>,
    mut kick: oneshot::Receiver<Reply>,
) {
    loop {
        let item = tokio::select! {
            biased;
            last = &mut kick => {
                if let Ok(reply) = last {
                    last_words(&mut writer, reply).await;
                }
                return;
            }
            item = queue.recv() => item,
        };
        let Some(Outgoing::Frame(frame)) = item else {
            break;
        };
        let mut write = std::pin::pin!(writer.write_all(&frame));
        tokio::select! {
            biased;
            last = &mut kick => {
                // Kicked in the middle of a frame: finish it if the client
                // reads within the grace time, so the last words are framed.
                let finished = tokio::time::timeout(LAST_WORDS_TIMEOUT, &mut write).await;
                if let (Ok(Ok(())), Ok(reply)) = (finished, last) {
                    last_words(&mut writer, reply).await;
                }
                return;
            }
            written = &mut write => if written.is_err() { return },
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes one last error frame, giving up after a short time, and closes.
async fn last_words(writer: &mut OwnedWriteHalf, reply: Reply) {
    if let Ok(frame) = encode_frame(&reply.to_bytes()) {
        let _ = tokio::time::timeout(LAST_WORDS_TIMEOUT, writer.write_all(&frame)).await;
    }
    let _ = tokio::time::timeout(LAST_WORDS_TIMEOUT, writer.shutdown()).await;
}
