//! Property tests: every valid frame survives body -> parse unchanged, a
//! stream of frames decodes the same however it is cut into reads, and
//! base64 round-trips with exactly one spelling per byte string.

use center_proto::peer_frame::{MAX_FRAME, MAX_SIGNATURE, OpenPgpSignature, base64};
use center_proto::{Auth, FrameDecoder, PeerFrame, PeerId, Prefix, fuzz};
use proptest::collection::vec;
use proptest::prelude::*;

fn peer() -> impl Strategy<Value = PeerId> {
    any::<u128>().prop_map(|n| PeerId::from(uuid::Uuid::from_u128(n)))
}

fn signature() -> impl Strategy<Value = OpenPgpSignature> {
    prop_oneof![
        8 => vec(any::<u8>(), 1..=300),
        1 => Just(vec![0x5a; MAX_SIGNATURE]),
    ]
    .prop_map(|bytes| OpenPgpSignature::new(bytes).expect("the strategy keeps the size"))
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::New),
        signature().prop_map(Auth::Gpg),
        signature().prop_map(Auth::GpgPlus),
    ]
}

fn frame() -> impl Strategy<Value = PeerFrame> {
    (peer(), peer(), auth(), vec(any::<u8>(), 1..=600))
        .prop_filter("a peer never sends to itself", |(from, to, _, _)| {
            from != to
        })
        .prop_map(|(from, to, auth, payload)| {
            PeerFrame::new(from, to, auth, payload).expect("the strategy makes valid frames")
        })
}

proptest! {
    #[test]
    fn frames_round_trip_through_their_body(frame in frame()) {
        let body = frame.to_body();
        prop_assert!(body.len() <= MAX_FRAME);
        let parsed = PeerFrame::parse(&body);
        prop_assert_eq!(parsed.as_ref(), Ok(&frame));
        prop_assert_eq!(parsed.expect("checked above").to_body(), body);
        let input = frame.signing_input();
        let header = format!(
            "center-peer-frame/1\n{}\n{}\n{}\n",
            frame.prefix(),
            frame.from(),
            frame.to()
        );
        prop_assert_eq!(&input[..header.len()], header.as_bytes());
        prop_assert_eq!(&input[header.len()..], frame.payload());
    }

    #[test]
    fn signing_inputs_differ_when_prefix_or_peers_differ(frame in frame(), other in peer()) {
        // Re-addressing or re-prefixing a frame changes what was signed.
        let input = frame.signing_input();
        let payload = frame.payload().to_vec();
        for prefix in Prefix::ALL {
            let changed = center_proto::peer_frame::signing_input(
                prefix, frame.from(), frame.to(), &payload,
            );
            prop_assert_eq!(changed == input, prefix == frame.prefix());
        }
        let readdressed = center_proto::peer_frame::signing_input(
            frame.prefix(), frame.from(), other, &payload,
        );
        prop_assert_eq!(readdressed == input, other == frame.to());
    }

    #[test]
    fn a_stream_decodes_the_same_whatever_the_reads(
        frames in vec(frame(), 1..6),
        cuts in vec(1usize..700, 1..40),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.to_frame()).collect();
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let n = (*cut.next().expect("cycle")).min(stream.len() - at);
            decoder.push(&stream[at..at + n]).expect("fits");
            at += n;
            while let Some(body) = decoder.next_frame().expect("valid stream") {
                got.push(PeerFrame::parse(&body).expect("valid body"));
            }
        }
        prop_assert_eq!(decoder.finish(), Ok(()));
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn base64_round_trips_with_one_spelling(bytes in vec(any::<u8>(), 0..200)) {
        let text = base64::encode(&bytes);
        prop_assert_eq!(text.len(), base64::encoded_len(bytes.len()));
        prop_assert_eq!(base64::decode(&text), Ok(bytes));
    }

    #[test]
    fn base64_accepts_only_what_it_would_write(text in "[A-Za-z0-9+/=]{0,12}") {
        if let Ok(bytes) = base64::decode(&text) {
            prop_assert_eq!(base64::encode(&bytes), text);
        }
    }

    #[test]
    fn fuzz_target_holds_on_mutated_frames(
        frame in frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        for mut bytes in [frame.to_body(), frame.to_frame()] {
            let i = at.index(bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
            fuzz::peer_frame(&bytes);
        }
    }

    #[test]
    fn fuzz_target_holds_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        fuzz::peer_frame(&bytes);
    }
}
