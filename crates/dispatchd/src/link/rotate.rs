//! Key rotation (CEP 7): this peer changing its own keys, and the switch to
//! a peer's new keys when its `peer.rotate` event arrives.
//!
//! **Own rotation** ([`Links::rotate_keys`]), under the feed and crypto
//! locks so nothing is signed or sealed in between, in this order:
//!
//! 1. new certificate and Olm account written aside (`*.next`, fsynced);
//!    a crash here leaves the old identity in use, and the next start
//!    discards the unannounced keys;
//! 2. the `peer.rotate` event appended to our feed, signed by the old key
//!    (committed with `synchronous=FULL`): from here on the rotation *is*
//!    announced, and a start completes it (step 3 and 4 again) from the
//!    event, the one record that decides;
//! 3. every Olm session dropped (they belong to the old account);
//! 4. the new files renamed over the old ones; the old secret key is gone.
//!
//! Then every connection is closed, so each is opened again with hellos
//! signed by the new key; each hello carries our rotation events, so a peer
//! that has not yet received them through the feeds can check them (signed
//! by the key it knows) and switch before it checks the hello.
//!
//! **A peer's rotation**, learnt from a stored feed event or a hello: its
//! sessions are dropped, its roster entry switches (the old description
//! kept with `last_seq`, and the event as its proof, so a hand-off made
//! from then on carries it), its connection is closed and dialled again,
//! and the outbox resends what it had not acknowledged on the new session.
//!
//! A rotation a hello carries is applied only if the feed store holds it
//! at its seq ([`center_feed::rotation::hello_rotation`]): a receiver
//! behind on that feed does not switch on the hello's word, which a thief
//! of the old key could forge beyond what the receiver holds; it switches
//! when the feed brings the event, from any peer.

use std::sync::Arc;

use center_feed::{
    FeedEvent, FeedLimits, OriginKeys, Outcome, Rotation,
    rotation::{HelloRotation, hello_rotation},
    rotation_data,
};
use center_proto::{EventName, PeerId, Timestamp, canonical::to_canonical, peer_frame};
use serde_json::Value;

use super::{Links, lock};
use crate::roster::Rotated;

/// Rotation events a hello carries at most (the latest ones).
pub(super) const HELLO_ROTATIONS: usize = 8;

/// What `rotate-keys` did.
#[derive(Debug, Clone)]
pub struct RotatedKeys {
    /// The seq of the `peer.rotate` event in our feed.
    pub seq: u64,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
}

impl Links {
    /// Rotates this peer's keys (the sysadmin's `centerctl peer
    /// rotate-keys`); see the module comment for the order of the steps.
    pub fn rotate_keys(self: &Arc<Self>) -> Result<RotatedKeys, String> {
        let rotated = {
            let mut feeds = self.feeds();
            let mut crypto = self.crypto();
            let prepared = crypto
                .identity
                .prepare_rotation()
                .map_err(|err| format!("cannot make the new keys: {err}"))?;
            let old_fingerprint = crypto.identity.fingerprint();
            let data = rotation_data(prepared.description(), &old_fingerprint);
            let name = EventName::parse(center_feed::ROTATE_EVENT).map_err(|e| e.to_string())?;
            let appended = feeds.append_local(
                |input| crypto.identity.sign(input),
                self.me,
                name,
                data,
                Timestamp::now(),
            );
            let appended = match appended {
                Ok(appended) => appended,
                Err(err) => {
                    if let Err(err) = crypto.identity.discard_prepared_rotation() {
                        tracing::warn!(error = %err, "cannot remove the unused new keys");
                    }
                    return Err(format!("cannot announce the rotation: {err}"));
                }
            };
            let announced = feeds
                .rotations(self.me, appended.seq - 1)
                .map_err(|err| err.to_string())?;
            let description = prepared.description().clone();
            // Announced: from here on a failure is completed by a restart.
            let incomplete = |err: String| {
                tracing::error!(
                    error = err,
                    "the key rotation is announced but not complete; restart dispatchd to complete it"
                );
                format!(
                    "the rotation is announced but not complete ({err}); restart dispatchd to complete it"
                )
            };
            crypto.sessions.forget_all().map_err(incomplete)?;
            crypto
                .identity
                .commit_rotation(prepared)
                .map_err(|err| incomplete(err.to_string()))?;
            let new = center_identity::PeerKeys::from_description(&description);
            lock(&self.own_keys).rotate(new, appended.seq);
            self.remember_own_rotations(&announced);
            self.write_description(&description);
            RotatedKeys {
                seq: appended.seq,
                old_fingerprint,
                new_fingerprint: description.fingerprint().to_owned(),
            }
        };
        tracing::warn!(
            seq = rotated.seq,
            old = rotated.old_fingerprint,
            new = rotated.new_fingerprint,
            "this peer rotated its keys at seq {}",
            rotated.seq
        );
        self.feed_changed();
        self.reconnect_all();
        Ok(rotated)
    }

    /// Keeps our latest rotation events for hellos.
    fn remember_own_rotations(&self, events: &[FeedEvent]) {
        let mut own = lock(&self.own_rotations);
        own.extend(events.iter().filter_map(event_value));
        let excess = own.len().saturating_sub(HELLO_ROTATIONS);
        own.drain(..excess);
    }

    /// Our rotation events a hello carries, oldest first.
    pub(super) fn own_rotations(&self) -> Vec<Value> {
        lock(&self.own_rotations).clone()
    }

    /// Rewrites `description.json` (what `centerctl peer whoami` prints).
    fn write_description(&self, description: &center_identity::PeerDescription) {
        let Some(path) = &self.description_file else {
            return;
        };
        let written = serde_json::to_string_pretty(&description.to_json())
            .map_err(std::io::Error::other)
            .and_then(|text| {
                crate::durable::replace_file(path, format!("{text}\n").as_bytes(), 0o644)
            });
        if let Err(err) = written {
            tracing::error!(path = %path.display(), error = %err, "cannot write this peer's description");
        }
    }

    /// Closes every connection and drops every session setup, so each peer
    /// is dialled again (with hellos signed by the new keys).
    fn reconnect_all(self: &Arc<Self>) {
        let conns: Vec<_> = lock(&self.conns).drain().collect();
        lock(&self.setup).clear();
        for (peer, conn) in conns {
            conn.close();
            self.keep_connected(peer);
        }
    }

    /// Switches `origin` to the keys of its rotation `event` (verified by
    /// the caller with the key `origin` had at its seq, and held by the
    /// feed store at that seq), and keeps the event as the proof of the
    /// retired key.
    pub(super) fn apply_rotation(
        self: &Arc<Self>,
        origin: PeerId,
        rotation: &Rotation,
        event: &FeedEvent,
    ) -> Result<Rotated, String> {
        let seq = event.seq();
        {
            let mut crypto = self.crypto();
            let mut roster = self.roster();
            let known = roster.history(&origin).and_then(|h| h.rotated_at()) >= Some(seq);
            let rotated = if known {
                Rotated::Known
            } else {
                // Sessions first: a crash after leaves the old keys and no
                // session, which the next rotation event repairs.
                crypto.sessions.forget(origin)?;
                roster
                    .rotate(origin, rotation, seq)
                    .map_err(|err| err.to_string())?
            };
            // The proof now, not at the next start: a newcomer's hand-off
            // carries it from here on.
            if let Err(err) = roster.attach_proof(origin, event) {
                tracing::warn!(peer = %origin, seq, error = %err, "cannot keep a rotation's proof with the roster");
            }
            if rotated == Rotated::Known {
                return Ok(rotated);
            }
        }
        tracing::warn!(
            peer = %origin,
            seq,
            old = rotation.old_fingerprint(),
            new = rotation.description().fingerprint(),
            "peer {origin} rotated its keys at seq {seq}"
        );
        lock(&self.setup).remove(&origin);
        if let Some(conn) = lock(&self.conns).remove(&origin) {
            conn.close();
        }
        self.keep_connected(origin);
        Ok(Rotated::Switched)
    }

    /// Applies the rotations among the events of a page the store took
    /// (`outcomes` answer `events` one for one).
    pub(super) fn rotations_stored(self: &Arc<Self>, events: &[Vec<u8>], outcomes: &[Outcome]) {
        let limits = FeedLimits::DEFAULT;
        let needle = format!("\"name\":\"{}\"", center_feed::ROTATE_EVENT);
        for (bytes, outcome) in events.iter().zip(outcomes) {
            let Outcome::Stored { origin, seq, .. } = outcome else {
                continue;
            };
            // Cheap first: only a rotation's canonical bytes hold its name.
            if *origin == self.me || !contains(bytes, needle.as_bytes()) {
                continue;
            }
            let Ok(event) = FeedEvent::parse(bytes, &limits) else {
                continue;
            };
            let Some(Ok(rotation)) = Rotation::from_event(&event) else {
                continue;
            };
            if let Err(err) = self.apply_rotation(*origin, &rotation, &event) {
                tracing::error!(peer = %origin, seq, error = err, "cannot apply a stored key rotation");
            }
        }
    }

    /// The rotation events a hello from a roster peer carries, checked
    /// and applied before the hello itself is verified: the hello of a
    /// peer that rotated is signed by its new key, which we learn only from
    /// these events, each signed by the key we know for its seq. Each is
    /// applied only once the feed store holds it at its seq, chained to
    /// the events before it; one beyond what we hold of that feed waits
    /// for the feed (CEP 7, "The rotating peer's hello"). Returns whether
    /// a rotation was applied (the caller then verifies again).
    pub(super) fn rotations_in_hello(self: &Arc<Self>, body: &[u8]) -> bool {
        let Ok(frame) = peer_frame::PeerFrame::parse(body) else {
            return false;
        };
        let from = frame.from();
        if frame.prefix() != peer_frame::Prefix::Gpg
            || frame.to() != self.me
            || self.roster().get(&from).is_none()
        {
            return false;
        }
        let opened = peer_frame::open_envelope(
            from,
            self.me,
            frame.payload(),
            Timestamp::now(),
            &center_proto::Limits::DEFAULT,
        );
        let Ok(envelope) = opened else {
            return false;
        };
        if envelope.name.as_str() != crate::peer::HELLO {
            return false;
        }
        let Some(Value::Array(events)) = envelope.data.get("rotations") else {
            return false;
        };
        let mut applied = false;
        for value in events.iter().take(HELLO_ROTATIONS) {
            let (rotation, event) = match self.check_rotation(from, value) {
                Ok(Some(checked)) => checked,
                Ok(None) => continue,
                Err(reason) => {
                    tracing::warn!(peer = %from, reason, "a key rotation in a hello is refused");
                    return applied;
                }
            };
            let seq = event.seq();
            // Through the feed's own checks first, so that a rotation that
            // contradicts the feed is evidence, not a switch.
            let outcome = self
                .feeds()
                .accept(
                    &[event.as_bytes()],
                    |o| self.origin_keys(o),
                    Timestamp::now(),
                )
                .map_err(|err| err.to_string())
                .and_then(|outcomes| {
                    outcomes
                        .into_iter()
                        .next()
                        .ok_or_else(|| "no outcome".to_owned())
                });
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(err) => {
                    tracing::error!(peer = %from, seq, error = err, "cannot check a key rotation in a hello");
                    return applied;
                }
            };
            if matches!(outcome, Outcome::Stored { .. }) {
                self.feed_changed();
            }
            match hello_rotation(&outcome) {
                HelloRotation::Apply => {}
                HelloRotation::Defer { have } => {
                    tracing::warn!(
                        peer = %from,
                        seq,
                        have,
                        "a key rotation in a hello is not applied: this peer holds that feed only up to seq {have}, so the rotation at seq {seq} cannot be checked against the events before it; it is applied when the feed brings it"
                    );
                    return applied;
                }
                HelloRotation::Refuse(reason) => {
                    tracing::warn!(peer = %from, seq, reason, "a key rotation in a hello is refused");
                    return applied;
                }
            }
            match self.apply_rotation(from, &rotation, &event) {
                Ok(Rotated::Switched) => applied = true,
                Ok(Rotated::Known) => {}
                Err(err) => {
                    tracing::warn!(peer = %from, seq, error = err, "a key rotation in a hello is refused");
                    return applied;
                }
            }
        }
        applied
    }

    /// Checks one rotation event a hello from `from` carries: `None` if it
    /// is one we applied already.
    fn check_rotation(
        &self,
        from: PeerId,
        value: &Value,
    ) -> Result<Option<(Rotation, FeedEvent)>, String> {
        let bytes = to_canonical(value).map_err(|err| err.to_string())?;
        let event =
            FeedEvent::parse(&bytes, &FeedLimits::DEFAULT).map_err(|err| err.to_string())?;
        if event.origin() != from {
            return Err("it is another origin's".to_owned());
        }
        let rotation = Rotation::from_event(&event)
            .ok_or_else(|| "it is not a rotation event".to_owned())?
            .map_err(|err| err.to_string())?;
        let history: OriginKeys = self
            .roster()
            .history(&from)
            .ok_or_else(|| "the peer is not in the roster".to_owned())?;
        let seq = event.seq();
        if history.rotated_at().is_some_and(|at| at >= seq) {
            return Ok(None);
        }
        let signer = history.for_seq(seq);
        event.verify(signer).map_err(|err| err.to_string())?;
        rotation
            .check_signer(signer)
            .map_err(|err| err.to_string())?;
        Ok(Some((rotation, event)))
    }
}

/// Whether `haystack` holds `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A stored event as the JSON a hello carries.
pub(super) fn event_value(event: &FeedEvent) -> Option<Value> {
    serde_json::from_slice(event.as_bytes()).ok()
}

/// At start, before anything is signed: completes our own rotation if one
/// was announced but not committed, discards new keys never announced, and
/// applies to the roster the peers' rotations the feed store holds but the
/// roster missed (a crash between the two). Returns our rotation events.
pub fn reconcile(
    identity: &mut center_identity::Identity,
    sessions: &mut crate::peer::Sessions,
    roster: &mut crate::roster::Roster,
    feeds: &center_feed::FeedStore,
) -> anyhow::Result<Vec<FeedEvent>> {
    use anyhow::Context;
    let me = identity.uuid();
    let own = feeds
        .rotations(me, 0)
        .context("cannot read this peer's rotations")?;
    if let Some(last) = own.last()
        && let Some(Ok(rotation)) = Rotation::from_event(last)
    {
        let expected = rotation.description();
        if identity.fingerprint() != expected.fingerprint()
            || identity.olm_curve25519() != expected.olm_curve25519()
        {
            sessions
                .forget_all()
                .map_err(anyhow::Error::msg)
                .context("cannot drop the old sessions")?;
            identity
                .resume_rotation(expected)
                .context("cannot complete the key rotation announced in this peer's feed")?;
            tracing::warn!(
                seq = last.seq(),
                fingerprint = expected.fingerprint(),
                "completed a key rotation cut short"
            );
        }
    }
    identity
        .discard_prepared_rotation()
        .context("cannot remove unannounced new keys")?;
    let peers: Vec<(PeerId, u64)> = roster
        .list()
        .map(|p| {
            let at = p.retired.last().map_or(0, |r| r.last_seq);
            (p.description.uuid(), at)
        })
        .collect();
    for (peer, after) in peers {
        for event in feeds
            .rotations(peer, after)
            .context("cannot read a peer's rotations")?
        {
            let Some(Ok(rotation)) = Rotation::from_event(&event) else {
                continue;
            };
            match roster.rotate(peer, &rotation, event.seq()) {
                Ok(_) => {
                    sessions.forget(peer).map_err(anyhow::Error::msg)?;
                    tracing::warn!(%peer, seq = event.seq(), "peer {peer} rotated its keys at seq {}", event.seq());
                }
                Err(err) => {
                    tracing::error!(%peer, error = %err, "cannot apply a stored key rotation")
                }
            }
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    //! The start after a crash in the middle of a rotation: announced, it
    //! is completed; not announced, the new keys are discarded.

    use center_feed::{FeedConfig, FeedStore, rotation_data};
    use center_identity::{Identity, IdentityPaths};
    use center_proto::{EventName, Timestamp};

    use super::reconcile;
    use crate::{peer::Sessions, roster::Roster};

    struct Peer {
        _dir: tempfile::TempDir,
        paths: IdentityPaths,
        identity: Identity,
        sessions: Sessions,
        roster: Roster,
        feeds: FeedStore,
    }

    fn peer() -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let paths = IdentityPaths::new(dir.path().join("identity"));
        let identity = Identity::create(&paths, "bravo", "127.0.0.1:7350").unwrap();
        let sessions = Sessions::open(dir.path().join("sessions"), *identity.pickle_key()).unwrap();
        let roster = Roster::open(dir.path(), identity.uuid()).unwrap();
        let feeds =
            FeedStore::open(&dir.path().join("feeds.sqlite3"), FeedConfig::default()).unwrap();
        Peer {
            _dir: dir,
            paths,
            identity,
            sessions,
            roster,
            feeds,
        }
    }

    #[test]
    fn an_announced_rotation_is_completed_at_start_and_an_unannounced_one_discarded() {
        let mut p = peer();
        let old = p.identity.fingerprint();
        // Crash after step 1: nothing announced.
        p.identity.prepare_rotation().unwrap();
        let mut loaded = Identity::load(&p.paths).unwrap();
        reconcile(&mut loaded, &mut p.sessions, &mut p.roster, &p.feeds).unwrap();
        assert_eq!(loaded.fingerprint(), old);
        assert!(!p.paths.cert_next().exists());

        // Crash after step 2: announced in the feed, files not renamed.
        let prepared = p.identity.prepare_rotation().unwrap();
        let new = prepared.description().clone();
        let data = rotation_data(&new, &old);
        let name = EventName::parse(center_feed::ROTATE_EVENT).unwrap();
        let uuid = p.identity.uuid();
        p.feeds
            .append_local(|m| p.identity.sign(m), uuid, name, data, Timestamp::now())
            .unwrap();
        let mut loaded = Identity::load(&p.paths).unwrap();
        assert_eq!(loaded.fingerprint(), old);
        let own = reconcile(&mut loaded, &mut p.sessions, &mut p.roster, &p.feeds).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(loaded.fingerprint(), new.fingerprint());
        assert_eq!(loaded.olm_curve25519(), new.olm_curve25519());
        // And it stays so.
        let mut again = Identity::load(&p.paths).unwrap();
        reconcile(&mut again, &mut p.sessions, &mut p.roster, &p.feeds).unwrap();
        assert_eq!(again.fingerprint(), new.fingerprint());
    }

    #[test]
    fn a_peer_rotation_stored_but_not_in_the_roster_is_applied_at_start() {
        let mut me = peer();
        let mut bravo = peer();
        let old = bravo.identity.describe().unwrap();
        me.roster.add(old.to_json().to_string().as_bytes()).unwrap();
        let prepared = bravo.identity.prepare_rotation().unwrap();
        let new = prepared.description().clone();
        let name = EventName::parse(center_feed::ROTATE_EVENT).unwrap();
        let uuid = bravo.identity.uuid();
        let data = rotation_data(&new, old.fingerprint());
        let appended = bravo
            .feeds
            .append_local(
                |m| bravo.identity.sign(m),
                uuid,
                name,
                data,
                Timestamp::now(),
            )
            .unwrap();
        let page = bravo.feeds.page(uuid, 0, 10, 1 << 20).unwrap();
        let history = me.roster.history(&uuid).unwrap();
        me.feeds
            .accept(&page.events, |_| Some(history.clone()), Timestamp::now())
            .unwrap();
        // The crash: the roster never heard of it.
        assert_eq!(
            me.roster.get(&uuid).unwrap().description.fingerprint(),
            old.fingerprint()
        );
        reconcile(
            &mut me.identity,
            &mut me.sessions,
            &mut me.roster,
            &me.feeds,
        )
        .unwrap();
        let history = me.roster.history(&uuid).unwrap();
        assert_eq!(history.current().fingerprint(), new.fingerprint());
        assert_eq!(history.rotated_at(), Some(appended.seq));
    }
}
