//! The one integration-test binary of center-feed: events (signing,
//! parsing, verifying), the store (accepting, equivocation, retention,
//! cursors), the CEP 6 vectors, and hostile input. Real SQLite in temporary
//! directories, real OpenPGP keys.

mod accept;
mod cursors;
mod event;
mod fork;
mod hostile;
mod prune;
mod rotation;
mod rotation_vectors;
mod support;
mod vectors;
