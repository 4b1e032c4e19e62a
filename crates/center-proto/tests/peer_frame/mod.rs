//! CEP 5, the peer wire frame: its vectors, error messages, round trips,
//! hostile inputs, and the fuzz target over the vectors.

mod fuzz_seeds;
mod hostile;
mod messages;
mod roundtrip;
mod vectors;

/// Lower-case hex, as the vectors write bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower-case hex `text`; panics on anything else (test data).
pub(crate) fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex is ascii");
            assert_eq!(pair.len(), 2, "odd-length hex {text:?}");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex {pair:?}"))
        })
        .collect()
}
