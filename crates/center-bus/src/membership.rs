//! The control protocol of peerd (CEP 7): what `centerctl peer …` asks the
//! membership daemon over its Unix socket (`[membership] control_socket`),
//! one request and one answer per connection, each a JSON object on one
//! line. Only root (and peerd's own account) may speak; the kernel says
//! who is speaking.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest request or answer line.
pub const MAX_CONTROL_LINE: usize = 1 << 20;

/// A request to peerd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ControlRequest {
    /// Records an invitation whose secret centerctl wrote to `file` in
    /// `admin`'s home; `for_peer` makes it a challenge for one requester.
    Invite {
        admin: String,
        file: String,
        secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_peer: Option<String>,
    },
    /// The requests waiting for the sysadmin.
    Requests {},
    /// Trusts a waiting peer (and, for a join request, answers it).
    Approve { uuid: String },
    /// Drops a waiting request.
    Reject { uuid: String },
    /// Asks to join the network through the peer at `via`.
    Join {
        via: String,
        uuid: String,
        fingerprint: String,
        admin: String,
        secret_file: String,
        secret: String,
    },
    /// Stops trusting a peer, here only.
    Remove { uuid: String, reason: String },
    /// Announces that this peer retires from the network.
    Leave { reason: String },
    /// Announces that a peer is expelled from the network (governance).
    Excommunicate { uuid: String, reason: String },
    /// What peerd knows: joins asked for, departed peers, its DHT node.
    Status {},
}

/// peerd's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlReply {
    pub ok: bool,
    /// What happened, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it failed, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The document asked for (`requests`, `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ControlReply {
    pub fn done(message: impl Into<String>) -> ControlReply {
        ControlReply {
            ok: true,
            message: Some(message.into()),
            error: None,
            data: None,
        }
    }

    pub fn data(data: Value) -> ControlReply {
        ControlReply {
            ok: true,
            message: None,
            error: None,
            data: Some(data),
        }
    }

    pub fn failed(error: impl Into<String>) -> ControlReply {
        ControlReply {
            ok: false,
            message: None,
            error: Some(error.into()),
            data: None,
        }
    }
}
