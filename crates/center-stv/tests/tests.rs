//! The one integration-test binary of center-stv: the `.blt` reader and
//! writer as tables, the rules of the count as hand-made tables, every
//! Glasgow 2007 ward against droop's counts, property tests, and the fuzz
//! target's body over seed inputs.

mod blt;
mod fuzz_seeds;
mod glasgow;
mod roundtrip;
mod rules;
