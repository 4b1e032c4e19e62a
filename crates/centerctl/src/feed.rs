//! `centerctl feed …`: the signed feeds (CEP 6) as this peer holds them,
//! read through the bus like every other admin command; `resolve` is the
//! sysadmin's decision on an origin frozen by an equivocation.

use std::time::Duration;

use anyhow::Context;
use center_bus::{AdminOp, FeedStatus};

use crate::{
    cli::{Cli, FeedCommand},
    connect, output,
};

const PATIENCE: Duration = Duration::from_secs(5);

pub async fn run(cli: &Cli, command: &FeedCommand) -> anyhow::Result<()> {
    match command {
        FeedCommand::Status => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let status =
                client.admin(AdminOp::FeedStatus {}).await?.feeds.context(
                    "dispatchd answered without a feed status; is it older than centerctl?",
                )?;
            if cli.json {
                output::json(&serde_json::to_value(&status)?)?;
            } else {
                output::text(&render_status(&status, output::now_ms()))?;
            }
            Ok(())
        }
        FeedCommand::Resolve { origin, keep } => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let op = AdminOp::FeedResolve {
                origin: origin.clone(),
                keep: keep.clone(),
            };
            let status =
                client.admin(op).await?.feeds.context(
                    "dispatchd answered without a feed status; is it older than centerctl?",
                )?;
            if cli.json {
                output::json(&serde_json::to_value(&status)?)?;
            } else {
                output::text(&format!(
                    "fork of {origin} resolved: event {keep} kept; the other branch is refused from now on\n"
                ))?;
            }
            Ok(())
        }
    }
}

/// One block per origin: a line about the feed, then what each peer said
/// it holds of it (`now` in ms, for how long ago it said so).
pub(crate) fn render_status(status: &FeedStatus, now: u64) -> String {
    if status.origins.is_empty() {
        return "no feed events yet: none published here, none received\n".to_owned();
    }
    let mut out = String::new();
    for (i, origin) in status.origins.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let name = match &origin.name {
            Some(name) => format!("{name} ({})", origin.origin),
            None => origin.origin.clone(),
        };
        out.push_str(&format!(
            "{name}: head {}, oldest {}, {} events, {} bytes",
            origin.head_seq, origin.oldest_seq, origin.events, origin.bytes
        ));
        if origin.forked {
            out.push_str(", FORKED: frozen until the sysadmin resolves the fork");
        }
        out.push('\n');
        for conflict in &origin.conflicts {
            out.push_str(&format!(
                "  conflict at seq {}: held {}, other {}{}\n",
                conflict.seq,
                conflict.held,
                conflict.other,
                if conflict.resolved {
                    " (resolved)"
                } else {
                    "; keep one with `centerctl feed resolve ORIGIN --keep HASH`"
                }
            ));
        }
        if origin.peers.is_empty() {
            out.push_str("  no peer has said how far it holds this feed\n");
            continue;
        }
        let rows: Vec<Vec<String>> = origin
            .peers
            .iter()
            .map(|peer| {
                vec![
                    peer.name.clone().unwrap_or_else(|| peer.peer.clone()),
                    peer.seq.to_string(),
                    peer.lag.to_string(),
                    output::ago(now, peer.updated),
                ]
            })
            .collect();
        for line in output::render_table(&["PEER", "SEQ", "LAG", "UPDATED"], &rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
