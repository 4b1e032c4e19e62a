//! Fuzzes the `.blt` reader with raw bytes, then the writer's round trip
//! and, for small elections, the count; the body lives in
//! `center_stv::fuzz::blt_parse`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    center_stv::fuzz::blt_parse(data);
});
