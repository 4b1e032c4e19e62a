//! Whose act an account change is (CEP 8, "Authority"): the rules every
//! peer applies before it writes a change to an account, as pure functions.
//!
//! An account's password, keys, profile and existence are its user's. A
//! change counts when the user signed it with her *user key*, an Ed25519
//! key derived from her password where she types it (so she holds it on
//! any peer, and no peer stores it), or when it comes from the account's
//! *home peer*, the origin of its creation, while that peer is a member
//! (a departed peer's feed ends where it left, CEP 7, so nothing it
//! publishes later reaches a consumer), or, for her SSH keys, from a peer
//! she delegated them to, within the delegation's time (a delegation is
//! her signed, short-lived word that a peer she uses may act for her,
//! [`Delegated`]). Every peer checks the signature
//! against the user key it holds for the account; a peer's own signature
//! on the feed proves only who relayed the change.
//!
//! Times a peer states (`created`, `at`, `deleted`) must lie within
//! [`SKEW_MS`] of the event's signed `iat` and not in the receiver's
//! future, so no claim is dated at 1 or in the year 3000. Nothing here
//! does I/O; the signature checks never panic on input.

use serde_json::json;
use vodozemac::{Ed25519PublicKey, Ed25519SecretKey, Ed25519Signature};

use crate::account::{AccountEvent, Scope};

/// How far a stated time may lie from the event's `iat`, and how far in
/// the receiver's future (ms): CEP 2's clock skew allowance.
pub const SKEW_MS: u64 = 5 * 60 * 1000;

/// What the signature covers: this prefix, then the canonical JSON of
/// `{"data": DATA without auth, "event": NAME}`.
const DOMAIN: &[u8] = b"center-account-auth/v1\n";

/// The salt prefix of the user key derivation; the account name follows.
const KEY_SALT: &str = "center-user-key/v1/";

/// Argon2id parameters of the user key derivation: fixed for the whole
/// network (every peer must derive the same key from the same password),
/// OWASP's minimum, as for the password hash.
const KEY_M_KIB: u32 = 19_456;
const KEY_T: u32 = 2;
const KEY_P: u32 = 1;

/// Why a change does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    #[error("signed by a key that is not the account's user key")]
    BadSignature,
    #[error("signed by its user, but the account has no user key here")]
    NoUserKey,
    #[error(
        "neither signed by its user nor published by its home peer {home}, nor by a peer she delegated it to"
    )]
    NotHome { home: String },
    #[error("`{field}` ({value} ms) is more than 5 minutes from the event's iat ({iat} ms)")]
    FarFromIat {
        field: &'static str,
        value: u64,
        iat: u64,
    },
    #[error("`{field}` ({value} ms) is in this peer's future (now {now} ms)")]
    Future {
        field: &'static str,
        value: u64,
        now: u64,
    },
    #[error("older than the change already applied (at {held} ms; this one at {at} ms)")]
    Stale { at: u64, held: u64 },
}

/// On what a change counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The user signed it.
    User,
    /// It comes from the account's home peer.
    Home,
    /// It comes from a peer the user delegated it to, while she did.
    Delegated,
}

impl Authority {
    pub fn as_str(self) -> &'static str {
        match self {
            Authority::User => "signed by its user",
            Authority::Home => "from its home peer",
            Authority::Delegated => "from a peer its user delegated it to",
        }
    }
}

/// A delegation a peer holds for an account (CEP 8, "Delegations"): the
/// user let `peer` act for her in `scopes` from `not_before` to
/// `not_after` (ms), signed with the user key `key`. It counts only while
/// `key` is still her key: a new password ends every delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegated {
    pub peer: String,
    pub scopes: Vec<Scope>,
    pub not_before: u64,
    pub not_after: u64,
    pub key: String,
}

/// The scope an unsigned change needs from a delegation, if any may
/// carry it: only key changes are delegated among account changes.
fn scope_of(event: &AccountEvent) -> Option<Scope> {
    match event {
        AccountEvent::Keys { .. } => Some(Scope::Keys),
        _ => None,
    }
}

/// Whether `delegations` let `origin` make `event` (made at `at`) for a
/// user whose key is now `user_key`.
pub fn delegated(
    origin: &str,
    user_key: Option<&str>,
    delegations: &[Delegated],
    event: &AccountEvent,
    at: u64,
) -> bool {
    let (Some(scope), Some(key)) = (scope_of(event), user_key) else {
        return false;
    };
    delegations.iter().any(|d| {
        d.peer == origin
            && d.key == key
            && d.scopes.contains(&scope)
            && (d.not_before..=d.not_after).contains(&at)
    })
}

/// Derives `name`'s user key from her password. Argon2id with fixed
/// parameters and a salt made of the name: the same password gives the
/// same key on every peer, and nothing but the password is needed.
pub fn derive_user_key(name: &str, password: &str) -> Result<Ed25519SecretKey, String> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(KEY_M_KIB, KEY_T, KEY_P, Some(32)).map_err(|e| e.to_string())?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut seed = [0u8; 32];
    argon
        .hash_password_into(
            password.as_bytes(),
            format!("{KEY_SALT}{name}").as_bytes(),
            &mut seed,
        )
        .map_err(|e| e.to_string())?;
    Ok(Ed25519SecretKey::from_slice(&seed))
}

/// The public half of a user key, as events carry it.
pub fn public_key(key: &Ed25519SecretKey) -> String {
    key.public_key().to_base64()
}

/// The bytes a user signs for `event`: its name and `data` without `auth`.
pub fn signing_input(event: &AccountEvent) -> Vec<u8> {
    let (name, mut data) = event.to_event();
    if let Some(object) = data.as_object_mut() {
        object.remove("auth");
    }
    let body = json!({ "data": data, "event": name });
    let mut out = DOMAIN.to_vec();
    // Canonical JSON of values built here cannot fail (no floats).
    out.extend(center_proto::canonical::to_canonical(&body).unwrap_or_default());
    out
}

/// `event` signed by the user key `key`.
pub fn sign(event: AccountEvent, key: &Ed25519SecretKey) -> AccountEvent {
    let signature = key.sign(&signing_input(&event)).to_base64();
    event.with_auth(Some(signature))
}

/// Whether `event`'s `auth` is a valid signature by `user_key`.
pub fn verify(event: &AccountEvent, user_key: &str) -> bool {
    let Some(auth) = event.stamp().and_then(|s| s.auth.as_deref()) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (
        Ed25519PublicKey::from_base64(user_key),
        Ed25519Signature::from_base64(auth),
    ) else {
        return false;
    };
    key.verify(&signing_input(event), &signature).is_ok()
}

/// Who `event` (a change of an account held here, whose home is `home`,
/// user key `user_key` and delegations `delegations`) counts for, if
/// anyone. A signature that does not verify refuses the change even from
/// the home peer: it is forged.
pub fn authorize(
    origin: &str,
    home: &str,
    user_key: Option<&str>,
    delegations: &[Delegated],
    event: &AccountEvent,
) -> Result<Authority, Unauthorized> {
    let signed = event.stamp().is_some_and(|s| s.auth.is_some());
    if signed {
        let key = user_key.ok_or(Unauthorized::NoUserKey)?;
        return if verify(event, key) {
            Ok(Authority::User)
        } else {
            Err(Unauthorized::BadSignature)
        };
    }
    if origin == home {
        return Ok(Authority::Home);
    }
    let at = event.stamp().map_or(0, |s| s.at);
    if delegated(origin, user_key, delegations, event, at) {
        return Ok(Authority::Delegated);
    }
    Err(Unauthorized::NotHome {
        home: home.to_owned(),
    })
}

/// A time `value` stated in an event signed at `iat`, received at `now`
/// (all ms): within [`SKEW_MS`] of `iat`, and not past `now + SKEW_MS`.
pub fn check_time(field: &'static str, value: u64, iat: u64, now: u64) -> Result<(), Unauthorized> {
    if value.abs_diff(iat) > SKEW_MS {
        return Err(Unauthorized::FarFromIat { field, value, iat });
    }
    if value > now.saturating_add(SKEW_MS) {
        return Err(Unauthorized::Future { field, value, now });
    }
    Ok(())
}

/// Whether a change at `at` is newer than the last one applied of its kind
/// (`held`): the later change wins on every peer whatever the order of
/// arrival, and a replayed one changes nothing.
pub fn check_newer(at: u64, held: u64) -> Result<(), Unauthorized> {
    if at > held {
        Ok(())
    } else {
        Err(Unauthorized::Stale { at, held })
    }
}

#[cfg(test)]
mod tests;
