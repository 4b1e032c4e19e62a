//! `centerctl bus …`: publish an event, or tail events as they arrive.
//!
//! `tail` prints `subscribed` on stderr once its subscription is in place, so
//! scripts and tests know when to start publishing. Feed events and direct
//! messages from other peers are kept for the account and service that
//! tails them: a tail run again continues after the last one it printed.
//! The first tail of an account and service starts at new feed events,
//! unless `--from-start` asks for every one this peer holds.

use std::time::Duration;

use anyhow::Context;
use center_bus::{Delivery, Pattern, PeerId, Publish, Start};

use crate::{
    cli::{BusCommand, Cli},
    connect, output,
};

/// How long publish waits for a bus that is down.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(5);
/// How long tail keeps trying to reconnect after dispatchd went away.
const TAIL_PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(cli: &Cli, command: &BusCommand) -> anyhow::Result<()> {
    match command {
        BusCommand::Publish {
            name,
            data,
            to,
            ttl,
            local,
            speaker,
        } => {
            let data: serde_json::Value =
                serde_json::from_str(data).context("--data is not valid JSON")?;
            let to: Option<PeerId> = match to {
                Some(text) => Some(
                    text.parse()
                        .with_context(|| format!("--to `{text}` is not a peer UUID"))?,
                ),
                None => None,
            };
            let mut client = connect(cli, &speaker.service, PUBLISH_PATIENCE).await?;
            let publish = Publish {
                name: name.clone(),
                data,
                to,
                ttl: ttl.map(Duration::from_secs),
                local: *local,
            };
            client.publish(publish).await?;
            if cli.json {
                output::json(&serde_json::json!({ "published": name }))?;
            } else {
                eprintln!("event/{name} published");
            }
            Ok(())
        }
        BusCommand::Tail {
            patterns,
            count,
            from_start,
            speaker,
        } => {
            let patterns = patterns
                .iter()
                .map(|p| Pattern::parse(p).context("bad pattern"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let start = if *from_start {
                Start::Oldest
            } else {
                Start::New
            };
            let mut client = connect(cli, &speaker.service, TAIL_PATIENCE).await?;
            client.subscribe_with(patterns.clone(), start).await?;
            let shown: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
            eprintln!(
                "subscribed to {} on peer {}",
                shown.join(" "),
                client.welcome().peer
            );
            let mut seen = 0u64;
            while count.is_none_or(|limit| seen < limit) {
                let delivery = client.next_delivery().await?;
                if cli.json {
                    output::json(&delivery_json(&delivery))?;
                } else {
                    output::text(&delivery_line(&delivery))?;
                }
                seen += 1;
            }
            // What was printed is handled: the next tail by this account
            // starts after it.
            client.ack().await;
            Ok(())
        }
    }
}

/// The envelope, with a member `feed` (origin and seq) for a feed event.
pub(crate) fn delivery_json(delivery: &Delivery) -> serde_json::Value {
    let mut value = delivery.envelope.to_value();
    if let (Some(feed), Some(object)) = (&delivery.feed, value.as_object_mut()) {
        object.insert(
            "feed".to_owned(),
            serde_json::json!({ "origin": feed.origin, "seq": feed.seq }),
        );
    }
    value
}

/// One line for humans: `IAT NAME from FROM to TO DATA`, where FROM is
/// `ORIGIN#SEQ` for a feed event.
pub(crate) fn delivery_line(delivery: &Delivery) -> String {
    let event = &delivery.envelope;
    let from = match &delivery.feed {
        Some(feed) => format!("{}#{}", feed.origin, feed.seq),
        None => event.meta.from.to_string(),
    };
    format!(
        "{} {} from {from} to {} {}\n",
        event.meta.iat, event.name, event.meta.to, event.data
    )
}
