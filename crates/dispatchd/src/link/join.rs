//! The dispatcher's part of a join (CEP 7): it carries the two one-shot
//! messages and decides nothing. The membership service (peerd) and the
//! sysadmins decide.
//!
//! - The newcomer sends `new-peer-server` in a `NEW` frame ([`send_request`]),
//!   with its description and the invitation's secret signed by its key. From
//!   then on it expects one answer from that peer, pinned by the fingerprint
//!   its sysadmin was given: the expectation is kept in `joins.json`, so it
//!   survives a restart.
//! - The approving peer sends `add-peer-server` in a `GPG` frame over a
//!   connection of its own ([`send_welcome`]), carrying its description.
//! - The newcomer accepts that frame although the sender is not in its
//!   roster yet ([`accept_welcome`]) only if an expectation names the sender,
//!   the description in it is valid, has the pinned fingerprint, and signed
//!   the frame. It then hands the envelope to the bus, where peerd adds the
//!   peer. Everything else is refused and logged, and changes nothing.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use center_identity::{PeerDescription, PeerKeys, statement};
use center_proto::{
    Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp,
    peer_frame::{self, Auth, PeerFrame, Prefix},
};
use serde_json::{Value, json};

use super::{Links, conn, lock, wire::write_frame};
use crate::{bus::Broker, durable, peer};

/// How long a join request (and the expectation of its answer) is valid:
/// the other sysadmin has this long to approve it.
pub const REQUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an `add-peer-server` is valid once sent.
const WELCOME_TTL: Duration = Duration::from_secs(3600);
/// Expectations kept at most (a sysadmin joins through a few peers).
const MAX_PENDING: usize = 64;

/// One answer this peer waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The OpenPGP fingerprint the answer must be signed with.
    pub fingerprint: String,
    /// Where the request went.
    pub address: String,
    /// Until when it is expected (ms).
    pub until: u64,
}

/// The answers this peer waits for, by the peer that will send them; on
/// disk in `joins.json`.
pub struct Pending {
    path: PathBuf,
    entries: BTreeMap<PeerId, Expected>,
}

impl Pending {
    /// No expectations and no file (a dispatcher built without one, in
    /// tests); recording one fails.
    pub fn none() -> Pending {
        Pending {
            path: PathBuf::new(),
            entries: BTreeMap::new(),
        }
    }

    /// Reads `dir/joins.json` (missing: none). A corrupt file is an error:
    /// the sysadmin removes it and asks again.
    pub fn open(dir: &Path) -> Result<Pending, String> {
        let path = dir.join("joins.json");
        let mut pending = Pending {
            path: path.clone(),
            entries: BTreeMap::new(),
        };
        let bytes = match std::fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(pending),
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
            Ok(bytes) => bytes,
        };
        let corrupt = |why: &str| {
            format!(
                "{} is corrupt ({why}); remove it and run `centerctl peer join` again",
                path.display()
            )
        };
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| corrupt("not json"))?;
        for (uuid, entry) in doc.as_object().ok_or_else(|| corrupt("not an object"))? {
            let uuid = uuid.parse::<PeerId>().map_err(|_| corrupt("bad uuid"))?;
            let text = |key: &str| {
                entry
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| corrupt("missing member"))
            };
            let until = entry
                .get("until")
                .and_then(Value::as_u64)
                .ok_or_else(|| corrupt("missing until"))?;
            pending.entries.insert(
                uuid,
                Expected {
                    fingerprint: text("fingerprint")?,
                    address: text("address")?,
                    until,
                },
            );
        }
        Ok(pending)
    }

    /// The expectation for `peer`, if it has not lapsed.
    pub fn get(&self, peer: &PeerId, now: Timestamp) -> Option<&Expected> {
        self.entries.get(peer).filter(|e| e.until > now.as_millis())
    }

    /// Records (or renews) an expectation; on disk when it returns.
    pub fn expect(&mut self, peer: PeerId, expected: Expected) -> Result<(), String> {
        let now = Timestamp::now().as_millis();
        let mut next = self.entries.clone();
        next.retain(|_, e| e.until > now);
        next.insert(peer, expected);
        if next.len() > MAX_PENDING {
            return Err(format!(
                "{MAX_PENDING} join requests already wait for an answer; wait for them to be answered or to lapse"
            ));
        }
        self.write(&next)?;
        self.entries = next;
        Ok(())
    }

    /// Forgets the expectation for `peer` (it is in the roster now).
    pub fn forget(&mut self, peer: &PeerId) -> Result<(), String> {
        if !self.entries.contains_key(peer) {
            return Ok(());
        }
        let mut next = self.entries.clone();
        next.remove(peer);
        self.write(&next)?;
        self.entries = next;
        Ok(())
    }

    fn write(&self, entries: &BTreeMap<PeerId, Expected>) -> Result<(), String> {
        let doc: serde_json::Map<String, Value> = entries
            .iter()
            .map(|(uuid, e)| {
                (
                    uuid.to_string(),
                    json!({ "fingerprint": e.fingerprint, "address": e.address, "until": e.until }),
                )
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default();
        durable::replace_file(&self.path, &bytes, 0o600)
            .map_err(|err| format!("cannot write {}: {err}", self.path.display()))
    }
}

/// What the newcomer's sysadmin gives to join through a peer.
#[derive(Debug, Clone)]
pub struct Request {
    pub address: String,
    pub uuid: PeerId,
    pub fingerprint: String,
    pub admin: String,
    pub secret_file: String,
    pub secret: String,
}

/// Sends `new-peer-server` to the peer at `request.address`, after
/// recording that its answer is expected. The connection carries this one
/// frame (CEP 5) and no reply.
pub async fn send_request(links: &Arc<Links>, request: Request) -> Result<(), String> {
    let me = links.me();
    if request.uuid == me {
        return Err("that is this peer's own uuid".to_owned());
    }
    if links.roster().get(&request.uuid).is_some() {
        return Err(format!(
            "peer {} is already in the roster; there is nothing to join",
            request.uuid
        ));
    }
    let now = Timestamp::now();
    let (description, signature) = {
        let crypto = links.crypto();
        let description = crypto
            .identity
            .describe()
            .map_err(|err| format!("cannot describe this peer: {err}"))?;
        let message = statement::join_secret(
            me,
            request.uuid,
            &request.admin,
            &request.secret_file,
            &request.secret,
        )
        .map_err(|err| err.to_string())?;
        let signature = crypto
            .identity
            .sign(&message)
            .map_err(|err| format!("cannot sign the secret: {err}"))?;
        (description, signature)
    };
    let envelope = Envelope {
        name: EventName::parse(peer::NEW_PEER_SERVER).map_err(|err| err.to_string())?,
        meta: Meta {
            from: me,
            to: Destination::Peer(request.uuid),
            iat: now,
            exp: now.saturating_add(REQUEST_TTL),
        },
        data: json!({
            "admin": request.admin,
            "secret_file": request.secret_file,
            "signature": statement::base64_encode(signature),
            "description": description.to_json(),
        }),
    };
    let payload = envelope.canonical_bytes().map_err(|err| err.to_string())?;
    let frame = PeerFrame::new(me, request.uuid, Auth::New, payload)
        .map_err(|err| format!("the request does not fit a NEW frame: {err}"))?;
    lock(&links.joins).expect(
        request.uuid,
        Expected {
            fingerprint: request.fingerprint.clone(),
            address: request.address.clone(),
            until: now.saturating_add(REQUEST_TTL).as_millis(),
        },
    )?;
    send_one(links, &request.address, &frame.to_body()).await?;
    tracing::info!(
        to = %request.uuid,
        address = request.address,
        fingerprint = request.fingerprint,
        "join request (new-peer-server) sent"
    );
    Ok(())
}

/// Sends `add-peer-server` to a peer of the roster (its join was approved
/// here), with this peer's description, over a connection of its own.
pub async fn send_welcome(links: &Arc<Links>, to: PeerId) -> Result<(), String> {
    let address = links
        .roster()
        .get(&to)
        .map(|p| p.description.address().to_owned())
        .ok_or_else(|| format!("peer {to} is not in the roster; approve its request first"))?;
    let frame = {
        let crypto = links.crypto();
        let description = crypto
            .identity
            .describe()
            .map_err(|err| format!("cannot describe this peer: {err}"))?;
        let now = Timestamp::now();
        let envelope = Envelope {
            name: EventName::parse(peer::ADD_PEER_SERVER).map_err(|err| err.to_string())?,
            meta: Meta {
                from: links.me(),
                to: Destination::Peer(to),
                iat: now,
                exp: now.saturating_add(WELCOME_TTL),
            },
            data: json!({ "description": description.to_json() }),
        };
        peer::seal_gpg(&crypto.identity, to, &envelope).map_err(|err| err.to_string())?
    };
    send_one(links, &address, &frame.to_body()).await?;
    tracing::info!(peer = %to, address, "add-peer-server sent");
    Ok(())
}

/// Opens a connection, writes one frame, closes.
async fn send_one(links: &Links, address: &str, body: &[u8]) -> Result<(), String> {
    let stream = tokio::time::timeout(conn::CONNECT_TIMEOUT, conn::connect(links, address))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    let (_read, mut write) = stream.into_split();
    write_frame(&mut write, body)
        .await
        .map_err(|err| format!("cannot send to {address}: {err}"))?;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut write).await;
    Ok(())
}

/// Whether the first frame of an inbound connection is the `add-peer-server`
/// this peer waits for from a peer not yet in its roster. `None`: it is
/// not (the connection goes on as any other). `Some(reason)`: it was
/// handled here, delivered or refused, and the connection is closed.
pub fn accept_welcome(
    body: &[u8],
    remote: SocketAddr,
    links: &Links,
    broker: &Broker,
) -> Option<String> {
    let frame = PeerFrame::parse(body).ok()?;
    if frame.prefix() != Prefix::Gpg || links.roster().get(&frame.from()).is_some() {
        return None;
    }
    let now = Timestamp::now();
    let expected = lock(&links.joins).get(&frame.from(), now).cloned()?;
    let from = frame.from();
    match check_welcome(&frame, links.me(), &expected, now) {
        Ok(envelope) => match broker.deliver_remote(&envelope) {
            Ok(()) => {
                // Not a member until peerd took the introducer's hand-off.
                links.set_hand_off_pending(true);
                tracing::info!(%remote, peer = %from, "add-peer-server received; handed to the bus");
                Some("add-peer-server".to_owned())
            }
            Err(err) => {
                tracing::error!(%remote, peer = %from, error = err.as_str(), "add-peer-server not kept");
                Some(err)
            }
        },
        Err(reason) => {
            tracing::warn!(%remote, peer = %from, reason, "add-peer-server refused");
            Some(reason)
        }
    }
}

/// CEP 7's checks of an `add-peer-server` from a peer not yet trusted.
fn check_welcome(
    frame: &PeerFrame,
    me: PeerId,
    expected: &Expected,
    now: Timestamp,
) -> Result<Envelope, String> {
    if frame.to() != me {
        return Err(format!("it is for {}, not for this peer", frame.to()));
    }
    let envelope =
        peer_frame::open_envelope(frame.from(), me, frame.payload(), now, &Limits::DEFAULT)
            .map_err(|err| err.to_string())?;
    if envelope.name.as_str() != peer::ADD_PEER_SERVER {
        return Err(format!(
            "only add-peer-server is accepted from a peer not in the roster, not `{}`",
            envelope.name.as_str()
        ));
    }
    let description = envelope
        .data
        .get("description")
        .ok_or_else(|| "add-peer-server lacks `description`".to_owned())?;
    let text = serde_json::to_vec(description).map_err(|err| err.to_string())?;
    let description = PeerDescription::from_json(&text).map_err(|err| err.to_string())?;
    if description.uuid() != frame.from() {
        return Err(format!(
            "the description is of {}, not of the sender",
            description.uuid()
        ));
    }
    if !description
        .fingerprint()
        .eq_ignore_ascii_case(&expected.fingerprint)
    {
        return Err(format!(
            "it is signed by certificate {}, not by {} as the sysadmin was told",
            description.fingerprint(),
            expected.fingerprint
        ));
    }
    let signature = frame
        .auth()
        .signature()
        .ok_or_else(|| "the frame is not signed".to_owned())?;
    PeerKeys::from_description(&description)
        .verify(&frame.signing_input(), signature.as_bytes())
        .map_err(|err| format!("bad signature: {err}"))?;
    Ok(envelope)
}

/// This peer's signed address record for the DHT (CEP 7): its current
/// description, when the record was made, and a signature over both.
pub fn dht_record(links: &Links) -> Result<Value, String> {
    let crypto = links.crypto();
    let description = crypto
        .identity
        .describe()
        .map_err(|err| format!("cannot describe this peer: {err}"))?
        .to_json();
    let issued = Timestamp::now().as_millis();
    let message =
        statement::dht_record(links.me(), &description, issued).map_err(|err| err.to_string())?;
    let signature = crypto
        .identity
        .sign(&message)
        .map_err(|err| format!("cannot sign the record: {err}"))?;
    Ok(json!({
        "description": description,
        "issued": issued,
        "signature": statement::base64_encode(signature),
    }))
}
