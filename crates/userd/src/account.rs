//! The account events (CEP 8), read strictly: each `data` object must have
//! exactly its members, of the right types and within bounds. They come
//! from other peers' feeds and from anyone allowed to publish `account.*`,
//! so nothing here panics; the `account_event` fuzz target feeds them
//! arbitrary bytes. The same types build the events `centerctl user …`
//! publishes, so what is sent is what is read.

use serde_json::{Map, Value, json};

/// The event names.
pub const BLOCK: &str = "account.block";
pub const CREATED: &str = "account.created";
pub const PASSWORD: &str = "account.password";
pub const KEYS: &str = "account.keys";
pub const PROFILE: &str = "account.profile";
pub const DELETED: &str = "account.deleted";
/// A peer banned or unbanned an account locally; others' admins see it.
pub const NOTICE: &str = "account.notice";
/// A user's short-lived delegation to a peer she uses (CEP 8,
/// "Delegations").
pub const DELEGATED: &str = "account.delegated";
/// Published by userd on this peer only (never a feed event).
pub const REFUSED: &str = "account.refused";

/// The first number of the network's accounts (CEP 8, "Numbers").
pub const BASE: u32 = 1_000_000_000;
/// How many numbers one peer's block holds.
pub const BLOCK_SIZE: u32 = 1_000_000;
/// How many blocks there are: the last ends below 1,879,048,192, where
/// systemd's container range ends.
pub const BLOCKS: u32 = 879;

/// Most SSH keys on one account.
pub const MAX_KEYS: usize = 32;
/// Longest SSH key line (an RSA-16384 key fits).
const MAX_KEY_LINE: usize = 8192;
/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 128;
/// Longest home or shell path.
const MAX_PATH: usize = 255;
/// Longest a delegation may last: 30 days, in ms.
pub const MAX_DELEGATION_MS: u64 = 30 * 24 * 3600 * 1000;
/// Longest ban reason, in characters.
const MAX_REASON: usize = 512;
/// Longest password hash.
const MAX_HASH: usize = 512;
/// The most an Argon2 hash may ask of slapd at each bind, on every peer:
/// memory in KiB, passes and lanes (CEP 8, "Passwords and policy").
pub const MAX_ARGON2_M: u64 = 65_536;
pub const MAX_ARGON2_T: u64 = 10;
pub const MAX_ARGON2_P: u64 = 4;
/// The only password hash scheme: slapd's `{ARGON2}` with an Argon2id PHC
/// string.
pub const HASH_PREFIX: &str = "{ARGON2}$argon2id$";

/// Why an account event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("`data` must be a JSON object")]
    NotObject,
    #[error("`data` lacks `{0}`")]
    Missing(&'static str),
    #[error("`data` has an unknown member `{0}`")]
    Unknown(String),
    #[error("`{field}` {reason}")]
    Field { field: &'static str, reason: String },
    #[error("`{0}` is not an account event")]
    UnknownName(String),
}

fn bad(field: &'static str, reason: impl Into<String>) -> AccountError {
    AccountError::Field {
        field,
        reason: reason.into(),
    }
}

/// `account.created`: a new account, numbered by its origin. Its home
/// directory is not in the event: each peer decides it (CEP 8, "Names").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub name: String,
    pub uid_number: u32,
    pub shell: String,
    pub display_name: String,
    pub password_hash: String,
    pub ssh_keys: Vec<String>,
    /// When the origin made it, in milliseconds since the epoch.
    pub created: u64,
    /// The user's own public key (CEP 8, "Authority"), derived from her
    /// password where she typed it; `None` for an account without one.
    pub user_key: Option<String>,
}

/// What a change of an account carries besides its content: when the
/// change was made (ms; of two changes of one kind the later wins, and a
/// replay of an older one changes nothing) and the user's signature over
/// the event (`None`: the change rests on its origin being the account's
/// home peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub at: u64,
    pub auth: Option<String>,
}

/// What a delegated peer may do for the user (CEP 8, "Delegations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Replace her SSH keys (`account.keys`).
    Keys,
    /// Publish her shared directory (`~/center`, syncd).
    Files,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Keys => "keys",
            Scope::Files => "files",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "keys" => Some(Scope::Keys),
            "files" => Some(Scope::Files),
            _ => None,
        }
    }
}

/// `account.delegated`: the user signed that `peer` may act for her in
/// `scopes` from `stamp.at` (`not_before`) to `not_after` (ms). Its
/// `stamp.auth` is always her signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub name: String,
    pub peer: String,
    pub scopes: Vec<Scope>,
    pub not_after: u64,
    pub stamp: Stamp,
}

/// Every account event, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// `account.block`: the origin claims the number block `index`, the
    /// one its attempt `attempt` gives it (CEP 8, "Numbers").
    Block {
        index: u32,
        attempt: u32,
    },
    Created(Created),
    /// `account.password`: a new password hash and the user key derived
    /// from the new password (`None`: the account has no user key after
    /// this change).
    Password {
        name: String,
        password_hash: String,
        user_key: Option<String>,
        stamp: Stamp,
    },
    Keys {
        name: String,
        ssh_keys: Vec<String>,
        stamp: Stamp,
    },
    Profile {
        name: String,
        shell: String,
        display_name: String,
        stamp: Stamp,
    },
    /// `account.deleted`: the account is gone, and so is every claim on
    /// the name made at or before `deleted` (ms): a creation that arrives
    /// late does not bring it back (CEP 8, "Deletion"). `stamp.at` is
    /// `deleted`.
    Deleted {
        name: String,
        stamp: Stamp,
    },
    Delegated(Delegation),
    /// `account.notice`: the origin banned (or unbanned) the account on
    /// itself, for this reason. Other peers only record it.
    Notice {
        name: String,
        banned: bool,
        reason: String,
    },
}

impl AccountEvent {
    /// Reads the `data` of the event called `name`.
    pub fn read(name: &str, data: &Value) -> Result<AccountEvent, AccountError> {
        match name {
            BLOCK => {
                let o = members(data, &["attempt", "index"])?;
                let index = number(o, "index")?;
                if index >= u64::from(BLOCKS) {
                    return Err(bad("index", format!("must be below {BLOCKS}")));
                }
                let index = u32::try_from(index).map_err(|_| bad("index", "is too large"))?;
                let attempt = u32::try_from(number(o, "attempt")?)
                    .ok()
                    .filter(|a| *a < crate::blocks::MAX_ATTEMPT)
                    .ok_or_else(|| {
                        bad(
                            "attempt",
                            format!("must be below {}", crate::blocks::MAX_ATTEMPT),
                        )
                    })?;
                Ok(AccountEvent::Block { index, attempt })
            }
            CREATED => {
                let o = members(
                    data,
                    &[
                        "created",
                        "display_name",
                        "gid_number",
                        "name",
                        "password_hash",
                        "shell",
                        "ssh_keys",
                        "uid_number",
                        "user_key",
                    ],
                )?;
                let uid = number(o, "uid_number")?;
                let gid = number(o, "gid_number")?;
                let uid_number = u32::try_from(uid).map_err(|_| bad("uid_number", "too large"))?;
                if !(BASE..BASE + BLOCKS * BLOCK_SIZE).contains(&uid_number) {
                    return Err(bad("uid_number", "is outside every peer's block"));
                }
                if gid != uid {
                    return Err(bad("gid_number", "must equal uid_number"));
                }
                let created = number(o, "created")?;
                if created == 0 {
                    return Err(bad("created", "must be a time in milliseconds"));
                }
                Ok(AccountEvent::Created(Created {
                    name: account_name(o)?,
                    uid_number,
                    shell: path(o, "shell")?,
                    display_name: display_name(o)?,
                    password_hash: password_hash(o)?,
                    ssh_keys: ssh_keys(o)?,
                    created,
                    user_key: user_key(o)?,
                }))
            }
            PASSWORD => {
                let o = members(data, &["at", "auth", "name", "password_hash", "user_key"])?;
                Ok(AccountEvent::Password {
                    name: account_name(o)?,
                    password_hash: password_hash(o)?,
                    user_key: user_key(o)?,
                    stamp: stamp(o, "at")?,
                })
            }
            KEYS => {
                let o = members(data, &["at", "auth", "name", "ssh_keys"])?;
                Ok(AccountEvent::Keys {
                    name: account_name(o)?,
                    ssh_keys: ssh_keys(o)?,
                    stamp: stamp(o, "at")?,
                })
            }
            PROFILE => {
                let o = members(data, &["at", "auth", "display_name", "name", "shell"])?;
                Ok(AccountEvent::Profile {
                    name: account_name(o)?,
                    shell: path(o, "shell")?,
                    display_name: display_name(o)?,
                    stamp: stamp(o, "at")?,
                })
            }
            DELETED => {
                let o = members(data, &["auth", "deleted", "name"])?;
                Ok(AccountEvent::Deleted {
                    name: account_name(o)?,
                    stamp: stamp(o, "deleted")?,
                })
            }
            DELEGATED => {
                let o = members(
                    data,
                    &["auth", "name", "not_after", "not_before", "peer", "scopes"],
                )?;
                let peer = string(o, "peer")?;
                if peer.parse::<center_proto::PeerId>().is_err() {
                    return Err(bad("peer", "must be a peer's UUID"));
                }
                let list = required(o, "scopes")?
                    .as_array()
                    .ok_or_else(|| bad("scopes", "must be an array"))?;
                let mut scopes = Vec::with_capacity(list.len());
                for item in list {
                    let scope = item.as_str().and_then(Scope::parse).ok_or_else(|| {
                        bad("scopes", "holds something other than \"keys\" or \"files\"")
                    })?;
                    if scopes.contains(&scope) {
                        return Err(bad("scopes", "holds the same scope twice"));
                    }
                    scopes.push(scope);
                }
                if scopes.is_empty() {
                    return Err(bad("scopes", "must name at least one scope"));
                }
                let stamp = stamp(o, "not_before")?;
                if stamp.auth.is_none() {
                    return Err(bad("auth", "a delegation must be signed by its user"));
                }
                let not_after = number(o, "not_after")?;
                if not_after <= stamp.at || not_after - stamp.at > MAX_DELEGATION_MS {
                    return Err(bad(
                        "not_after",
                        "must be after not_before, by 30 days at most",
                    ));
                }
                Ok(AccountEvent::Delegated(Delegation {
                    name: account_name(o)?,
                    peer: peer.to_owned(),
                    scopes,
                    not_after,
                    stamp,
                }))
            }
            NOTICE => {
                let o = members(data, &["action", "name", "reason"])?;
                let banned = match string(o, "action")? {
                    "ban" => true,
                    "unban" => false,
                    _ => return Err(bad("action", "must be \"ban\" or \"unban\"")),
                };
                let reason = string(o, "reason")?;
                if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
                    return Err(bad(
                        "reason",
                        format!(
                            "must be at most {MAX_REASON} characters, none a control character"
                        ),
                    ));
                }
                Ok(AccountEvent::Notice {
                    name: account_name(o)?,
                    banned,
                    reason: reason.to_owned(),
                })
            }
            other => Err(AccountError::UnknownName(other.to_owned())),
        }
    }

    /// The event's name and `data`, as published.
    pub fn to_event(&self) -> (&'static str, Value) {
        match self {
            AccountEvent::Block { index, attempt } => {
                (BLOCK, json!({ "index": index, "attempt": attempt }))
            }
            AccountEvent::Created(c) => (
                CREATED,
                json!({
                    "name": c.name,
                    "uid_number": c.uid_number,
                    "gid_number": c.uid_number,
                    "shell": c.shell,
                    "display_name": c.display_name,
                    "password_hash": c.password_hash,
                    "ssh_keys": c.ssh_keys,
                    "created": c.created,
                    "user_key": c.user_key.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Password {
                name,
                password_hash,
                user_key,
                stamp,
            } => (
                PASSWORD,
                json!({
                    "name": name,
                    "password_hash": password_hash,
                    "user_key": user_key.as_deref().unwrap_or_default(),
                    "at": stamp.at,
                    "auth": stamp.auth.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Keys {
                name,
                ssh_keys,
                stamp,
            } => (
                KEYS,
                json!({
                    "name": name,
                    "ssh_keys": ssh_keys,
                    "at": stamp.at,
                    "auth": stamp.auth.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Profile {
                name,
                shell,
                display_name,
                stamp,
            } => (
                PROFILE,
                json!({
                    "name": name,
                    "shell": shell,
                    "display_name": display_name,
                    "at": stamp.at,
                    "auth": stamp.auth.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Deleted { name, stamp } => (
                DELETED,
                json!({
                    "name": name,
                    "deleted": stamp.at,
                    "auth": stamp.auth.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Delegated(d) => (
                DELEGATED,
                json!({
                    "name": d.name,
                    "peer": d.peer,
                    "scopes": d.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "not_before": d.stamp.at,
                    "not_after": d.not_after,
                    "auth": d.stamp.auth.as_deref().unwrap_or_default(),
                }),
            ),
            AccountEvent::Notice {
                name,
                banned,
                reason,
            } => (
                NOTICE,
                json!({
                    "name": name,
                    "action": if *banned { "ban" } else { "unban" },
                    "reason": reason,
                }),
            ),
        }
    }

    /// The change's stamp: for the four kinds a user may authorize.
    pub fn stamp(&self) -> Option<&Stamp> {
        match self {
            AccountEvent::Password { stamp, .. }
            | AccountEvent::Keys { stamp, .. }
            | AccountEvent::Profile { stamp, .. }
            | AccountEvent::Deleted { stamp, .. }
            | AccountEvent::Delegated(Delegation { stamp, .. }) => Some(stamp),
            _ => None,
        }
    }

    /// The same event with the user's signature `auth` in its stamp
    /// (events without a stamp are returned unchanged).
    pub fn with_auth(mut self, auth: Option<String>) -> AccountEvent {
        match &mut self {
            AccountEvent::Password { stamp, .. }
            | AccountEvent::Keys { stamp, .. }
            | AccountEvent::Profile { stamp, .. }
            | AccountEvent::Deleted { stamp, .. }
            | AccountEvent::Delegated(Delegation { stamp, .. }) => stamp.auth = auth,
            _ => {}
        }
        self
    }

    /// The account this event is about (none for a block claim).
    pub fn account(&self) -> Option<&str> {
        match self {
            AccountEvent::Block { .. } => None,
            AccountEvent::Created(c) => Some(&c.name),
            AccountEvent::Password { name, .. }
            | AccountEvent::Keys { name, .. }
            | AccountEvent::Profile { name, .. }
            | AccountEvent::Deleted { name, .. }
            | AccountEvent::Notice { name, .. } => Some(name),
            AccountEvent::Delegated(d) => Some(&d.name),
        }
    }
}

/// The numbers of block `index`: `BASE + index * BLOCK_SIZE ..` one block on.
/// The first number of a block is never used (n starts at 1).
pub fn block_range(index: u32) -> std::ops::Range<u32> {
    let start = BASE.saturating_add(index.saturating_mul(BLOCK_SIZE));
    start..start.saturating_add(BLOCK_SIZE)
}

/// The block a number lies in, if any.
pub fn block_of(uid_number: u32) -> Option<u32> {
    if uid_number < BASE {
        return None;
    }
    let index = (uid_number - BASE) / BLOCK_SIZE;
    (index < BLOCKS).then_some(index)
}

/// Whether `name` is a valid account name: `^[a-z][a-z0-9]{1,31}$`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=32).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `hash` is an `{ARGON2}` Argon2id PHC string: the prefix, then
/// `v=19$m=M,t=T,p=P$SALT$HASH` with B64 salt and hash, M, T and P at most
/// [`MAX_ARGON2_M`], [`MAX_ARGON2_T`] and [`MAX_ARGON2_P`].
pub fn valid_hash(hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix(HASH_PREFIX) else {
        return false;
    };
    if hash.len() > MAX_HASH {
        return false;
    }
    let parts: Vec<&str> = rest.split('$').collect();
    let [version, params, salt, digest] = parts.as_slice() else {
        return false;
    };
    let b64 = |s: &str| {
        (8..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    // Bounded, so that no hash pins slapd at each bind (CEP 8).
    let params_ok = {
        let fields: Vec<&str> = params.split(',').collect();
        fields.len() == 3
            && fields
                .iter()
                .zip([
                    ("m=", MAX_ARGON2_M),
                    ("t=", MAX_ARGON2_T),
                    ("p=", MAX_ARGON2_P),
                ])
                .all(|(f, (key, max))| {
                    f.strip_prefix(key).is_some_and(|n| {
                        (1..=10).contains(&n.len())
                            && n.bytes().all(|b| b.is_ascii_digit())
                            && n.parse::<u64>().is_ok_and(|v| (1..=max).contains(&v))
                    })
                })
    };
    *version == "v=19" && params_ok && b64(salt) && b64(digest)
}

/// Whether `line` is one public key as `authorized_keys` holds it: a type
/// (`ssh-ed25519`, `ssh-rsa` or `ecdsa-sha2-*`), base64, an optional
/// comment; printable ASCII only, so no line break can smuggle in a second
/// key or an option.
pub fn valid_key(line: &str) -> bool {
    if line.len() > MAX_KEY_LINE || !line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return false;
    }
    let mut parts = line.splitn(3, ' ');
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    let kind_ok = kind == "ssh-ed25519"
        || kind == "ssh-rsa"
        || kind.strip_prefix("ecdsa-sha2-").is_some_and(|curve| {
            !curve.is_empty() && curve.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    let blob_ok = blob.len() >= 16
        && blob.len() % 4 == 0
        && blob
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && blob.len() - blob.trim_end_matches('=').len() <= 2;
    let comment_ok = parts.next().is_none_or(|c| !c.is_empty());
    kind_ok && blob_ok && comment_ok
}

/// Normalizes one key read from a file or an argument: trims it; the
/// caller checks it with [`valid_key`].
pub fn normalize_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hashes a password on this peer: Argon2id, m=19456 KiB, t=2, p=1, a
/// random salt; `{ARGON2}` + the PHC string, as slapd stores it.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::{
        Algorithm, Argon2, Params, Version,
        password_hash::{PasswordHasher, SaltString},
    };
    let params = Params::new(19_456, 2, 1, None).map_err(|e| e.to_string())?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    let phc = argon
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| e.to_string())?;
    Ok(format!("{{ARGON2}}{phc}"))
}

/// The hash of a random secret nobody keeps: an account with no usable
/// password (key logins only).
pub fn unusable_password_hash() -> Result<String, String> {
    let secret: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hash_password(&secret)
}

fn members<'a>(data: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, AccountError> {
    let object = data.as_object().ok_or(AccountError::NotObject)?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        return Err(AccountError::Unknown(shown));
    }
    Ok(object)
}

fn required<'a>(o: &'a Map<String, Value>, field: &'static str) -> Result<&'a Value, AccountError> {
    o.get(field).ok_or(AccountError::Missing(field))
}

fn number(o: &Map<String, Value>, field: &'static str) -> Result<u64, AccountError> {
    required(o, field)?
        .as_u64()
        .ok_or_else(|| bad(field, "must be a non-negative integer"))
}

fn string<'a>(o: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, AccountError> {
    required(o, field)?
        .as_str()
        .ok_or_else(|| bad(field, "must be a string"))
}

fn account_name(o: &Map<String, Value>) -> Result<String, AccountError> {
    let name = string(o, "name")?;
    if !valid_name(name) {
        return Err(bad("name", "must match ^[a-z][a-z0-9]{1,31}$"));
    }
    Ok(name.to_owned())
}

fn path(o: &Map<String, Value>, field: &'static str) -> Result<String, AccountError> {
    let text = string(o, field)?;
    let ok = text.len() <= MAX_PATH
        && text.starts_with('/')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        && !text.split('/').any(|part| part == "..");
    if !ok {
        return Err(bad(
            field,
            "must be an absolute path of letters, digits, '/', '.', '_', '-' without '..'",
        ));
    }
    Ok(text.to_owned())
}

/// `user_key`: `""` (none) or an Ed25519 public key in unpadded base64.
fn user_key(o: &Map<String, Value>) -> Result<Option<String>, AccountError> {
    let text = string(o, "user_key")?;
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() != 43 || vodozemac::Ed25519PublicKey::from_base64(text).is_err() {
        return Err(bad(
            "user_key",
            "must be empty or an Ed25519 public key in unpadded base64",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// `at` (or `deleted`), a time in ms, and `auth`: `""` or an Ed25519
/// signature in unpadded base64.
fn stamp(o: &Map<String, Value>, time: &'static str) -> Result<Stamp, AccountError> {
    let at = number(o, time)?;
    if at == 0 {
        return Err(bad(time, "must be a time in milliseconds"));
    }
    let text = string(o, "auth")?;
    let auth = if text.is_empty() {
        None
    } else if text.len() == 86 && vodozemac::Ed25519Signature::from_base64(text).is_ok() {
        Some(text.to_owned())
    } else {
        return Err(bad(
            "auth",
            "must be empty or an Ed25519 signature in unpadded base64",
        ));
    };
    Ok(Stamp { at, auth })
}

fn display_name(o: &Map<String, Value>) -> Result<String, AccountError> {
    let text = string(o, "display_name")?;
    if text.chars().count() > MAX_DISPLAY_NAME || text.chars().any(char::is_control) {
        return Err(bad(
            "display_name",
            format!("must be at most {MAX_DISPLAY_NAME} characters, none a control character"),
        ));
    }
    Ok(text.to_owned())
}

fn password_hash(o: &Map<String, Value>) -> Result<String, AccountError> {
    let text = string(o, "password_hash")?;
    if !valid_hash(text) {
        return Err(bad(
            "password_hash",
            "must be {ARGON2} followed by an $argon2id$ PHC string",
        ));
    }
    Ok(text.to_owned())
}

fn ssh_keys(o: &Map<String, Value>) -> Result<Vec<String>, AccountError> {
    let list = required(o, "ssh_keys")?
        .as_array()
        .ok_or_else(|| bad("ssh_keys", "must be an array"))?;
    if list.len() > MAX_KEYS {
        return Err(bad("ssh_keys", format!("holds more than {MAX_KEYS} keys")));
    }
    let mut keys: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let key = item
            .as_str()
            .filter(|k| valid_key(k))
            .ok_or_else(|| bad("ssh_keys", "holds something that is not an SSH public key"))?;
        if keys.iter().any(|k| k == key) {
            return Err(bad("ssh_keys", "holds the same key twice"));
        }
        keys.push(key.to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
