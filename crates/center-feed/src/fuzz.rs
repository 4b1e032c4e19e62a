//! The bodies of the `feed_event` and `rotation` fuzz targets
//! (`fuzz/fuzz_targets/`), kept here so that the crate's tests run them
//! over the CEP 6 and CEP 7 vectors as seed corpora.
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

/// Parses `data` as the data of a `peer.rotate` event (CEP 7) of a fixed
/// origin: never panics, and whatever it accepts is that origin's, names
/// another certificate than the new one, and reads back the same from
/// the data [`crate::rotation_data`] writes for it.
pub fn rotation(data: &[u8]) {
    let Ok(value) = center_proto::parse_canonical_value(data) else {
        return;
    };
    // The origin the description claims (no valid description without one).
    let Some(Ok(origin)) = value
        .get("description")
        .and_then(|d| d.get("uuid"))
        .and_then(serde_json::Value::as_str)
        .map(str::parse::<center_proto::PeerId>)
    else {
        return;
    };
    let Ok(rotation) = crate::Rotation::from_data(origin, &value) else {
        return;
    };
    let description = rotation.description();
    assert_eq!(description.uuid(), origin, "a rotation to another peer");
    assert_ne!(
        description.fingerprint(),
        rotation.old_fingerprint(),
        "a rotation to the same certificate"
    );
    let again = crate::rotation_data(description, rotation.old_fingerprint());
    match crate::Rotation::from_data(origin, &again) {
        Ok(again) => assert_eq!(
            again.description().fingerprint(),
            description.fingerprint(),
            "the round trip changed the rotation"
        ),
        Err(e) => panic!("the data written for an accepted rotation is refused: {e}"),
    }
}
