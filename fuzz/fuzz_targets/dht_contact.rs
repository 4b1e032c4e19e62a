//! Fuzz target: a DHT contact as another peer hands it over.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| center_dht::fuzz::contact(data));
