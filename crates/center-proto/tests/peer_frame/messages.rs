//! Snapshots of every error message of the peer wire: frame bodies, the
//! stream decoder, base64, and the envelope a frame carries. One `check`
//! helper per kind of input; the expected text is the contract reviewers see.

use center_proto::peer_frame::{
    MAX_FRAME, OpenPgpSignature, PayloadError, base64, encode_batch, encode_frame, open_envelope,
    open_envelopes,
};
use center_proto::{Auth, Envelope, FrameDecoder, Limits, PeerFrame, PeerId, Timestamp, fuzz};
use expect_test::{Expect, expect};
use serde_json::json;

const A: &str = "0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90";
const B: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn a() -> PeerId {
    A.parse().expect("a peer id")
}

fn b() -> PeerId {
    B.parse().expect("a peer id")
}

fn check_body(body: &str, expect: Expect) {
    let got = match PeerFrame::parse(body.as_bytes()) {
        Ok(frame) => format!("ok {frame:?}"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

/// A body with the given members, unquoted values as written.
fn members(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn gpg_with(key: &str, value: &str) -> String {
    let mut pairs = vec![
        ("prefix", "\"GPG\"".to_owned()),
        ("from", format!("\"{A}\"")),
        ("to", format!("\"{B}\"")),
        ("sig", "\"c2ln\"".to_owned()),
        ("payload", "\"eyJ9\"".to_owned()),
    ];
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value.to_owned(),
        None => pairs.push((key, value.to_owned())),
    }
    pairs.retain(|(_, v)| !v.is_empty());
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    members(&pairs)
}

#[test]
fn frame_bodies() {
    check_body(
        &gpg_with("prefix", "\"GPG\""),
        expect![
            "ok PeerFrame { prefix: Gpg, from: PeerId(0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90), to: PeerId(7c9e6679-7425-40de-944b-e07fc1f90ae7), sig: Some(OpenPgpSignature(3 bytes)), payload_len: 3 }"
        ],
    );
    check_body(
        &gpg_with("prefix", "\"NEW\""),
        expect![
            "error: the `sig` of a NEW frame must be 64 '0' characters, the rfc's empty signature"
        ],
    );
    check_body(
        "",
        expect![
            "error: frame body is not strict json: not valid json: EOF while parsing a value at line 1 column 0"
        ],
    );
    check_body(
        "{} {}",
        expect![
            "error: frame body is not strict json: not valid json: trailing characters at line 1 column 4"
        ],
    );
    check_body(
        r#"{"a":1,"a":2}"#,
        expect![[
            r#"error: frame body is not strict json: duplicate key "a" in the object at the top level"#
        ]],
    );
    check_body(
        r#"{"a":1.0}"#,
        expect![
            "error: frame body is not strict json: number at `a` is not a plain integer (no fraction, exponent or -0)"
        ],
    );
    check_body("null", expect!["error: frame body is not a json object"]);
    check_body(
        &gpg_with("payload", ""),
        expect!["error: frame has no `payload` field"],
    );
    check_body(
        &gpg_with("extra", "1"),
        expect!["error: frame has an unknown field `extra`"],
    );
    check_body(
        &gpg_with("odd key", "1"),
        expect![[r#"error: frame has an unknown field `["odd key"]`"#]],
    );
    check_body(
        &gpg_with("to", "true"),
        expect!["error: `to` must be a string"],
    );
    check_body(
        &gpg_with("prefix", "\"GPG+\\n\""),
        expect![[r#"error: `prefix` must be "NEW", "GPG" or "GPG+", found "GPG+\n""#]],
    );
    check_body(
        &gpg_with("prefix", &format!("\"{}\"", "x".repeat(100))),
        expect![[
            r#"error: `prefix` must be "NEW", "GPG" or "GPG+", found "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"..."#
        ]],
    );
    check_body(
        &gpg_with("from", "\"0b0e7d3c\""),
        expect![
            "error: invalid `from`: peer id must be 36 bytes long (a lowercase hyphenated uuid), found 8"
        ],
    );
    check_body(
        &gpg_with("to", &format!("\"{A}\"")),
        expect![
            "error: `from` and `to` are both 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90; a peer never sends frames to itself"
        ],
    );
    check_body(
        &gpg_with("sig", "\"c2ln=\""),
        expect!["error: `sig` is not canonical base64: its length 5 is not a multiple of 4"],
    );
    check_body(
        &gpg_with("payload", "\"eyJ9 \""),
        expect!["error: `payload` is not canonical base64: its length 5 is not a multiple of 4"],
    );
    check_body(
        &gpg_with("sig", "\"\""),
        expect!["error: `sig` must be an OpenPGP signature of 1 to 4096 bytes, found 0"],
    );
    check_body(
        &gpg_with("payload", "\"\""),
        expect!["error: `payload` of a GPG frame must be 1 to 778240 bytes, found 0"],
    );
    check_body(
        &gpg_with("sig", &format!("\"{}\"", "0".repeat(64))).replace("\"GPG\"", "\"NEW\""),
        expect![
            "ok PeerFrame { prefix: New, from: PeerId(0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90), to: PeerId(7c9e6679-7425-40de-944b-e07fc1f90ae7), sig: None, payload_len: 3 }"
        ],
    );
    check_body(
        &gpg_with("prefix", "\"NEW\""),
        expect![
            "error: the `sig` of a NEW frame must be 64 '0' characters, the rfc's empty signature"
        ],
    );
    let big = "A".repeat(MAX_FRAME);
    check_body(
        &gpg_with("payload", &format!("\"{big}\"")),
        expect!["error: frame body is 1048708 bytes, over the maximum of 1048576"],
    );
}

fn check_built(auth: Auth, from: PeerId, to: PeerId, payload: Vec<u8>, expect: Expect) {
    let got = match PeerFrame::new(from, to, auth, payload) {
        Ok(frame) => format!("ok {}", String::from_utf8_lossy(&frame.to_body())),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn frames_built_in_code() {
    let sig = || OpenPgpSignature::new(b"sig".to_vec()).expect("small");
    check_built(
        Auth::New,
        a(),
        b(),
        b"{}".to_vec(),
        expect![[
            r#"ok {"from":"0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90","payload":"e30=","prefix":"NEW","sig":"0000000000000000000000000000000000000000000000000000000000000000","to":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#
        ]],
    );
    check_built(
        Auth::Gpg(sig()),
        a(),
        b(),
        vec![0xfb, 0xff],
        expect![[
            r#"ok {"from":"0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90","payload":"+/8=","prefix":"GPG","sig":"c2ln","to":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#
        ]],
    );
    check_built(
        Auth::GpgPlus(sig()),
        a(),
        a(),
        vec![1],
        expect![
            "error: `from` and `to` are both 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90; a peer never sends frames to itself"
        ],
    );
    check_built(
        Auth::GpgPlus(sig()),
        a(),
        b(),
        vec![],
        expect!["error: `payload` of a GPG+ frame must be 1 to 778240 bytes, found 0"],
    );
    let got = OpenPgpSignature::new(vec![0; 4097]).map(|s| s.as_bytes().len());
    expect!["Err(SignatureSize { len: 4097 })"].assert_eq(&format!("{got:?}"));
    let got = OpenPgpSignature::new(Vec::new()).map_err(|e| e.to_string());
    expect![[r#"Err("`sig` must be an OpenPGP signature of 1 to 4096 bytes, found 0")"#]]
        .assert_eq(&format!("{got:?}"));
}

#[test]
fn signing_input_is_context_prefix_peers_payload() {
    let frame = PeerFrame::new(
        a(),
        b(),
        Auth::GpgPlus(OpenPgpSignature::new(b"s".to_vec()).expect("small")),
        b"\x00olm\xff".to_vec(),
    )
    .expect("valid");
    expect![[r#"center-peer-frame/1\nGPG+\n0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90\n7c9e6679-7425-40de-944b-e07fc1f90ae7\n\x00olm\xff"#]].assert_eq(&frame.signing_input().escape_ascii().to_string());
}

fn check_stream(chunks: &[&[u8]], expect: Expect) {
    let mut decoder = FrameDecoder::with_limit(16);
    let mut out = Vec::new();
    for chunk in chunks {
        match decoder.push(chunk) {
            Ok(()) => out.push(format!("push {}", chunk.len())),
            Err(e) => out.push(format!("push error: {e}")),
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(body)) => out.push(format!("frame {:?}", String::from_utf8_lossy(&body))),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("frame error: {e}"));
                    break;
                }
            }
        }
    }
    match decoder.finish() {
        Ok(()) => out.push("end ok".to_owned()),
        Err(e) => out.push(format!("end error: {e}")),
    }
    expect.assert_eq(&out.join("\n"));
}

#[test]
fn streams() {
    check_stream(
        &[b"\0\0\0\x02hi\0\0\0\0"],
        expect![[r#"
        push 10
        frame "hi"
        frame ""
        end ok"#]],
    );
    check_stream(
        &[b"\0\0", b"\0\x03a", b"bc\0"],
        expect![[r#"
        push 2
        push 3
        push 3
        frame "abc"
        end error: stream ended in the middle of a frame (1 of 4 bytes)"#]],
    );
    check_stream(
        &[b"\0\0\0\x11"],
        expect![[r#"
        push error: frame of 17 bytes is over the 16-byte limit
        frame error: frame of 17 bytes is over the 16-byte limit
        end error: frame of 17 bytes is over the 16-byte limit"#]],
    );
    check_stream(
        &[b"\0\0\0\x10", &[b'x'; 13], b"abcd"],
        expect![[r#"
        push 4
        push 13
        push error: decoder holds 17 bytes and cannot take 4 more (capacity 20); take frames with next_frame or push less
        end error: stream ended in the middle of a frame (17 of 20 bytes)"#]],
    );
    check_stream(
        &[b"\0\0\0\x05abc"],
        expect![[r#"
        push 7
        end error: stream ended in the middle of a frame (7 of 9 bytes)"#]],
    );
    let got = encode_frame(&vec![0; MAX_FRAME + 1]).map(|f| f.len());
    expect!["Err(Oversize { len: 1048577, max: 1048576 })"].assert_eq(&format!("{got:?}"));
}

fn check_base64(text: &str, expect: Expect) {
    let got = match base64::decode(text) {
        Ok(bytes) => format!("ok {bytes:02x?} = {}", base64::encode(&bytes)),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn base64_text() {
    check_base64("", expect!["ok [] = "]);
    check_base64("QQ==", expect!["ok [41] = QQ=="]);
    check_base64("QUI=", expect!["ok [41, 42] = QUI="]);
    check_base64("QUJD", expect!["ok [41, 42, 43] = QUJD"]);
    check_base64("+/+/", expect!["ok [fb, ff, bf] = +/+/"]);
    check_base64("QQ", expect!["error: its length 2 is not a multiple of 4"]);
    check_base64(
        "QR==",
        expect!["error: the unused low bits of byte 1 are not zero"],
    );
    check_base64(
        "QUJ=",
        expect!["error: the unused low bits of byte 2 are not zero"],
    );
    check_base64(
        "Q===",
        expect!["error: padding at byte 1 is not at the end"],
    );
    check_base64(
        "====",
        expect!["error: padding at byte 0 is not at the end"],
    );
    check_base64(
        "QQ==QQ==",
        expect!["error: padding at byte 2 is not at the end"],
    );
    check_base64(
        "QQ=A",
        expect!["error: padding at byte 2 is not at the end"],
    );
    check_base64(
        "-_-_",
        expect!["error: byte 0 is not in the standard base64 alphabet"],
    );
    check_base64(
        "QU\nD",
        expect!["error: byte 2 is not in the standard base64 alphabet"],
    );
    check_base64(
        "QU\u{e9}",
        expect!["error: byte 2 is not in the standard base64 alphabet"],
    );
}

fn envelope(name: &str, from: &str, to: &str, iat: u64, exp: u64) -> Vec<u8> {
    let value = json!({
        "name": name,
        "meta": {"from": from, "to": to, "iat": iat, "exp": exp},
        "data": {},
    });
    let envelope = Envelope::from_value(value, fuzz::NOW, &Limits::DEFAULT).expect("valid");
    envelope.canonical_bytes().expect("encodes")
}

fn check_request(auth: Auth, payload: Vec<u8>, expect: Expect) {
    let frame = PeerFrame::new(a(), b(), auth, payload).expect("valid frame");
    let got = match frame.new_peer_request(fuzz::NOW, &Limits::DEFAULT) {
        Ok(envelope) => format!("ok {}", envelope.name),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn new_peer_requests() {
    let now = fuzz::NOW.as_millis();
    let later = now + 60_000;
    let sig = || OpenPgpSignature::new(b"s".to_vec()).expect("small");
    check_request(
        Auth::New,
        envelope("new-peer-server", A, B, now, later),
        expect!["ok new-peer-server"],
    );
    check_request(
        Auth::Gpg(sig()),
        envelope("new-peer-server", A, B, now, later),
        expect!["error: a new-peer-server request travels only in a NEW frame, not GPG"],
    );
    check_request(
        Auth::New,
        b"{}".to_vec(),
        expect!["error: payload is not a valid envelope: envelope has no `name` field"],
    );
    check_request(
        Auth::New,
        envelope("heartbeat", A, B, now, later),
        expect!["error: a NEW frame carries only `new-peer-server`, found `heartbeat`"],
    );
    check_request(
        Auth::New,
        envelope("new-peer-server", B, A, now, later),
        expect![
            "error: envelope `meta.from` is 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the frame is from 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90"
        ],
    );
    check_request(
        Auth::New,
        envelope("new-peer-server", A, "*", now, later),
        expect![
            "error: envelope `meta.to` is * but the frame is to 7c9e6679-7425-40de-944b-e07fc1f90ae7; a frame carries only a message addressed to its receiver"
        ],
    );
    check_request(
        Auth::New,
        envelope("new-peer-server", A, B, now - 10, now),
        expect![
            "error: envelope expired at 1795305600000, and the receiver's clock reads 1795305600000"
        ],
    );
}

#[test]
fn open_envelope_binds_the_frame() {
    let now = fuzz::NOW.as_millis();
    let bytes = envelope("add-peer-server", B, A, now, now + 1);
    let check = |from: PeerId, to: PeerId, at: Timestamp, expect: Expect| {
        let got: Result<_, PayloadError> = open_envelope(from, to, &bytes, at, &Limits::DEFAULT);
        let got = match got {
            Ok(e) => format!("ok {} from {}", e.name, e.meta.from),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&got);
    };
    check(
        b(),
        a(),
        fuzz::NOW,
        expect!["ok add-peer-server from 7c9e6679-7425-40de-944b-e07fc1f90ae7"],
    );
    check(
        a(),
        b(),
        fuzz::NOW,
        expect![
            "error: envelope `meta.from` is 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the frame is from 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90"
        ],
    );
    check(
        b(),
        b(),
        fuzz::NOW,
        expect![
            "error: envelope `meta.to` is 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90 but the frame is to 7c9e6679-7425-40de-944b-e07fc1f90ae7; a frame carries only a message addressed to its receiver"
        ],
    );
    check(
        b(),
        a(),
        Timestamp::from_millis(now + 1),
        expect![
            "error: envelope expired at 1795305600001, and the receiver's clock reads 1795305600001"
        ],
    );
}

#[test]
fn open_envelopes_reads_one_envelope_or_a_batch() {
    let now = fuzz::NOW.as_millis();
    let one = |name: &str, from: &str, to: &str, exp: u64| envelope(name, from, to, now, exp);
    let batch = |items: &[Vec<u8>]| {
        let mut bytes = b"[".to_vec();
        bytes.extend(items.join(&b","[..]));
        bytes.push(b']');
        bytes
    };
    let check = |bytes: &[u8], expect: Expect| {
        let got = match open_envelopes(b(), a(), bytes, fuzz::NOW, &Limits::DEFAULT) {
            Ok(envelopes) => format!(
                "ok {}",
                envelopes
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&got);
    };
    let x = one("demo.x", B, A, now + 1000);
    let y = one("demo.y", B, A, now + 1000);
    check(&x, expect!["ok demo.x"]);
    check(&batch(&[x.clone(), y.clone()]), expect!["ok demo.x,demo.y"]);
    // What the sender encodes is what the receiver reads.
    let parsed = open_envelopes(
        b(),
        a(),
        &batch(&[x.clone(), y.clone()]),
        fuzz::NOW,
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        encode_batch(&parsed).unwrap(),
        batch(&[x.clone(), y.clone()])
    );
    check(
        b"[]",
        expect!["error: a batch carries 1 to 64 envelopes, found 0"],
    );
    let many: Vec<Vec<u8>> = (0..65).map(|_| x.clone()).collect();
    check(
        &batch(&many),
        expect!["error: a batch carries 1 to 64 envelopes, found 65"],
    );
    // As for one envelope, the form is free; the meaning is what counts.
    check(
        &[b"[ ".to_vec(), x.clone(), b"]".to_vec()].concat(),
        expect!["ok demo.x"],
    );
    check(
        b"[1,",
        expect![
            "error: batch is not json: not valid json: EOF while parsing a value at line 1 column 3"
        ],
    );
    // One envelope bound to another peer, or expired, refuses the whole frame.
    check(
        &batch(&[x.clone(), one("demo.z", A, B, now + 1000)]),
        expect![
            "error: envelope `meta.from` is 0b0e7d3c-5b1a-4c57-9a51-3b1f2f6e8d90 but the frame is from 7c9e6679-7425-40de-944b-e07fc1f90ae7"
        ],
    );
    check(
        &batch(&[one("demo.old", B, A, now), y]),
        expect![
            "error: envelope expired at 1795305600000, and the receiver's clock reads 1795305600000"
        ],
    );
    check(
        &batch(&[x, b"[]".to_vec()]),
        expect!["error: payload is not a valid envelope: envelope is not a json object"],
    );
}
