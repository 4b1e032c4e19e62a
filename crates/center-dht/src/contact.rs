//! [`Contact`]: how to reach one DHT node, as exchanged between peers.
//!
//! Contacts arrive from other peers, so parsing and validation are total: any
//! string yields a value or a [`DhtError::InvalidContact`], never a panic.
//! Only plain `/ip4|ip6/…/tcp/…` addresses are accepted: no DNS names (no
//! resolver is linked) and no relays.

use std::fmt;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::DhtError;

/// Longest accepted `peer_id` or `addr` string.
const MAX_LEN: usize = 256;

/// A DHT node's identity and address. The text form (`Display`,
/// [`Contact::parse`]) is the libp2p one: `/ip4/192.0.2.1/tcp/4001/p2p/12D3Koo…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The node's libp2p peer id (base58), derived from its key file.
    pub peer_id: String,
    /// A multiaddr without `/p2p`, such as `/ip4/192.0.2.1/tcp/4001`.
    pub addr: String,
}

impl Contact {
    /// Parses the text form `<addr>/p2p/<peer id>`.
    pub fn parse(s: &str) -> Result<Contact, DhtError> {
        if s.len() > 2 * MAX_LEN {
            return Err(invalid("contact is too long"));
        }
        let mut addr: Multiaddr = s.parse().map_err(|e| invalid(format!("{s:?}: {e}")))?;
        let Some(Protocol::P2p(peer)) = addr.pop() else {
            return Err(invalid(format!("{s:?} does not end in /p2p/<peer id>")));
        };
        let contact = Contact {
            peer_id: peer.to_base58(),
            addr: addr.to_string(),
        };
        contact.validate()?;
        Ok(contact)
    }

    /// Checks both fields and returns them typed.
    pub(crate) fn validate(&self) -> Result<(PeerId, Multiaddr), DhtError> {
        if self.peer_id.len() > MAX_LEN || self.addr.len() > MAX_LEN {
            return Err(invalid("contact is too long"));
        }
        let peer: PeerId = self
            .peer_id
            .parse()
            .map_err(|e| invalid(format!("peer id {:?}: {e}", self.peer_id)))?;
        let addr: Multiaddr = self
            .addr
            .parse()
            .map_err(|e| invalid(format!("address {:?}: {e}", self.addr)))?;
        if !is_plain_tcp(&addr) {
            return Err(invalid(format!(
                "address {:?} is not /ip4/…/tcp/… or /ip6/…/tcp/…",
                self.addr
            )));
        }
        Ok((peer, addr))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/p2p/{}", self.addr, self.peer_id)
    }
}

/// `/ip4/<ip>/tcp/<port>` or `/ip6/<ip>/tcp/<port>` and nothing else.
pub(crate) fn is_plain_tcp(addr: &Multiaddr) -> bool {
    let mut it = addr.iter();
    matches!(
        (it.next(), it.next(), it.next()),
        (
            Some(Protocol::Ip4(_) | Protocol::Ip6(_)),
            Some(Protocol::Tcp(_)),
            None
        )
    )
}

fn invalid(reason: impl Into<String>) -> DhtError {
    DhtError::InvalidContact(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_refuses_the_rest() {
        let id = PeerId::random().to_base58();
        let text = format!("/ip4/127.0.0.9/tcp/4001/p2p/{id}");
        let c = Contact::parse(&text).unwrap();
        assert_eq!(c.addr, "/ip4/127.0.0.9/tcp/4001");
        assert_eq!(c.to_string(), text);
        for bad in [
            String::new(),
            "/ip4/127.0.0.9/tcp/4001".to_owned(),
            format!("/dns4/example.org/tcp/4001/p2p/{id}"),
            format!("/ip4/127.0.0.9/udp/4001/p2p/{id}"),
            format!("/ip4/127.0.0.9/tcp/4001/p2p/{id}/p2p/{id}"),
            format!("/ip4/127.0.0.9/tcp/99999/p2p/{id}"),
            "/p2p/notapeerid".to_owned(),
            "\u{0}".repeat(10_000),
        ] {
            assert!(Contact::parse(&bad).is_err(), "{bad:?} accepted");
        }
        let wrong_id = Contact {
            peer_id: "12D3Koo".to_owned(),
            addr: "/ip4/127.0.0.9/tcp/4001".to_owned(),
        };
        assert!(wrong_id.validate().is_err());
    }
}
