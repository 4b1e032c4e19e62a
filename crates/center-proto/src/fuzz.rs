//! The bodies of the fuzz targets (`fuzz/fuzz_targets/envelope.rs`, which
//! also reads its input as a `GPG+` plaintext, one envelope or a batch, and
//! `fuzz/fuzz_targets/peer_frame.rs`), kept here so that the crate's tests
//! run them over the CEP 2 and CEP 5 vectors as a seed corpus.
//!
//! The oracle: whatever the strict readers accept must encode canonically
//! and read back to the same thing, and encoding is idempotent. Panics here
//! are findings; nothing else in the crate panics on input.

use crate::canonical::{parse_canonical_value, to_canonical};
use crate::envelope::{Envelope, Limits};
use crate::id::Destination;
use crate::id::PeerId;
use crate::peer_frame::{
    FrameDecoder, FrameError, MAX_FRAME, PeerFrame, SIGNING_CONTEXT, base64, encode_batch,
    open_envelopes,
};
use crate::time::Timestamp;

/// The clock the target parses against: 2026-11-22T00:00:00Z, the `now` of
/// `CEPS/vectors/0002-envelope.json`, so that the vectors reach the time rules.
pub const NOW: Timestamp = Timestamp::from_millis(1_795_305_600_000);

/// Feeds `data` to both readers and checks the round trips.
pub fn envelope(data: &[u8]) {
    if let Ok(value) = parse_canonical_value(data) {
        let bytes = match to_canonical(&value) {
            Ok(bytes) => bytes,
            Err(e) => panic!("accepted value does not encode: {e}"),
        };
        assert_eq!(
            parse_canonical_value(&bytes).as_ref(),
            Ok(&value),
            "canonical bytes read back differently"
        );
        assert_eq!(
            to_canonical(&value).as_ref(),
            Ok(&bytes),
            "encoding is not deterministic"
        );
    }

    let limits = Limits::DEFAULT;
    if let Ok(envelope) = Envelope::parse(data, NOW, &limits) {
        let bytes = match envelope.canonical_bytes() {
            Ok(bytes) => bytes,
            Err(e) => panic!("accepted envelope does not encode: {e}"),
        };
        let again = match Envelope::parse(&bytes, NOW, &limits) {
            Ok(again) => again,
            Err(e) => panic!("canonical bytes of an accepted envelope are refused: {e}"),
        };
        assert_eq!(again, envelope, "canonical round trip changed the envelope");
        assert_eq!(
            again.canonical_bytes().as_ref(),
            Ok(&bytes),
            "canonical form is not idempotent"
        );
    }
    plaintext(data);
}

/// Reads `data` as the plaintext of a `GPG+` frame (one envelope or a
/// batch) between the peers its first envelope names, and checks that what
/// is accepted encodes back to the canonical form of `data`.
fn plaintext(data: &[u8]) {
    let Ok(value) = parse_canonical_value(data) else {
        return;
    };
    let first = match &value {
        serde_json::Value::Array(items) => items.first(),
        other => Some(other),
    };
    let peer = |key: &str| {
        first
            .and_then(|v| v.get("meta"))
            .and_then(|m| m.get(key))
            .and_then(|id| id.as_str())
            .and_then(|id| id.parse::<PeerId>().ok())
    };
    let (Some(from), Some(to)) = (peer("from"), peer("to")) else {
        return;
    };
    let Ok(envelopes) = open_envelopes(from, to, data, NOW, &Limits::DEFAULT) else {
        return;
    };
    let again = if value.is_array() {
        encode_batch(&envelopes)
    } else {
        match envelopes.as_slice() {
            [one] => one.canonical_bytes(),
            _ => panic!("one envelope opened to {}", envelopes.len()),
        }
    };
    assert_eq!(
        again,
        to_canonical(&value),
        "an accepted plaintext re-encodes differently"
    );
}

/// Feeds `data` to a [`FrameDecoder`] in two chunks, split at
/// `data[0] % data.len()`, and checks that the split changes nothing; parses
/// every frame it yields, and `data` itself as a body, and checks their
/// round trips; and checks that base64 accepts only canonical text.
pub fn peer_frame(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b) % data.len());
    let (head, tail) = data.split_at(split);
    let (frames, end) = decode_stream(&[head, tail]);
    if data.len() <= FrameDecoder::new().capacity() {
        let (whole_frames, whole_end) = decode_stream(&[data]);
        assert_eq!(
            (&frames, &end),
            (&whole_frames, &whole_end),
            "splitting the stream changed what the decoder read"
        );
    }
    for body in &frames {
        peer_frame_body(body);
    }
    peer_frame_body(data);

    // Bytes that are not UTF-8 test the empty string, which is fine.
    let text = std::str::from_utf8(data).unwrap_or_default();
    if let Ok(bytes) = base64::decode(text) {
        assert_eq!(
            base64::encode(&bytes),
            text,
            "base64 accepted a second spelling"
        );
    }
}

/// Every frame body a decoder yields from `chunks`, and how the stream ended.
fn decode_stream(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        if let Err(e) = decoder.push(chunk) {
            return (frames, Err(e));
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX_FRAME, "decoder yielded an oversize body");
                    frames.push(body);
                }
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    let end = decoder.finish();
    (frames, end)
}

/// Parses `body` as a frame and, if it is accepted, checks its round trips.
fn peer_frame_body(body: &[u8]) {
    let Ok(frame) = PeerFrame::parse(body) else {
        return;
    };
    let bytes = frame.to_body();
    assert!(
        bytes.len() <= MAX_FRAME,
        "an accepted frame encodes over the cap"
    );
    match PeerFrame::parse(&bytes) {
        Ok(again) => assert_eq!(again, frame, "canonical round trip changed the frame"),
        Err(e) => panic!("canonical body of an accepted frame is refused: {e}"),
    }
    // The accepted body means exactly the canonical one: same strings, so
    // no second spelling of a signature or payload got through.
    match parse_canonical_value(body).map(|value| to_canonical(&value)) {
        Ok(Ok(canonical)) => {
            assert_eq!(canonical, bytes, "accepted body differs from its encoding")
        }
        other => panic!("accepted body is not a canonical json value: {other:?}"),
    }
    let (framed, end) = decode_stream(&[&frame.to_frame()]);
    assert_eq!(
        (framed, end),
        (vec![bytes], Ok(())),
        "frame does not decode to its body"
    );

    let input = frame.signing_input();
    assert!(
        input.starts_with(SIGNING_CONTEXT),
        "signing input lost its context"
    );
    assert!(
        input.ends_with(frame.payload()),
        "signing input lost the payload"
    );

    if let Ok(envelope) = frame.new_peer_request(NOW, &Limits::DEFAULT) {
        assert_eq!(
            envelope.meta.from,
            frame.from(),
            "request from another peer"
        );
        assert_eq!(
            envelope.meta.to,
            Destination::Peer(frame.to()),
            "request to another peer"
        );
    }
}
