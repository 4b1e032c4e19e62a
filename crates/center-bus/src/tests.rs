//! Unit tests of the pure parts: patterns and wire encoding, as data.

use expect_test::{Expect, expect};

use crate::{Pattern, Reply, Request, pattern::granted};

fn check_pattern(text: &str, expect: Expect) {
    let actual = match Pattern::parse(text) {
        Ok(p) => format!("ok {p}"),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn pattern_grammar() {
    check_pattern("*", expect!["ok *"]);
    check_pattern("account.*", expect!["ok account.*"]);
    check_pattern("account.created", expect!["ok account.created"]);
    check_pattern("", expect!["pattern `` is empty or longer than 65 bytes"]);
    check_pattern(
        "a*b",
        expect![
            "pattern `a*b` is neither an event name nor a prefix ending in '*': event name has a character other than a-z, 0-9, '.' and '-' at byte 1"
        ],
    );
    check_pattern(
        "Acc*",
        expect!["pattern `Acc*` may only contain a-z, 0-9, '.', '-' and one trailing '*'"],
    );
    check_pattern(
        "**",
        expect!["pattern `**` may only contain a-z, 0-9, '.', '-' and one trailing '*'"],
    );
}

#[test]
fn matching_and_covering() {
    let p = |s: &str| Pattern::parse(s).unwrap();
    let table = [
        ("*", "anything", true),
        ("account.*", "account.created", true),
        ("account.*", "accounts", false),
        ("account.created", "account.created", true),
        ("account.created", "account.created2", false),
    ];
    for (pattern, name, want) in table {
        assert_eq!(p(pattern).matches(name), want, "{pattern} matches {name}");
    }
    let covers = [
        ("*", "account.*", true),
        ("account.*", "account.created", true),
        ("account.*", "account.c*", true),
        ("account.*", "acc*", false),
        ("account.created", "account.*", false),
        ("account.created", "account.created", true),
        ("demo", "demo*", false),
    ];
    for (grant, wanted, want) in covers {
        assert_eq!(
            granted(&[p(grant)], &p(wanted)),
            want,
            "{grant} covers {wanted}"
        );
    }
}

proptest::proptest! {
    /// Whatever a covered pattern matches, the covering pattern matches too.
    #[test]
    fn covering_implies_matching(grant in "[a-c.]{0,3}\\*?", wanted in "[a-c.]{0,3}\\*?", name in "[a-c.]{0,5}") {
        if let (Ok(grant), Ok(wanted)) = (Pattern::parse(&grant), Pattern::parse(&wanted))
            && grant.covers(&wanted)
            && wanted.matches(&name)
        {
                proptest::prop_assert!(grant.matches(&name));
        }
    }
}

#[test]
fn wire_frames_are_tagged_objects() {
    let hello = Request::Hello {
        service: "userd".to_owned(),
        protocol: 1,
    };
    expect![[r#"{"type":"hello","service":"userd","protocol":1}"#]]
        .assert_eq(std::str::from_utf8(&hello.to_bytes()).unwrap());
    let err: Result<Request, _> =
        serde_json::from_str(r#"{"type":"hello","service":"x","protocol":1,"uid":0}"#);
    expect![[r#"unknown field `uid`, expected `service` or `protocol`"#]]
        .assert_eq(&err.unwrap_err().to_string());
    let reply: Reply =
        serde_json::from_str(r#"{"type":"error","code":"queue-full","message":"slow"}"#).unwrap();
    expect![[r#"Error { id: None, code: QueueFull, message: "slow" }"#]]
        .assert_eq(&format!("{reply:?}"));
}

#[test]
fn fuzz_body_survives_seed_inputs() {
    let mut seeds: Vec<Vec<u8>> = vec![Vec::new(), vec![0, 0, 0], vec![255, 255, 255, 255, 1]];
    for body in [
        r#"{"type":"hello","service":"userd","protocol":1}"#,
        r#"{"type":"subscribe","id":1,"patterns":["account.*","*"]}"#,
        r#"{"type":"publish","id":2,"name":"demo.x","data":{},"to":"*"}"#,
        r#"{"type":"admin","id":3,"op":{"op":"list"}}"#,
        r#"{"type":"subscribe","id":1,"patterns":["a*b"]}"#,
    ] {
        let mut frame = crate::frame::encode_frame(body.as_bytes()).unwrap();
        seeds.push(frame.clone());
        frame.truncate(frame.len() / 2);
        seeds.push(frame);
    }
    for seed in seeds {
        crate::fuzz::bus_request(&seed);
    }
}

/// Every frame of `CEPS/vectors/0004-bus.json` (CEP 4): a valid frame decodes
/// and encodes back to the same JSON value; an invalid one is refused with the
/// recorded message. The vectors must also show every frame type and every
/// error code.
#[test]
fn cep4_vectors() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0004-bus.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("the vectors file is a JSON list");
    let mut types = std::collections::BTreeSet::new();
    let mut codes = std::collections::BTreeSet::new();
    for vector in &vectors {
        let name = vector["name"].as_str().expect("every vector has a name");
        let frame = &vector["frame"];
        let decoded = match vector["kind"].as_str() {
            Some("request") => decode_vector::<Request>(frame),
            Some("reply") => decode_vector::<Reply>(frame),
            other => panic!("{name}: kind must be \"request\" or \"reply\", not {other:?}"),
        };
        match (vector["valid"].as_bool(), decoded) {
            (Some(true), Ok(encoded)) => {
                assert_eq!(
                    &encoded, frame,
                    "{name}: does not encode back to the same frame"
                );
                types.insert(format!(
                    "{} {}",
                    vector["kind"].as_str().unwrap_or_default(),
                    frame["type"].as_str().unwrap_or_default()
                ));
                if let Some(code) = frame["code"].as_str() {
                    codes.insert(code.to_owned());
                }
            }
            (Some(false), Err(err)) => {
                assert_eq!(Some(err.as_str()), vector["error"].as_str(), "{name}")
            }
            (valid, result) => panic!("{name}: `valid` is {valid:?} but decoding gave {result:?}"),
        }
    }
    expect!["reply error, reply event, reply ok, reply welcome, request ack, request admin, request hello, request publish, request subscribe"]
        .assert_eq(&types.into_iter().collect::<Vec<_>>().join(", "));
    expect![[r#"bad-event, grant-changed, internal, malformed, not-approved, not-found, not-root, out-of-grant, oversize, protocol, queue-full, timeout, too-many-connections, unreachable"#]]
        .assert_eq(&codes.into_iter().collect::<Vec<_>>().join(", "));
}

/// Decodes one vector frame as `T` and encodes it again.
fn decode_vector<T: serde::de::DeserializeOwned + serde::Serialize>(
    frame: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let decoded: T = serde_json::from_value(frame.clone()).map_err(|err| err.to_string())?;
    Ok(serde_json::to_value(&decoded).expect("a decoded frame encodes"))
}
