//! `centerctl status`: this peer's health on one screen (CEP 7), asked of
//! dispatchd over the bus like every other admin command: who it is,
//! whether it is a member or still syncing the feeds (with progress), its
//! peers by state, its feeds, its bus clients and its uptime; and, from
//! this peer's directory, the network accounts it did not make because
//! their names are local or reserved here (CEP 8, "Names").

use std::time::Duration;

use anyhow::Context;
use center_bus::{AdminOp, ConsumerProgress, MembershipState, StatusReport};

use crate::{cli::Cli, connect, output};

const PATIENCE: Duration = Duration::from_secs(5);

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut client = connect(cli, "centerctl", PATIENCE).await?;
    let report = client
        .admin(AdminOp::Status {})
        .await?
        .status
        .context("dispatchd answered without a status; is it older than centerctl?")?;
    let shadowed = shadowed_names(cli).await;
    if cli.json {
        let mut value = serde_json::to_value(&report)?;
        value["accounts"] = match &shadowed {
            Ok(names) => serde_json::json!({ "not_made_here": names }),
            Err(err) => serde_json::json!({ "error": err.to_string() }),
        };
        output::json(&value)
    } else {
        let mut text = render(&report);
        text.push_str(&format!(
            "  {:<12} {}\n",
            "accounts",
            accounts_line(&shadowed)
        ));
        output::text(&text)
    }?;
    Ok(())
}

/// The names whose accounts this peer did not make (a notice userd kept
/// says why), from the peer's own slapd.
async fn shadowed_names(cli: &Cli) -> anyhow::Result<Vec<String>> {
    let config = center_config::Config::load(&cli.config)?;
    let mut directory = userd::directory::Directory::new(&config.ldap.ldapi, &config.ldap.base);
    Ok(directory
        .notices()
        .await?
        .into_iter()
        .filter(|(_, texts)| {
            texts
                .iter()
                .any(|t| t.contains(userd::apply::NOT_MADE_HERE))
        })
        .map(|(name, _)| name)
        .collect())
}

fn accounts_line(shadowed: &anyhow::Result<Vec<String>>) -> String {
    match shadowed {
        Ok(names) if names.is_empty() => "every network account is made here".to_owned(),
        Ok(names) => format!(
            "{} not made here, their names being local or reserved: {} (`centerctl user notices`)",
            names.len(),
            names.join(", ")
        ),
        Err(err) => format!("cannot read this peer's directory: {err:#}"),
    }
}

/// The report for humans: a label per line, the origins still to fetch
/// while syncing.
pub(crate) fn render(report: &StatusReport) -> String {
    let membership = &report.membership;
    let mut out = format!("{} ({})\n", report.name, report.uuid);
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("  {label:<12} {value}\n"));
    };
    line("address", report.address.clone());
    line("fingerprint", report.fingerprint.clone());
    let held = format!(
        "holds {} of {} feed events known to exist",
        membership.held, membership.known
    );
    line(
        "membership",
        match membership.state {
            MembershipState::Member => format!("member: {held}"),
            MembershipState::Syncing => format!(
                "syncing: {held} ({}%)",
                percent(membership.held, membership.known)
            ),
        },
    );
    if !membership.waiting_for.is_empty() {
        line(
            "waiting for",
            format!("the feed frontier of {}", membership.waiting_for.join(", ")),
        );
    }
    for consumer in &membership.consumers {
        line(
            "applied by",
            format!("{}: {}", consumer.service, consumer_state(consumer)),
        );
    }
    let peers = &report.peers;
    line(
        "peers",
        format!(
            "{} in the roster: {} up, {} syncing, {} down",
            peers.total, peers.up, peers.syncing, peers.down
        ),
    );
    let feeds = &report.feeds;
    let mut feed_line = format!(
        "{} origins, {} events, {} bytes",
        feeds.origins, feeds.events, feeds.bytes
    );
    if feeds.forked > 0 || feeds.conflicts > 0 {
        feed_line.push_str(&format!(
            ", {} FORKED, {} unresolved conflicts (see `centerctl feed status`)",
            feeds.forked, feeds.conflicts
        ));
    }
    line("feeds", feed_line);
    line("bus", format!("{} clients connected", report.bus_clients));
    line("uptime", duration(report.uptime_ms));
    let behind: Vec<Vec<String>> = membership
        .origins
        .iter()
        .filter(|o| o.held < o.known)
        .map(|o| {
            vec![
                o.name.clone().unwrap_or_else(|| o.origin.clone()),
                o.held.to_string(),
                o.known.to_string(),
            ]
        })
        .collect();
    if !behind.is_empty() {
        out.push('\n');
        for row in output::render_table(&["ORIGIN", "HELD", "KNOWN"], &behind).lines() {
            out.push_str(&format!("  {row}\n"));
        }
    }
    out
}

/// How far a local service full membership waits for has got.
fn consumer_state(consumer: &ConsumerProgress) -> String {
    if !consumer.connected {
        "not connected to the bus (is it running?)".to_owned()
    } else if consumer.caught_up {
        "every event".to_owned()
    } else {
        format!(
            "working: {} events in hand, at most {} more to look at",
            consumer.in_flight, consumer.pending
        )
    }
}

/// `held` of `known` in whole percent, rounded down (100 only when all).
fn percent(held: u64, known: u64) -> u64 {
    if known == 0 {
        return 100;
    }
    u64::try_from(u128::from(held.min(known)) * 100 / u128::from(known)).unwrap_or(100)
}

/// `1d 2h 3m 4s`, leaving out leading zero units.
pub(crate) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    for (value, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if value > 0 || !parts.is_empty() {
            parts.push(format!("{value}{unit}"));
        }
    }
    parts.push(format!("{s}s"));
    parts.join(" ")
}
