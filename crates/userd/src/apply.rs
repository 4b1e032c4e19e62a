//! What userd does with each account event (CEP 8): checks that go beyond
//! the event's own shape (whose act it is and whether its times are
//! believable, [`crate::authority`]; the number lies in its origin's
//! block; the name is not a local one here, [`crate::names`]; the name
//! rule between two creations of one name), then the directory writes.
//! Every handler is idempotent, so an event delivered again after a crash
//! changes nothing; a refused event is logged and changes nothing.

use std::borrow::Cow;

use center_bus::{Client, Delivery, Publish};
use serde_json::json;

use crate::{
    account::{self, AccountEvent, Created, Stamp},
    authority,
    blocks::{Blocks, Claim},
    directory::{self, AccountClaim, DirError, Directory, Refusal, Tombstone},
    names,
};

/// Why an event changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The event breaks a rule; logged and dropped.
    #[error("{0}")]
    Rule(String),
    /// The directory failed; a connection failure is retried.
    #[error(transparent)]
    Directory(#[from] DirError),
}

/// userd's state: the directory, the blocks, who this peer is, and the bus
/// connection it publishes on (events arrive on another).
pub struct Userd {
    pub directory: Directory,
    pub blocks: Blocks,
    /// The block this peer holds, for the control task that numbers new
    /// accounts.
    pub our_block: tokio::sync::watch::Sender<Option<u32>>,
    /// This peer's UUID.
    pub me: String,
    pub bus: Client,
    /// A block claim of ours is on its way and not yet seen on our feed.
    pub claim_pending: bool,
    /// The deletions of each name, as kept in `ou=deleted`: each kills
    /// the claims made up to its time that were its to delete.
    pub deleted: std::collections::HashMap<String, Vec<Tombstone>>,
    /// Where this peer makes homes: `home_prefix/NAME`.
    pub home_prefix: String,
    /// Names this peer's sysadmin reserved, besides [`names::RESERVED`].
    pub reserved: Vec<String>,
    /// How many names each origin has notices or deletions recorded for
    /// here (CEP 8, "Quotas"): at most [`MAX_RECORDS_PER_ORIGIN`].
    pub records: std::collections::HashMap<String, u64>,
}

/// Names one origin may have notices, and deletions, recorded for on this
/// peer: what a flood of made-up names can make userd write to slapd.
pub const MAX_RECORDS_PER_ORIGIN: u64 = 100_000;

impl Userd {
    /// Claims a free block if this peer holds none and no claim of ours is
    /// on its way.
    pub async fn claim_block_if_needed(&mut self) -> anyhow::Result<()> {
        if self.claim_pending || self.blocks.block_of(&self.me).is_some() {
            return Ok(());
        }
        let Some(claim) = self.blocks.next_claim(&self.me) else {
            tracing::error!("every number block is claimed: no account can be made here");
            return Ok(());
        };
        let (index, attempt) = (claim.index, claim.attempt);
        let (name, data) = AccountEvent::Block { index, attempt }.to_event();
        self.bus.publish(Publish::feed(name, data)).await?;
        self.claim_pending = true;
        tracing::info!(index, attempt, "number block claimed");
        Ok(())
    }

    /// Applies one delivery. `Err` only for a directory that cannot be
    /// reached: the caller reconnects and tries the same delivery again.
    pub async fn handle(&mut self, delivery: &Delivery) -> Result<(), DirError> {
        let envelope = &delivery.envelope;
        let name = envelope.name.as_str();
        if name == account::REFUSED {
            return Ok(());
        }
        let Some(feed) = &delivery.feed else {
            tracing::warn!(from = %envelope.meta.from, name, "account event refused: not a feed event");
            return Ok(());
        };
        let origin = feed.origin.as_str();
        if envelope.meta.from.to_string() != origin {
            tracing::warn!(
                origin,
                name,
                "account event refused: its sender is not its origin"
            );
            return Ok(());
        }
        let event = match AccountEvent::read(name, &envelope.data) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(origin, seq = feed.seq, name, reason = %err, "account event refused");
                return Ok(());
            }
        };
        let iat = envelope.meta.iat.as_millis();
        let now = center_bus::Timestamp::now().as_millis();
        let result = match self.apply(origin, iat, now, &event).await {
            // A local ban holds whatever another peer changed.
            Ok(what) => self.reassert_ban(&event).await.map(|()| what),
            Err(err) => Err(err),
        };
        match result {
            Ok(what) => {
                tracing::info!(
                    origin,
                    seq = feed.seq,
                    name,
                    account = event.account(),
                    "{what}"
                );
                Ok(())
            }
            Err(Refused::Rule(reason)) => {
                tracing::warn!(
                    origin,
                    seq = feed.seq,
                    name,
                    account = event.account(),
                    reason,
                    "account event refused"
                );
                Ok(())
            }
            Err(Refused::Directory(err)) if err.is_connection() => Err(err),
            Err(Refused::Directory(err)) => {
                tracing::warn!(origin, seq = feed.seq, name, account = event.account(), reason = %err, "account event refused by slapd");
                Ok(())
            }
        }
    }

    async fn apply(
        &mut self,
        origin: &str,
        iat: u64,
        now: u64,
        event: &AccountEvent,
    ) -> Result<Cow<'static, str>, Refused> {
        match event {
            AccountEvent::Block { index, attempt } => {
                self.blocks
                    .record(Claim {
                        index: *index,
                        attempt: *attempt,
                        origin: origin.to_owned(),
                    })
                    .map_err(|e| Refused::Rule(format!("block claim refused: {e}")))?;
                if origin == self.me {
                    self.claim_pending = false;
                }
                // Any claim may decide ours (won, or lost to this one).
                let ours = self.blocks.block_of(&self.me);
                self.our_block.send_if_modified(|held| {
                    let changed = *held != ours;
                    *held = ours;
                    changed
                });
                if let Err(err) = self.claim_block_if_needed().await {
                    tracing::warn!(error = %err, "cannot claim a number block");
                }
                Ok(match self.blocks.block_of(origin) {
                    Some(held) if held == *index => "number block claim recorded: it holds",
                    _ => "number block claim recorded: it lost",
                }
                .into())
            }
            AccountEvent::Created(c) => {
                authority::check_time("created", c.created, iat, now).map_err(rule)?;
                self.created(origin, c).await.map(Cow::from)
            }
            AccountEvent::Password { .. }
            | AccountEvent::Keys { .. }
            | AccountEvent::Profile { .. } => self.changed(origin, iat, now, event).await,
            AccountEvent::Deleted { name, stamp } => {
                authority::check_time("deleted", stamp.at, iat, now).map_err(rule)?;
                let tombstone = Tombstone {
                    deleted: stamp.at,
                    origin: origin.to_owned(),
                    auth: stamp.auth.clone(),
                };
                self.deleted(name, tombstone).await.map(Cow::from)
            }
            AccountEvent::Delegated(d) => {
                authority::check_time("not_before", d.stamp.at, iat, now).map_err(rule)?;
                self.delegated(origin, now, event, d).await.map(Cow::from)
            }
            AccountEvent::Notice {
                name,
                banned,
                reason,
            } => {
                if origin == self.me {
                    return Ok("our own ban notice".into());
                }
                let action = if *banned { "banned" } else { "unbanned" };
                let text = format!("{origin} {action} at {iat}: {reason}");
                self.record_notice(origin, name, &text).await?;
                Ok("ban notice recorded for the sysadmin (`centerctl user notices`)".into())
            }
        }
    }

    /// After an event touched an account banned here, writes the ban again.
    async fn reassert_ban(&mut self, event: &AccountEvent) -> Result<(), Refused> {
        // A creation keeps a ban itself (`created`): a new entry has none.
        let touches = matches!(
            event,
            AccountEvent::Password { .. }
                | AccountEvent::Keys { .. }
                | AccountEvent::Profile { .. }
        );
        let Some(name) = event.account().filter(|_| touches) else {
            return Ok(());
        };
        if self
            .directory
            .account(name)
            .await?
            .is_some_and(|a| a.banned)
        {
            self.directory.set_ban(name, true).await?;
        }
        Ok(())
    }

    /// `account.password`, `account.keys`, `account.profile`: applied if
    /// the account is held here, the change is its user's or its home
    /// peer's, its time is believable and it is newer than the last change
    /// of its kind (CEP 8, "Authority").
    async fn changed(
        &mut self,
        origin: &str,
        iat: u64,
        now: u64,
        event: &AccountEvent,
    ) -> Result<Cow<'static, str>, Refused> {
        let (Some(name), Some(stamp)) = (event.account(), event.stamp()) else {
            return Err(rule("not a change of an account"));
        };
        authority::check_time("at", stamp.at, iat, now).map_err(rule)?;
        let Some(held) = self.directory.account(name).await? else {
            return Err(rule("no such account here"));
        };
        let Some(claim) = &held.claim else {
            return Err(rule("the name is held by an entry userd did not make"));
        };
        // Delegations are read only for a change that may rest on one.
        let delegations = if stamp.auth.is_none() && origin != claim.home() {
            self.directory.delegations(name).await?
        } else {
            Vec::new()
        };
        let by = authority::authorize(
            origin,
            claim.home(),
            held.user_key.as_deref(),
            &delegations,
            event,
        )
        .map_err(rule)?;
        let mut stamps = held.stamps;
        let (what, last) = match event {
            AccountEvent::Password { .. } => ("password replaced", &mut stamps.password),
            AccountEvent::Keys { .. } => ("SSH keys replaced", &mut stamps.keys),
            _ => ("profile replaced", &mut stamps.profile),
        };
        authority::check_newer(stamp.at, *last).map_err(rule)?;
        *last = stamp.at;
        let present = match event {
            AccountEvent::Password {
                password_hash,
                user_key,
                ..
            } => {
                let text = directory::describe(claim, user_key.as_deref(), &stamps);
                self.directory
                    .set_password(name, password_hash, &text)
                    .await?
            }
            AccountEvent::Keys { ssh_keys, .. } => {
                let text = directory::describe(claim, held.user_key.as_deref(), &stamps);
                self.directory.set_keys(name, ssh_keys, &text).await?
            }
            AccountEvent::Profile {
                shell,
                display_name,
                ..
            } => {
                let text = directory::describe(claim, held.user_key.as_deref(), &stamps);
                self.directory
                    .set_profile(name, shell, display_name, &text)
                    .await?
            }
            _ => return Err(rule("not a change of an account")),
        };
        if !present {
            return Err(rule("no such account here"));
        }
        Ok(format!("{what} ({})", by.as_str()).into())
    }

    /// Keeps a notice from `origin` about `name`, within the origin's
    /// quota of names.
    async fn record_notice(&mut self, origin: &str, name: &str, text: &str) -> Result<(), Refused> {
        let count = self.records.get(origin).copied().unwrap_or(0);
        let room = count < MAX_RECORDS_PER_ORIGIN;
        match self.directory.record_notice(name, text, room).await? {
            directory::Noticed::New => {
                self.records.insert(origin.to_owned(), count + 1);
                Ok(())
            }
            directory::Noticed::Replaced => Ok(()),
            directory::Noticed::Refused => Err(rule(quota_full(origin))),
        }
    }

    /// Counts one more name recorded for `origin`, or refuses past its quota.
    fn count_record(&mut self, origin: &str) -> Result<(), Refused> {
        let count = self.records.entry(origin.to_owned()).or_default();
        if *count >= MAX_RECORDS_PER_ORIGIN {
            return Err(rule(quota_full(origin)));
        }
        *count += 1;
        Ok(())
    }

    /// `account.delegated`: kept if its user signed it with the key the
    /// account holds (one per delegated peer, the latest; expired ones
    /// dropped). It counts only while that key is hers.
    async fn delegated(
        &mut self,
        origin: &str,
        now: u64,
        event: &AccountEvent,
        d: &account::Delegation,
    ) -> Result<&'static str, Refused> {
        let Some(held) = self.directory.account(&d.name).await? else {
            return Err(rule("no such account here"));
        };
        let Some(claim) = &held.claim else {
            return Err(rule("the name is held by an entry userd did not make"));
        };
        authority::authorize(origin, claim.home(), held.user_key.as_deref(), &[], event)
            .map_err(rule)?;
        let Some(key) = held.user_key else {
            return Err(rule(authority::Unauthorized::NoUserKey));
        };
        let new = authority::Delegated {
            peer: d.peer.clone(),
            scopes: d.scopes.clone(),
            not_before: d.stamp.at,
            not_after: d.not_after,
            key,
        };
        let mut list = self.directory.delegations(&d.name).await?;
        if !directory::keep_delegation(&mut list, &new, now) {
            return Ok("delegation already held (or a later one is)");
        }
        self.directory.record_delegations(&d.name, &list).await?;
        Ok("delegation recorded: that peer may act for its user within it")
    }

    /// `account.deleted`: the deletion is recorded first (a crash after it
    /// deletes on the replay), then the account goes if the deletion is
    /// its to delete ([`may_delete`]); one made later, or one the deletion's
    /// origin had no authority over, stays. A deletion of an account not
    /// held here is kept and judged against each creation that arrives.
    async fn deleted(&mut self, name: &str, tombstone: Tombstone) -> Result<&'static str, Refused> {
        let first_from_origin = self
            .deleted
            .get(name)
            .is_none_or(|list| list.iter().all(|t| t.origin != tombstone.origin));
        if first_from_origin {
            self.count_record(&tombstone.origin)?;
        }
        let list = self.deleted.entry(name.to_owned()).or_default();
        if directory::keep_tombstone(list, &tombstone) {
            let kept = list.clone();
            self.directory.record_deletions(name, &kept).await?;
        }
        match self.directory.account(name).await? {
            Some(found) => match &found.claim {
                Some(claim) if claim.created <= tombstone.deleted => {
                    match may_delete(&tombstone, name, claim, found.user_key.as_deref()) {
                        Ok(()) => {
                            self.directory.delete_account(name).await?;
                            Ok("account deleted")
                        }
                        Err(why) => Err(rule(format!("deletion kept, but {why}"))),
                    }
                }
                Some(_) => Ok("deletion recorded; the account here was made after it and stays"),
                None => Err(rule("the name is held by an entry userd did not make")),
            },
            None => Ok(
                "deletion recorded; no such account here (a late creation it may delete stays dead)",
            ),
        }
    }

    /// `account.created`: the number must be in the origin's block; of two
    /// creations of one name the earlier `created`, then the lower origin
    /// UUID, owns it everywhere.
    async fn created(&mut self, origin: &str, c: &Created) -> Result<&'static str, Refused> {
        if !self.blocks.allows(origin, c.uid_number) {
            let held = match self.blocks.block_of(origin) {
                Some(index) => format!("its block is {index}"),
                None => "it holds no block".to_owned(),
            };
            return Err(Refused::Rule(format!(
                "uid_number {} is outside the number block of its origin ({held})",
                c.uid_number
            )));
        }
        let claim = AccountClaim {
            created: c.created,
            joined_from: origin.to_owned(),
        };
        let local = names::nss(&c.name);
        if let Some(reason) = names::conflict(&c.name, c.uid_number, local, &self.reserved) {
            let text = format!("{origin} made `{}`, {NOT_MADE_HERE}: {reason}", c.name);
            self.record_notice(origin, &c.name, &text).await?;
            if origin == self.me {
                self.tell_refused(&c.name, &format!("refused here: {reason}"))
                    .await?;
            }
            return Err(rule(format!(
                "not made on this peer: {reason} (the sysadmin is told: `centerctl user notices`)"
            )));
        }
        let killed = self.deleted.get(&c.name).and_then(|list| {
            list.iter()
                .find(|t| {
                    c.created <= t.deleted
                        && may_delete(t, &c.name, &claim, c.user_key.as_deref()).is_ok()
                })
                .map(|t| t.deleted)
        });
        if let Some(at) = killed {
            let reason = format!(
                "the name was deleted at {at} ms, after this creation (at {} ms)",
                c.created
            );
            if origin == self.me {
                self.tell_refused(&c.name, &format!("refused: {reason}"))
                    .await?;
            }
            return Err(Refused::Rule(reason));
        }
        let home = format!("{}/{}", self.home_prefix.trim_end_matches('/'), c.name);
        // The common case first: a new name is one add (two entries).
        if self.directory.add_person(c, &claim, &home).await? {
            self.directory.add_group(c).await?;
            // A ban of the name here outlives earlier accounts of it.
            if self.directory.ban_recorded(&c.name).await? {
                self.directory.set_ban(&c.name, true).await?;
                return Ok("account created, banned here (this peer's ban of the name)");
            }
            return Ok("account created");
        }
        let Some(existing) = self.directory.account(&c.name).await? else {
            return Err(Refused::Rule(
                "the name was taken and freed while it was created; try again".to_owned(),
            ));
        };
        match &existing.claim {
            Some(held) if *held == claim => {
                // A replay: the group may be what a crash left undone.
                self.directory.add_group(c).await?;
                Ok("account already present")
            }
            Some(held) if claim < *held => {
                let held = held.clone();
                self.directory.delete_account(&c.name).await?;
                self.directory.add_account(c, &claim, &home).await?;
                if existing.banned || self.directory.ban_recorded(&c.name).await? {
                    self.directory.set_ban(&c.name, true).await?;
                }
                self.lost(&c.name, &held, &claim).await?;
                Ok("account created: an earlier claim on the name replaced a later one")
            }
            Some(held) => {
                let held = held.clone();
                self.lost(&c.name, &claim, &held).await?;
                Err(Refused::Rule(format!(
                    "the name is held by a claim from {} at {}",
                    held.joined_from, held.created
                )))
            }
            None => Err(Refused::Rule(
                "the name is held by an entry userd did not make".to_owned(),
            )),
        }
    }

    /// Records that `loser` lost the name to `winner`, if the loser is this
    /// peer, and tells local subscribers.
    async fn lost(
        &mut self,
        name: &str,
        loser: &AccountClaim,
        winner: &AccountClaim,
    ) -> Result<(), DirError> {
        if loser.joined_from != self.me {
            return Ok(());
        }
        let reason = format!(
            "refused: the name was created first on {} (at {} ms; ours at {} ms)",
            winner.joined_from, winner.created, loser.created
        );
        self.tell_refused(name, &reason).await
    }

    /// Records that this peer's request for `name` was refused, and tells
    /// local subscribers (`account.refused`).
    async fn tell_refused(&mut self, name: &str, reason: &str) -> Result<(), DirError> {
        tracing::warn!(account = name, reason, "our account request was refused");
        self.directory
            .record_refusal(&Refusal {
                name: name.to_owned(),
                reason: reason.to_owned(),
            })
            .await?;
        let publish = Publish::local(account::REFUSED, json!({ "name": name, "reason": reason }));
        if let Err(err) = self.bus.publish(publish).await {
            tracing::warn!(error = %err, "cannot announce the refusal locally");
        }
        Ok(())
    }
}

/// How many names each origin has deletions and notices recorded for, from
/// what slapd holds (counted once at start, then kept by userd).
pub fn records_per_origin(
    deleted: &std::collections::HashMap<String, Vec<Tombstone>>,
    notices: &[(String, Vec<String>)],
) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    let origins = deleted
        .values()
        .flat_map(|list| list.iter().map(|t| t.origin.clone()))
        .chain(notices.iter().flat_map(|(_, texts)| {
            let mut from: Vec<String> = texts
                .iter()
                .map(|t| directory::notice_key(t).0.to_owned())
                .collect();
            from.sort();
            from.dedup();
            from
        }));
    for origin in origins {
        *counts.entry(origin).or_default() += 1;
    }
    counts
}

fn quota_full(origin: &str) -> String {
    format!(
        "{origin} has notices or deletions recorded here for {MAX_RECORDS_PER_ORIGIN} names already (its quota)"
    )
}

/// What the notice of an account this peer did not make says (CEP 8,
/// "Names"); `centerctl status` counts them.
pub const NOT_MADE_HERE: &str = "not made here";

fn rule(reason: impl std::fmt::Display) -> Refused {
    Refused::Rule(reason.to_string())
}

/// Whether the deletion `t` of `name` had authority over the claim
/// `claim` of an account with user key `user_key`: it comes from the
/// claim's home peer, or its user signed it. (Whether the claim was made
/// up to the deletion is the caller's check.)
fn may_delete(
    t: &Tombstone,
    name: &str,
    claim: &AccountClaim,
    user_key: Option<&str>,
) -> Result<(), authority::Unauthorized> {
    let event = AccountEvent::Deleted {
        name: name.to_owned(),
        stamp: Stamp {
            at: t.deleted,
            auth: t.auth.clone(),
        },
    };
    authority::authorize(&t.origin, claim.home(), user_key, &[], &event).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_origin_counts_the_names_it_has_records_for() {
        let tomb = |origin: &str| Tombstone {
            deleted: 1,
            origin: origin.to_owned(),
            auth: None,
        };
        let deleted = [
            ("alice".to_owned(), vec![tomb("m"), tomb("h")]),
            ("bob".to_owned(), vec![tomb("m")]),
        ]
        .into_iter()
        .collect();
        let notices = vec![(
            "carol".to_owned(),
            vec![
                "m banned at 1: x".to_owned(),
                "m made `carol`, not made here: y".to_owned(),
                "h banned at 2: z".to_owned(),
            ],
        )];
        let counts = records_per_origin(&deleted, &notices);
        assert_eq!(counts.get("m"), Some(&3), "two deletions, one name noticed");
        assert_eq!(counts.get("h"), Some(&2));
    }
}
