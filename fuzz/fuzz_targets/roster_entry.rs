//! Fuzzes the roster hand-off entry reader (CEP 7) with raw bytes; the
//! body lives in `dispatchd::fuzz::roster_entry`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dispatchd::fuzz::roster_entry(data);
});
