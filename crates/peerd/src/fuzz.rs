//! The body of the `membership` fuzz target (`fuzz/fuzz_targets/
//! membership.rs`): every reader of a membership message and of a DHT
//! record, on arbitrary bytes. The oracle is that none panics; the crate's
//! tests run it over valid messages as a seed.

/// Reads `data` as every membership message and as a DHT record.
pub fn membership(data: &[u8]) {
    let _ = crate::dht::Record::from_bytes(data);
    if let Ok(value) = center_proto::parse_canonical_value(data) {
        crate::messages::read_any(&value);
    }
}
