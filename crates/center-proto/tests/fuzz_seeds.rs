//! Runs the fuzz target's body over every input of CEP 2's vectors: the seed
//! corpus, checked on every `cargo test`.

use center_proto::fuzz;

use crate::vectors;

#[test]
fn fuzz_target_holds_on_every_vector() {
    let vectors = vectors::load();
    for v in &vectors.valid {
        fuzz::envelope(&v.input_bytes());
        fuzz::envelope(v.canonical.as_bytes());
    }
    for v in &vectors.invalid {
        fuzz::envelope(v.input.as_bytes());
    }
}

#[test]
fn fuzz_target_holds_on_truncations_of_every_valid_vector() {
    // Cheap mutations that reach many error paths; each prefix is a new input.
    let vectors = vectors::load();
    for v in &vectors.valid {
        let bytes = v.input_bytes();
        for end in 0..bytes.len() {
            fuzz::envelope(bytes.get(..end).unwrap_or_default());
        }
    }
}
