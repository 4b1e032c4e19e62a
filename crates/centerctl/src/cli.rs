//! The command-line grammar: noun-verb commands, defined once with clap.
//! Only parsing lives here; each noun's module does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Operate a center peer: its bus, its services, its configuration.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// The peer's configuration file.
    #[arg(long, global = true, default_value = center_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Print JSON for scripts instead of tables for humans.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create this peer's identity: a UUID, an OpenPGP certificate and an Olm account.
    Init {
        /// A short name for humans (letters, digits, '.', '-').
        #[arg(long)]
        name: String,
        /// Where other peers reach this peer's dispatcher, HOST:PORT.
        #[arg(long)]
        address: String,
    },
    /// This peer's identity and the peers it trusts.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Approve, list and revoke the services allowed on the local bus.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Publish events and watch them flow on the local bus.
    #[command(subcommand)]
    Bus(BusCommand),
    /// The signed feeds this peer holds and how far other peers have them.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// This peer's health on one screen: membership, peers, feeds, uptime (root only).
    Status,
    /// Check the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The network's user accounts, as this peer's directory holds them.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Make an account on every peer, numbered from this peer's block (root only).
    Add {
        /// The account name: ^[a-z][a-z0-9]{1,31}$.
        name: String,
        /// Read the password from standard input (one line); without it the
        /// account has no usable password.
        #[arg(long)]
        password_stdin: bool,
        /// A file holding one SSH public key (authorized_keys format).
        #[arg(long)]
        ssh_key: Option<PathBuf>,
        /// The login shell.
        #[arg(long, default_value = "/bin/bash")]
        shell: String,
        /// The display name.
        #[arg(long = "name", default_value = "")]
        display_name: String,
        /// Check and show what would be published, publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a password on every peer (users: their own account only).
    Passwd {
        name: String,
        /// Read the new password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Read the current password first (one line before the new one)
        /// and sign the change with the user's key, so every peer takes it
        /// wherever it is made; without it only the account's home peer's
        /// word counts.
        #[arg(long)]
        current_password_stdin: bool,
    },
    /// Let this peer act for the user for a while (CEP 8, "Delegations"):
    /// her password (one line on standard input) signs that this peer may
    /// change her SSH keys (`keys`) and publish her shared directory
    /// (`files`) without asking for it again; a new password ends it.
    Delegate {
        name: String,
        /// How long, in hours (at most 720).
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// What this peer may do for her (repeat for both).
        #[arg(long = "scope", default_values = ["keys", "files"])]
        scopes: Vec<String>,
    },
    /// Add or remove one SSH key (users: their own account only).
    #[command(subcommand)]
    Key(KeyCommand),
    /// List the accounts this peer's directory holds.
    List,
    /// Show one account: its number, where it joined from and when.
    Show { name: String },
    /// Delete an account on every peer (root only).
    Remove {
        name: String,
        /// Check and show what would be published, publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Read the user's password (one line) and sign the deletion with
        /// her key: needed on any peer other than the account's home.
        #[arg(long)]
        current_password_stdin: bool,
    },
    /// Ban an account on this peer only (password binds and SSH keys); the
    /// reason goes to the other peers as a notice (root only).
    Ban {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift a ban on this peer (root only).
    Unban {
        name: String,
        #[arg(long, default_value = "ban lifted")]
        reason: String,
    },
    /// The ban notices other peers sent (root only).
    Notices,
    /// Print the account's SSH keys in authorized_keys format (for sshd's
    /// AuthorizedKeysCommand); nothing for an unknown or banned account.
    /// sshd gives the user's name and uid (`%u %U`): keys are printed only
    /// when the uid is the account's `uidNumber`, so a network account
    /// never speaks for a local user of the same name.
    AuthorizedKeys { name: String, uid: u32 },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key: a file holding it, or the key itself.
    Add {
        name: String,
        key: String,
        /// Read the user's password (one line) and sign the change with
        /// her key: needed on any peer other than the account's home.
        #[arg(long)]
        current_password_stdin: bool,
    },
    /// Remove a key: a file holding it, or the key itself.
    Remove {
        name: String,
        key: String,
        /// As for `add`.
        #[arg(long)]
        current_password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Print this peer's public description (what other peers add with `peer add`).
    Whoami,
    /// Trust a peer, from the description its sysadmin printed with `peer whoami --json`.
    Add {
        /// The file holding the description (`-` for standard input).
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// List the peers this peer trusts, each up, syncing or down (root only).
    List,
    /// Move this peer to another address (dispatchd stopped); other peers find it through the DHT.
    SetAddress {
        /// The new HOST:PORT other peers reach this peer's dispatcher at.
        address: String,
    },
    /// Invite a newcomer: write a secret into ADMIN's home here and print what its sysadmin needs.
    Invite {
        /// The account (on this peer) of the newcomer's sysadmin, who reads the secret.
        #[arg(long)]
        admin: String,
    },
    /// Ask to join the network through an existing peer (`peer invite` there printed the values).
    Join {
        /// The existing peer's address, HOST:PORT.
        #[arg(long)]
        via: String,
        /// The existing peer's UUID.
        #[arg(long)]
        uuid: String,
        /// The existing peer's OpenPGP fingerprint (pins its key).
        #[arg(long)]
        fingerprint: String,
        /// A copy of the invitation's secret file; its name must stay the same.
        #[arg(long)]
        secret_file: std::path::PathBuf,
        /// Your account on the existing peer, where the secret file is.
        #[arg(long)]
        admin: String,
    },
    /// List the join requests (and announced peers) waiting for approval.
    Requests,
    /// Trust a waiting peer; for a join request, answer it and hand over the roster.
    Approve { uuid: String },
    /// Drop a waiting request.
    Reject { uuid: String },
    /// Ask a requester to prove itself again with a new secret file (RFC 3's repeated challenge).
    Challenge { uuid: String },
    /// Stop trusting a peer: this peer stops talking to it and refuses its new events.
    Remove {
        uuid: String,
        /// Why, for the log.
        #[arg(long, default_value = "removed by the sysadmin")]
        reason: String,
    },
    /// Announce that this peer retires from the network.
    Leave {
        #[arg(long, default_value = "retired by its sysadmin")]
        reason: String,
    },
    /// Expel a peer from the network (every peer removes it); governance decides when.
    Excommunicate {
        uuid: String,
        #[arg(long)]
        reason: String,
    },
    /// Replace this peer's OpenPGP and Olm keys (when they may be exposed);
    /// other peers switch when they receive the announcement (CEP 7).
    RotateKeys,
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Allow a Unix account to speak for a service, receiving and sending the given event names.
    Approve {
        /// The service name (a-z, 0-9, '-').
        name: String,
        /// The Unix account (name or uid) the service runs as.
        #[arg(long)]
        user: String,
        /// Event-name patterns it may receive (`account.*`, `*`, exact names).
        #[arg(long, num_args = 1..)]
        receive: Vec<String>,
        /// Event-name patterns it may send.
        #[arg(long, num_args = 1..)]
        send: Vec<String>,
        /// Also allow it to change the roster (the membership daemon, peerd).
        #[arg(long)]
        membership: bool,
        /// Check and show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List approved services.
    List,
    /// Remove a service's grant; its connections are closed.
    Revoke {
        name: String,
        /// Check and show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BusCommand {
    /// Publish one event: a feed event, a local broadcast (--local) or a direct message (--to).
    ///
    /// Without --to the event is a feed event: signed into this peer's feed,
    /// replicated to every peer and kept there (it never expires). --local
    /// keeps it on this peer only, for the subscribers connected now, and
    /// durable nowhere. --to sends it to one peer, kept until delivered or
    /// expired.
    Publish {
        /// The event name.
        name: String,
        /// The payload, a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Send to this peer (a UUID) only, as a direct message.
        #[arg(long)]
        to: Option<String>,
        /// Lifetime in seconds (default: one day); feed events never expire.
        #[arg(long)]
        ttl: Option<u64>,
        /// Deliver to this peer's current subscribers only; keep it nowhere.
        #[arg(long, conflicts_with = "to")]
        local: bool,
        #[command(flatten)]
        speaker: Speaker,
    },
    /// Print events as they arrive.
    ///
    /// Feed events are printed with their origin and sequence number
    /// (ORIGIN#SEQ). Feed events and direct messages from other peers are
    /// kept for the account and service that tails them: a tail run again
    /// continues after the last one it printed.
    Tail {
        /// Event-name patterns (`*` for everything the grant allows).
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// The first time this account and service tails, start at the
        /// oldest feed event this peer holds instead of new ones only.
        #[arg(long)]
        from_start: bool,
        #[command(flatten)]
        speaker: Speaker,
    },
}

#[derive(Subcommand, Debug)]
pub enum FeedCommand {
    /// Per origin: head, events and bytes kept, a fork, and each peer's lag (root only).
    Status,
    /// Ends the freeze of an origin that equivocated by choosing which of
    /// its two events to keep (see `feed status`); the other branch is
    /// refused from then on (root only).
    Resolve {
        /// The origin's UUID.
        origin: String,
        /// The hash of the event to keep, as `feed status` shows it.
        #[arg(long)]
        keep: String,
    },
}

/// Which service the command speaks for on the bus.
#[derive(Args, Debug)]
pub struct Speaker {
    /// The service name to speak for (it must be approved for your account).
    #[arg(long, default_value = "centerctl")]
    pub service: String,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Parse and validate the configuration; print its main settings.
    Check,
}
