//! Checks every vector of `CEPS/vectors/0005-peer-frames.json` against the
//! codec, so CEP 5 and the code cannot drift apart.

use std::collections::BTreeSet;
use std::path::PathBuf;

use center_proto::peer_frame::{FrameDecoder, PayloadError, base64, signing_input};
use center_proto::{Auth, Limits, PeerFrame, PeerFrameError, Timestamp, fuzz};
use serde_json::Value;

use super::{hex, unhex};

pub(crate) struct Vectors {
    pub(crate) now: Timestamp,
    pub(crate) valid: Vec<Valid>,
    pub(crate) invalid: Vec<Invalid>,
    pub(crate) framing: Vec<Framing>,
}

pub(crate) struct Valid {
    pub(crate) name: String,
    /// A non-canonical spelling of `body` that must also be accepted.
    pub(crate) input: Option<String>,
    pub(crate) body: String,
    pub(crate) sig: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signing_input: Vec<u8>,
    /// `"ok"` or the error of `new_peer_request`; `None` when not recorded.
    pub(crate) new_peer_request: Option<String>,
}

pub(crate) struct Invalid {
    pub(crate) name: String,
    pub(crate) body: String,
    pub(crate) error: String,
}

pub(crate) struct Framing {
    pub(crate) name: String,
    pub(crate) stream: Vec<u8>,
    pub(crate) frames: Vec<Vec<u8>>,
    /// `"ok"` or the error the stream ends with.
    pub(crate) end: String,
}

pub(crate) fn load() -> Vectors {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../CEPS/vectors/0005-peer-frames.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the vectors file is json");
    let str_of = |v: &Value, key: &str| -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key} is not a string: {v}"))
            .to_owned()
    };
    let opt_str = |v: &Value, key: &str| v[key].as_str().map(str::to_owned);
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    Vectors {
        now: Timestamp::from_millis(doc["now"].as_u64().expect("now is an integer")),
        valid: list("valid")
            .iter()
            .map(|v| Valid {
                name: str_of(v, "name"),
                input: opt_str(v, "input"),
                body: str_of(v, "body"),
                sig: opt_str(v, "sig_hex").map(|h| unhex(&h)),
                payload: unhex(&str_of(v, "payload_hex")),
                signing_input: unhex(&str_of(v, "signing_input_hex")),
                new_peer_request: opt_str(v, "new_peer_request"),
            })
            .collect(),
        invalid: list("invalid")
            .iter()
            .map(|v| Invalid {
                name: str_of(v, "name"),
                body: str_of(v, "body"),
                error: str_of(v, "error"),
            })
            .collect(),
        framing: list("framing")
            .iter()
            .map(|v| Framing {
                name: str_of(v, "name"),
                stream: unhex(&str_of(v, "stream_hex")),
                frames: v["frames"]
                    .as_array()
                    .expect("frames is a list")
                    .iter()
                    .map(|f| unhex(f.as_str().expect("a frame is hex")))
                    .collect(),
                end: str_of(v, "end"),
            })
            .collect(),
    }
}

#[test]
fn valid_vectors_parse_to_their_parts_and_encode_to_their_body() {
    let vectors = load();
    assert!(!vectors.valid.is_empty());
    let mut failures = Vec::new();
    for v in &vectors.valid {
        let frame = match PeerFrame::parse(v.body.as_bytes()) {
            Ok(frame) => frame,
            Err(e) => {
                failures.push(format!("{}: refused: {e}", v.name));
                continue;
            }
        };
        let body = frame.to_body();
        if body != v.body.as_bytes() {
            failures.push(format!(
                "{}: canonical body differs\n  want {}\n  got  {}",
                v.name,
                v.body,
                String::from_utf8_lossy(&body)
            ));
        }
        let sig = frame.auth().signature().map(|s| s.as_bytes().to_vec());
        if sig != v.sig {
            failures.push(format!("{}: sig is {:?}", v.name, sig.as_deref().map(hex)));
        }
        if frame.payload() != v.payload {
            failures.push(format!("{}: payload is {}", v.name, hex(frame.payload())));
        }
        if frame.signing_input() != v.signing_input {
            failures.push(format!(
                "{}: signing input is {}",
                v.name,
                hex(&frame.signing_input())
            ));
        }
        // The free function agrees, and a frame built in code is the same frame.
        let free = signing_input(frame.prefix(), frame.from(), frame.to(), frame.payload());
        assert_eq!(free, frame.signing_input(), "{}", v.name);
        let built = PeerFrame::new(
            frame.from(),
            frame.to(),
            frame.auth().clone(),
            v.payload.clone(),
        );
        assert_eq!(
            built.as_ref(),
            Ok(&frame),
            "{}: PeerFrame::new agrees",
            v.name
        );
        if let Some(input) = &v.input {
            let parsed = PeerFrame::parse(input.as_bytes());
            assert_eq!(parsed.as_ref(), Ok(&frame), "{}: input parses", v.name);
        }
        if let Some(want) = &v.new_peer_request {
            let got = match frame.new_peer_request(vectors.now, &Limits::DEFAULT) {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            };
            if &got != want {
                failures.push(format!("{}: new_peer_request gave {got:?}", v.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_vectors_fail_with_their_error() {
    let vectors = load();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    let mut seen_base64 = BTreeSet::new();
    for v in &vectors.invalid {
        match PeerFrame::parse(v.body.as_bytes()) {
            Ok(frame) => failures.push(format!("{}: accepted as {frame:?}", v.name)),
            Err(e) => {
                seen.insert(variant(&e));
                if let PeerFrameError::BadBase64 { reason, .. } = &e {
                    seen_base64.insert(base64_variant(reason));
                }
                if e.to_string() != v.error {
                    failures.push(format!("{}: got error {:?}", v.name, e.to_string()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A body over MAX_FRAME is a megabyte: hostile.rs tests it, not the file.
    let missing: Vec<_> = ALL_VARIANTS
        .iter()
        .filter(|name| **name != "TooLarge" && !seen.contains(*name))
        .collect();
    assert!(missing.is_empty(), "no invalid vector for {missing:?}");
    let missing: Vec<_> = ALL_BASE64
        .iter()
        .filter(|name| !seen_base64.contains(*name))
        .collect();
    assert!(missing.is_empty(), "no base64 vector for {missing:?}");
}

#[test]
fn new_peer_request_vectors_cover_every_payload_error() {
    let vectors = load();
    let mut seen = BTreeSet::new();
    for v in &vectors.valid {
        let Ok(frame) = PeerFrame::parse(v.body.as_bytes()) else {
            continue;
        };
        let got = frame.new_peer_request(vectors.now, &Limits::DEFAULT);
        if let (Some(_), Err(e)) = (&v.new_peer_request, got) {
            seen.insert(payload_variant(&e));
        }
    }
    let missing: Vec<_> = ALL_PAYLOAD.iter().filter(|n| !seen.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "no new_peer_request vector for {missing:?}"
    );
}

#[test]
fn framing_vectors_split_their_stream() {
    let vectors = load();
    assert!(!vectors.framing.is_empty());
    for v in &vectors.framing {
        // Whole, then one byte at a time: the decoder does not care.
        for chunk_size in [v.stream.len().max(1), 1] {
            let mut decoder = FrameDecoder::new();
            let mut frames = Vec::new();
            let mut end = None;
            'stream: for chunk in v.stream.chunks(chunk_size) {
                if let Err(e) = decoder.push(chunk) {
                    end = Some(e.to_string());
                    break;
                }
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => frames.push(frame),
                        Ok(None) => break,
                        Err(e) => {
                            end = Some(e.to_string());
                            break 'stream;
                        }
                    }
                }
            }
            let end = end.unwrap_or_else(|| match decoder.finish() {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            });
            assert_eq!(frames, v.frames, "{} (chunks of {chunk_size})", v.name);
            assert_eq!(end, v.end, "{} (chunks of {chunk_size})", v.name);
        }
    }
}

#[test]
fn vectors_use_the_fuzz_clock() {
    assert_eq!(load().now, fuzz::NOW);
}

#[test]
fn vector_signatures_are_standard_base64() {
    // The vectors' base64 and hex agree, read by the module's own decoder.
    for v in load().valid {
        let frame = PeerFrame::parse(v.body.as_bytes()).expect("valid vectors parse");
        if let Auth::Gpg(sig) | Auth::GpgPlus(sig) = frame.auth() {
            let text = base64::encode(sig.as_bytes());
            assert_eq!(base64::decode(&text).as_deref(), Ok(sig.as_bytes()));
        }
    }
}

const ALL_VARIANTS: [&str; 13] = [
    "TooLarge",
    "NotJson",
    "NotObject",
    "MissingField",
    "UnknownField",
    "WrongType",
    "BadPrefix",
    "BadPeerId",
    "BadBase64",
    "NewSignature",
    "SignatureSize",
    "PayloadSize",
    "SamePeer",
];

/// Exhaustive on purpose: a new variant does not compile until it is listed
/// in `ALL_VARIANTS` and given a vector.
fn variant(e: &PeerFrameError) -> &'static str {
    match e {
        PeerFrameError::TooLarge { .. } => "TooLarge",
        PeerFrameError::NotJson(_) => "NotJson",
        PeerFrameError::NotObject => "NotObject",
        PeerFrameError::MissingField { .. } => "MissingField",
        PeerFrameError::UnknownField { .. } => "UnknownField",
        PeerFrameError::WrongType { .. } => "WrongType",
        PeerFrameError::BadPrefix { .. } => "BadPrefix",
        PeerFrameError::BadPeerId { .. } => "BadPeerId",
        PeerFrameError::BadBase64 { .. } => "BadBase64",
        PeerFrameError::NewSignature => "NewSignature",
        PeerFrameError::SignatureSize { .. } => "SignatureSize",
        PeerFrameError::PayloadSize { .. } => "PayloadSize",
        PeerFrameError::SamePeer { .. } => "SamePeer",
    }
}

const ALL_BASE64: [&str; 4] = ["Length", "Char", "Padding", "NonCanonical"];

fn base64_variant(e: &base64::Base64Error) -> &'static str {
    match e {
        base64::Base64Error::Length { .. } => "Length",
        base64::Base64Error::Char { .. } => "Char",
        base64::Base64Error::Padding { .. } => "Padding",
        base64::Base64Error::NonCanonical { .. } => "NonCanonical",
    }
}

const ALL_PAYLOAD: [&str; 6] = [
    "NotNew",
    "Envelope",
    "NotNewPeerServer",
    "FromMismatch",
    "ToMismatch",
    "Expired",
];

fn payload_variant(e: &PayloadError) -> &'static str {
    match e {
        PayloadError::NotNew { .. } => "NotNew",
        PayloadError::Envelope(_) => "Envelope",
        PayloadError::NotNewPeerServer { .. } => "NotNewPeerServer",
        PayloadError::FromMismatch { .. } => "FromMismatch",
        PayloadError::ToMismatch { .. } => "ToMismatch",
        PayloadError::Expired { .. } => "Expired",
        // Batches travel only in GPG+ frames, never in a NEW request.
        PayloadError::BatchSize(_) => "BatchSize",
        PayloadError::Batch(_) => "Batch",
    }
}
