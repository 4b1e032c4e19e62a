//! Fuzzes the account events (CEP 8) with raw bytes; the body lives in
//! `userd::fuzz::account_event`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    userd::fuzz::account_event(data);
});
