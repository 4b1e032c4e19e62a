//! This peer's slapd as userd and `centerctl user …` see it: a connection
//! over the `ldapi` socket with SASL EXTERNAL (the kernel says who we are;
//! no password is stored anywhere), rebuilt when slapd went away, every
//! operation with a timeout; and the account entries of CEP 8 (people,
//! their user-private groups, refused requests) read and written.
//!
//! Writes that can be replayed are idempotent: attributes are written with
//! `Mod::Replace` of their full value set, an add that finds the entry
//! present and a delete that finds it absent are not errors. What to write
//! when is `apply`'s business, not this module's.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::Duration,
};

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, ResultEntry, Scope, StdStream,
    adapters::{Adapter, EntriesOnly, PagedResults},
    dn_escape,
};

use crate::{
    REFUSED_OU,
    account::{Created, Scope as Delegable},
    authority::Delegated,
};

/// The organizational unit where other peers' ban notices are kept.
pub const NOTICES_OU: &str = "notices";
/// The organizational unit of deletions (`uid=NAME`, `description`: the
/// deletion's time in ms): claims on the name up to then are dead.
pub const DELETED_OU: &str = "deleted";

/// The organizational unit of this peer's bans (`uid=NAME`, `description`:
/// when and why): a ban is the sysadmin's decision about a name, and
/// outlives the account's deletion and re-creation (CEP 8, Part 5).
pub const BANS_OU: &str = "bans";

/// The organizational unit of users' delegations (`uid=NAME`, one
/// `description` per delegated peer, CEP 8 "Delegations").
pub const DELEGATIONS_OU: &str = "delegations";

/// The `pwdEndTime` of a banned account: long past.
const BANNED_SINCE: &str = "19700101000000Z";

/// How long one LDAP operation may take before the connection is
/// considered gone.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// LDAP result codes we act on (RFC 4511).
pub mod rc {
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const VALUE_EXISTS: u32 = 20;
    pub const ALREADY_EXISTS: u32 = 68;
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// slapd is unreachable or the connection broke: try again later.
    #[error("slapd is unreachable: {0}")]
    Connection(String),
    /// slapd answered with a result code other than success.
    #[error("slapd refused {what}: result {rc} ({text})")]
    Refused { what: String, rc: u32, text: String },
    /// slapd answered something we cannot read.
    #[error("slapd answered something unreadable: {0}")]
    Malformed(String),
}

impl DirError {
    /// Whether retrying after a reconnect may help.
    pub fn is_connection(&self) -> bool {
        matches!(self, DirError::Connection(_))
    }
}

/// An account as the directory holds it (without its password hash, which
/// nobody may read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid_number: u32,
    pub home: String,
    pub shell: String,
    pub display_name: String,
    pub ssh_keys: Vec<String>,
    /// Who numbered it: the origin of its `account.created` and when.
    pub claim: Option<AccountClaim>,
    /// Banned on this peer (`shadowExpire` set).
    pub banned: bool,
    /// The user's own public key, if the account has one (CEP 8,
    /// "Authority").
    pub user_key: Option<String>,
    /// When each kind of change last applied was made.
    pub stamps: Stamps,
}

/// The time (ms) of the last change applied of each kind: a change made
/// earlier than it is stale (CEP 8, "Authority").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamps {
    pub password: u64,
    pub keys: u64,
    pub profile: u64,
}

impl Stamps {
    /// A new account: every kind as of its creation.
    pub fn at(created: u64) -> Stamps {
        Stamps {
            password: created,
            keys: created,
            profile: created,
        }
    }
}

/// What userd keeps in an account entry's `description`: `joined_from=UUID
/// created=MS key=B64|- password=MS keys=MS profile=MS`. None of it is
/// secret.
pub fn describe(claim: &AccountClaim, user_key: Option<&str>, stamps: &Stamps) -> String {
    format!(
        "{} key={} password={} keys={} profile={}",
        claim.to_description(),
        user_key.unwrap_or("-"),
        stamps.password,
        stamps.keys,
        stamps.profile
    )
}

/// Reads what [`describe`] wrote: the user key and stamps (missing ones
/// read as none and 0).
fn described(text: &str) -> (Option<String>, Stamps) {
    let mut key = None;
    let mut stamps = Stamps::default();
    for part in text.split(' ') {
        if let Some(v) = part.strip_prefix("key=") {
            key = (v != "-").then(|| v.to_owned());
        } else if let Some(v) = part.strip_prefix("password=") {
            stamps.password = v.parse().unwrap_or(0);
        } else if let Some(v) = part.strip_prefix("keys=") {
            stamps.keys = v.parse().unwrap_or(0);
        } else if let Some(v) = part.strip_prefix("profile=") {
            stamps.profile = v.parse().unwrap_or(0);
        }
    }
    (key, stamps)
}

/// A deletion of a name, as kept (CEP 8, "Deletion"): when, by which
/// origin, with the user's signature if she made it. It deletes a claim
/// on the name made up to `deleted` only if it was the claim's to delete:
/// from the claim's origin (its home peer) or signed by its user key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub deleted: u64,
    pub origin: String,
    pub auth: Option<String>,
}

fn delegation_to(d: &Delegated) -> String {
    let scopes: Vec<&str> = d.scopes.iter().map(|s| s.as_str()).collect();
    format!(
        "peer={} scopes={} not_before={} not_after={} key={}",
        d.peer,
        scopes.join(","),
        d.not_before,
        d.not_after,
        d.key
    )
}

fn delegation_from(text: &str) -> Option<Delegated> {
    let mut fields = HashMap::new();
    for part in text.split(' ') {
        let (k, v) = part.split_once('=')?;
        fields.insert(k, v);
    }
    Some(Delegated {
        peer: (*fields.get("peer")?).to_owned(),
        scopes: fields
            .get("scopes")?
            .split(',')
            .map(Delegable::parse)
            .collect::<Option<Vec<_>>>()?,
        not_before: fields.get("not_before")?.parse().ok()?,
        not_after: fields.get("not_after")?.parse().ok()?,
        key: (*fields.get("key")?).to_owned(),
    })
}

/// Adds `new` to the delegations of one account, one per peer (the one
/// signed last), dropping those expired at `now`. `false` if nothing
/// changed.
pub fn keep_delegation(list: &mut Vec<Delegated>, new: &Delegated, now: u64) -> bool {
    let before = list.len();
    list.retain(|d| d.not_after >= now);
    let mut changed = list.len() != before;
    match list.iter_mut().find(|d| d.peer == new.peer) {
        Some(held) if held.not_before >= new.not_before => {}
        Some(held) => {
            held.clone_from(new);
            changed = true;
        }
        None => {
            list.push(new.clone());
            changed = true;
        }
    }
    changed
}

/// What [`Directory::record_notice`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    /// The first notice of its origin on that name.
    New,
    /// It replaced its origin's earlier one.
    Replaced,
    /// It would have been the first of its origin, which was not allowed.
    Refused,
}

/// Whom a notice is from and of what kind: its first word (the origin)
/// and its second (`banned` and `unbanned` are one kind: the latest
/// stands).
pub fn notice_key(text: &str) -> (&str, &str) {
    let mut words = text.split(' ');
    let origin = words.next().unwrap_or_default();
    let kind = match words.next().unwrap_or_default() {
        "banned" | "unbanned" => "ban",
        other => other,
    };
    (origin, kind)
}

/// Adds `new` to the deletions of one name, keeping one per origin (its
/// latest): what one origin may delete, its latest deletion deletes too,
/// so a hostile origin holds one entry per name, not a flood that pushes
/// out the others. `false` if nothing changed.
pub fn keep_tombstone(list: &mut Vec<Tombstone>, new: &Tombstone) -> bool {
    match list.iter_mut().find(|t| t.origin == new.origin) {
        Some(held) if held.deleted >= new.deleted => false,
        Some(held) => {
            held.clone_from(new);
            true
        }
        None => {
            list.push(new.clone());
            true
        }
    }
}

impl Tombstone {
    fn to_description(&self) -> String {
        format!(
            "deleted={} origin={} auth={}",
            self.deleted,
            self.origin,
            self.auth.as_deref().unwrap_or("-")
        )
    }

    fn from_description(text: &str) -> Option<Tombstone> {
        let mut deleted = None;
        let mut origin = None;
        let mut auth = None;
        for part in text.split(' ') {
            if let Some(v) = part.strip_prefix("deleted=") {
                deleted = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("origin=") {
                origin = Some(v.to_owned());
            } else if let Some(v) = part.strip_prefix("auth=") {
                auth = (v != "-").then(|| v.to_owned());
            }
        }
        Some(Tombstone {
            deleted: deleted?,
            origin: origin?,
            auth,
        })
    }
}

/// The origin and creation time of an account (CEP 8's name rule compares
/// them); kept in the entry's `description` as `joined_from=UUID
/// created=MS`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountClaim {
    pub created: u64,
    pub joined_from: String,
}

impl AccountClaim {
    fn to_description(&self) -> String {
        format!("joined_from={} created={}", self.joined_from, self.created)
    }

    /// The home peer of the account this claim made.
    pub fn home(&self) -> &str {
        &self.joined_from
    }

    fn from_description(text: &str) -> Option<AccountClaim> {
        let mut joined_from = None;
        let mut created = None;
        for part in text.split(' ') {
            if let Some(v) = part.strip_prefix("joined_from=") {
                joined_from = Some(v.to_owned());
            } else if let Some(v) = part.strip_prefix("created=") {
                created = v.parse().ok();
            }
        }
        Some(AccountClaim {
            created: created?,
            joined_from: joined_from?,
        })
    }
}

/// A request of this peer that lost the name rule (`account.refused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub name: String,
    pub reason: String,
}

/// The connection to this peer's slapd; rebuilt on demand.
pub struct Directory {
    socket: PathBuf,
    base: String,
    ldap: Option<Ldap>,
}

impl Directory {
    /// A directory reached over the `ldapi` socket `socket`, suffix `base`.
    /// Nothing connects until the first operation.
    pub fn new(socket: &Path, base: &str) -> Directory {
        Directory {
            socket: socket.to_owned(),
            base: base.to_owned(),
            ldap: None,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn person_dn(&self, name: &str) -> String {
        format!("uid={},ou=people,{}", dn_escape(name), self.base)
    }

    pub fn group_dn(&self, name: &str) -> String {
        format!("cn={},ou=groups,{}", dn_escape(name), self.base)
    }

    /// A live connection, bound with SASL EXTERNAL; a new one if the last
    /// one closed.
    async fn handle(&mut self) -> Result<Ldap, DirError> {
        if let Some(ldap) = &mut self.ldap
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        self.ldap = None;
        let connect = async {
            let stream = std::os::unix::net::UnixStream::connect(&self.socket)
                .map_err(|e| DirError::Connection(format!("{}: {e}", self.socket.display())))?;
            let settings = LdapConnSettings::new().set_std_stream(StdStream::Unix(stream));
            let (conn, mut ldap) = LdapConnAsync::with_settings(settings, "ldapi:///")
                .await
                .map_err(connection)?;
            ldap3::drive!(conn);
            ldap.with_timeout(OP_TIMEOUT);
            let result = ldap.sasl_external_bind().await.map_err(connection)?;
            if result.rc != 0 {
                return Err(DirError::Refused {
                    what: "the SASL EXTERNAL bind".to_owned(),
                    rc: result.rc,
                    text: result.text,
                });
            }
            Ok(ldap)
        };
        let ldap = tokio::time::timeout(OP_TIMEOUT, connect)
            .await
            .map_err(|_| DirError::Connection("connecting timed out".to_owned()))??;
        self.ldap = Some(ldap.clone());
        Ok(ldap)
    }

    /// Runs `result` through the error mapping; a broken connection is
    /// dropped so the next operation makes a new one.
    fn check(
        &mut self,
        what: impl FnOnce() -> String,
        result: Result<ldap3::LdapResult, LdapError>,
        ok: &[u32],
    ) -> Result<u32, DirError> {
        match result {
            Ok(res) if res.rc == 0 || ok.contains(&res.rc) => Ok(res.rc),
            Ok(res) => Err(DirError::Refused {
                what: what(),
                rc: res.rc,
                text: res.text,
            }),
            Err(err) => {
                self.ldap = None;
                Err(connection(err))
            }
        }
    }

    /// Adds an entry; `Ok(false)` if it already existed.
    async fn add(
        &mut self,
        dn: &str,
        attrs: Vec<(&str, HashSet<String>)>,
    ) -> Result<bool, DirError> {
        let mut ldap = self.handle().await?;
        let attrs: Vec<(String, HashSet<String>)> = attrs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let result = ldap.with_timeout(OP_TIMEOUT).add(dn, attrs).await;
        let code = self.check(|| format!("adding {dn}"), result, &[rc::ALREADY_EXISTS])?;
        Ok(code == 0)
    }

    /// Replaces attributes with full value sets (an empty set removes one);
    /// `Ok(false)` if the entry does not exist.
    async fn replace(
        &mut self,
        dn: &str,
        attrs: Vec<(&str, HashSet<String>)>,
    ) -> Result<bool, DirError> {
        let mut ldap = self.handle().await?;
        let mods: Vec<Mod<String>> = attrs
            .into_iter()
            .map(|(k, v)| Mod::Replace(k.to_owned(), v))
            .collect();
        let result = ldap.with_timeout(OP_TIMEOUT).modify(dn, mods).await;
        let code = self.check(|| format!("changing {dn}"), result, &[rc::NO_SUCH_OBJECT])?;
        Ok(code == 0)
    }

    /// Deletes an entry; absent is fine.
    async fn delete(&mut self, dn: &str) -> Result<(), DirError> {
        let mut ldap = self.handle().await?;
        let result = ldap.with_timeout(OP_TIMEOUT).delete(dn).await;
        self.check(|| format!("deleting {dn}"), result, &[rc::NO_SUCH_OBJECT])?;
        Ok(())
    }

    /// Every entry under `base` matching `filter`, page by page (slapd's
    /// size limit of 500 does not cut a long list short).
    async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<Entry>, DirError> {
        let mut ldap = self.handle().await?;
        let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(400)),
        ];
        let attrs: Vec<&str> = attrs.to_vec();
        let started = ldap
            .with_timeout(OP_TIMEOUT)
            .streaming_search_with(adapters, base, scope, filter, attrs)
            .await;
        let mut stream = match started {
            Ok(stream) => stream,
            Err(err) => {
                self.ldap = None;
                return Err(connection(err));
            }
        };
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(raw)) => entries.push(entry(raw)?),
                Ok(None) => break,
                Err(err) => {
                    self.ldap = None;
                    return Err(connection(err));
                }
            }
        }
        let result = stream.finish().await;
        if result.rc == rc::NO_SUCH_OBJECT {
            return Ok(Vec::new());
        }
        if result.rc != 0 {
            return Err(DirError::Refused {
                what: format!("searching {base}"),
                rc: result.rc,
                text: result.text,
            });
        }
        Ok(entries)
    }

    /// Makes `ou=NAME,<base>` if it is missing (userd's `ou=refused`).
    pub async fn ensure_ou(&mut self, ou: &str) -> Result<(), DirError> {
        let dn = format!("ou={},{}", dn_escape(ou), self.base);
        self.add(
            &dn,
            vec![
                ("objectClass", set(["organizationalUnit"])),
                ("ou", set([ou])),
            ],
        )
        .await?;
        Ok(())
    }

    /// The account `name`, if the directory holds it.
    pub async fn account(&mut self, name: &str) -> Result<Option<Account>, DirError> {
        let dn = self.person_dn(name);
        let found = self
            .search(
                &dn,
                Scope::Base,
                "(objectClass=posixAccount)",
                ACCOUNT_ATTRS,
            )
            .await?;
        Ok(found.first().and_then(account))
    }

    /// Every account, sorted by name.
    pub async fn accounts(&mut self) -> Result<Vec<Account>, DirError> {
        let base = format!("ou=people,{}", self.base);
        let found = self
            .search(
                &base,
                Scope::OneLevel,
                "(objectClass=posixAccount)",
                ACCOUNT_ATTRS,
            )
            .await?;
        let mut accounts: Vec<Account> = found.iter().filter_map(account).collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(accounts)
    }

    /// Adds the account and its user-private group. `Ok(false)` if the
    /// person entry was already there (the group is made either way).
    pub async fn add_account(
        &mut self,
        c: &Created,
        claim: &AccountClaim,
        home: &str,
    ) -> Result<bool, DirError> {
        let added = self.add_person(c, claim, home).await?;
        self.add_group(c).await?;
        Ok(added)
    }

    /// Adds the person entry, its home `home` (this peer's choice);
    /// `Ok(false)` if it was already there.
    pub async fn add_person(
        &mut self,
        c: &Created,
        claim: &AccountClaim,
        home: &str,
    ) -> Result<bool, DirError> {
        let uid = c.uid_number.to_string();
        let cn = if c.display_name.is_empty() {
            c.name.clone()
        } else {
            c.display_name.clone()
        };
        let added = self
            .add(
                &self.person_dn(&c.name),
                vec![
                    (
                        "objectClass",
                        set([
                            "inetOrgPerson",
                            "posixAccount",
                            "shadowAccount",
                            "ldapPublicKey",
                        ]),
                    ),
                    ("uid", set([c.name.as_str()])),
                    ("cn", set([cn.as_str()])),
                    ("sn", set([c.name.as_str()])),
                    ("displayName", set_of(std::slice::from_ref(&c.display_name))),
                    ("uidNumber", set([uid.as_str()])),
                    ("gidNumber", set([uid.as_str()])),
                    ("homeDirectory", set([home])),
                    ("loginShell", set([c.shell.as_str()])),
                    ("userPassword", set([c.password_hash.as_str()])),
                    ("sshPublicKey", set_of(&c.ssh_keys)),
                    (
                        "description",
                        set([describe(
                            claim,
                            c.user_key.as_deref(),
                            &Stamps::at(c.created),
                        )]),
                    ),
                ],
            )
            .await?;
        Ok(added)
    }

    /// Adds the user-private group (present already is fine).
    pub async fn add_group(&mut self, c: &Created) -> Result<(), DirError> {
        let uid = c.uid_number.to_string();
        self.add(
            &self.group_dn(&c.name),
            vec![
                ("objectClass", set(["posixGroup"])),
                ("cn", set([c.name.as_str()])),
                ("gidNumber", set([uid.as_str()])),
                ("memberUid", set([c.name.as_str()])),
            ],
        )
        .await?;
        Ok(())
    }

    /// Removes the account and its group (absent is fine).
    pub async fn delete_account(&mut self, name: &str) -> Result<(), DirError> {
        self.delete(&self.person_dn(name)).await?;
        self.delete(&self.group_dn(name)).await
    }

    /// Replaces the password hash and the description (user key and
    /// stamps, [`describe`]) in one modify; `Ok(false)` if there is no such
    /// account.
    pub async fn set_password(
        &mut self,
        name: &str,
        hash: &str,
        description: &str,
    ) -> Result<bool, DirError> {
        self.replace(
            &self.person_dn(name),
            vec![
                ("userPassword", set([hash])),
                ("description", set([description])),
            ],
        )
        .await
    }

    /// Replaces the full key list and the description.
    pub async fn set_keys(
        &mut self,
        name: &str,
        keys: &[String],
        description: &str,
    ) -> Result<bool, DirError> {
        self.replace(
            &self.person_dn(name),
            vec![
                ("sshPublicKey", set_of(keys)),
                ("description", set([description])),
            ],
        )
        .await
    }

    /// Replaces shell and display name, and the description.
    pub async fn set_profile(
        &mut self,
        name: &str,
        shell: &str,
        display_name: &str,
        description: &str,
    ) -> Result<bool, DirError> {
        let cn = if display_name.is_empty() {
            name
        } else {
            display_name
        };
        self.replace(
            &self.person_dn(name),
            vec![
                ("loginShell", set([shell])),
                ("cn", set([cn])),
                ("displayName", set_of(&[display_name.to_owned()])),
                ("description", set([description])),
            ],
        )
        .await
    }

    /// Bans `name` on this peer (or lifts the ban): `pwdEndTime` in the
    /// past refuses password binds and survives password changes (a
    /// replaced `userPassword` clears `pwdAccountLockedTime`, not this),
    /// `shadowExpire: 1` makes sshd, sssd and nslcd refuse the account and
    /// hides its keys from `authorized-keys`. `Ok(false)` if there is no
    /// such account.
    pub async fn set_ban(&mut self, name: &str, banned: bool) -> Result<bool, DirError> {
        let (end, expire) = if banned {
            (set([BANNED_SINCE]), set(["1"]))
        } else {
            (HashSet::new(), HashSet::new())
        };
        self.replace(
            &self.person_dn(name),
            vec![("pwdEndTime", end), ("shadowExpire", expire)],
        )
        .await
    }

    /// Keeps a notice about `name` (`text` starts with the origin it is
    /// about, [`notice_key`]): it replaces that origin's earlier notice of
    /// the same kind, so one origin holds at most one value of each kind
    /// per name. A notice from an origin the record has none from is kept
    /// only if `new_origin` allows it.
    pub async fn record_notice(
        &mut self,
        name: &str,
        text: &str,
        new_origin: bool,
    ) -> Result<Noticed, DirError> {
        let dn = self.record_dn(NOTICES_OU, name);
        let found = self
            .search(&dn, Scope::Base, "(objectClass=account)", &["description"])
            .await?;
        let mut texts: Vec<String> = found.iter().flat_map(|e| e.values("description")).collect();
        let key = notice_key(text);
        let first = !texts.iter().any(|t| notice_key(t).0 == key.0);
        if first && !new_origin {
            return Ok(Noticed::Refused);
        }
        texts.retain(|t| notice_key(t) != key);
        texts.push(text.to_owned());
        self.put_records(NOTICES_OU, name, &texts).await?;
        Ok(if first {
            Noticed::New
        } else {
            Noticed::Replaced
        })
    }

    /// The notices other peers sent, by account name.
    pub async fn notices(&mut self) -> Result<Vec<(String, Vec<String>)>, DirError> {
        self.records(NOTICES_OU).await
    }

    /// Records that this peer's request for `name` was refused.
    pub async fn record_refusal(&mut self, refusal: &Refusal) -> Result<(), DirError> {
        self.put_record(REFUSED_OU, &refusal.name, &refusal.reason)
            .await
    }

    /// Records the deletions of `name` (all of them, replacing what was
    /// kept): one per origin, [`keep_tombstone`].
    pub async fn record_deletions(
        &mut self,
        name: &str,
        tombstones: &[Tombstone],
    ) -> Result<(), DirError> {
        let texts: Vec<String> = tombstones.iter().map(Tombstone::to_description).collect();
        self.put_records(DELETED_OU, name, &texts).await
    }

    /// Every recorded deletion, by name. A value that does not read is
    /// skipped.
    pub async fn deletions(&mut self) -> Result<Vec<(String, Vec<Tombstone>)>, DirError> {
        Ok(self
            .records(DELETED_OU)
            .await?
            .into_iter()
            .map(|(name, texts)| {
                let list = texts
                    .iter()
                    .filter_map(|t| Tombstone::from_description(t))
                    .collect();
                (name, list)
            })
            .collect())
    }

    /// The delegations `name`'s user signed, as held here.
    pub async fn delegations(&mut self, name: &str) -> Result<Vec<Delegated>, DirError> {
        let dn = self.record_dn(DELEGATIONS_OU, name);
        let found = self
            .search(&dn, Scope::Base, "(objectClass=account)", &["description"])
            .await?;
        Ok(found
            .iter()
            .flat_map(|e| e.values("description"))
            .filter_map(|text| delegation_from(&text))
            .collect())
    }

    /// Records the delegations of `name` (all of them, replacing what was
    /// kept; none removes the record).
    pub async fn record_delegations(
        &mut self,
        name: &str,
        list: &[Delegated],
    ) -> Result<(), DirError> {
        if list.is_empty() {
            return self.delete(&self.record_dn(DELEGATIONS_OU, name)).await;
        }
        let texts: Vec<String> = list.iter().map(delegation_to).collect();
        self.put_records(DELEGATIONS_OU, name, &texts).await
    }

    /// Records this peer's ban of the name `name` (the reason and time in
    /// `text`), or lifts it: kept apart from the account, so a deletion
    /// and a new creation of the name do not lift it.
    pub async fn record_ban(&mut self, name: &str, text: Option<&str>) -> Result<(), DirError> {
        match text {
            Some(text) => self.put_record(BANS_OU, name, text).await,
            None => self.delete(&self.record_dn(BANS_OU, name)).await,
        }
    }

    /// Whether this peer banned the name `name`.
    pub async fn ban_recorded(&mut self, name: &str) -> Result<bool, DirError> {
        let dn = self.record_dn(BANS_OU, name);
        Ok(!self
            .search(&dn, Scope::Base, "(objectClass=account)", &["uid"])
            .await?
            .is_empty())
    }

    /// Forgets the refusal of an earlier request for `name` (a new request
    /// for it is being made); nothing if there is none.
    pub async fn forget_refusal(&mut self, name: &str) -> Result<(), DirError> {
        self.delete(&self.record_dn(REFUSED_OU, name)).await
    }

    /// The refusal of this peer's request for `name`, if it was refused:
    /// one entry read, however many refusals there are.
    pub async fn refusal(&mut self, name: &str) -> Result<Option<Refusal>, DirError> {
        let dn = self.record_dn(REFUSED_OU, name);
        let found = self
            .search(&dn, Scope::Base, "(objectClass=account)", &["description"])
            .await?;
        Ok(found.first().map(|entry| Refusal {
            name: name.to_owned(),
            reason: entry.first("description").unwrap_or_default(),
        }))
    }

    /// `uid=NAME,ou=OU,<base>`: one of userd's own records (refusals,
    /// notices, deletions).
    fn record_dn(&self, ou: &str, name: &str) -> String {
        format!("uid={},ou={},{}", dn_escape(name), ou, self.base)
    }

    /// Writes userd's record `name` under `ou` with `text` as its only
    /// description, whether or not it existed.
    async fn put_record(&mut self, ou: &str, name: &str, text: &str) -> Result<(), DirError> {
        self.put_records(ou, name, &[text.to_owned()]).await
    }

    /// Writes userd's record `name` under `ou` with `texts` as its
    /// descriptions, whether or not it existed.
    async fn put_records(
        &mut self,
        ou: &str,
        name: &str,
        texts: &[String],
    ) -> Result<(), DirError> {
        let dn = self.record_dn(ou, name);
        let added = self
            .add(
                &dn,
                vec![
                    ("objectClass", set(["account"])),
                    ("uid", set([name])),
                    ("description", set_of(texts)),
                ],
            )
            .await?;
        if !added {
            self.replace(&dn, vec![("description", set_of(texts))])
                .await?;
        }
        Ok(())
    }

    /// Every record under `ou`: its name and its descriptions (sorted),
    /// sorted by name.
    async fn records(&mut self, ou: &str) -> Result<Vec<(String, Vec<String>)>, DirError> {
        let base = format!("ou={},{}", ou, self.base);
        let found = self
            .search(
                &base,
                Scope::OneLevel,
                "(objectClass=account)",
                &["uid", "description"],
            )
            .await?;
        let mut out: Vec<(String, Vec<String>)> = found
            .iter()
            .filter_map(|e| {
                let mut texts = e.values("description");
                texts.sort();
                Some((e.first("uid")?, texts))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

const ACCOUNT_ATTRS: &[&str] = &[
    "uid",
    "uidNumber",
    "homeDirectory",
    "loginShell",
    "displayName",
    "sshPublicKey",
    "description",
    "shadowExpire",
];

fn connection(err: LdapError) -> DirError {
    DirError::Connection(err.to_string())
}

fn set<const N: usize, S: Into<String>>(values: [S; N]) -> HashSet<String> {
    values.into_iter().map(Into::into).collect()
}

/// The non-empty values of a list.
fn set_of(values: &[String]) -> HashSet<String> {
    values.iter().filter(|v| !v.is_empty()).cloned().collect()
}

/// One search result entry: attribute names in lower case.
struct Entry {
    attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    fn values(&self, attr: &str) -> Vec<String> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    fn first(&self, attr: &str) -> Option<String> {
        self.values(attr).into_iter().next()
    }
}

/// Reads a search result entry without panicking on a malformed one
/// (ldap3's own `SearchEntry::construct` would).
fn entry(raw: ResultEntry) -> Result<Entry, DirError> {
    let bad = || DirError::Malformed("a search result entry".to_owned());
    let mut parts = raw
        .0
        .match_id(4)
        .and_then(|t| t.expect_constructed())
        .ok_or_else(bad)?
        .into_iter();
    let _dn = parts
        .next()
        .and_then(|t| t.expect_primitive())
        .ok_or_else(bad)?;
    let list = parts
        .next()
        .and_then(|t| t.expect_constructed())
        .ok_or_else(bad)?;
    let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
    for item in list {
        let mut pair = item.expect_constructed().ok_or_else(bad)?.into_iter();
        let name = pair
            .next()
            .and_then(|t| t.expect_primitive())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let values = pair
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(bad)?;
        let slot = attrs.entry(name.to_ascii_lowercase()).or_default();
        for value in values {
            // Values that are not UTF-8 are none of ours: skipped.
            if let Some(text) = value
                .expect_primitive()
                .and_then(|b| String::from_utf8(b).ok())
            {
                slot.push(text);
            }
        }
    }
    Ok(Entry { attrs })
}

fn account(e: &Entry) -> Option<Account> {
    let description = e.first("description");
    let (user_key, stamps) = description.as_deref().map(described).unwrap_or_default();
    Some(Account {
        name: e.first("uid")?,
        uid_number: e.first("uidNumber")?.parse().ok()?,
        home: e.first("homeDirectory").unwrap_or_default(),
        shell: e.first("loginShell").unwrap_or_default(),
        display_name: e.first("displayName").unwrap_or_default(),
        ssh_keys: {
            let mut keys = e.values("sshPublicKey");
            keys.sort();
            keys
        },
        claim: description
            .as_deref()
            .and_then(AccountClaim::from_description),
        banned: e.first("shadowExpire").is_some(),
        user_key,
        stamps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tomb(deleted: u64, origin: &str) -> Tombstone {
        Tombstone {
            deleted,
            origin: origin.to_owned(),
            auth: None,
        }
    }

    #[test]
    fn one_deletion_kept_per_origin_the_latest() {
        let mut list = Vec::new();
        assert!(keep_tombstone(&mut list, &tomb(10, "home")));
        // A flood from one hostile origin holds one entry, and does not
        // push out the home's.
        for t in 11..100 {
            keep_tombstone(&mut list, &tomb(t, "mallory"));
        }
        assert_eq!(list, [tomb(10, "home"), tomb(99, "mallory")]);
        // An earlier or equal one from the same origin changes nothing.
        assert!(!keep_tombstone(&mut list, &tomb(10, "home")));
        assert!(!keep_tombstone(&mut list, &tomb(5, "home")));
        assert!(keep_tombstone(&mut list, &tomb(20, "home")));
        assert_eq!(list, [tomb(20, "home"), tomb(99, "mallory")]);
    }

    #[test]
    fn one_notice_per_origin_and_kind() {
        assert_eq!(notice_key("peerA banned at 5: spam"), ("peerA", "ban"));
        assert_eq!(notice_key("peerA unbanned at 6: ok"), ("peerA", "ban"));
        assert_eq!(
            notice_key("peerA made `root`, not made here: reserved"),
            ("peerA", "made")
        );
        assert_eq!(notice_key(""), ("", ""));
    }

    #[test]
    fn the_description_reads_back() {
        let claim = AccountClaim {
            created: 7,
            joined_from: "peer".to_owned(),
        };
        let stamps = Stamps {
            password: 8,
            keys: 9,
            profile: 10,
        };
        let text = describe(&claim, Some("KEY"), &stamps);
        assert_eq!(
            text,
            "joined_from=peer created=7 key=KEY password=8 keys=9 profile=10"
        );
        assert_eq!(AccountClaim::from_description(&text), Some(claim.clone()));
        assert_eq!(described(&text), (Some("KEY".to_owned()), stamps));
        // An entry written before user keys: no key, stamps 0.
        let old = "joined_from=peer created=7";
        assert_eq!(described(old), (None, Stamps::default()));
        assert_eq!(
            Tombstone::from_description(&tomb(3, "o").to_description()),
            Some(tomb(3, "o"))
        );
    }
}
