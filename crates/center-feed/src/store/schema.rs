//! The tables of the feed database and their indexes, versioned with
//! `PRAGMA user_version`. Every statement that runs once per event finds
//! its rows through an index named here.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::StoreError;

/// The schema this code writes.
pub(super) const VERSION: i64 = 1;

const SCHEMA_V1: &str = "
-- Every stored event. `pos` is the local insertion order, never reused
-- (AUTOINCREMENT), so a subscriber's position stays meaningful after
-- deletions. Origins and hashes are text, as `sqlite3` shows them.
CREATE TABLE events (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    iat INTEGER NOT NULL,
    size INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    bytes BLOB NOT NULL
);
-- Duplicate and conflict checks, pages, floors and pruning.
CREATE UNIQUE INDEX events_origin_seq ON events (origin, seq);

-- One row per origin with a stored event: the head survives pruning, and
-- `forked` freezes the origin until an operator resolves it.
CREATE TABLE heads (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    forked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The current rate window of each origin.
CREATE TABLE rates (
    origin TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    events INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;

-- Pairs of validly signed events that prove an origin equivocated. `first`
-- is the event this store held; `second` the one that contradicts it.
CREATE TABLE equivocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    first_hash TEXT NOT NULL,
    first BLOB NOT NULL,
    second_hash TEXT NOT NULL,
    second BLOB NOT NULL,
    detected_at INTEGER NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    UNIQUE (origin, first_hash, second_hash)
);

-- Hashes of events on a branch an operator rejected in `resolve_fork`.
CREATE TABLE rejected (
    origin TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (origin, hash)
) WITHOUT ROWID;

-- Local subscribers and, per origin, the highest seq each has handled.
CREATE TABLE subscribers (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE cursors (
    subscriber TEXT NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (subscriber, origin)
) WITHOUT ROWID;

-- What each remote peer last said it holds of each origin.
CREATE TABLE peer_frontiers (
    peer TEXT NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (peer, origin)
) WITHOUT ROWID;
";

/// Creates the tables of a new database; refuses one written by a newer
/// program. The check and the creation are one immediate transaction, so
/// two processes opening a new file at once do not both create it.
pub(super) fn migrate(db: &Connection) -> Result<(), StoreError> {
    let tx = Transaction::new_unchecked(db, TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match found {
        0 => {
            tx.execute_batch(SCHEMA_V1)?;
            tx.pragma_update(None, "user_version", VERSION)?;
            tx.commit()?;
            Ok(())
        }
        VERSION => Ok(()),
        found => Err(StoreError::Schema {
            found,
            supported: VERSION,
        }),
    }
}
