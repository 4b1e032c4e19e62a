//! Fuzzes the reader of a `peer.rotate` event's data (CEP 7) with raw
//! bytes; the body and its oracle live in `center_feed::fuzz::rotation`,
//! where the crate's tests also run it over the CEP 7 vectors.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    center_feed::fuzz::rotation(data);
});
