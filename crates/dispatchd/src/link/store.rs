//! The durable side of direct messages, in one SQLite database (WAL):
//! the outbox of envelopes waiting for each peer, the record of what each
//! peer already delivered to us, and the inbox that keeps what arrived for
//! local subscribers, with each subscriber's cursor.
//!
//! A publisher is acknowledged only after its envelope is committed here;
//! an envelope leaves the outbox only when the peer acknowledged it or it
//! expired. The receiver records each delivered envelope's digest until it
//! expires, so a retried delivery (the sender crashed before it saw our
//! acknowledgement) is recognized and not delivered twice.
//!
//! Each kept message records who sent it (`peer`: the sending peer's UUID,
//! [`JOIN_REQUESTS`] for `NEW` frames, nothing for a hand-off of this
//! peer's own join), so that what one sender may keep here is bounded
//! ([`Store::inbox_held`]).

use std::path::Path;

use center_proto::{PeerId, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The sender recorded for kept `NEW` frames (join requests), which no
/// peer signed: they share one quota.
pub const JOIN_REQUESTS: &str = "NEW";

/// The store; one connection, used under the caller's lock.
pub struct Store {
    db: Connection,
    /// A second connection for subscribers' cursors, `synchronous=NORMAL`:
    /// in WAL mode a commit survives the process being killed (kill -9)
    /// without waiting for the disk, and a cursor moves once per event. A
    /// power loss may take the newest cursor positions back, which only
    /// means those messages are delivered again (at least once).
    cursors: Connection,
}

/// One envelope waiting for its peer.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    /// The canonical bytes of the envelope (CEP 2).
    pub envelope: Vec<u8>,
}

/// The digest that identifies a delivered envelope.
pub fn digest(envelope: &[u8]) -> String {
    Sha256::digest(envelope)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "wal")?;
        // FULL: a commit is on disk before the publisher hears "ok".
        db.pragma_update(None, "synchronous", "full")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 peer TEXT NOT NULL,
                 envelope BLOB NOT NULL,
                 digest TEXT NOT NULL,
                 exp INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS outbox_peer ON outbox (peer, id);
             CREATE INDEX IF NOT EXISTS outbox_digest ON outbox (peer, digest);
             CREATE INDEX IF NOT EXISTS outbox_exp ON outbox (peer, exp);
             CREATE TABLE IF NOT EXISTS inbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 name TEXT NOT NULL,
                 envelope BLOB NOT NULL,
                 exp INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS inbox_exp ON inbox (exp);
             CREATE TABLE IF NOT EXISTS cursors (
                 subscriber TEXT PRIMARY KEY,
                 seq INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS delivered (
                 peer TEXT NOT NULL,
                 digest TEXT NOT NULL,
                 exp INTEGER NOT NULL,
                 PRIMARY KEY (peer, digest)
             );
             CREATE INDEX IF NOT EXISTS delivered_exp ON delivered (exp);",
        )?;
        // Who sent each kept message, for its quota (stores made before
        // it lack the column: their messages count for nobody).
        let has_sender: bool = db
            .prepare("SELECT 1 FROM pragma_table_info('inbox') WHERE name = 'peer'")?
            .exists([])?;
        if !has_sender {
            db.execute_batch("ALTER TABLE inbox ADD COLUMN peer TEXT")?;
        }
        db.execute_batch("CREATE INDEX IF NOT EXISTS inbox_peer ON inbox (peer, exp)")?;
        // What each durable subscriber subscribed to, so that a message it
        // would receive is kept while it is away (and one nobody would, not).
        let has_patterns: bool = db
            .prepare("SELECT 1 FROM pragma_table_info('cursors') WHERE name = 'patterns'")?
            .exists([])?;
        if !has_patterns {
            db.execute_batch("ALTER TABLE cursors ADD COLUMN patterns TEXT")?;
        }
        let cursors = Connection::open(path)?;
        cursors.pragma_update(None, "synchronous", "normal")?;
        cursors.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Store { db, cursors })
    }

    /// Queues an envelope for `peer`; committed when this returns.
    pub fn push(&self, peer: PeerId, envelope: &[u8], exp: Timestamp) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT INTO outbox (peer, envelope, digest, exp) VALUES (?1, ?2, ?3, ?4)",
            params![peer.to_string(), envelope, digest(envelope), exp_sql(exp)],
        )?;
        Ok(())
    }

    /// The oldest envelopes waiting for `peer`, at most `limit`; expired
    /// ones are dropped first (and counted in the result's second member).
    pub fn pending(
        &self,
        peer: PeerId,
        limit: usize,
        now: Timestamp,
    ) -> rusqlite::Result<(Vec<Pending>, usize)> {
        let dropped = self.db.execute(
            "DELETE FROM outbox WHERE peer = ?1 AND exp <= ?2",
            params![peer.to_string(), exp_sql(now)],
        )?;
        let mut statement = self.db.prepare_cached(
            "SELECT id, envelope FROM outbox WHERE peer = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![peer.to_string(), i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok(Pending {
                    id: row.get(0)?,
                    envelope: row.get(1)?,
                })
            },
        )?;
        Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, dropped))
    }

    /// Removes the envelopes `peer` acknowledged, by digest.
    pub fn acknowledged(&mut self, peer: PeerId, digests: &[String]) -> rusqlite::Result<usize> {
        let tx = self.db.transaction()?;
        let mut removed = 0;
        {
            let mut statement =
                tx.prepare_cached("DELETE FROM outbox WHERE peer = ?1 AND digest = ?2")?;
            for digest in digests {
                removed += statement.execute(params![peer.to_string(), digest])?;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Which of `digests` still wait for `peer` (not yet acknowledged).
    pub fn still_queued(
        &self,
        peer: PeerId,
        digests: &std::collections::HashSet<String>,
    ) -> rusqlite::Result<std::collections::HashSet<String>> {
        let mut statement = self
            .db
            .prepare_cached("SELECT 1 FROM outbox WHERE peer = ?1 AND digest = ?2 LIMIT 1")?;
        let peer = peer.to_string();
        let mut still = std::collections::HashSet::new();
        for digest in digests {
            if statement.exists(params![peer, digest])? {
                still.insert(digest.clone());
            }
        }
        Ok(still)
    }

    /// How many envelopes wait for `peer`.
    pub fn depth(&self, peer: PeerId) -> rusqlite::Result<u64> {
        let count: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM outbox WHERE peer = ?1",
            params![peer.to_string()],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Whether `peer` already delivered this envelope to us.
    pub fn seen(&self, peer: PeerId, digest: &str) -> rusqlite::Result<bool> {
        let found: Option<i64> = self
            .db
            .query_row(
                "SELECT 1 FROM delivered WHERE peer = ?1 AND digest = ?2",
                params![peer.to_string(), digest],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }
}

/// One direct message kept for local subscribers.
#[derive(Debug, Clone)]
pub struct Inboxed {
    pub seq: i64,
    pub name: String,
    pub envelope: Vec<u8>,
}

impl Store {
    /// Keeps direct messages for local subscribers until they expire, in
    /// one commit; their sequence numbers (in order) order them. In the
    /// same commit, records `delivered` (digests and `exp`) as delivered by
    /// that peer, so a message is kept and recorded together or not at all.
    /// Expired messages and records are forgotten here.
    ///
    /// `sender` is recorded with each message for its quota: the sending
    /// peer (`delivered`'s) if not given.
    pub fn inbox_push_many(
        &mut self,
        items: &[(&str, Vec<u8>, Timestamp)],
        sender: Option<&str>,
        delivered: Option<(PeerId, &[(String, Timestamp)])>,
        now: Timestamp,
    ) -> rusqlite::Result<Vec<i64>> {
        let from_peer = delivered.map(|(peer, _)| peer.to_string());
        let sender = sender.or(from_peer.as_deref());
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM inbox WHERE exp <= ?1", params![exp_sql(now)])?;
        if let Some((peer, delivered)) = delivered {
            tx.execute(
                "DELETE FROM delivered WHERE exp <= ?1",
                params![exp_sql(now)],
            )?;
            let mut statement = tx.prepare_cached(
                "INSERT OR IGNORE INTO delivered (peer, digest, exp) VALUES (?1, ?2, ?3)",
            )?;
            for (digest, exp) in delivered {
                statement.execute(params![peer.to_string(), digest, exp_sql(*exp)])?;
            }
        }
        let mut seqs = Vec::with_capacity(items.len());
        {
            let mut statement = tx.prepare_cached(
                "INSERT INTO inbox (name, envelope, exp, peer) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (name, envelope, exp) in items {
                statement.execute(params![name, envelope, exp_sql(*exp), sender])?;
                seqs.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(seqs)
    }

    /// How many unexpired messages from `sender` (a peer's UUID, or
    /// [`JOIN_REQUESTS`]) are kept.
    pub fn inbox_held(&self, sender: &str, now: Timestamp) -> rusqlite::Result<u64> {
        let count: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM inbox WHERE peer = ?1 AND exp > ?2",
            params![sender, exp_sql(now)],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Kept messages after `seq`, oldest first, at most `limit`, unexpired.
    pub fn inbox_after(
        &self,
        seq: i64,
        limit: usize,
        now: Timestamp,
    ) -> rusqlite::Result<Vec<Inboxed>> {
        let mut statement = self
            .db
            .prepare_cached("SELECT seq, name, envelope FROM inbox WHERE seq > ?1 AND exp > ?2 ORDER BY seq LIMIT ?3")?;
        let rows = statement.query_map(
            params![seq, exp_sql(now), i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok(Inboxed {
                    seq: row.get(0)?,
                    name: row.get(1)?,
                    envelope: row.get(2)?,
                })
            },
        )?;
        rows.collect()
    }

    /// The newest sequence number given out (0 when none).
    pub fn inbox_head(&self) -> rusqlite::Result<i64> {
        self.db
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM inbox", [], |row| {
                row.get(0)
            })
    }

    /// Where a subscriber stopped, if it ever subscribed.
    pub fn cursor(&self, subscriber: &str) -> rusqlite::Result<Option<i64>> {
        self.db
            .query_row(
                "SELECT seq FROM cursors WHERE subscriber = ?1",
                params![subscriber],
                |row| row.get(0),
            )
            .optional()
    }

    /// Records what a durable subscriber subscribed to (its patterns, each
    /// inside its grant), replacing what it subscribed to before.
    pub fn set_cursor_patterns(&self, subscriber: &str, patterns: &[&str]) -> rusqlite::Result<()> {
        self.db.execute(
            "UPDATE cursors SET patterns = ?2 WHERE subscriber = ?1",
            params![subscriber, patterns.join("\n")],
        )?;
        Ok(())
    }

    /// Every pattern a durable subscriber subscribed to.
    pub fn cursor_patterns(&self) -> rusqlite::Result<Vec<String>> {
        let mut statement = self
            .db
            .prepare_cached("SELECT patterns FROM cursors WHERE patterns IS NOT NULL")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut patterns = Vec::new();
        for row in rows {
            patterns.extend(
                row?.split('\n')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(patterns)
    }

    /// Moves a subscriber's cursor forward (never back).
    pub fn set_cursor(&self, subscriber: &str, seq: i64) -> rusqlite::Result<()> {
        self.cursors.execute(
            "INSERT INTO cursors (subscriber, seq) VALUES (?1, ?2)
             ON CONFLICT (subscriber) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            params![subscriber, seq],
        )?;
        Ok(())
    }
}

fn exp_sql(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_795_305_600_000);

    fn later(secs: u64) -> Timestamp {
        Timestamp::from_millis(NOW.as_millis() + secs * 1000)
    }

    #[test]
    fn what_each_sender_keeps_is_counted_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("links.sqlite3")).unwrap();
        let (alpha, bravo) = (PeerId::new_random(), PeerId::new_random());
        let items = |n: usize, exp| -> Vec<(&str, Vec<u8>, Timestamp)> {
            (0..n)
                .map(|i| ("demo.x", vec![u8::try_from(i).unwrap()], exp))
                .collect()
        };
        let delivered: Vec<(String, Timestamp)> = Vec::new();
        store
            .inbox_push_many(&items(3, later(60)), None, Some((alpha, &delivered)), NOW)
            .unwrap();
        store
            .inbox_push_many(&items(2, later(3600)), None, Some((bravo, &delivered)), NOW)
            .unwrap();
        store
            .inbox_push_many(&items(4, later(60)), Some(JOIN_REQUESTS), None, NOW)
            .unwrap();
        store
            .inbox_push_many(&items(1, later(60)), None, None, NOW)
            .unwrap();
        let held = |store: &Store, who: &str, at| store.inbox_held(who, at).unwrap();
        assert_eq!(held(&store, &alpha.to_string(), NOW), 3);
        assert_eq!(held(&store, &bravo.to_string(), NOW), 2);
        assert_eq!(held(&store, JOIN_REQUESTS, NOW), 4);
        assert_eq!(held(&store, &alpha.to_string(), later(60)), 0);
        assert_eq!(held(&store, &bravo.to_string(), later(60)), 2);
        // And after a reopen.
        drop(store);
        let store = Store::open(&dir.path().join("links.sqlite3")).unwrap();
        assert_eq!(held(&store, &bravo.to_string(), NOW), 2);
    }

    #[test]
    fn durable_subscribers_patterns_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("links.sqlite3")).unwrap();
        store.set_cursor("0:tail", 0).unwrap();
        store.set_cursor("1000:inbox", 0).unwrap();
        store
            .set_cursor_patterns("0:tail", &["lost.*", "demo.x"])
            .unwrap();
        store
            .set_cursor_patterns("1000:inbox", &["demo.*"])
            .unwrap();
        store.set_cursor_patterns("0:tail", &["lost.*"]).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("links.sqlite3")).unwrap();
        let mut patterns = store.cursor_patterns().unwrap();
        patterns.sort();
        assert_eq!(patterns, ["demo.*", "lost.*"]);
    }

    #[test]
    fn a_store_from_before_the_sender_column_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                 envelope BLOB NOT NULL, exp INTEGER NOT NULL);
                 INSERT INTO inbox (name, envelope, exp) VALUES ('demo.old', x'00', 9e15);",
            )
            .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.inbox_after(0, 10, NOW).unwrap().len(), 1);
        assert_eq!(store.inbox_held(JOIN_REQUESTS, NOW).unwrap(), 0);
    }
}
