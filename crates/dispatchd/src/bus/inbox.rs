//! Direct messages from other peers, kept for local subscribers until each
//! acknowledges them (CEP 4 `ack`, CEP 5).
//!
//! Every direct message that arrives is committed to the inbox (in the link
//! store) with a sequence number before the sending peer is acknowledged.
//! Each subscriber, known durably as `uid:service`, has a cursor: the last
//! sequence number it acknowledged. When it subscribes, what it has not
//! acknowledged is replayed a page at a time, the next page when it has
//! acknowledged the last one it was sent; after that it receives new
//! messages live. So a service that was not connected, or `centerctl bus
//! tail` run again by the same account, continues where it stopped.
//!
//! Locks: the subscribers lock is taken before the store's, never after.

use center_bus::{ErrorCode, Reply, frame::encode_frame, pattern::any_matches};
use center_proto::{Envelope, Limits, PeerId, Timestamp};
use tokio::sync::mpsc;

use super::{Broker, Outgoing, Subscriber, kick};

/// A subscriber's place in the inbox.
#[derive(Debug, Clone, Copy)]
pub(super) struct InboxState {
    /// The highest sequence number looked at for it (sent or skipped).
    examined: i64,
    /// The highest sequence number sent to it.
    sent: i64,
    /// Whether it is still being sent what it missed (then new messages
    /// wait for the replay instead of going live, to keep the order).
    catching_up: bool,
}

impl Broker {
    /// Keeps direct messages from now on for `key` if it has no cursor yet
    /// (a service the sysadmin just approved).
    pub(super) fn keep_from_now(&self, key: &str) {
        let store = self.links.store();
        let created = store.cursor(key).and_then(|cursor| match cursor {
            Some(_) => Ok(()),
            None => store
                .inbox_head()
                .and_then(|head| store.set_cursor(key, head)),
        });
        if let Err(err) = created {
            tracing::error!(key, error = %err, "cannot create an inbox cursor");
        }
    }

    /// Starts (or restarts, with new patterns) the replay for a subscriber
    /// from its cursor; a first subscription starts at the newest message.
    pub(super) fn start_inbox(
        &self,
        subscriber: &mut Subscriber,
    ) -> Result<(), (ErrorCode, String)> {
        let internal = |err: rusqlite::Error| (ErrorCode::Internal, format!("inbox: {err}"));
        let cursor = {
            let store = self.links.store();
            match store.cursor(&subscriber.key).map_err(internal)? {
                Some(cursor) => cursor,
                None => {
                    let head = store.inbox_head().map_err(internal)?;
                    store.set_cursor(&subscriber.key, head).map_err(internal)?;
                    head
                }
            }
        };
        {
            let patterns: Vec<&str> = subscriber.patterns.iter().map(|p| p.as_str()).collect();
            self.links
                .store()
                .set_cursor_patterns(&subscriber.key, &patterns)
                .map_err(internal)?;
        }
        subscriber.inbox = Some(InboxState {
            examined: cursor,
            sent: cursor,
            catching_up: true,
        });
        self.refill(subscriber);
        Ok(())
    }

    /// Sends the subscriber the next page of what it missed.
    fn refill(&self, subscriber: &mut Subscriber) {
        let page = (self.limits.queue_depth / 2).max(1);
        loop {
            let Some(mut state) = subscriber.inbox else {
                return;
            };
            let rows = match self
                .links
                .store()
                .inbox_after(state.examined, page, Timestamp::now())
            {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the inbox");
                    return;
                }
            };
            let mut sent_any = false;
            for row in &rows {
                state.examined = row.seq;
                if !wants(subscriber, &row.name) {
                    continue;
                }
                let Ok(envelope) =
                    Envelope::parse(&row.envelope, Timestamp::now(), &Limits::DEFAULT)
                else {
                    continue;
                };
                if !self.send_kept(subscriber, &envelope, row.seq) {
                    return;
                }
                state.sent = row.seq;
                sent_any = true;
            }
            state.catching_up = rows.len() >= page;
            subscriber.inbox = Some(state);
            if sent_any || !state.catching_up {
                return;
            }
        }
    }

    /// Keeps a verified direct message from another peer and hands it to
    /// the subscribers that want it now. Err: it could not be kept, and the
    /// sending peer must not be acknowledged.
    pub fn deliver_remote(&self, envelope: &Envelope) -> Result<(), String> {
        let item = [(envelope, envelope.meta.exp)];
        self.keep_remote(&item, None, None, None).map(|_| ())
    }

    /// Keeps a join request (`NEW`, unauthenticated) for the membership
    /// service until `keep_until` at the latest, unless `max` join requests
    /// are already kept. Ok(false): refused for that cap.
    pub fn deliver_join_request(
        &self,
        envelope: &Envelope,
        keep_until: Timestamp,
        max: u64,
    ) -> Result<bool, String> {
        let item = [(envelope, envelope.meta.exp.min(keep_until))];
        let sender = Some((crate::link::store::JOIN_REQUESTS, max));
        self.keep_remote(&item, sender, None, None)
            .map(|kept| kept.is_some())
    }

    /// [`Broker::deliver_remote`] for several messages from `peer`, kept in
    /// one commit (all or none) together with the record that `peer`
    /// delivered the digests given (CEP 5), so none is handed on twice even
    /// after a crash. A message no local service could receive (no grant
    /// takes its name, no durable subscriber subscribed to it, and no
    /// connected one wants it) is recorded as delivered but not kept: its
    /// name is returned, for the log.
    pub fn deliver_remote_batch(
        &self,
        envelopes: &[Envelope],
        peer: PeerId,
        delivered: &[(String, Timestamp)],
    ) -> Result<Vec<String>, String> {
        let mut granted: Vec<Vec<center_bus::pattern::Pattern>> = self
            .grant_store()
            .list()
            .into_iter()
            .map(|grant| grant.receive)
            .collect();
        let subscribed = self
            .links
            .store()
            .cursor_patterns()
            .map_err(|err| format!("cannot read the inbox subscribers: {err}"))?;
        granted.push(
            subscribed
                .iter()
                .filter_map(|p| center_bus::pattern::Pattern::parse(p).ok())
                .collect(),
        );
        let items: Vec<(&Envelope, Timestamp)> =
            envelopes.iter().map(|e| (e, e.meta.exp)).collect();
        self.keep_remote(&items, None, Some((peer, delivered)), Some(&granted))
            .map(|dropped| dropped.unwrap_or_default())
    }

    /// Keeps `items` (each with when it may be forgotten) in one commit and
    /// hands them to the subscribers that want them now. `quota`: the
    /// sender they are counted for and how many it may have kept (Ok(None):
    /// over it, nothing kept). `granted`: the receive patterns of every
    /// grant; when given, what neither they nor a connected subscriber take
    /// is not kept, and its name is in the result.
    fn keep_remote(
        &self,
        items: &[(&Envelope, Timestamp)],
        quota: Option<(&str, u64)>,
        delivered: Option<(PeerId, &[(String, Timestamp)])>,
        granted: Option<&[Vec<center_bus::pattern::Pattern>]>,
    ) -> Result<Option<Vec<String>>, String> {
        let mut subscribers = self.subscribers();
        let mut kept = Vec::with_capacity(items.len());
        let mut dropped = Vec::new();
        for (envelope, until) in items {
            let name = envelope.name.as_str();
            let receivable = granted.is_none_or(|granted| {
                granted.iter().any(|receive| any_matches(receive, name))
                    || subscribers
                        .values()
                        .any(|s| s.inbox.is_some() && wants(s, name))
            });
            if receivable {
                kept.push((*envelope, *until));
            } else {
                dropped.push(name.to_owned());
            }
        }
        let mut rows = Vec::with_capacity(kept.len());
        for (envelope, until) in &kept {
            let bytes = envelope.canonical_bytes().map_err(|err| err.to_string())?;
            rows.push((envelope.name.as_str(), bytes, *until));
        }
        let now = Timestamp::now();
        let seqs = {
            let mut store = self.links.store();
            if let Some((sender, max)) = quota {
                let held = store
                    .inbox_held(sender, now)
                    .map_err(|err| format!("cannot count kept messages: {err}"))?;
                if held.saturating_add(u64::try_from(rows.len()).unwrap_or(u64::MAX)) > max {
                    return Ok(None);
                }
            }
            store
                .inbox_push_many(&rows, quota.map(|(sender, _)| sender), delivered, now)
                .map_err(|err| format!("cannot keep a direct message: {err}"))?
        };
        for ((envelope, _), seq) in kept.iter().zip(seqs) {
            for subscriber in subscribers.values_mut() {
                let Some(state) = subscriber.inbox else {
                    continue;
                };
                // One still catching up gets it from the inbox, in order.
                if state.catching_up || !wants(subscriber, envelope.name.as_str()) {
                    continue;
                }
                if self.send_kept(subscriber, envelope, seq)
                    && let Some(state) = subscriber.inbox.as_mut()
                {
                    state.examined = seq;
                    state.sent = seq;
                }
            }
        }
        Ok(Some(dropped))
    }

    /// A subscriber handled everything up to `seq`.
    pub(super) fn ack(&self, conn: u64, seq: u64) {
        let mut subscribers = self.subscribers();
        let Some(subscriber) = subscribers.get_mut(&conn) else {
            return;
        };
        let Some(state) = subscriber.inbox else {
            return;
        };
        let Ok(seq) = i64::try_from(seq) else { return };
        if seq > state.sent {
            tracing::warn!(
                service = subscriber.service.as_str(),
                seq,
                "acknowledgement of a message never sent; ignored"
            );
            return;
        }
        if let Err(err) = self.links.store().set_cursor(&subscriber.key, seq) {
            tracing::error!(error = %err, "cannot save an inbox cursor");
            return;
        }
        if state.catching_up && seq >= state.sent {
            self.refill(subscriber);
        }
    }

    /// Queues one kept message for a subscriber; false if it was cut off.
    fn send_kept(&self, subscriber: &mut Subscriber, envelope: &Envelope, seq: i64) -> bool {
        let reply = Reply::Event {
            event: envelope.to_value(),
            seq: u64::try_from(seq).ok(),
            feed: None,
        };
        queue_kept(subscriber, &reply)
    }
}

/// Queues an event the subscriber must acknowledge (a kept direct message,
/// a feed event); false if it was cut off. One that does not keep up is
/// disconnected, and gets what it did not acknowledge again when it
/// reconnects.
pub(super) fn queue_kept(subscriber: &mut Subscriber, reply: &Reply) -> bool {
    let Ok(frame) = encode_frame(&reply.to_bytes()) else {
        return false;
    };
    match subscriber
        .queue
        .try_send(Outgoing::Frame(std::sync::Arc::new(frame)))
    {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                service = subscriber.service.as_str(),
                "slow subscriber disconnected"
            );
            let message =
                "disconnected: events were waiting unread; what was not acknowledged comes again";
            kick(subscriber, ErrorCode::QueueFull, message.to_owned());
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Whether a subscriber's subscription and grant both take `name`.
pub(super) fn wants(subscriber: &Subscriber, name: &str) -> bool {
    any_matches(&subscriber.patterns, name) && any_matches(&subscriber.receive, name)
}
