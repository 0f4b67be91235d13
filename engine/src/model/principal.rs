//! A verified data-plane caller together with what proved it. A node that
//! forwards a call to the tenant's leader sends this along, and the leader
//! checks it again against its own clock and its own copy of the tenant's
//! keys (see `cluster::principal`): a key revoked there stops at once, and
//! no node can act beyond what the credential allowed where it arrived.
use super::Caller;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub caller: Caller,
    /// When the credential stops being valid, in Unix milliseconds: a
    /// token's `exp`, a key's expiry or the end of a rotated secret's grace.
    pub expires_at_ms: Option<i64>,
    /// The API key presented, if it was one.
    pub key: Option<KeyProof>,
}

/// Which API key was presented, and the hash of the secret that came with
/// it (never the secret): the leader finds the key in the tenant's state
/// and asks whether that secret still opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProof {
    pub id: String,
    pub hash: [u8; 32],
}

impl Principal {
    /// Anyone, on a node whose data-plane authentication is off.
    pub fn anonymous() -> Principal {
        Principal {
            caller: Caller::Anonymous,
            expires_at_ms: None,
            key: None,
        }
    }

    /// A platform service acting without a credential of its own: the
    /// node's own tools and benches, which hold the engine in process.
    pub fn platform(name: &str) -> Principal {
        Principal {
            caller: Caller::Platform {
                name: name.to_string(),
                operator: false,
            },
            expires_at_ms: None,
            key: None,
        }
    }
}
