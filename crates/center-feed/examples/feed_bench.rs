//! Benchmark (not a test): accepting relayed events, against the raw bound
//! measured in the same run, the OpenPGP verification of the same events
//! alone. Prints one JSON object.
//!
//! ```text
//! cargo run --release -p center-feed --example feed_bench [EVENTS] [PAGE]
//! ```

use std::error::Error;
use std::time::Instant;

use center_feed::{EventBody, EventHash, FeedConfig, FeedEvent, FeedStore, Outcome, StartAt};
use center_identity::{Identity, IdentityPaths, PeerKeys};
use center_proto::{EventName, Timestamp};
use serde_json::json;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let page: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let identity = Identity::create(
        &IdentityPaths::new(dir.path().join("identity")),
        "bench",
        "127.0.0.1:7350",
    )?;
    let keys = PeerKeys::from_description(&identity.describe()?);
    let now = Timestamp::now();

    // Two chains signed alike: sequoia caches verification results, so the
    // bound and the store must each verify events never seen before.
    let started = Instant::now();
    let bound_chain = chain(&identity, n, now, "bound")?;
    let bytes = chain(&identity, n, now, "store")?;
    let sign_s = started.elapsed().as_secs_f64() / 2.0;
    let total_bytes: usize = bytes.iter().map(Vec::len).sum();

    // The bound: parsing and verifying alone, no database.
    let started = Instant::now();
    for b in &bound_chain {
        FeedEvent::parse(b, &Default::default())?.verify(&keys)?;
    }
    let verify_s = started.elapsed().as_secs_f64();

    let mut store = FeedStore::open(&dir.path().join("feeds.sqlite"), FeedConfig::default())?;
    let roster = |id: &center_proto::PeerId| {
        (*id == keys.uuid()).then(|| center_feed::OriginKeys::from(keys.clone()))
    };
    let started = Instant::now();
    let mut stored = 0usize;
    for chunk in bytes.chunks(page.max(1)) {
        let outcomes = store.accept(chunk, roster, now)?;
        stored += outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Stored { .. }))
            .count();
    }
    let accept_s = started.elapsed().as_secs_f64();

    // Replaying everything: duplicates, no signature checks.
    let started = Instant::now();
    for chunk in bytes.chunks(page.max(1)) {
        store.accept(chunk, roster, now)?;
    }
    let replay_s = started.elapsed().as_secs_f64();

    // Local delivery: read everything in pages of 100, advancing.
    store.new_subscriber("bench", StartAt::Oldest)?;
    let started = Instant::now();
    let (mut after, mut read) = (0i64, 0usize);
    loop {
        let batch = store.next_for("bench", after, 100)?;
        let Some(last) = batch.last() else { break };
        after = last.pos;
        read += batch.len();
        store.advance("bench", last.origin, last.seq)?;
    }
    let deliver_s = started.elapsed().as_secs_f64();

    let report = json!({
        "events": n,
        "page": page,
        "bytes": total_bytes,
        "sign_s": sign_s,
        "bound_parse_verify_s": verify_s,
        "accept_s": accept_s,
        "accept_events_per_s": n as f64 / accept_s,
        "accept_over_bound": accept_s / verify_s,
        "stored": stored,
        "replay_duplicates_s": replay_s,
        "deliver_s": deliver_s,
        "delivered": read,
    });
    println!("{report}");
    Ok(())
}

/// Events 1 to `n` of `identity`'s feed, canonical bytes.
fn chain(
    identity: &Identity,
    n: u64,
    now: Timestamp,
    run: &str,
) -> Result<Vec<Vec<u8>>, Box<dyn Error>> {
    let mut events = Vec::new();
    let mut prev = EventHash::ZERO;
    for seq in 1..=n {
        let body = EventBody {
            origin: identity.uuid(),
            seq,
            prev,
            name: EventName::parse("bench.event")?,
            iat: now,
            data: json!({ "run": run, "seq": seq, "text": "a typical small payload of some tens of bytes" }),
        };
        let event = FeedEvent::sign(body, |m| identity.sign(m))?;
        prev = event.hash();
        events.push(event.into_bytes());
    }
    Ok(events)
}
