//! `center-bus`: the client library for the local center bus, and the one
//! crate that defines the bus wire types.
//!
//! Every center daemon and every user-written service talks to its peer
//! through the bus that `dispatchd` hosts on a Unix socket. Services link this
//! crate and nothing else of ours. The protocol is specified in CEP 4.
//!
//! # Layout
//! - [`frame`]: length-delimited framing with a hard size cap.
//! - [`wire`]: the request and reply frames, grants and error codes.
//! - [`pattern`]: event-name patterns used by subscriptions and grants.
//! - [`client`]: the async [`Client`], which reconnects by itself.
//!
//! # Example
//! See `examples/echo.rs`: a service that subscribes to `demo.*` and answers
//! every event with a `demo-echo.reply`.

#![forbid(unsafe_code)]

pub mod client;
pub mod frame;
pub mod fuzz;
pub mod membership;
pub mod pattern;
pub mod wire;

pub use center_proto::{Destination, Envelope, EventName, PeerId, Timestamp};
pub use client::{AdminReply, BusError, Client, ClientConfig, Delivery, Publish, Welcome};
pub use pattern::Pattern;
pub use wire::{
    AdminOp, ConsumerProgress, ErrorCode, FeedConflict, FeedPosition, FeedStatus, FeedSummary,
    Grant, Membership, MembershipState, OriginEntry, OriginProgress, PeerAck, PeerCounts,
    PeerEntry, PeerState, Reply, Request, Start, StatusReport,
};

#[cfg(test)]
mod tests;
