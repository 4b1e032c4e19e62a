//! Fuzz target: a peer description as `centerctl peer add --from` reads it.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| center_identity::fuzz::description(data));
