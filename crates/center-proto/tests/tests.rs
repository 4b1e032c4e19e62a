//! The one integration-test binary of center-proto: CEP 2's vectors, the
//! fuzz target over them, property tests, and error-message snapshots.

mod fuzz_seeds;
mod grammar;
mod hostile;
mod roundtrip;
mod vectors;
