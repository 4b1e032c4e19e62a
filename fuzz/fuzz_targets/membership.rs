//! Fuzzes the membership messages and DHT records (CEP 7) with raw bytes;
//! the body lives in `peerd::fuzz::membership`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peerd::fuzz::membership(data);
});
