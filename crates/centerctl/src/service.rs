//! `centerctl service …`: the sysadmin's grants, changed through the bus so
//! dispatchd checks them and applies them at once.

use std::time::Duration;

use anyhow::{Context, bail};
use center_bus::{AdminOp, Grant, Pattern};

use crate::{
    cli::{Cli, ServiceCommand},
    connect, output,
};

const PATIENCE: Duration = Duration::from_secs(5);

pub async fn run(cli: &Cli, command: &ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Approve {
            name,
            user,
            receive,
            send,
            membership,
            dry_run,
        } => {
            center_bus::wire::check_service_name(name).map_err(anyhow::Error::msg)?;
            let grant = Grant {
                service: name.clone(),
                uid: resolve_user(user)?,
                receive: patterns(receive, "--receive")?,
                send: patterns(send, "--send")?,
                membership: *membership,
            };
            if *dry_run {
                return report(cli, &grant, "would be approved (dry run)");
            }
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            client
                .admin(AdminOp::Approve {
                    grant: grant.clone(),
                })
                .await?;
            report(cli, &grant, "approved")
        }
        ServiceCommand::List => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            let grants = client.admin(AdminOp::List {}).await?.grants;
            if cli.json {
                output::json(&serde_json::json!({ "services": grants }))?;
            } else {
                let rows: Vec<Vec<String>> = grants
                    .iter()
                    .map(|g| {
                        vec![
                            g.service.clone(),
                            user_label(g.uid),
                            join(&g.receive),
                            join(&g.send),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "USER", "RECEIVE", "SEND"], &rows)?;
            }
            Ok(())
        }
        ServiceCommand::Revoke { name, dry_run } => {
            let mut client = connect(cli, "centerctl", PATIENCE).await?;
            if *dry_run {
                let grants = client.admin(AdminOp::List {}).await?.grants;
                if !grants.iter().any(|g| &g.service == name) {
                    bail!("service `{name}` has no grant on this peer");
                }
                println!("service/{name} would be revoked (dry run)");
                return Ok(());
            }
            client
                .admin(AdminOp::Revoke {
                    service: name.clone(),
                })
                .await?;
            if cli.json {
                output::json(&serde_json::json!({ "service": name, "revoked": true }))?;
            } else {
                println!("service/{name} revoked");
            }
            Ok(())
        }
    }
}

fn report(cli: &Cli, grant: &Grant, verb: &str) -> anyhow::Result<()> {
    if cli.json {
        output::json(&serde_json::json!({ "grant": grant, "status": verb }))?;
    } else {
        println!(
            "service/{} {verb}: user {} receives [{}] sends [{}]",
            grant.service,
            user_label(grant.uid),
            join(&grant.receive),
            join(&grant.send)
        );
    }
    Ok(())
}

fn patterns(texts: &[String], flag: &str) -> anyhow::Result<Vec<Pattern>> {
    texts
        .iter()
        .map(|t| Pattern::parse(t).with_context(|| format!("bad {flag} pattern")))
        .collect()
}

/// A user name or a numeric uid.
fn resolve_user(user: &str) -> anyhow::Result<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) => Ok(found.uid.as_raw()),
        Ok(None) => bail!(
            "no Unix account named `{user}` on this machine (give a uid to approve one that does not exist yet)"
        ),
        Err(err) => bail!("cannot look up account `{user}`: {err}"),
    }
}

fn user_label(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{}({uid})", user.name),
        _ => uid.to_string(),
    }
}

fn join(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(Pattern::as_str)
        .collect::<Vec<_>>()
        .join(",")
}
