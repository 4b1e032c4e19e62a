//! Configuration cases as data: each input file and what validation says.

use std::path::Path;

use expect_test::{Expect, expect};

use crate::Config;

const GOOD: &str = r#"
[paths]
state_dir = "/var/lib/center"
center_root = "/center"
"#;

fn check(text: &str, expect: Expect) {
    let actual = match Config::parse(text, Path::new("/etc/center/center.toml")) {
        Ok(config) => format!(
            "ok {} socket={} mode={:o} frame={} queue={} conns={} keepalive={:?}",
            config.paths.state_dir.display(),
            config.bus.socket.display(),
            config.bus.socket_mode,
            config.bus.max_frame_bytes,
            config.bus.queue_depth,
            config.bus.max_connections,
            config.links.keepalive,
        ),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn defaults_fill_the_bus_section() {
    check(
        GOOD,
        expect![
            "ok /var/lib/center socket=/run/center/bus.sock mode=666 frame=1048576 queue=1024 conns=512 keepalive=30s"
        ],
    );
}

#[test]
fn bus_section_overrides() {
    let text = format!(
        "{GOOD}\n[bus]\nsocket = \"/tmp/x/bus.sock\"\nsocket_mode = \"0660\"\nqueue_depth = 8\n"
    );
    check(
        &text,
        expect![
            "ok /var/lib/center socket=/tmp/x/bus.sock mode=660 frame=1048576 queue=8 conns=512 keepalive=30s"
        ],
    );
}

#[test]
fn unknown_field_is_refused() {
    let text = GOOD.replace("center_root", "centre_root");
    check(
        &text,
        expect![[r#"
            config /etc/center/center.toml is not valid: TOML parse error at line 4, column 1
              |
            4 | centre_root = "/center"
              | ^^^^^^^^^^^
            unknown field `centre_root`, expected `state_dir` or `center_root`"#]],
    );
}

#[test]
fn invalid_values_name_their_field() {
    check(
        &GOOD.replace("\"/center\"", "\"center\""),
        expect![[
            r#"config /etc/center/center.toml: `paths.center_root` must be an absolute path, got center"#
        ]],
    );
    check(
        &format!("{GOOD}\n[bus]\nsocket_mode = \"999\"\n"),
        expect![[
            r#"config /etc/center/center.toml: `bus.socket_mode` must be octal permission bits such as "0660""#
        ]],
    );
    check(
        &format!("{GOOD}\n[bus]\nqueue_depth = 0\n"),
        expect![[
            r#"config /etc/center/center.toml: `bus.queue_depth` must be between 1 and 65536, got 0"#
        ]],
    );
    check(
        &format!("{GOOD}\n[links]\nkeepalive_seconds = 0\n"),
        expect![[
            r#"config /etc/center/center.toml: `links.keepalive_seconds` must be between 1 and 3600, got 0"#
        ]],
    );
    check(
        &format!("{GOOD}\n[bus]\nmax_frame_bytes = 10\n"),
        expect![[
            r#"config /etc/center/center.toml: `bus.max_frame_bytes` must be between 1024 and 16777216, got 10"#
        ]],
    );
}

#[test]
fn missing_file_says_which() {
    let err = Config::load(Path::new("/nonexistent/center.toml"))
        .map(|_| ())
        .unwrap_err();
    expect![[
        r#"cannot read config /nonexistent/center.toml: No such file or directory (os error 2)"#
    ]]
    .assert_eq(&err.to_string());
}

#[test]
fn identity_is_not_configuration() {
    let text = format!("[peer]\nname = \"alpha\"\n{GOOD}");
    check(
        &text,
        expect![[r#"
            config /etc/center/center.toml is not valid: TOML parse error at line 1, column 2
              |
            1 | [peer]
              |  ^^^^
            unknown field `peer`, expected one of `paths`, `bus`, `links`, `feeds`, `ldap`, `membership`, `accounts`"#]],
    );
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/center.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.paths.state_dir, Path::new("/var/lib/center"));
    assert_eq!(config.links.keepalive, std::time::Duration::from_secs(30));
    assert_eq!(config.links.max_queued_per_peer, 100_000);
    assert_eq!(config.feeds.max_events_per_hour, 20_000);
    assert_eq!(config.feeds.max_bytes_per_origin, 1 << 30);
    assert_eq!(config.feeds.retention_days, 0);
    assert_eq!(config.ldap.base, "dc=center");
    assert_eq!(config.ldap.uri, "ldaps://127.0.0.1:636/");
    assert_eq!(config.membership.policy, crate::Policy::Auto);
    assert_eq!(config.membership.consumers, ["userd"]);
    assert_eq!(
        config.membership.control_socket,
        Path::new("/run/center-peerd/control.sock")
    );
    assert_eq!(
        config.accounts.control_socket,
        Path::new("/run/center-userd/control.sock")
    );
}

#[test]
fn links_section_overrides() {
    check(
        &format!("{GOOD}\n[links]\nkeepalive_seconds = 2\n"),
        expect![
            "ok /var/lib/center socket=/run/center/bus.sock mode=666 frame=1048576 queue=1024 conns=512 keepalive=2s"
        ],
    );
}

#[test]
fn membership_consumers_are_service_names() {
    let parse = |list: &str| {
        Config::parse(
            &format!("{GOOD}\n[membership]\nconsumers = {list}\n"),
            Path::new("/etc/center/center.toml"),
        )
        .map(|c| c.membership.consumers)
        .map_err(|e| e.to_string())
    };
    assert_eq!(parse("[]").unwrap(), Vec::<String>::new());
    assert_eq!(
        parse(r#"["userd", "voted-2"]"#).unwrap(),
        ["userd", "voted-2"]
    );
    for bad in [r#"["User"]"#, r#"[""]"#, r#"["a/b"]"#] {
        let err = parse(bad).unwrap_err();
        assert!(err.contains("membership.consumers"), "{bad}: {err}");
    }
}

fn check_ldap(section: &str, expect: Expect) {
    let text = format!("{GOOD}\n[ldap]\n{section}");
    let actual = match Config::parse(&text, Path::new("/etc/center/center.toml")) {
        Ok(config) => format!(
            "ok uri={} base={} ca={} ldapi={}",
            config.ldap.uri,
            config.ldap.base,
            config.ldap.ca.display(),
            config.ldap.ldapi.display()
        ),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn ldap_section_defaults_and_overrides() {
    check_ldap(
        "",
        expect![
            "ok uri=ldaps://127.0.0.1:636/ base=dc=center ca=/var/lib/center/ldap/tls/ca.crt ldapi=/var/lib/center/ldap/run/ldapi"
        ],
    );
    check_ldap(
        "ldap_uri = \"ldaps://127.1.2.3:16360/\"\nldap_base = \"dc=tilde,dc=test\"\nldap_ca = \"/tmp/a/ca.crt\"\nldapi = \"/tmp/a/ldapi\"\n",
        expect![
            "ok uri=ldaps://127.1.2.3:16360/ base=dc=tilde,dc=test ca=/tmp/a/ca.crt ldapi=/tmp/a/ldapi"
        ],
    );
}

#[test]
fn ldap_section_is_validated() {
    check_ldap(
        "ldap_uri = \"ldap://127.0.0.1:389/\"\n",
        expect![[
            r#"config /etc/center/center.toml: `ldap.ldap_uri` must be an ldaps:// URL (TLS only), got "ldap://127.0.0.1:389/""#
        ]],
    );
    check_ldap(
        "ldap_uri = \"ldaps://127.0.0.1/\"\n",
        expect![[
            r#"config /etc/center/center.toml: `ldap.ldap_uri` must be ldaps://HOST:PORT/, got "ldaps://127.0.0.1/""#
        ]],
    );
    check_ldap(
        "ldap_base = \"tilde\"\n",
        expect![[
            r#"config /etc/center/center.toml: `ldap.ldap_base` must be a DN such as "dc=tilde,dc=test", got "tilde""#
        ]],
    );
    check_ldap(
        "ldap_ca = \"ca.crt\"\n",
        expect![[
            r#"config /etc/center/center.toml: `ldap.ldap_ca` must be an absolute path, got ca.crt"#
        ]],
    );
    check_ldap(
        "ldap_url = \"ldaps://x:1/\"\n",
        expect![[r#"
            config /etc/center/center.toml is not valid: TOML parse error at line 7, column 1
              |
            7 | ldap_url = "ldaps://x:1/"
              | ^^^^^^^^
            unknown field `ldap_url`, expected one of `ldap_uri`, `ldap_base`, `ldap_ca`, `ldapi`"#]],
    );
}
