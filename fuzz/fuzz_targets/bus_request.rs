//! Fuzz target: bytes arriving on the local bus socket (frames, then requests).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| center_bus::fuzz::bus_request(data));
