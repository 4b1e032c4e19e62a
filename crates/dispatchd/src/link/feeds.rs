//! Feeds between peers (CEP 6 "Frontier exchange and paging"): appending
//! this peer's own events, the anti-entropy task of each connection, and
//! accepting the pages other peers send.
//!
//! On every connection both sides send `session.frontier` (what they hold:
//! origin → highest contiguous seq, and how many pages they accepted on
//! this connection) when it opens, every keepalive interval, and after
//! each page they receive. Each side pushes what the other lacks, oldest
//! first per origin, one page (`session.events`, at most [`PAGE_EVENTS`]
//! events and [`PAGE_BYTES`] bytes) in flight: the next goes when the
//! frontier that answers it arrives. Any peer relays any origin; the
//! receiver checks every event (signature, contiguity, chain) before it
//! stores it, so a relay can only withhold, never forge. Evidence of an
//! equivocation is pushed along too, so every peer sees it.
//!
//! Locks: the feed store is taken before crypto and roster, never after.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use center_feed::{Appended, FeedStore, Outcome, Refusal};
use center_proto::{Envelope, EventName, PeerId, Timestamp, canonical::to_canonical};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Crypto, Links, conn::ConnHandle, lock, outbound::control};
use crate::peer::{self, seal_gpg_plus};

/// Events per page, at most.
pub const PAGE_EVENTS: usize = 500;
/// Bytes of events per page, at most (one larger event goes alone).
pub const PAGE_BYTES: usize = 256 * 1024;
/// How long a page may go unanswered before it is sent again.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after our store changed we pass others' events on.
const RELAY_DELAY: Duration = Duration::from_millis(1000);
/// How often, at most, we tell a peer our frontier because our store
/// changed (besides the keepalive tick and the answers to pages).
const FRONTIER_EVERY: Duration = Duration::from_millis(500);
/// How long an origin the peer took nothing of is left alone.
const STUCK_FOR: Duration = Duration::from_secs(60);

/// What the other side of a connection said it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct TheirFrontier {
    pub heads: BTreeMap<PeerId, u64>,
    /// Pages it accepted on this connection.
    pub pages: u64,
}

impl Links {
    pub(crate) fn feeds(&self) -> std::sync::MutexGuard<'_, FeedStore> {
        lock(&self.feeds)
    }

    /// Appends an event to this peer's own feed, signed; on disk when this
    /// returns. Wakes every connection and the local subscribers' delivery.
    pub fn append_feed(
        &self,
        name: EventName,
        data: Value,
        iat: Timestamp,
    ) -> Result<Appended, center_feed::StoreError> {
        let appended = {
            let mut feeds = self.feeds();
            let crypto = self.crypto();
            feeds.append_local(
                |input| crypto.identity.sign(input),
                self.me,
                name,
                data,
                iat,
            )?
        };
        self.feed_changed();
        Ok(appended)
    }

    /// The feed store changed: connections look for what to push, and
    /// local subscribers for what to read.
    pub(super) fn feed_changed(&self) {
        self.feed_changes.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(broker) = self.broker() {
            broker.feed_changed();
        }
    }

    /// Resolves an origin's fork (the sysadmin's decision, CEP 6) and lets
    /// the feeds flow again.
    pub fn resolve_fork(
        &self,
        origin: PeerId,
        keep: center_feed::EventHash,
    ) -> Result<center_feed::Resolution, center_feed::StoreError> {
        let resolution = self.feeds().resolve_fork(origin, keep)?;
        self.feed_changed();
        Ok(resolution)
    }

    /// Wakes on every change of the feed store.
    pub fn feed_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed_changes.subscribe()
    }

    /// The keys that sign an origin's events, by seq: a roster peer's, or
    /// ours.
    pub(super) fn origin_keys(&self, origin: &PeerId) -> Option<center_feed::OriginKeys> {
        if *origin == self.me {
            return Some(lock(&self.own_keys).clone());
        }
        self.roster().history(origin)
    }
}

/// How often retention runs (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Applies the retention policy now and every hour, for as long as
/// dispatchd runs; the store logs what it removed and why.
pub async fn prune_periodically(links: Arc<Links>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let worker = links.clone();
        let pruned =
            tokio::task::spawn_blocking(move || worker.feeds().prune(Timestamp::now())).await;
        match pruned {
            Ok(Ok(report)) if report.events() > 0 => {
                tracing::info!(
                    events = report.events(),
                    bytes = report.bytes(),
                    "feed retention applied"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "feed retention failed"),
            Err(err) => tracing::error!(error = %err, "feed retention task failed"),
        }
    }
}

/// Reads a `session.frontier` envelope's data.
pub(super) fn parse_frontier(data: &Value) -> Option<TheirFrontier> {
    let heads = data.get("heads")?.as_object()?;
    let mut parsed = BTreeMap::new();
    for (origin, seq) in heads.iter().take(4096) {
        parsed.insert(origin.parse::<PeerId>().ok()?, seq.as_u64()?);
    }
    Some(TheirFrontier {
        heads: parsed,
        pages: data.get("pages")?.as_u64()?,
    })
}

/// The origins whose feeds this peer takes: itself, every roster peer, and
/// every departed one (up to its end). A frontier's other origins are
/// ignored.
pub(super) fn known_origins(links: &Links) -> std::collections::HashSet<PeerId> {
    let roster = links.roster();
    std::iter::once(links.me())
        .chain(roster.list().map(|p| p.description.uuid()))
        .chain(roster.departed_ends().into_keys())
        .collect()
}

/// The roster peers trusted on another member's announcement, and when.
fn announced_origins(links: &Links) -> std::collections::HashMap<PeerId, Timestamp> {
    links
        .roster()
        .list()
        .filter_map(|p| Some((p.description.uuid(), p.announced?)))
        .collect()
}

/// Our frontier, sealed for `peer`, with the pages accepted so far.
pub(super) fn frontier_frame(links: &Links, peer: PeerId, pages: u64) -> Result<Vec<u8>, String> {
    let heads: Map<String, Value> = links
        .feeds()
        .frontier()
        .map_err(|err| err.to_string())?
        .into_iter()
        .map(|(origin, head)| (origin.to_string(), json!(head.seq)))
        .collect();
    seal(
        links,
        peer,
        peer::FRONTIER,
        json!({ "heads": heads, "pages": pages }),
    )
}

fn seal(links: &Links, peer: PeerId, name: &str, data: Value) -> Result<Vec<u8>, String> {
    let envelope = control(name, links.me(), peer, data)?;
    let mut crypto = links.crypto();
    let Crypto {
        identity, sessions, ..
    } = &mut *crypto;
    Ok(seal_gpg_plus(identity, sessions, peer, &envelope)
        .map_err(|err| err.to_string())?
        .to_body())
}

/// Accepts a page from `peer` (off the async runtime: verification is the
/// heavy part), logs what was refused, raises equivocations on the bus, and
/// answers with our frontier. `pages` counts the pages received on the
/// connection, this one included.
pub(super) async fn accept_page(
    links: &Arc<Links>,
    peer: PeerId,
    conn: &ConnHandle,
    envelope: &Envelope,
    pages: u64,
) -> Result<(), String> {
    let Some(Value::Array(items)) = envelope.data.get("events") else {
        tracing::warn!(%peer, "feed page without `events`; dropped");
        return Ok(());
    };
    let mut events = Vec::with_capacity(items.len().min(PAGE_EVENTS));
    for item in items.iter().take(PAGE_EVENTS) {
        match to_canonical(item) {
            Ok(bytes) => events.push(bytes),
            Err(err) => {
                tracing::warn!(%peer, error = %err, "feed event refused: not canonical json")
            }
        }
    }
    let worker = links.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let now = Timestamp::now();
        // The roster before the feeds (lock order): origins a member
        // announced start with a smaller budget (CEP 6, "Budgets").
        let announced = announced_origins(&worker);
        let mut feeds = worker.feeds();
        feeds.set_announced(announced);
        let outcomes = feeds.accept(&events, |origin| worker.origin_keys(origin), now);
        // Key rotations reach the roster before the next page is checked
        // (still under the feed lock, which comes before crypto and roster).
        if let Ok(outcomes) = &outcomes {
            worker.rotations_stored(&events, outcomes);
        }
        outcomes
    })
    .await
    .map_err(|err| format!("feed page check failed: {err}"))?
    .map_err(|err| format!("cannot store feed events: {err}"))?;
    report(links, peer, &outcomes);
    if outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Stored { .. } | Outcome::Equivocation { .. }))
    {
        links.feed_changed();
    }
    conn.send_control(frontier_frame(links, peer, pages)?)
}

/// Logs a page's outcomes: counts, and the first few refusals with their
/// reasons (a hostile page of 500 must not write 500 lines).
fn report(links: &Links, peer: PeerId, outcomes: &[Outcome]) {
    let (mut stored, mut duplicate, mut gaps, mut logged) = (0, 0, 0, 0);
    for outcome in outcomes {
        match outcome {
            Outcome::Stored { .. } => stored += 1,
            Outcome::Duplicate { .. } => duplicate += 1,
            Outcome::Gap { origin, seq, have } => {
                gaps += 1;
                if logged < 3 {
                    logged += 1;
                    tracing::warn!(%peer, %origin, seq, have, "feed event refused: out of order (a gap before it); fetched again from whoever has it");
                }
            }
            Outcome::Stale { origin, seq, floor } => {
                tracing::debug!(%peer, %origin, seq, floor, "feed event below what this peer retains; ignored");
            }
            Outcome::Equivocation { origin, seq } => {
                tracing::error!(%peer, %origin, seq, "feed equivocation: the origin signed two different events for one sequence number; its feed is frozen until the sysadmin decides");
                if let Some(broker) = links.broker() {
                    broker.raise_equivocation(*origin, *seq, peer);
                }
            }
            Outcome::Refused(refusal) => {
                if logged < 3 {
                    logged += 1;
                    match refusal {
                        Refusal::OverBudget { .. } => {
                            tracing::warn!(%peer, %refusal, "feed event refused: over budget")
                        }
                        _ => tracing::warn!(%peer, %refusal, "feed event refused"),
                    }
                }
            }
        }
    }
    // Refusals are worth a line; a page taken whole is routine.
    if stored + duplicate < outcomes.len() {
        tracing::info!(%peer, stored, duplicate, gaps, total = outcomes.len(), "feed page from peer");
    } else {
        tracing::debug!(%peer, stored, duplicate, "feed page from peer");
    }
}

/// The anti-entropy task of one connection; ends when it closes.
pub(super) async fn sync(links: Arc<Links>, peer: PeerId, conn: Arc<ConnHandle>) {
    if let Err(reason) = run_sync(&links, peer, &conn).await {
        tracing::warn!(%peer, reason, "feed exchange stopped; the connection closes");
        conn.close();
    }
}

async fn run_sync(links: &Arc<Links>, peer: PeerId, conn: &ConnHandle) -> Result<(), String> {
    // Frames are GPG+: wait for a session, however long it takes.
    if let Err(reason) = super::conn::wait_for_session(links, peer, conn, None).await {
        return if conn.is_closed() {
            Ok(())
        } else {
            Err(reason)
        };
    }
    let mut changes = links.feed_changes();
    let mut theirs_rx = conn.frontier.subscribe();
    // A frontier that came while we waited for the session counts too (a
    // new receiver has already "seen" the current value).
    let mut theirs: Option<TheirFrontier> = theirs_rx.borrow_and_update().clone();
    // Pages sent on this connection, and when the last one goes stale.
    let (mut sent, mut deadline): (u64, Option<Instant>) = (0, None);
    let mut evidence_sent: HashSet<Vec<u8>> = HashSet::new();
    // The origin of the page in flight and the peer's seq when it was sent;
    // an origin whose page moved nothing is left alone until the peer's
    // seq for it changes or a while has passed (a peer whose copy is
    // frozen by an equivocation, or over budget, refuses it every time).
    let mut in_flight: Option<(PeerId, u64)> = None;
    let mut stuck: HashMap<PeerId, (u64, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(links.keepalive);
    // Our own events go out as soon as they are stored; others' only once
    // we have held them for [`RELAY_DELAY`] and the peer's frontier (which
    // peers send whenever their store changes, at most every
    // [`FRONTIER_EVERY`]) still says it lacks them: a peer connected to
    // the origin is not sent its live events by every relay at once.
    // `held` is our frontier as it was one to two delays ago.
    let mut samples = tokio::time::interval(RELAY_DELAY);
    let (mut held, mut sampled) = (BTreeMap::new(), BTreeMap::new());
    let mut frontier_sent = Instant::now();
    let mut frontier_due: Option<Instant> = None;
    loop {
        if let Some(frontier) = &theirs {
            if frontier.pages >= sent {
                deadline = None;
                if let Some((origin, before)) = in_flight.take()
                    && frontier.heads.get(&origin).copied().unwrap_or(0) <= before
                {
                    tracing::debug!(%peer, %origin, "the peer took nothing of a feed page; leaving that origin alone for a while");
                    stuck.insert(origin, (before, Instant::now() + STUCK_FOR));
                }
            }
            stuck.retain(|origin, (at, until)| {
                Instant::now() < *until && frontier.heads.get(origin).copied().unwrap_or(0) == *at
            });
            push_evidence(links, peer, conn, &mut evidence_sent)?;
            if deadline.is_none()
                && let Some((origin, before, body)) =
                    next_page(links, peer, &frontier.heads, &stuck, &held)?
            {
                conn.send(body).await?;
                sent += 1;
                in_flight = Some((origin, before));
                deadline = Some(Instant::now() + PAGE_TIMEOUT);
            }
        }
        tokio::select! {
            () = conn.closed() => return Ok(()),
            changed = theirs_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                theirs = theirs_rx.borrow_and_update().clone();
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                frontier_due.get_or_insert(frontier_sent + FRONTIER_EVERY);
            }
            _ = samples.tick() => {
                let now = links
                    .feeds()
                    .frontier()
                    .map_err(|err| err.to_string())?
                    .into_iter()
                    .map(|(origin, head)| (origin, head.seq))
                    .collect();
                held = std::mem::replace(&mut sampled, now);
            }
            () = sleep_until(frontier_due) => {
                frontier_due = None;
                frontier_sent = Instant::now();
                let pages = conn.pages_received();
                conn.send_control(frontier_frame(links, peer, pages)?)?;
            }
            _ = tick.tick() => {
                frontier_sent = Instant::now();
                let pages = conn.pages_received();
                conn.send_control(frontier_frame(links, peer, pages)?)?;
            }
            () = sleep_until(deadline) => {
                tracing::warn!(%peer, "a feed page was not answered in time; sending again");
                deadline = None;
                in_flight = None;
                sent = theirs.as_ref().map_or(0, |t| t.pages);
            }
            () = sleep_until(stuck.values().map(|(_, until)| *until).min()) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next page the peer lacks, sealed, with its origin and the peer's
/// seq for it: the first origin (in id order) where we hold more than it
/// does, from just after its seq; of others' origins, only what we
/// already `held` a while ago. Origins frozen here by an equivocation are
/// not passed on (their evidence is), nor those in `stuck`.
fn next_page(
    links: &Links,
    peer: PeerId,
    theirs: &BTreeMap<PeerId, u64>,
    stuck: &HashMap<PeerId, (u64, Instant)>,
    held: &BTreeMap<PeerId, u64>,
) -> Result<Option<(PeerId, u64, Vec<u8>)>, String> {
    let page = {
        let feeds = links.feeds();
        let ours = feeds.frontier().map_err(|err| err.to_string())?;
        let forked: HashSet<PeerId> = feeds
            .forked()
            .map_err(|err| err.to_string())?
            .into_iter()
            .collect();
        let mut found = None;
        for (origin, head) in ours {
            let have = theirs.get(&origin).copied().unwrap_or(0);
            let top = if origin == links.me() {
                head.seq
            } else {
                held.get(&origin).copied().unwrap_or(0).min(head.seq)
            };
            if top <= have || forked.contains(&origin) || stuck.contains_key(&origin) {
                continue;
            }
            let most = usize::try_from(top - have)
                .unwrap_or(PAGE_EVENTS)
                .min(PAGE_EVENTS);
            let page = feeds
                .page(origin, have, most, PAGE_BYTES)
                .map_err(|err| err.to_string())?;
            if page.events.is_empty() {
                continue;
            }
            if page.floor > have + 1 {
                tracing::warn!(%peer, %origin, have, floor = page.floor, "the peer lacks events of this origin that this peer no longer retains");
                continue;
            }
            found = Some((origin, have, page.events));
            break;
        }
        found
    };
    let Some((origin, have, events)) = page else {
        return Ok(None);
    };
    let values: Vec<Value> = events
        .iter()
        .filter_map(|bytes| serde_json::from_slice(bytes).ok())
        .collect();
    let body = seal(links, peer, peer::EVENTS, json!({ "events": values }))?;
    Ok(Some((origin, have, body)))
}

/// Sends the contradicting events of every unresolved equivocation not yet
/// sent on this connection, so the peer detects it too.
fn push_evidence(
    links: &Links,
    peer: PeerId,
    conn: &ConnHandle,
    sent: &mut HashSet<Vec<u8>>,
) -> Result<(), String> {
    let evidence = links
        .feeds()
        .equivocations()
        .map_err(|err| err.to_string())?;
    let fresh: Vec<Value> = evidence
        .into_iter()
        .filter(|e| !e.resolved)
        .filter(|e| sent.insert(e.second.clone()))
        .filter_map(|e| serde_json::from_slice(&e.second).ok())
        .take(PAGE_EVENTS)
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    conn.send_control(seal(links, peer, peer::EVENTS, json!({ "events": fresh }))?)
}
