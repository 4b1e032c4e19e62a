//! The body of the `roster_entry` fuzz target (`fuzz/fuzz_targets/
//! roster_entry.rs`): a roster hand-off entry (CEP 7, "History hand-off"),
//! read on arbitrary bytes as an import reads it, retired keys and their
//! rotation proofs included. The oracle is that it never panics; the
//! crate's tests run it over a valid entry as a seed.

/// Reads `data` (canonical JSON) as a roster entry.
pub fn roster_entry(data: &[u8]) {
    if let Ok(value) = center_proto::parse_canonical_value(data) {
        let _ = crate::roster::check_entry(&value);
    }
}
