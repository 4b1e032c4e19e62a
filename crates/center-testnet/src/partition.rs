//! Partitions of the test network: the peers split into groups that cannot
//! reach each other, by nftables rules on their addresses (each peer binds
//! its own 127.x.y.z, for listening and for dialing). Packets from a peer
//! of one group to a peer of another are dropped, not refused, as a cut
//! cable would: connections time out. A peer named in no group is cut from
//! nobody.
//!
//! The rules live in one nftables table per network, named from the
//! network's directory, so `heal` and `down` remove them from any process,
//! also after the process that cut the network crashed. Nothing else is
//! touched. The DHT's dials leave from 127.0.0.1 (libp2p binds no source
//! address) and are not cut; the feeds, direct messages and sessions are.

use std::{
    io::Write,
    net::IpAddr,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::Testnet;

/// The nftables table of the network in `dir`: a stable FNV-1a hash of the
/// directory's path, so any build of this crate finds it again.
pub fn table_name(dir: &std::path::Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("center_testnet_{hash:016x}")
}

/// The nftables script that replaces the table with one cutting `groups`
/// (each a list of addresses) from each other.
pub fn rules(table: &str, groups: &[Vec<IpAddr>]) -> String {
    let set = |addrs: &[IpAddr]| {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        format!("{{ {} }}", list.join(", "))
    };
    let mut script = format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  chain cut {{\n    type filter hook output priority 0; policy accept;\n"
    );
    for (i, from) in groups.iter().enumerate() {
        for (j, to) in groups.iter().enumerate() {
            if i != j && !from.is_empty() && !to.is_empty() {
                script.push_str(&format!(
                    "    ip saddr {} ip daddr {} drop\n",
                    set(from),
                    set(to)
                ));
            }
        }
    }
    script.push_str("  }\n}\n");
    script
}

/// Reads `A,B / C` (groups of peer names split by `/`, names by `,`) from
/// command-line words.
pub fn parse_groups(words: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let joined = words.join(" ");
    let groups: Vec<Vec<String>> = joined
        .split('/')
        .map(|group| {
            group
                .split([',', ' '])
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        bail!("give two groups of peers or more, split by `/`: `alpha,bravo / charlie`");
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in groups.iter().flatten() {
        if !seen.insert(name.as_str()) {
            bail!("`{name}` is in two groups");
        }
    }
    Ok(groups)
}

fn nft(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft (Debian package nftables; partitions need root)")?;
    child
        .stdin
        .take()
        .context("nft has no standard input")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Testnet {
    /// Cuts the peers of each group (by name) from the peers of every
    /// other group, replacing any partition in force.
    pub fn partition(&self, groups: &[Vec<String>]) -> anyhow::Result<()> {
        let addresses = groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|name| Ok(self.peer(name)?.addr.ip()))
                    .collect::<anyhow::Result<Vec<IpAddr>>>()
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        nft(&rules(&table_name(self.dir()), &addresses))
    }

    /// Removes every rule of this network's partition (none is no error).
    pub fn heal(&self) -> anyhow::Result<()> {
        let table = table_name(self.dir());
        // Adding first makes the delete succeed when there is no table.
        nft(&format!("table inet {table}\ndelete table inet {table}\n"))
    }

    /// Whether a partition is in force.
    pub fn partitioned(&self) -> bool {
        Command::new("nft")
            .args(["list", "table", "inet", &table_name(self.dir())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_and_checked() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse_groups(&words("alpha,bravo / charlie")).unwrap(),
            vec![vec!["alpha", "bravo"], vec!["charlie"]]
        );
        assert_eq!(
            parse_groups(&words("alpha/bravo/charlie")).unwrap().len(),
            3
        );
        assert!(parse_groups(&words("alpha,bravo")).is_err());
        assert!(parse_groups(&words("alpha / ")).is_err());
        let err = parse_groups(&words("alpha / alpha")).unwrap_err();
        assert!(err.to_string().contains("two groups"), "{err}");
    }

    #[test]
    fn each_group_is_cut_from_the_others_both_ways() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let script = rules(
            "t",
            &[
                vec![ip("127.0.0.2"), ip("127.0.0.3")],
                vec![ip("127.0.0.4")],
            ],
        );
        assert!(script.contains("ip saddr { 127.0.0.2, 127.0.0.3 } ip daddr { 127.0.0.4 } drop"));
        assert!(script.contains("ip saddr { 127.0.0.4 } ip daddr { 127.0.0.2, 127.0.0.3 } drop"));
        assert_eq!(script.matches("drop").count(), 2);
        // The table is replaced, never added to.
        assert!(script.starts_with("table inet t\ndelete table inet t\n"));
        assert_eq!(
            table_name(std::path::Path::new("/tmp/x")),
            table_name(std::path::Path::new("/tmp/x"))
        );
        assert_ne!(
            table_name(std::path::Path::new("/tmp/x")),
            table_name(std::path::Path::new("/tmp/y"))
        );
    }
}
