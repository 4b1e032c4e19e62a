//! The bodies of the fuzz targets for what this crate reads from other
//! peers (`fuzz/fuzz_targets/`), kept here so that the crate's tests run
//! them over seeds.
//!
//! The fixtures in `testdata/` are a fixed peer's public certificate, a
//! signature it made over [`MESSAGE`] and its description; its secret keys
//! were thrown away. Panics here are findings; nothing else in the crate
//! panics on input.

use std::sync::OnceLock;

use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;

use crate::description::PeerDescription;
use crate::openpgp;

/// The message [`SIGNATURE`] signs.
pub const MESSAGE: &[u8] = b"center-identity fuzz message";
/// The fixed peer's public certificate, armored.
pub const CERT: &str = include_str!("../testdata/fuzz-cert.asc");
/// A valid detached signature by [`CERT`] over [`MESSAGE`].
pub const SIGNATURE: &[u8] = include_bytes!("../testdata/fuzz-message.sig");
/// The fixed peer's valid description.
pub const DESCRIPTION: &[u8] = include_bytes!("../testdata/description.json");

fn cert() -> &'static Cert {
    static PARSED: OnceLock<Cert> = OnceLock::new();
    PARSED.get_or_init(|| match Cert::from_bytes(CERT.as_bytes()) {
        Ok(cert) => cert,
        Err(e) => panic!("fixture testdata/fuzz-cert.asc does not parse: {e}"),
    })
}

/// Reads `data` as a description; whatever is accepted must write back to
/// JSON that reads back to the same description.
pub fn description(data: &[u8]) {
    let Ok(first) = PeerDescription::from_json(data) else {
        return;
    };
    let json = first.to_json().to_string();
    let second = match PeerDescription::from_json(json.as_bytes()) {
        Ok(second) => second,
        Err(e) => panic!("an accepted description does not read back: {e}"),
    };
    assert_eq!(
        second.to_json(),
        first.to_json(),
        "round trip changed the description"
    );
}

/// Verifies `data` as a signature over [`MESSAGE`] by [`CERT`], and
/// [`SIGNATURE`] over `data` as the message. The second must succeed exactly
/// when `data` is [`MESSAGE`].
pub fn signature(data: &[u8]) {
    let cert = cert();
    let as_signature = openpgp::verify(cert, MESSAGE, data);
    if data == SIGNATURE {
        assert_eq!(
            as_signature,
            Ok(()),
            "the genuine signature does not verify"
        );
    }
    let as_message = openpgp::verify(cert, data, SIGNATURE);
    assert_eq!(
        as_message.is_ok(),
        data == MESSAGE,
        "the genuine signature verified over another message, or not over its own"
    );
}
