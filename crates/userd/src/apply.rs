//! What userd does with each account event (CEP 8): checks that go beyond
//! the event's own shape (the number lies in its origin's block, the name
//! rule between two creations of one name), then the directory writes.
//! Every handler is idempotent, so an event delivered again after a crash
//! changes nothing; a refused event is logged and changes nothing.

use center_bus::{Client, Delivery, Publish};
use serde_json::json;

use crate::{
    account::{self, AccountEvent, Created},
    blocks::{Blocks, Claim},
    directory::{AccountClaim, DirError, Directory, Refusal},
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
    /// This peer's UUID.
    pub me: String,
    pub bus: Client,
    /// A block claim of ours is on its way and not yet seen on our feed.
    pub claim_pending: bool,
    /// Deleted names and the time of their latest deletion (ms), as kept
    /// in `ou=deleted`: creations made up to then are dead.
    pub deleted: std::collections::HashMap<String, u64>,
}

impl Userd {
    /// Claims a free block if this peer holds none and no claim of ours is
    /// on its way.
    pub async fn claim_block_if_needed(&mut self) -> anyhow::Result<()> {
        if self.claim_pending || self.blocks.block_of(&self.me).is_some() {
            return Ok(());
        }
        let Some(index) = self.blocks.free_index() else {
            tracing::error!("every number block is claimed: no account can be made here");
            return Ok(());
        };
        let (name, data) = AccountEvent::Block { index }.to_event();
        self.bus.publish(Publish::feed(name, data)).await?;
        self.claim_pending = true;
        tracing::info!(index, "number block claimed");
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
        let result = match self.apply(origin, iat, &event).await {
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
        event: &AccountEvent,
    ) -> Result<&'static str, Refused> {
        match event {
            AccountEvent::Block { index } => {
                self.blocks
                    .record(Claim {
                        index: *index,
                        iat,
                        origin: origin.to_owned(),
                    })
                    .map_err(|e| Refused::Rule(format!("cannot record the claim: {e:#}")))?;
                if origin == self.me {
                    self.claim_pending = false;
                }
                if let Err(err) = self.claim_block_if_needed().await {
                    tracing::warn!(error = %err, "cannot claim a number block");
                }
                Ok(match self.blocks.block_of(origin) {
                    Some(held) if held == *index => "number block claim recorded: it holds",
                    _ => "number block claim recorded: it lost",
                })
            }
            AccountEvent::Created(c) => self.created(origin, c).await,
            AccountEvent::Password {
                name,
                password_hash,
            } => found(
                self.directory.set_password(name, password_hash).await?,
                "password replaced",
            ),
            AccountEvent::Keys { name, ssh_keys } => found(
                self.directory.set_keys(name, ssh_keys).await?,
                "SSH keys replaced",
            ),
            AccountEvent::Profile {
                name,
                shell,
                display_name,
            } => found(
                self.directory
                    .set_profile(name, shell, display_name)
                    .await?,
                "profile replaced",
            ),
            AccountEvent::Deleted { name, deleted } => self.deleted(name, *deleted).await,
            AccountEvent::Notice {
                name,
                banned,
                reason,
            } => {
                if origin == self.me {
                    return Ok("our own ban notice");
                }
                let action = if *banned { "banned" } else { "unbanned" };
                let text = format!("{origin} {action} at {iat}: {reason}");
                self.directory.record_notice(name, &text).await?;
                Ok("ban notice recorded for the sysadmin (`centerctl user notices`)")
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

    /// `account.deleted`: the deletion is recorded first (a crash after it
    /// deletes on the replay), then the account goes if it was made up to
    /// the deletion; one made later is a new account and stays.
    async fn deleted(&mut self, name: &str, deleted: u64) -> Result<&'static str, Refused> {
        let known = self.deleted.get(name).copied().unwrap_or(0);
        let latest = known.max(deleted);
        if latest > known {
            self.directory.record_deletion(name, latest).await?;
            self.deleted.insert(name.to_owned(), latest);
        }
        match self.directory.account(name).await? {
            Some(found) => match &found.claim {
                Some(claim) if claim.created <= latest => {
                    self.directory.delete_account(name).await?;
                    Ok("account deleted")
                }
                Some(_) => Ok("deletion recorded; the account here was made after it and stays"),
                None => Err(Refused::Rule(
                    "the name is held by an entry userd did not make".to_owned(),
                )),
            },
            None => Ok("deletion recorded; no such account here (a late creation stays dead)"),
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
        if let Some(&at) = self.deleted.get(&c.name)
            && c.created <= at
        {
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
        // The common case first: a new name is one add (two entries).
        if self.directory.add_person(c, &claim).await? {
            self.directory.add_group(c).await?;
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
                self.directory.add_account(c, &claim).await?;
                if existing.banned {
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

fn found(present: bool, what: &'static str) -> Result<&'static str, Refused> {
    if present {
        Ok(what)
    } else {
        Err(Refused::Rule("no such account here".to_owned()))
    }
}
