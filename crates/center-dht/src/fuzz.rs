//! The body of the `dht_contact` fuzz target (`fuzz/fuzz_targets/`), kept
//! here so the crate's tests run it over seeds. Contacts come from other
//! peers; a panic here is a finding.

use crate::Contact;

/// Reads `data` as a contact, both as text (`<addr>/p2p/<id>`) and as the
/// two serde fields split at the first newline. Whatever is accepted must
/// print back to text that parses to the same contact.
pub fn contact(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Contact::parse(text) {
        let again = Contact::parse(&c.to_string());
        assert_eq!(
            again.ok().as_ref(),
            Some(&c),
            "{text:?} does not round-trip"
        );
    }
    let (peer_id, addr) = text.split_once('\n').unwrap_or((text, ""));
    let fields = Contact {
        peer_id: peer_id.to_owned(),
        addr: addr.to_owned(),
    };
    if fields.validate().is_ok() {
        let again = Contact::parse(&fields.to_string());
        assert!(
            again.is_ok(),
            "{fields:?} validates but its text does not parse"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds() {
        let id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        for seed in [
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}"),
            format!("/ip6/::1/tcp/4001/p2p/{id}"),
            format!("{id}\n/ip4/127.0.0.1/tcp/4001"),
            format!("{id}\n/ip4/127.0.0.1/tcp/4001/p2p/{id}"),
            "/ip4/999.0.0.1/tcp/1/p2p/x".to_owned(),
            "/unix/%2F/p2p/".to_owned(),
            "\n".to_owned(),
            "/".repeat(600),
        ] {
            super::contact(seed.as_bytes());
        }
        super::contact(&[0xff, 0xfe, b'/']);
    }
}
