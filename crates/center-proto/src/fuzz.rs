//! The body of the `envelope` fuzz target (`fuzz/fuzz_targets/envelope.rs`),
//! kept here so that the crate's tests run it over the CEP 2 vectors as a
//! seed corpus.
//!
//! The oracle: whatever the strict readers accept must encode canonically
//! and read back to the same thing, and encoding is idempotent. Panics here
//! are findings; nothing else in the crate panics on input.

use crate::canonical::{parse_canonical_value, to_canonical};
use crate::envelope::{Envelope, Limits};
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
}
