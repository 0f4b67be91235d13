use super::Archive;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::raft::ShardState;
use crate::usage_history::Granularity;
use serde::{Deserialize, Serialize};

/// One usage bucket's total: what `quota` of `tenant` consumed in the hour
/// or day starting at `start_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBucket {
    pub tenant: TenantId,
    pub quota: String,
    pub granularity: Granularity,
    pub start_ms: i64,
    pub amount: u64,
}

/// A tenant's schema of its own, as registered in the deployment's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedicatedSchema {
    pub tenant: TenantId,
    /// The keyspace (scylla) or file (embedded) that holds it.
    pub name: String,
    pub created_at_ms: i64,
}

/// A group's state machine snapshot as of one applied log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub group: u64,
    /// Log index and term of the last entry it includes.
    pub last_index: u64,
    pub last_term: u64,
    pub taken_at_ms: i64,
    /// The serialized group state (as in the node's own snapshots).
    pub data: Vec<u8>,
}

impl UsageBucket {
    /// Raw buckets are kept as long as the state machine keeps them
    /// (hourly 35 days, daily 400 days); after that an archive drops them.
    pub fn expires_at_ms(&self) -> i64 {
        self.start_ms.saturating_add(match self.granularity {
            Granularity::Hour => crate::usage_history::HOURLY_RETENTION_MS,
            Granularity::Day => crate::usage_history::DAILY_RETENTION_MS,
        })
    }
}

pub(crate) fn granularity_code(g: Granularity) -> u8 {
    match g {
        Granularity::Hour => 0,
        Granularity::Day => 1,
    }
}

/// A group's newest archived snapshot, if any.
pub(crate) async fn newest_snapshot(
    archive: &dyn Archive,
    group: u64,
) -> Result<Option<SnapshotRecord>, EngineError> {
    Ok(archive.snapshots(group).await?.into_iter().next())
}

pub(crate) fn decode(snap: &SnapshotRecord) -> Result<ShardState, EngineError> {
    decode_as(snap)
}

/// An archived snapshot's meta part (the meta group's own snapshots).
pub(crate) fn decode_meta(snap: &SnapshotRecord) -> Result<crate::raft::MetaState, EngineError> {
    decode_as(snap)
}

fn decode_as<T: serde::de::DeserializeOwned>(snap: &SnapshotRecord) -> Result<T, EngineError> {
    crate::format::decode(&snap.data).map_err(|e| {
        super::ArchiveError::Corrupt {
            what: "snapshot",
            message: format!("group {} at {}: {e}", snap.group, snap.last_index),
        }
        .into()
    })
}

/// The quotas a tenant has a policy for or usage of, sorted.
pub(crate) fn quota_names_of(
    state: Option<&crate::quota::TenantState>,
    usage: Option<&crate::usage_history::UsageHistory>,
) -> Vec<String> {
    let mut names: Vec<String> = state
        .map(|t| t.quotas.keys().map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(h) = usage {
        names.extend(
            h.buckets_since(i64::MIN)
                .into_iter()
                .map(|(_, q, _, _)| q.to_string()),
        );
    }
    names.sort();
    names.dedup();
    names
}
