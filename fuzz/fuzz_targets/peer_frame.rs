//! Fuzzes the peer wire (CEP 5) with raw bytes: the stream decoder, the
//! frame body parser and base64. The body and its oracle live in
//! `center_proto::fuzz::peer_frame`, where the crate's tests also run it
//! over the CEP 5 vectors.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    center_proto::fuzz::peer_frame(data);
});
