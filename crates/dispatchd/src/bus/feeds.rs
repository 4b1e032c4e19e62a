//! Feed events for local subscribers (CEP 6 "Delivery to local
//! subscribers", CEP 4 `feed-ack`).
//!
//! A subscriber, known durably as `uid:service`, has a cursor per origin in
//! the feed store: the last seq it acknowledged. When it subscribes it is
//! registered (starting at the oldest retained event, or at the current
//! heads if it asked for new events only; only its first subscription ever
//! decides) and is sent, in store order (so in order per origin), the
//! events above its cursors that its subscription and grant take, at most
//! a page unacknowledged at a time; each acknowledgement moves the cursor
//! and lets more through. New events go out the same way as they are
//! stored. So a service that restarts, or was down, resumes exactly where
//! it stopped, and every event carries its (origin, seq) for idempotence.
//! A grant filters what a service sees, never what is stored or relayed.
//!
//! Locks: the subscribers lock is taken before the feed store's.

use super::{Broker, Subscriber};
use center_bus::{ConsumerProgress, ErrorCode, FeedPosition, Reply, Start};
use center_feed::{FeedEvent, FeedLimits, StartAt};
use center_proto::{Destination, Envelope, Limits, Meta, PeerId};
use serde_json::json;

/// A subscriber's place in the feeds.
#[derive(Debug, Clone, Copy)]
pub(super) struct FeedState {
    /// The highest store position looked at for it (sent or skipped).
    examined: i64,
    /// Events sent and not yet acknowledged.
    in_flight: usize,
}

impl Broker {
    /// Registers the subscriber in the feed store if it is new (from where
    /// `start` says) and starts sending it what it has not acknowledged.
    pub(super) fn start_feeds(
        &self,
        subscriber: &mut Subscriber,
        start: Start,
    ) -> Result<(), (ErrorCode, String)> {
        let start = match start {
            Start::Oldest => StartAt::Oldest,
            Start::New => StartAt::Now,
        };
        self.links
            .feeds()
            .new_subscriber(&subscriber.key, start)
            .map_err(|err| (ErrorCode::Internal, format!("feeds: {err}")))?;
        // Patterns may have grown: look at everything unacknowledged again.
        subscriber.feed = Some(FeedState {
            examined: 0,
            in_flight: 0,
        });
        self.refill_feeds(subscriber);
        Ok(())
    }

    /// New events were stored: every subscriber with room gets its share.
    pub fn feed_changed(&self) {
        let mut subscribers = self.subscribers();
        for subscriber in subscribers.values_mut() {
            self.refill_feeds(subscriber);
        }
    }

    /// A subscriber handled `origin` up to `seq`.
    pub(super) fn feed_ack(&self, conn: u64, origin: &str, seq: u64) {
        let mut subscribers = self.subscribers();
        let Some(subscriber) = subscribers.get_mut(&conn) else {
            return;
        };
        let Some(state) = subscriber.feed.as_mut() else {
            return;
        };
        let Ok(origin) = origin.parse::<PeerId>() else {
            tracing::warn!(
                service = subscriber.service.as_str(),
                "feed acknowledgement for a malformed origin; ignored"
            );
            return;
        };
        let advanced = {
            let mut feeds = self.links.feeds();
            // Only a position this peer holds: a client cannot make up
            // origins (each would be a cursor row) or skip ahead.
            match feeds.frontier() {
                Ok(heads) if heads.get(&origin).is_some_and(|head| seq <= head.seq) => {
                    feeds.advance(&subscriber.key, origin, seq).map(|()| true)
                }
                Ok(_) => Ok(false),
                Err(err) => Err(err),
            }
        };
        match advanced {
            Ok(true) => state.in_flight = state.in_flight.saturating_sub(1),
            Ok(false) => {
                tracing::warn!(service = subscriber.service.as_str(), %origin, seq, "feed acknowledgement of an event this peer does not hold; ignored");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot save a feed cursor");
                return;
            }
        }
        self.refill_feeds(subscriber);
    }

    /// Sends the subscriber the next events it wants, up to a page in flight.
    fn refill_feeds(&self, subscriber: &mut Subscriber) {
        let page = (self.limits.queue_depth / 2).max(1);
        loop {
            let Some(mut state) = subscriber.feed else {
                return;
            };
            if subscriber.kick.is_none() || state.in_flight >= page {
                return;
            }
            let room = page - state.in_flight;
            let rows = match self
                .links
                .feeds()
                .next_for(&subscriber.key, state.examined, room)
            {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the feeds");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for row in &rows {
                state.examined = row.pos;
                let Ok(event) = FeedEvent::parse(&row.bytes, &FeedLimits::DEFAULT) else {
                    tracing::error!(origin = %row.origin, seq = row.seq, "a stored feed event does not parse; skipped");
                    continue;
                };
                if !super::inbox::wants(subscriber, event.name().as_str()) {
                    continue;
                }
                if !send_feed_event(subscriber, &event) {
                    subscriber.feed = None;
                    return;
                }
                state.in_flight += 1;
            }
            subscriber.feed = Some(state);
        }
    }

    /// How far each service in `[membership] consumers` is: connected and
    /// subscribed to the feeds, events in flight, and events it has yet to
    /// be offered. Of several connections of one service, the one furthest
    /// along counts. The feed store is read after the subscribers lock is
    /// released, so deliveries do not wait on these counts.
    pub(super) fn consumer_progress(&self) -> Vec<ConsumerProgress> {
        let places: Vec<(String, String, FeedState)> = self
            .subscribers()
            .values()
            .filter(|s| self.consumers.contains(&s.service))
            .filter_map(|s| Some((s.service.clone(), s.key.clone(), s.feed?)))
            .collect();
        self.consumers
            .iter()
            .map(|service| {
                places
                    .iter()
                    .filter(|(of, _, _)| of == service)
                    .map(|(_, key, state)| {
                        let pending = self
                            .links
                            .feeds()
                            .count_after(key, state.examined)
                            .unwrap_or_else(|err| {
                                tracing::error!(error = %err, "cannot read the feeds");
                                u64::MAX
                            });
                        let in_flight = u64::try_from(state.in_flight).unwrap_or(u64::MAX);
                        ConsumerProgress {
                            service: service.clone(),
                            connected: true,
                            in_flight,
                            pending,
                            caught_up: in_flight == 0 && pending == 0,
                        }
                    })
                    .min_by_key(|p| p.in_flight.saturating_add(p.pending))
                    .unwrap_or_else(|| ConsumerProgress {
                        service: service.clone(),
                        connected: false,
                        in_flight: 0,
                        pending: 0,
                        caught_up: false,
                    })
            })
            .collect()
    }

    /// Tells local subscribers that `origin` equivocated (seen from `relay`):
    /// a local `feed-equivocation` event, kept nowhere.
    pub(crate) fn raise_equivocation(&self, origin: PeerId, seq: u64, relay: PeerId) {
        self.raise_local(
            "feed-equivocation",
            json!({
                "origin": origin.to_string(),
                "seq": seq,
                "relay": relay.to_string(),
            }),
        );
    }

    /// Tells local subscribers something only this dispatcher knows: an
    /// event from this peer to its own bus, kept nowhere.
    pub(crate) fn raise_local(&self, name: &str, data: serde_json::Value) {
        let iat = self.next_iat();
        let Ok(event_name) = center_proto::EventName::parse(name) else {
            return;
        };
        let envelope = Envelope {
            name: event_name,
            meta: Meta {
                from: self.peer,
                to: Destination::Broadcast,
                iat,
                exp: iat.saturating_add(super::DEFAULT_TTL),
            },
            data,
        };
        if let Err((_, err)) = self.fan_out(&envelope) {
            tracing::error!(
                name,
                error = err.as_str(),
                "cannot raise a local event on the bus"
            );
        }
    }
}

/// A stored feed event as a bus envelope: `from` its origin, to everyone.
/// Feed events do not expire; `exp` is the longest lifetime CEP 2 allows.
pub(crate) fn envelope_of(event: &FeedEvent) -> Envelope {
    Envelope {
        name: event.name().clone(),
        meta: Meta {
            from: event.origin(),
            to: Destination::Broadcast,
            iat: event.iat(),
            exp: event.iat().saturating_add(Limits::DEFAULT.max_lifetime),
        },
        data: event.data().clone(),
    }
}

/// Queues one feed event for a subscriber; false if it was cut off.
fn send_feed_event(subscriber: &mut Subscriber, event: &FeedEvent) -> bool {
    let reply = Reply::Event {
        event: envelope_of(event).to_value(),
        seq: None,
        feed: Some(FeedPosition {
            origin: event.origin().to_string(),
            seq: event.seq(),
        }),
    };
    super::inbox::queue_kept(subscriber, &reply)
}
