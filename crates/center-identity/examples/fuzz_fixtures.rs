//! Regenerates the fuzz fixtures in `testdata/` (a throwaway identity's
//! public certificate, its signature over `fuzz::MESSAGE`, its description);
//! the secret key is discarded with the temporary directory.
//!
//! `cargo run -p center-identity --example fuzz_fixtures`

use center_identity::{Identity, IdentityPaths, fuzz};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let identity = Identity::create(
        &IdentityPaths::new(tmp.path().join("identity")),
        "fuzz",
        "127.0.0.1:7350",
    )?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let description = identity.describe()?;
    std::fs::write(dir.join("fuzz-cert.asc"), description.cert())?;
    std::fs::write(dir.join("fuzz-message.sig"), identity.sign(fuzz::MESSAGE)?)?;
    let json = serde_json::to_string_pretty(&description.to_json())?;
    std::fs::write(dir.join("description.json"), json + "\n")?;
    println!("wrote {}", dir.display());
    Ok(())
}
