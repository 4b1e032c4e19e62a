//! The body of the `feed_event` fuzz target (`fuzz/fuzz_targets/feed_event.rs`),
//! kept here so that the crate's tests run it over the CEP 6 vectors as a
//! seed corpus.
//!
//! The oracle: the parser never panics, and whatever it accepts is exactly
//! its own canonical encoding (there is one spelling of an event), reads
//! back to the same event, hashes its signing input, and is rebuilt byte
//! for byte by signing its body with the same signature. Panics here are
//! findings; nothing else in the crate panics on input.

use std::convert::Infallible;

use crate::event::{FeedEvent, FeedLimits, SIGNING_CONTEXT};
use crate::hash::EventHash;

/// Parses `data` as a feed event and checks the round trips.
pub fn feed_event(data: &[u8]) {
    let limits = FeedLimits::DEFAULT;
    let Ok(event) = FeedEvent::parse(data, &limits) else {
        return;
    };
    assert_eq!(
        event.as_bytes(),
        data,
        "an accepted event differs from its canonical encoding"
    );
    match FeedEvent::parse(event.as_bytes(), &limits) {
        Ok(again) => assert_eq!(again, event, "canonical round trip changed the event"),
        Err(e) => panic!("canonical bytes of an accepted event are refused: {e}"),
    }
    let input = event.signing_input();
    assert!(
        input.starts_with(SIGNING_CONTEXT),
        "signing input lost its context"
    );
    assert_eq!(
        EventHash::digest(&input),
        event.hash(),
        "the hash is not the digest of the signing input"
    );
    let signature = event.signature().to_vec();
    let rebuilt = FeedEvent::sign(event.body().clone(), |message| {
        assert_eq!(message, input, "sign is asked to sign another input");
        Ok::<_, Infallible>(signature)
    });
    match rebuilt {
        Ok(rebuilt) => assert_eq!(rebuilt, event, "signing the body again built another event"),
        Err(e) => panic!("the body of an accepted event cannot be signed: {e}"),
    }
}
