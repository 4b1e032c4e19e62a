//! What peerd does with each membership message and each sysadmin command
//! (CEP 7). Every handler is idempotent: a message delivered again (after
//! a crash, before its acknowledgement) finds the work done and changes
//! nothing. A refused message is logged with its reason and changes
//! nothing.

use std::sync::Mutex;

use center_bus::{
    AdminOp, BusError, Client, Delivery, Publish,
    membership::{ControlReply, ControlRequest},
};
use center_config::Policy;
use center_identity::{PeerDescription, PeerKeys, statement};
use center_proto::{Envelope, PeerId, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    messages::{self, MessageError},
    state::{self, Departed, Invitation, Joining, Request, State},
};

/// The membership daemon's shared state.
pub struct Peerd {
    config: center_config::Config,
    me: PeerId,
    state: Mutex<State>,
    /// The bus connection for sysadmin operations and publishing (events
    /// arrive on another).
    bus: tokio::sync::Mutex<Client>,
    /// The DHT node, once started.
    pub(crate) dht: std::sync::OnceLock<crate::locate::Locator>,
    /// This peer's OpenPGP fingerprint, once the DHT knows it.
    pub(crate) own_fingerprint: std::sync::OnceLock<String>,
}

fn now_ms() -> u64 {
    Timestamp::now().as_millis()
}

impl Peerd {
    pub fn new(config: center_config::Config, me: PeerId, state: State, bus: Client) -> Peerd {
        Peerd {
            config,
            me,
            state: Mutex::new(state),
            bus: tokio::sync::Mutex::new(bus),
            dht: std::sync::OnceLock::new(),
            own_fingerprint: std::sync::OnceLock::new(),
        }
    }

    pub fn me(&self) -> PeerId {
        self.me
    }

    /// A roster operation, its error as text.
    pub(crate) async fn admin_op(&self, op: AdminOp) -> Result<center_bus::AdminReply, String> {
        self.admin(op).await.map_err(|err| err.to_string())
    }

    /// The address the roster holds for `peer`.
    pub(crate) async fn roster_address(&self, peer: PeerId) -> Result<Option<String>, String> {
        let list = self.admin_op(AdminOp::PeerList {}).await?;
        Ok(list
            .peers
            .into_iter()
            .find(|p| p.uuid == peer.to_string())
            .map(|p| p.address))
    }

    /// Tells the DHT which key each roster uuid must be signed with;
    /// returns the roster's uuids.
    pub(crate) async fn refresh_trusted(&self) -> Result<Vec<PeerId>, String> {
        let list = self.admin_op(AdminOp::PeerList {}).await?;
        let mut trusted: std::collections::HashMap<PeerId, String> = list
            .peers
            .iter()
            .filter_map(|p| Some((p.uuid.parse().ok()?, p.fingerprint.clone())))
            .collect();
        let peers = trusted.keys().copied().collect();
        if let Some(own) = self.own_fingerprint.get() {
            trusted.insert(self.me, own.clone());
        }
        if let Some(dht) = self.dht.get() {
            dht.trusted().replace(trusted);
        }
        Ok(peers)
    }

    /// Whether this peer's DHT contact differs from the one last announced.
    pub(crate) fn contact_changed(&self) -> bool {
        let current = self.dht.get().map(|d| d.contact().to_string());
        current.is_some() && current != self.state().now.announced_contact
    }

    /// Tells `peers` this peer's DHT contact, each in a direct message
    /// (durable until delivered; not a feed event, so it adds nothing to
    /// every peer's history at every start).
    pub(crate) async fn send_contact(&self, peers: &[PeerId]) -> Result<(), String> {
        let Some(contact) = self.dht.get().map(|d| d.contact().to_string()) else {
            return Ok(());
        };
        for peer in peers {
            self.publish(
                messages::DHT_CONTACT,
                json!({ "contact": contact }),
                Some(*peer),
            )
            .await
            .map_err(|err| format!("cannot send the DHT contact to {peer}: {err}"))?;
        }
        if self.state().now.announced_contact.as_deref() != Some(contact.as_str()) {
            self.state().update(|s| {
                s.announced_contact = Some(contact.clone());
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The DHT contacts remembered from other peers' announcements.
    pub(crate) fn saved_contacts(&self) -> Vec<center_dht::Contact> {
        self.state()
            .now
            .contacts
            .values()
            .filter_map(|c| center_dht::Contact::parse(c).ok())
            .collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn admin(&self, op: AdminOp) -> Result<center_bus::AdminReply, BusError> {
        self.bus.lock().await.admin(op).await
    }

    async fn publish(&self, name: &str, data: Value, to: Option<PeerId>) -> Result<(), BusError> {
        self.bus
            .lock()
            .await
            .publish(match to {
                Some(peer) => Publish::direct(peer, name, data),
                None => Publish::feed(name, data),
            })
            .await
    }

    /// Trusts a description (dispatchd verifies it again); `announced`:
    /// on another member's word, not this sysadmin's.
    async fn trust(
        &self,
        description: &PeerDescription,
        why: &str,
        announced: bool,
    ) -> Result<(), String> {
        self.admin(AdminOp::PeerAdd {
            description: description.to_json(),
            announced,
        })
        .await
        .map_err(|err| err.to_string())?;
        tracing::info!(
            peer = %description.uuid(),
            name = description.name(),
            address = description.address(),
            why,
            "peer trusted"
        );
        if let Err(err) = self.refresh_trusted().await {
            tracing::warn!(
                error = err.as_str(),
                "the DHT's list of trusted keys is stale"
            );
        }
        if let Err(err) = self.send_contact(&[description.uuid()]).await {
            tracing::warn!(error = err.as_str(), "DHT contact not sent");
        }
        Ok(())
    }

    /// Stops trusting a peer: removes it from dispatchd's roster (already
    /// gone: nothing to do); its feed events up to
    /// `until` (all this peer holds, when `None`) stay valid. Returns the
    /// end dispatchd used (`None`: the peer was never known here).
    async fn distrust(&self, peer: PeerId, until: Option<u64>) -> Result<Option<u64>, String> {
        let end = match self
            .admin(AdminOp::PeerRemove {
                uuid: peer.to_string(),
                until,
            })
            .await
        {
            Ok(reply) => Ok(reply
                .value
                .and_then(|v| v.get("until").and_then(Value::as_u64))),
            Err(BusError::Refused {
                code: center_bus::ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(err) => Err(err.to_string()),
        }?;
        if let Err(err) = self.refresh_trusted().await {
            tracing::warn!(
                error = err.as_str(),
                "the DHT's list of trusted keys is stale"
            );
        }
        Ok(end)
    }

    async fn in_roster(&self, peer: PeerId) -> Result<bool, String> {
        let list = self
            .admin(AdminOp::PeerList {})
            .await
            .map_err(|err| err.to_string())?;
        Ok(list.peers.iter().any(|p| p.uuid == peer.to_string()))
    }

    /// Handles one event from the bus.
    pub async fn handle(&self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        let from = envelope.meta.from;
        let name = envelope.name.as_str();
        // Announcements count only on a feed (signed into their origin's
        // log); the join messages and the hand-off only as direct messages.
        let on_feed = delivery.feed.is_some();
        let direct = !on_feed && from != self.me;
        let result = match name {
            messages::NEW_PEER_SERVER if direct => self.on_join_request(envelope).await,
            messages::ADD_PEER_SERVER if direct => self.on_welcome(envelope).await,
            messages::ROSTER if direct => self.on_roster(envelope).await,
            messages::JOINED if on_feed => self.on_joined(envelope).await,
            messages::LEAVE if on_feed => {
                let seq = delivery.feed.as_ref().map(|f| f.seq);
                self.on_leave(envelope, seq).await
            }
            messages::EXCOMMUNICATE if on_feed => self.on_excommunicate(envelope).await,
            messages::UNREACHABLE if !on_feed && from == self.me => {
                self.on_unreachable(envelope).await
            }
            messages::DHT_CONTACT if direct => self.on_dht_contact(envelope).await,
            messages::NEW_PEER_SERVER
            | messages::ADD_PEER_SERVER
            | messages::ROSTER
            | messages::JOINED
            | messages::LEAVE
            | messages::EXCOMMUNICATE
            | messages::UNREACHABLE
            | messages::DHT_CONTACT => Err(format!(
                "`{name}` is not taken {}",
                if on_feed {
                    "on a feed"
                } else {
                    "outside a feed"
                }
            )),
            _ => Ok(()),
        };
        if let Err(reason) = result {
            tracing::warn!(%from, name, reason, "membership message refused");
        }
    }

    /// `new-peer-server`: checked, then queued for the sysadmin.
    async fn on_join_request(&self, envelope: &Envelope) -> Result<(), String> {
        let from = envelope.meta.from;
        let digest = envelope
            .canonical_bytes()
            .map(|bytes| hex(&Sha256::digest(bytes)))
            .map_err(|err| err.to_string())?;
        let request = messages::join_request(&envelope.data).map_err(|e| e.to_string())?;
        let description = &request.description;
        if description.uuid() != from {
            return Err(format!(
                "the description is of {}, not of the sender",
                description.uuid()
            ));
        }
        if self.in_roster(from).await? {
            return Err("it is already in the roster".to_owned());
        }
        let now = now_ms();
        let invitation = {
            let state = self.state();
            if state.now.seen.contains_key(&digest) {
                return Err("a replay of a request already taken".to_owned());
            }
            if let Some(departed) = state.now.departed.get(&from.to_string()) {
                return Err(format!(
                    "this peer was {} ({}); add it back with `centerctl peer add` if that was a mistake",
                    departed.how, departed.reason
                ));
            }
            state
                .now
                .invitations
                .iter()
                .find(|i| {
                    i.file == request.secret_file && i.admin == request.admin && i.expires > now
                })
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "no valid invitation `{}` for `{}` (wrong name, used, or expired)",
                        request.secret_file, request.admin
                    )
                })?
        };
        if invitation
            .for_peer
            .as_ref()
            .is_some_and(|p| *p != from.to_string())
        {
            return Err(format!(
                "invitation `{}` is a challenge for another peer",
                invitation.file
            ));
        }
        let message = statement::join_secret(
            from,
            self.me,
            &request.admin,
            &request.secret_file,
            &invitation.secret,
        )
        .map_err(|err| err.to_string())?;
        PeerKeys::from_description(description)
            .verify(&message, &request.signature)
            .map_err(|err| {
                format!(
                    "the signature does not prove the secret of invitation `{}`: {err}",
                    invitation.file
                )
            })?;
        let exp = envelope.meta.exp.as_millis();
        let proofs = self.state().update(|s| {
            s.seen.insert(digest, exp);
            s.invitations.retain(|i| i.file != invitation.file);
            let key = from.to_string();
            if let Some(known) = s.requests.iter_mut().find(|r| r.uuid == key) {
                if known.description.get("fingerprint")
                    != Some(&Value::from(description.fingerprint()))
                {
                    return Err(
                        "a request from this uuid with another key is already waiting".to_owned(),
                    );
                }
                known.proofs.push(invitation.file.clone());
                return Ok(known.proofs.len());
            }
            if s.requests.len() >= state::MAX_REQUESTS {
                return Err(format!(
                    "{} requests already wait for the sysadmin",
                    state::MAX_REQUESTS
                ));
            }
            s.requests.push(Request {
                uuid: key,
                description: description.to_json(),
                source: messages::NEW_PEER_SERVER.to_owned(),
                admin: Some(request.admin.clone()),
                proofs: vec![invitation.file.clone()],
                received: now,
            });
            Ok(1)
        })?;
        tracing::warn!(
            peer = %from,
            name = description.name(),
            address = description.address(),
            fingerprint = description.fingerprint(),
            admin = request.admin,
            proofs,
            "join request waiting: `centerctl peer approve {from}` or `reject`",
        );
        Ok(())
    }

    /// `add-peer-server`: the peer this peer asked to join through
    /// approved; trust it.
    async fn on_welcome(&self, envelope: &Envelope) -> Result<(), String> {
        let from = envelope.meta.from;
        let description = messages::welcome(&envelope.data).map_err(|e| e.to_string())?;
        if description.uuid() != from {
            return Err("the description is not the sender's".to_owned());
        }
        let joining = self.state().now.joining.get(&from.to_string()).cloned();
        let Some(joining) = joining else {
            return Err("this peer did not ask to join through it".to_owned());
        };
        if !description
            .fingerprint()
            .eq_ignore_ascii_case(&joining.fingerprint)
        {
            return Err("it is not signed by the certificate the sysadmin was given".to_owned());
        }
        self.trust(&description, "it approved our join request", false)
            .await?;
        self.state().update(|s| {
            if let Some(j) = s.joining.get_mut(&from.to_string()) {
                j.welcomed.get_or_insert(now_ms());
            }
            Ok(())
        })?;
        tracing::info!(peer = %from, name = description.name(), "joined the network through this peer");
        Ok(())
    }

    /// `peer.roster`: the hand-off of the peer this peer joined through.
    async fn on_roster(&self, envelope: &Envelope) -> Result<(), String> {
        let from = envelope.meta.from;
        if let Some(refusal) =
            Joining::hand_off_refusal(self.state().now.joining.get(&from.to_string()))
        {
            return Err(refusal.to_owned());
        }
        let peers = messages::roster(&envelope.data).map_err(|e| e.to_string())?;
        let mut imported = Vec::new();
        for (description, entry) in peers {
            let uuid = description.uuid();
            // A departed peer's entry carries the end of its feed: its keys
            // verify its old events (accounts made there), nothing more.
            let ended = entry.get("until").is_some();
            if uuid == self.me || (!ended && self.departed(uuid)) {
                continue;
            }
            match self.admin_op(AdminOp::PeerImport { entry }).await {
                Ok(_) if ended => {
                    // Remembered as departed: an old announcement of it on
                    // a feed does not bring it back.
                    let key = uuid.to_string();
                    self.state().update(|s| {
                        s.departed.entry(key).or_insert(Departed {
                            how: "departed before this peer joined".to_owned(),
                            reason: format!("in the roster handed over by {from}"),
                            at: now_ms(),
                        });
                        Ok(())
                    })?;
                    tracing::info!(
                        peer = %uuid,
                        name = description.name(),
                        "departed peer's keys kept for its old feed events, from the roster handed over by {from}"
                    )
                }
                Ok(_) => {
                    imported.push(uuid);
                    tracing::info!(
                        peer = %uuid,
                        name = description.name(),
                        "peer trusted: in the roster handed over by {from}"
                    )
                }
                Err(reason) => {
                    tracing::warn!(peer = %uuid, reason, "a peer of the roster hand-off was not added")
                }
            }
        }
        // Taken: no other hand-off is (a delivery of this one again,
        // after a crash before this line, only imports the same again).
        self.state().update(|s| {
            if let Some(j) = s.joining.get_mut(&from.to_string()) {
                j.handed_over.get_or_insert(now_ms());
            }
            Ok(())
        })?;
        tracing::info!(peer = %from, imported = imported.len(), "roster hand-off taken; no other is");
        // dispatchd counts this peer a member only from now on.
        if let Err(err) = self.admin_op(AdminOp::HandOffTaken {}).await {
            tracing::warn!(
                error = err.as_str(),
                "dispatchd was not told the hand-off is taken"
            );
        }
        if let Err(err) = self.refresh_trusted().await {
            tracing::warn!(
                error = err.as_str(),
                "the DHT's list of trusted keys is stale"
            );
        }
        if let Err(err) = self.send_contact(&imported).await {
            tracing::warn!(error = err.as_str(), "DHT contact not sent");
        }
        Ok(())
    }

    fn departed(&self, peer: PeerId) -> bool {
        self.state().now.departed.contains_key(&peer.to_string())
    }

    /// `peer.joined` on a trusted peer's feed: trust the newcomer too, or
    /// queue it for the sysadmin, by `[membership] policy`.
    async fn on_joined(&self, envelope: &Envelope) -> Result<(), String> {
        let origin = envelope.meta.from;
        let description = messages::joined(&envelope.data).map_err(|e| e.to_string())?;
        let uuid = description.uuid();
        if uuid == self.me || origin == self.me {
            return Ok(());
        }
        if self.departed(uuid) {
            tracing::info!(peer = %uuid, announced_by = %origin, "announced peer not added: it departed");
            return Ok(());
        }
        if self.in_roster(uuid).await? {
            return Ok(());
        }
        let sponsor = origin.to_string();
        let over_limit = {
            let state = self.state();
            let times = state
                .now
                .sponsored
                .get(&sponsor)
                .map(Vec::as_slice)
                .unwrap_or_default();
            !state::sponsor_may_add(
                times,
                now_ms(),
                self.config.membership.max_announced_per_day,
            )
        };
        if self.config.membership.policy == Policy::Auto && over_limit {
            tracing::warn!(
                peer = %uuid,
                sponsor = %origin,
                limit = self.config.membership.max_announced_per_day,
                "announced peer not trusted at once: its sponsor already added `max_announced_per_day` peers here in the last day; it waits for the sysadmin"
            );
        }
        match self.config.membership.policy {
            Policy::Auto if !over_limit => {
                self.trust(&description, &format!("announced by {origin}"), true)
                    .await?;
                self.state().update(|s| {
                    s.sponsored.entry(sponsor).or_default().push(now_ms());
                    Ok(())
                })
            }
            Policy::Auto | Policy::Manual => {
                let key = uuid.to_string();
                self.state().update(|s| {
                    if s.requests.iter().any(|r| r.uuid == key) {
                        return Ok(());
                    }
                    if s.requests.len() >= state::MAX_REQUESTS {
                        return Err("too many requests wait for the sysadmin".to_owned());
                    }
                    s.requests.push(Request {
                        uuid: key.clone(),
                        description: description.to_json(),
                        source: format!("announced by {origin}"),
                        admin: None,
                        proofs: Vec::new(),
                        received: now_ms(),
                    });
                    Ok(())
                })?;
                tracing::warn!(peer = %uuid, name = description.name(), announced_by = %origin, "announced peer waiting: `centerctl peer approve {uuid}`");
                Ok(())
            }
        }
    }

    /// `peer.unreachable`, raised by this peer's dispatcher: look for a
    /// newer address in the DHT (CEP 7).
    async fn on_unreachable(&self, envelope: &Envelope) -> Result<(), String> {
        let peer = envelope
            .data
            .get("peer")
            .and_then(serde_json::Value::as_str)
            .and_then(|p| p.parse::<PeerId>().ok())
            .ok_or("`peer.unreachable` names no peer")?;
        match self.dht.get() {
            Some(dht) => dht.find(self, peer).await,
            None => Ok(()),
        }
    }

    /// `peer.dht-contact` from a peer: its DHT node moved (or is new);
    /// bootstrap from it and look the peer up.
    async fn on_dht_contact(&self, envelope: &Envelope) -> Result<(), String> {
        let origin = envelope.meta.from;
        if origin == self.me {
            return Ok(());
        }
        let text = messages::dht_contact(&envelope.data).map_err(|e| e.to_string())?;
        let contact = center_dht::Contact::parse(&text).map_err(|e| e.to_string())?;
        self.state().update(|s| {
            s.contacts.insert(origin.to_string(), text.clone());
            Ok(())
        })?;
        if let Some(dht) = self.dht.get() {
            dht.add_contacts(&[contact]).await;
            dht.find(self, origin).await?;
        }
        Ok(())
    }

    /// `peer.leave` at `seq` of a peer's own feed: it retires, and its
    /// feed ends there (what it published before stays valid).
    async fn on_leave(&self, envelope: &Envelope, seq: Option<u64>) -> Result<(), String> {
        let origin = envelope.meta.from;
        let reason = messages::leave(&envelope.data).map_err(|e| e.to_string())?;
        if origin == self.me {
            return Ok(());
        }
        self.depart(origin, "left", &reason, seq).await?;
        self.recount().await;
        Ok(())
    }

    /// Counts again the votes pending on every target once the members
    /// changed (a peer departed): fewer members may make a quorum, and
    /// the departed one's vote no longer counts.
    async fn recount(&self) {
        let pending: Vec<(
            String,
            std::collections::BTreeMap<String, crate::quorum::Vote>,
        )> = self.state().now.votes.clone().into_iter().collect();
        for (target, votes) in pending {
            let Ok(peer) = target.parse::<PeerId>() else {
                continue;
            };
            let counted = match self.members().await {
                Ok(members) => self.count_votes(peer, &votes, &members).await,
                Err(err) => Err(err),
            };
            if let Err(reason) = counted {
                tracing::warn!(%peer, reason, "excommunication votes not counted again");
            }
        }
    }

    /// This peer and the peers of its roster: who may vote.
    async fn members(&self) -> Result<std::collections::BTreeSet<String>, String> {
        let list = self.admin_op(AdminOp::PeerList {}).await?;
        let mut members: std::collections::BTreeSet<String> =
            list.peers.into_iter().map(|p| p.uuid).collect();
        members.insert(self.me.to_string());
        Ok(members)
    }

    /// `peer.excommunicate` on a member's feed: its vote to expel a peer.
    /// Recorded (each origin once, never the target's own); the peer is
    /// removed here only once a quorum of distinct members voted (CEP 7).
    async fn on_excommunicate(&self, envelope: &Envelope) -> Result<(), String> {
        let voter = envelope.meta.from;
        let (peer, reason, until) =
            messages::excommunicate(&envelope.data).map_err(|e: MessageError| e.to_string())?;
        if voter == self.me {
            // This peer's own vote: it cut the peer when its sysadmin cast it.
            return Ok(());
        }
        if peer == self.me {
            tracing::error!(by = %voter, reason, "a peer voted to excommunicate this peer");
            return Ok(());
        }
        if peer == voter {
            return Err("a peer cannot vote on its own excommunication".to_owned());
        }
        if self.departed(peer) {
            tracing::info!(%peer, by = %voter, "excommunication vote for a peer already departed here: nothing to do");
            return Ok(());
        }
        let members = self.members().await?;
        if !members.contains(&peer.to_string()) {
            return Err(format!(
                "{peer} is not in this peer's roster; the vote is not recorded"
            ));
        }
        if !members.contains(&voter.to_string()) {
            return Err("the voter is not a member here; its vote does not count".to_owned());
        }
        let (target, from) = (peer.to_string(), voter.to_string());
        let votes = self.state().update(|s| {
            let votes = s.votes.entry(target.clone()).or_default();
            if votes.contains_key(&from) {
                return Ok(None);
            }
            votes.insert(
                from.clone(),
                crate::quorum::Vote {
                    reason: reason.clone(),
                    until,
                    at: now_ms(),
                },
            );
            Ok(Some(votes.clone()))
        })?;
        let Some(votes) = votes else {
            tracing::info!(%peer, by = %voter, "an origin votes once: its second excommunication vote changes nothing");
            return Ok(());
        };
        self.count_votes(peer, &votes, &members).await
    }

    /// Removes `peer` if the votes held reach the quorum; logs the votes
    /// pending otherwise.
    async fn count_votes(
        &self,
        peer: PeerId,
        votes: &std::collections::BTreeMap<String, crate::quorum::Vote>,
        members: &std::collections::BTreeSet<String>,
    ) -> Result<(), String> {
        let voters: Vec<&String> = votes.keys().collect();
        match crate::quorum::decide(
            &peer.to_string(),
            votes,
            members,
            self.config.membership.excommunicate_quorum,
        ) {
            crate::quorum::Decision::Pending { have, need } => {
                tracing::warn!(
                    %peer,
                    votes = have,
                    needed = need,
                    ?voters,
                    "excommunication pending: not removed until a quorum of distinct members votes"
                );
                Ok(())
            }
            crate::quorum::Decision::Remove { until, voters: n } => {
                let reasons: Vec<&str> = votes.values().map(|v| v.reason.as_str()).collect();
                let reason = format!("voted by {n} members: {}", reasons.join("; "));
                // Its feed ends at the least of the voters' ends: a seq
                // every one of them held.
                self.depart(peer, "excommunicated", &reason, until)
                    .await
                    .map(drop)
            }
        }
    }

    /// Records `peer` as departed and removes it from the roster; returns
    /// where its feed ends here.
    async fn depart(
        &self,
        peer: PeerId,
        how: &str,
        reason: &str,
        until: Option<u64>,
    ) -> Result<Option<u64>, String> {
        let key = peer.to_string();
        self.state().update(|s| {
            s.requests.retain(|r| r.uuid != key);
            s.votes.remove(&key);
            s.departed.entry(key.clone()).or_insert(Departed {
                how: how.to_owned(),
                reason: reason.to_owned(),
                at: now_ms(),
            });
            Ok(())
        })?;
        let end = self.distrust(peer, until).await?;
        tracing::warn!(%peer, how, reason, until = ?end, "peer departed: removed from the roster");
        Ok(end)
    }

    /// Answers a sysadmin's command.
    pub async fn control(&self, request: ControlRequest) -> ControlReply {
        let result = match request {
            ControlRequest::Invite {
                admin,
                file,
                secret,
                for_peer,
            } => self.invite(admin, file, secret, for_peer),
            ControlRequest::Requests {} => Ok(ControlReply::data(json!(self.state().now.requests))),
            ControlRequest::Approve { uuid } => self.approve(&uuid).await,
            ControlRequest::Reject { uuid } => self.reject(&uuid),
            ControlRequest::Join {
                via,
                uuid,
                fingerprint,
                admin,
                secret_file,
                secret,
            } => {
                self.join(via, uuid, fingerprint, admin, secret_file, secret)
                    .await
            }
            ControlRequest::Remove { uuid, reason } => match uuid.parse::<PeerId>() {
                Err(err) => Err(format!("bad uuid: {err}")),
                Ok(peer) => match self.depart(peer, "removed", &reason, None).await {
                    Err(err) => Err(err),
                    Ok(_) => {
                        self.recount().await;
                        Ok(ControlReply::done(format!(
                            "peer {peer} removed; this peer no longer talks to it"
                        )))
                    }
                },
            },
            ControlRequest::Leave { reason } => self
                .publish(messages::LEAVE, json!({ "reason": reason }), None)
                .await
                .map(|()| {
                    ControlReply::done(
                        "peer.leave published; the other peers remove this peer as they receive it",
                    )
                })
                .map_err(|err| err.to_string()),
            ControlRequest::Excommunicate { uuid, reason } => match uuid.parse::<PeerId>() {
                Err(err) => Err(format!("bad uuid: {err}")),
                Ok(peer) if peer == self.me => {
                    Err("this peer cannot vote on its own excommunication".to_owned())
                }
                Ok(peer) => {
                    // This peer's sysadmin cuts the peer here at once (its
                    // right, as `peer remove`); the vote carries where its
                    // feed ended here, and the other peers remove it only
                    // once a quorum of distinct members voted.
                    match self.depart(peer, "excommunicated", &reason, None).await {
                        Err(err) => Err(err),
                        Ok(until) => {
                            let mut data = json!({ "peer": peer.to_string(), "reason": reason });
                            if let Some(until) = until {
                                data["until"] = json!(until);
                            }
                            self.publish(messages::EXCOMMUNICATE, data, None)
                                .await
                                .map_err(|err| err.to_string())
                                .map(|()| ControlReply::done(format!("peer {peer} removed here; excommunication vote published (the other peers remove it once a quorum of members voted)")))
                        }
                    }
                }
            },
            ControlRequest::Status {} => {
                let state = self.state();
                Ok(ControlReply::data(json!({
                    "joining": state.now.joining,
                    "departed": state.now.departed,
                    "requests": state.now.requests.len(),
                    "invitations": state.now.invitations.len(),
                    "excommunication_votes": state.now.votes,
                })))
            }
        };
        result.unwrap_or_else(ControlReply::failed)
    }

    fn invite(
        &self,
        admin: String,
        file: String,
        secret: String,
        for_peer: Option<String>,
    ) -> Result<ControlReply, String> {
        messages::check_account(&admin)?;
        messages::check_file_name(&file)?;
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the secret must be 64 hexadecimal characters".to_owned());
        }
        let now = now_ms();
        let expires = now.saturating_add(
            u64::try_from(self.config.membership.invite_ttl.as_millis()).unwrap_or(u64::MAX),
        );
        self.state().update(|s| {
            if s.invitations.len() >= state::MAX_INVITATIONS {
                return Err(format!(
                    "{} invitations are already outstanding",
                    state::MAX_INVITATIONS
                ));
            }
            if s.invitations.iter().any(|i| i.file == file) {
                return Err(format!("an invitation `{file}` already exists"));
            }
            s.invitations.push(Invitation {
                file: file.clone(),
                admin: admin.clone(),
                secret,
                created: now,
                expires,
                for_peer,
            });
            Ok(())
        })?;
        tracing::info!(admin, file, "invitation recorded");
        Ok(ControlReply::data(json!({ "expires": expires })))
    }

    async fn approve(&self, uuid: &str) -> Result<ControlReply, String> {
        let request = self
            .state()
            .now
            .requests
            .iter()
            .find(|r| r.uuid == uuid)
            .cloned()
            .ok_or_else(|| format!("no request from {uuid} waits (`centerctl peer requests`)"))?;
        let bytes = serde_json::to_vec(&request.description).map_err(|err| err.to_string())?;
        let description = PeerDescription::from_json(&bytes).map_err(|err| err.to_string())?;
        let peer = description.uuid();
        self.trust(&description, "the sysadmin approved it", false)
            .await?;
        if request.source == messages::NEW_PEER_SERVER {
            self.admin(AdminOp::PeerWelcome {
                uuid: peer.to_string(),
            })
            .await
            .map_err(|err| {
                format!(
                    "{} is trusted here, but add-peer-server could not be sent ({err}); run `centerctl peer approve {peer}` again once it is reachable",
                    description.name()
                )
            })?;
            self.hand_over(peer).await?;
            self.publish(
                messages::JOINED,
                json!({ "description": description.to_json() }),
                None,
            )
            .await
            .map_err(|err| format!("cannot announce the newcomer: {err}"))?;
        }
        self.state().update(|s| {
            s.requests.retain(|r| r.uuid != uuid);
            Ok(())
        })?;
        Ok(ControlReply::done(format!(
            "peer {} ({peer}) is trusted{}",
            description.name(),
            if request.source == messages::NEW_PEER_SERVER {
                "; add-peer-server sent, the roster handed over and the newcomer announced"
            } else {
                ""
            }
        )))
    }

    /// Sends the roster to a newcomer (a direct message, queued until its
    /// session exists).
    async fn hand_over(&self, newcomer: PeerId) -> Result<(), String> {
        let reply = self
            .admin(AdminOp::PeerDescriptions {})
            .await
            .map_err(|err| err.to_string())?;
        // Entries without `added` (that is this peer's own record).
        let peers: Vec<Value> = reply
            .value
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e.pointer("/description/uuid").and_then(Value::as_str)
                    != Some(&newcomer.to_string())
            })
            .map(|mut e| {
                if let Some(object) = e.as_object_mut() {
                    object.remove("added");
                }
                e
            })
            .take(messages::MAX_ROSTER)
            .collect();
        self.publish(messages::ROSTER, json!({ "peers": peers }), Some(newcomer))
            .await
            .map_err(|err| format!("cannot hand the roster over: {err}"))
    }

    fn reject(&self, uuid: &str) -> Result<ControlReply, String> {
        let removed = self.state().update(|s| {
            let before = s.requests.len();
            s.requests.retain(|r| r.uuid != uuid);
            Ok(before != s.requests.len())
        })?;
        if !removed {
            return Err(format!("no request from {uuid} waits"));
        }
        tracing::info!(peer = uuid, "join request rejected by the sysadmin");
        Ok(ControlReply::done(format!("request from {uuid} rejected")))
    }

    async fn join(
        &self,
        via: String,
        uuid: String,
        fingerprint: String,
        admin: String,
        secret_file: String,
        secret: String,
    ) -> Result<ControlReply, String> {
        let peer = uuid
            .parse::<PeerId>()
            .map_err(|err| format!("bad uuid: {err}"))?;
        messages::check_account(&admin)?;
        messages::check_file_name(&secret_file)?;
        if fingerprint.len() != 40 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the fingerprint must be 40 hexadecimal characters".to_owned());
        }
        let key = peer.to_string();
        let joining = Joining {
            address: via.clone(),
            fingerprint: fingerprint.to_ascii_uppercase(),
            asked: now_ms(),
            welcomed: None,
            handed_over: None,
        };
        self.state().update(|s| {
            s.departed.remove(&key);
            s.joining.insert(key.clone(), joining);
            Ok(())
        })?;
        self.admin(AdminOp::PeerJoin {
            address: via.clone(),
            uuid,
            fingerprint,
            admin,
            secret_file,
            secret,
        })
        .await
        .map_err(|err| format!("the join request was not sent: {err}"))?;
        Ok(ControlReply::done(format!(
            "join request sent to {peer} at {via}; its sysadmin approves it with `centerctl peer approve {}`",
            self.me
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
