//! Fuzz target: arbitrary bytes verified as a peer's OpenPGP signature.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| center_identity::fuzz::signature(data));
