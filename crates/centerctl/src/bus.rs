//! `centerctl bus …`: publish an event, or tail events as they arrive.
//!
//! `tail` prints `subscribed` on stderr once its subscription is in place, so
//! scripts and tests know when to start publishing. Direct messages from
//! other peers are kept for the account and service that tails them: a
//! tail run again continues after the last one it printed.

use std::time::Duration;

use anyhow::Context;
use center_bus::{Envelope, Pattern, PeerId, Publish};

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
            speaker,
        } => {
            let patterns = patterns
                .iter()
                .map(|p| Pattern::parse(p).context("bad pattern"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut client = connect(cli, &speaker.service, TAIL_PATIENCE).await?;
            client.subscribe(patterns.clone()).await?;
            let shown: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
            eprintln!(
                "subscribed to {} on peer {}",
                shown.join(" "),
                client.welcome().peer
            );
            let mut seen = 0u64;
            while count.is_none_or(|limit| seen < limit) {
                let event = client.next_event().await?;
                print_event(cli.json, &event)?;
                seen += 1;
            }
            // What was printed is handled: the next tail by this account
            // starts after it.
            client.ack().await;
            Ok(())
        }
    }
}

fn print_event(json: bool, event: &Envelope) -> std::io::Result<()> {
    if json {
        return output::json(&event.to_value());
    }
    let to = match event.meta.to {
        center_bus::Destination::Broadcast => "*".to_owned(),
        center_bus::Destination::Peer(peer) => peer.to_string(),
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {} from {} to {} {}",
        event.meta.iat, event.name, event.meta.from, to, event.data
    )?;
    out.flush()
}
