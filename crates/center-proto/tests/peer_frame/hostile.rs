//! Inputs built to hurt the peer wire: huge length prefixes, streams that
//! stop, deep nesting, duplicate keys, huge base64. The codec must answer
//! with an error, never a crash, and allocate nothing a prefix announces.

use center_proto::canonical::CanonicalError;
use center_proto::peer_frame::{
    MAX_FRAME, MAX_NEW_PAYLOAD, MAX_PAYLOAD, MAX_SIGNATURE, OpenPgpSignature, base64, encode_frame,
};
use center_proto::{Auth, FrameDecoder, FrameError, PeerFrame, PeerFrameError, PeerId, Prefix};

fn peer(n: u128) -> PeerId {
    PeerId::from(uuid::Uuid::from_u128(n))
}

fn body(prefix: &str, sig: &str, payload: &str) -> String {
    format!(
        r#"{{"from":"{}","payload":"{payload}","prefix":"{prefix}","sig":"{sig}","to":"{}"}}"#,
        peer(1),
        peer(2)
    )
}

fn sig() -> String {
    base64::encode(b"a signature")
}

#[test]
fn a_4_gib_length_prefix_fails_at_once_and_allocates_nothing() {
    let mut decoder = FrameDecoder::new();
    let got = decoder.push(&[0xff, 0xff, 0xff, 0xff]);
    let oversize = FrameError::Oversize {
        len: 0xffff_ffff,
        max: MAX_FRAME,
    };
    assert_eq!(got, Err(oversize.clone()));
    assert_eq!(decoder.buffered(), 4);
    // Sticky: the stream has lost its framing.
    assert_eq!(decoder.next_frame(), Err(oversize.clone()));
    assert_eq!(decoder.push(b"more"), Err(oversize.clone()));
    assert_eq!(decoder.finish(), Err(oversize));
}

#[test]
fn a_prefix_arriving_a_byte_at_a_time_is_judged_when_complete() {
    let mut decoder = FrameDecoder::new();
    for b in [0x00, 0x10, 0x00] {
        assert_eq!(decoder.push(&[b]), Ok(()));
        assert_eq!(decoder.next_frame(), Ok(None));
    }
    assert!(decoder.push(&[0x01]).is_err(), "1 MiB + 1 is over the cap");
}

#[test]
fn the_limit_of_a_decoder_can_be_lowered_not_raised() {
    let small = FrameDecoder::with_limit(100);
    assert_eq!(small.limit(), 100);
    assert_eq!(FrameDecoder::with_limit(usize::MAX).limit(), MAX_FRAME);
    let mut small = small;
    let got = small.push(&encode_frame(&[b'x'; 101]).expect("small"));
    assert_eq!(got, Err(FrameError::Oversize { len: 101, max: 100 }));
}

#[test]
fn a_truncated_stream_yields_nothing_and_says_so_at_the_end() {
    let frame = encode_frame(body("GPG", &sig(), "AAAA").as_bytes()).expect("small");
    for end in 0..frame.len() {
        let mut decoder = FrameDecoder::new();
        decoder
            .push(frame.get(..end).unwrap_or_default())
            .expect("fits");
        assert_eq!(decoder.next_frame(), Ok(None), "prefix of {end} bytes");
        let want = if end < 4 { 4 } else { frame.len() };
        let finished = decoder.finish();
        if end == 0 {
            assert_eq!(finished, Ok(()));
        } else {
            assert_eq!(finished, Err(FrameError::Truncated { got: end, want }));
        }
    }
}

#[test]
fn pushing_past_the_capacity_takes_nothing() {
    let mut decoder = FrameDecoder::with_limit(10);
    assert_eq!(decoder.capacity(), 14);
    decoder.push(&[0, 0, 0, 10, 1, 2]).expect("fits");
    assert_eq!(decoder.remaining_capacity(), 8);
    let got = decoder.push(&[0; 9]);
    assert_eq!(
        got,
        Err(FrameError::BufferFull {
            held: 6,
            pushed: 9,
            capacity: 14
        })
    );
    assert_eq!(decoder.buffered(), 6, "nothing was taken");
    // Pushing what fits, then taking the frame, makes room again.
    decoder.push(&[3, 4, 5, 6, 7, 8, 9, 10]).expect("fits");
    assert_eq!(decoder.remaining_capacity(), 0);
    assert_eq!(
        decoder.next_frame(),
        Ok(Some(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    );
    assert_eq!(decoder.remaining_capacity(), 14);
    decoder.push(&[0, 0]).expect("fits");
    assert_eq!(decoder.remaining_capacity(), 12);
}

#[test]
fn back_to_back_maximal_frames_stream_through_a_read_loop() {
    // The loop a dispatcher runs: read at most `remaining_capacity`, push,
    // drain. It never fails on an honest stream, however the reads fall.
    let frame = PeerFrame::new(
        peer(1),
        peer(2),
        Auth::GpgPlus(OpenPgpSignature::new(vec![7; MAX_SIGNATURE]).expect("max")),
        vec![0xab; MAX_PAYLOAD],
    )
    .expect("the largest frame is valid");
    let one = frame.to_frame();
    assert!(one.len() <= MAX_FRAME + 4, "{}", one.len());
    let stream: Vec<u8> = [one.as_slice(), &one, &one].concat();
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    let mut at = 0;
    let mut read_size = 65_537;
    while at < stream.len() {
        let n = read_size
            .min(decoder.remaining_capacity())
            .min(stream.len() - at);
        decoder
            .push(stream.get(at..at + n).expect("in range"))
            .expect("an honest stream fits");
        at += n;
        read_size = read_size * 7 % 200_003 + 1;
        while let Some(body) = decoder.next_frame().expect("valid frames") {
            got.push(PeerFrame::parse(&body).expect("valid body"));
        }
    }
    assert_eq!(decoder.finish(), Ok(()));
    assert_eq!(got, vec![frame.clone(), frame.clone(), frame]);
}

#[test]
fn deep_nesting_is_refused_without_recursing() {
    let text = format!(r#"{{"payload":{}"#, "[".repeat(1_000_000));
    let got = PeerFrame::parse(text.as_bytes());
    assert!(
        matches!(
            got,
            Err(PeerFrameError::NotJson(CanonicalError::TooDeep { .. }))
        ),
        "{got:?}"
    );
}

#[test]
fn duplicate_keys_are_refused_not_collapsed() {
    // serde_json alone would keep the last `prefix`, turning a GPG frame NEW.
    let text = format!(
        r#"{{"from":"{}","payload":"AAAA","prefix":"GPG","prefix":"NEW","sig":"{}","to":"{}"}}"#,
        peer(1),
        sig(),
        peer(2)
    );
    let got = PeerFrame::parse(text.as_bytes());
    assert!(
        matches!(
            got,
            Err(PeerFrameError::NotJson(CanonicalError::DuplicateKey { .. }))
        ),
        "{got:?}"
    );
}

#[test]
fn a_body_over_the_cap_is_refused_before_parsing() {
    let text = body("GPG", &sig(), &"A".repeat(2 * MAX_FRAME));
    let got = PeerFrame::parse(text.as_bytes());
    assert_eq!(got, Err(PeerFrameError::TooLarge { len: text.len() }));
    assert_eq!(
        encode_frame(text.as_bytes()),
        Err(FrameError::Oversize {
            len: text.len(),
            max: MAX_FRAME
        })
    );
}

#[test]
fn huge_base64_within_the_cap_is_refused_by_size() {
    let over = base64::encode(&vec![0; MAX_PAYLOAD + 1]);
    let got = PeerFrame::parse(body("GPG+", &sig(), &over).as_bytes());
    assert_eq!(
        got,
        Err(PeerFrameError::PayloadSize {
            prefix: Prefix::GpgPlus,
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        })
    );
    let new_over = base64::encode(&vec![b'{'; MAX_NEW_PAYLOAD + 1]);
    let zeros = "0".repeat(64);
    let got = PeerFrame::parse(body("NEW", &zeros, &new_over).as_bytes());
    assert_eq!(
        got,
        Err(PeerFrameError::PayloadSize {
            prefix: Prefix::New,
            len: MAX_NEW_PAYLOAD + 1,
            max: MAX_NEW_PAYLOAD
        })
    );
    let at_max = base64::encode(&vec![b'{'; MAX_NEW_PAYLOAD]);
    assert!(PeerFrame::parse(body("NEW", &zeros, &at_max).as_bytes()).is_ok());
    let huge_sig = base64::encode(&vec![0; 200_000]);
    let got = PeerFrame::parse(body("GPG", &huge_sig, "AAAA").as_bytes());
    assert_eq!(got, Err(PeerFrameError::SignatureSize { len: 200_000 }));
}

#[test]
fn keys_from_the_network_are_cut_in_messages() {
    let key = "k".repeat(100_000);
    let text = format!(r#"{{"{key}":1}}"#);
    let message = PeerFrame::parse(text.as_bytes())
        .expect_err("unknown field")
        .to_string();
    assert!(message.len() < 200, "{message}");
    let message = PeerFrame::parse(body(&key, &sig(), "AAAA").as_bytes())
        .expect_err("bad prefix")
        .to_string();
    assert!(message.len() < 200, "{message}");
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    for bytes in [
        &b""[..],
        b"\0",
        b"\0\0\0\0",
        b"\0\0\0\x01{",
        b"\0\0\0\x02{}",
        b"\xff\xff\xff\xff\xff",
        b"{\"prefix\":\"GPG+\"}",
        b"\"\\u",
        b"[[[[]]]]",
        b"QQ==",
        b"====",
    ] {
        center_proto::fuzz::peer_frame(bytes);
    }
}
