//! Fuzzes the feed event parser (CEP 6) with raw bytes; the body and its
//! oracle live in `center_feed::fuzz::feed_event`, where the crate's tests
//! also run it over the CEP 6 vectors.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    center_feed::fuzz::feed_event(data);
});
