//! End-to-end tests: real daemons on a local test network, checked with
//! independent clients, plus the tidy checks of the whole tree.

mod accounts;
mod authority;
mod bounds;
mod bus;
mod dht;
mod direct;
mod faults;
mod feeds;
mod ldap;
mod links;
mod mallory;
mod membership;
mod peer;
mod rotate;
mod sshd;
mod status;
mod support;
mod testnet;
mod tidy;
