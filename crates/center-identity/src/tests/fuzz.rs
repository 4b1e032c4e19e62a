//! The fuzz targets' bodies over their seeds: the fixtures, their prefixes
//! and single-byte changes. Also the (ignored) generator of the fixtures.

use crate::fuzz;

#[test]
fn fixtures_are_valid() {
    let description =
        crate::PeerDescription::from_json(fuzz::DESCRIPTION).expect("fixture description");
    assert_eq!(description.cert().trim(), fuzz::CERT.trim());
    fuzz::signature(fuzz::SIGNATURE);
    fuzz::signature(fuzz::MESSAGE);
    fuzz::description(fuzz::DESCRIPTION);
}

#[test]
fn signature_target_holds_on_seeds() {
    let seed = fuzz::SIGNATURE;
    fuzz::signature(b"");
    for end in 0..seed.len() {
        fuzz::signature(seed.get(..end).unwrap_or_default());
    }
    for i in 0..seed.len() {
        for flip in [0x01u8, 0x10, 0xff] {
            let mut bytes = seed.to_vec();
            if let Some(byte) = bytes.get_mut(i) {
                *byte ^= flip;
            }
            fuzz::signature(&bytes);
        }
    }
}

#[test]
fn description_target_holds_on_seeds() {
    let seed = fuzz::DESCRIPTION;
    fuzz::description(b"");
    fuzz::description(b"{}");
    // Prefixes at a stride (each one is a full parse), and every byte
    // changed at a stride: the changes inside strings reach the checks.
    for end in (0..seed.len()).step_by(7) {
        fuzz::description(seed.get(..end).unwrap_or_default());
    }
    for i in (0..seed.len()).step_by(5) {
        let mut bytes = seed.to_vec();
        if let Some(byte) = bytes.get_mut(i) {
            *byte ^= 0x01;
        }
        fuzz::description(&bytes);
    }
}
