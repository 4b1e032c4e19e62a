//! Fuzzes the envelope parser and canonical JSON with raw bytes; the body
//! and its oracle live in `center_proto::fuzz::envelope`, where the crate's
//! tests also run it over the CEP 2 vectors.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    center_proto::fuzz::envelope(data);
});
