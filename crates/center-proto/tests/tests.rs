//! The one integration-test binary of center-proto: the vectors of CEP 2
//! and CEP 5, the fuzz targets over them, property tests, and error-message
//! snapshots.

mod fuzz_seeds;
mod grammar;
mod hostile;
mod peer_frame;
mod roundtrip;
mod vectors;
