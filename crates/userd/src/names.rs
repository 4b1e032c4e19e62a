//! Which network account names this peer refuses to make (CEP 8,
//! "Names"): a name that its system already uses for another user or
//! group, or that is reserved, would let the network speak for a local
//! identity (`root`'s keys from `authorized-keys`, a group called `sudo`
//! that sudoers matches by name). Such an account is never made on this
//! peer; its sysadmin is told; other peers decide for themselves.
//!
//! The rule is a pure function over a lookup, so it is tested without
//! touching the machine's NSS; [`nss`] is the lookup userd uses.

/// Names no peer makes an account for: administrative users and groups,
/// the system users of Debian and of center's own daemons, and mail role
/// names. A peer adds its own in `[accounts] reserved_names`.
pub const RESERVED: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "sudo",
    "wheel",
    "adm",
    "staff",
    "daemon",
    "operator",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "users",
    "shadow",
    "disk",
    "kmem",
    "tty",
    "utmp",
    "input",
    "render",
    "video",
    "audio",
    "plugdev",
    "netdev",
    "dialout",
    "cdrom",
    "floppy",
    "tape",
    "crontab",
    "sasl",
    "src",
    "voice",
    "fax",
    "dip",
    "ssh",
    "sshd",
    "openldap",
    "messagebus",
    "polkitd",
    "docker",
    "lxd",
    "libvirt",
    "kvm",
    "systemd",
    "journal",
    "postmaster",
    "hostmaster",
    "webmaster",
    "abuse",
    "security",
    "support",
    "center",
    "dispatchd",
    "peerd",
    "userd",
    "syncd",
    "voted",
    "centerctl",
];

/// What this machine's own system has under a name: the uid of a user
/// and the gid of a group, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Local {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Why `name` (numbered `uid_number`) is not made here, if it is not.
/// A local user or group of that name with the account's own number is
/// the account itself (sssd or nslcd serve it from this peer's slapd),
/// not a conflict.
pub fn conflict(name: &str, uid_number: u32, local: Local, extra: &[String]) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("`{name}` is a reserved name"));
    }
    if extra.iter().any(|n| n == name) {
        return Some(format!(
            "`{name}` is reserved on this peer ([accounts] reserved_names)"
        ));
    }
    if let Some(uid) = local.uid.filter(|uid| *uid != uid_number) {
        return Some(format!("`{name}` is a local user of this peer (uid {uid})"));
    }
    if let Some(gid) = local.gid.filter(|gid| *gid != uid_number) {
        return Some(format!(
            "`{name}` is a local group of this peer (gid {gid})"
        ));
    }
    None
}

/// What NSS says about `name` on this machine (users and groups).
pub fn nss(name: &str) -> Local {
    Local {
        uid: nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw()),
        gid: nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw()),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn local_and_reserved_names_are_not_made() {
        let n = 1_003_000_001;
        let show = |name: &str, local: Local, extra: &[String]| {
            conflict(name, n, local, extra).unwrap_or_else(|| "made".to_owned())
        };
        let none = Local::default();
        expect!["made"].assert_eq(&show("alice", none, &[]));
        expect!["`root` is a reserved name"].assert_eq(&show("root", none, &[]));
        expect!["`sudo` is a reserved name"].assert_eq(&show("sudo", none, &[]));
        expect!["`wheel` is a reserved name"].assert_eq(&show("wheel", none, &[]));
        expect!["`bob` is reserved on this peer ([accounts] reserved_names)"].assert_eq(&show(
            "bob",
            none,
            &["bob".to_owned()],
        ));
        let user = Local {
            uid: Some(1000),
            gid: None,
        };
        expect!["`alice` is a local user of this peer (uid 1000)"].assert_eq(&show(
            "alice",
            user,
            &[],
        ));
        let group = Local {
            uid: None,
            gid: Some(27),
        };
        expect!["`alice` is a local group of this peer (gid 27)"].assert_eq(&show(
            "alice",
            group,
            &[],
        ));
        // The account itself, served by sssd from this slapd.
        let itself = Local {
            uid: Some(n),
            gid: Some(n),
        };
        expect!["made"].assert_eq(&show("alice", itself, &[]));
    }

    #[test]
    fn every_reserved_name_is_an_account_name() {
        for name in RESERVED {
            assert!(crate::account::valid_name(name), "{name}");
        }
    }
}
