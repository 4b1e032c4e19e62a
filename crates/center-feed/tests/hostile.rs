//! Input built to hurt: any byte string, mutations of valid events, and
//! the fuzz target's body over the CEP 6 vectors as its seed corpus. The
//! parser answers with an error, never a crash.

use center_feed::{FeedEvent, FeedLimits, fuzz};
use proptest::prelude::*;

use crate::vectors;

#[test]
fn fuzz_target_holds_on_every_vector_and_its_truncations() {
    let doc = vectors::load();
    for event in vectors::all_events(&doc) {
        fuzz::feed_event(&event);
        for end in 0..event.len() {
            fuzz::feed_event(event.get(..end).unwrap_or_default());
        }
    }
}

#[test]
fn deep_nesting_and_odd_bytes_are_refused() {
    let deep = format!("{{\"data\":{}", "[".repeat(100_000));
    for input in [
        &b""[..],
        b"\0",
        b"\xff\xfe",
        b"{}",
        b"null",
        b"1e999",
        deep.as_bytes(),
    ] {
        assert!(
            FeedEvent::parse(
                input,
                &FeedLimits {
                    max_event_bytes: 1 << 20
                }
            )
            .is_err()
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz::feed_event(&data);
    }

    #[test]
    fn mutated_vectors_parse_without_panicking(
        index in 0usize..64,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let doc = vectors::load();
        let events = vectors::all_events(&doc);
        let mut event = events[index % events.len()].clone();
        if !event.is_empty() {
            let i = at.index(event.len());
            event[i] = byte;
            event.truncate(cut.index(event.len()) + 1);
        }
        fuzz::feed_event(&event);
    }
}
