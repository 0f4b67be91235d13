//! Periodic sync, state machine → archive. Each round, for every group
//! this node leads:
//!
//! ```text
//!  ShardState.unarchived ──copy (read lock)──> buckets + events ──> archive
//!        ▲                                                            │ ok
//!        └──── Command::ArchiveTaken [(tenant, changes, upto)] via Raft ◄──┘
//! ```
//!
//! The acknowledgement names a position, not "nothing changed": a tenant
//! that changed while the round ran stays listed only for what came after
//! the copy (from its latest copied stamp on), so a tenant that is always
//! busy still has a lag of about one round. Each round takes the tenants
//! waiting longest first, so no tenant waits behind more than
//! [`MAX_TENANTS_PER_ROUND`] others per round.
//!
//! Nothing is queued outside the replicated state: what the archive has
//! not taken stays listed in `unarchived` (one entry per tenant, however
//! long the archive is away), so a slow or down archive costs the hot path
//! nothing, and a new leader resumes where the old one stopped. Writes are
//! upserts of totals and of numbered events, so a round repeated after a
//! failure doubles nothing. The group's Raft snapshot is archived too,
//! whenever a newer one exists.
use super::{Archive, SnapshotRecord, UsageBucket};
use crate::audit::AuditEvent;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::TenantId;
use crate::raft::{ArchiveAck, Command, stored_snapshot};
use crate::shard::Shard;
use crate::storage::Store;

/// Most tenants one round takes from a group: bounds the time the state
/// lock is held while copying, and the size of the acknowledging entry.
pub const MAX_TENANTS_PER_ROUND: usize = 2_000;

/// What one round did for one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRound {
    pub group: u64,
    pub tenants: usize,
    pub buckets: usize,
    pub events: usize,
    /// Log index of the snapshot archived this round, if one was.
    pub snapshot: Option<u64>,
    /// Tenants still waiting after this round.
    pub pending: usize,
    /// Age of the oldest change not archived after this round, ms.
    pub lag_ms: i64,
    /// Tenants whose whole history and chain went this round (listed from
    /// the beginning of time: moved in, or restored).
    pub whole: Vec<TenantId>,
}

/// A tenant's changes taken for the archive.
struct Pending {
    ack: ArchiveAck,
    buckets: Vec<UsageBucket>,
    events: Vec<AuditEvent>,
    /// Listed from the beginning of time: its whole history and chain.
    whole: bool,
}

/// Copy up to [`MAX_TENANTS_PER_ROUND`] tenants' unarchived changes.
fn take(shard: &Shard) -> Result<(Vec<Pending>, Option<u64>), EngineError> {
    let applied = shard
        .group
        .raft
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index);
    let state = shard.group.state.read().map_err(|_| EngineError::Raft {
        group: shard.group.id,
        message: "state lock poisoned".into(),
    })?;
    let total = state.unarchived.len();
    // Longest waiting first (ties by id, so every replica-led round would
    // pick alike).
    let mut waiting: Vec<(i64, TenantId)> = state
        .unarchived
        .iter()
        .map(|(t, u)| (u.since_ms, *t))
        .collect();
    if waiting.len() > MAX_TENANTS_PER_ROUND {
        waiting.select_nth_unstable(MAX_TENANTS_PER_ROUND);
        waiting.truncate(MAX_TENANTS_PER_ROUND);
    }
    let mut out = Vec::with_capacity(waiting.len());
    for (_, tenant) in &waiting {
        let u = &state.unarchived[tenant];
        let buckets = state
            .usage
            .get(tenant)
            .map(|h| {
                h.buckets_since(u.since_ms)
                    .into_iter()
                    .map(|(granularity, quota, start_ms, amount)| UsageBucket {
                        tenant: *tenant,
                        quota: quota.to_string(),
                        granularity,
                        start_ms,
                        amount,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let events = state
            .audit
            .get(tenant)
            .map(|a| a.events_since(u.since_ms))
            .unwrap_or_default();
        // Every change copied is stamped at or before this.
        let upto_ms = state
            .tenants
            .get(tenant)
            .map(|t| t.last_at_ms)
            .into_iter()
            .chain(state.audit.get(tenant).and_then(|a| a.last_at_ms()))
            .max()
            .unwrap_or(u.since_ms);
        out.push(Pending {
            ack: ArchiveAck {
                tenant: *tenant,
                changes: u.changes,
                upto_ms,
            },
            buckets,
            events,
            whole: u.since_ms == i64::MIN,
        });
    }
    // The sync position is only meaningful once nothing before it waits.
    let complete = total <= MAX_TENANTS_PER_ROUND;
    Ok((out, applied.filter(|_| complete)))
}

/// Whether the tenant's own archive schema holds a snapshot of `group`
/// with the tenant in it.
pub(crate) async fn held_by_own_snapshot(
    shared: &dyn Archive,
    tenant: TenantId,
    group: u64,
) -> Result<bool, EngineError> {
    let own = shared.dedicated(tenant).await?;
    let Some(snap) = super::records::newest_snapshot(own.as_ref(), group).await? else {
        return Ok(false);
    };
    Ok(super::records::decode(&snap)?.tenants.contains_key(&tenant))
}

/// Every quota name a tenant has usage or a policy for, in the group's
/// state.
pub(crate) fn quota_names(shard: &Shard, tenant: TenantId) -> Result<Vec<String>, EngineError> {
    let state = shard.group.state.read().map_err(|_| EngineError::Raft {
        group: shard.group.id,
        message: "state lock poisoned".into(),
    })?;
    Ok(super::records::quota_names_of(
        state.tenants.get(&tenant).map(|t| &**t),
        state.usage.get(&tenant),
    ))
}

/// One round for one group this node leads.
pub async fn sync_group(
    archive: &dyn Archive,
    shard: &Shard,
    store: &Store,
    archived_snapshot: &mut Option<u64>,
    now_ms: i64,
) -> Result<SyncRound, EngineError> {
    let group = shard.group.id;
    let (pending, applied) = take(shard)?;
    let mut round = SyncRound {
        group,
        tenants: pending.len(),
        ..Default::default()
    };
    let buckets: Vec<UsageBucket> = pending
        .iter()
        .flat_map(|p| p.buckets.iter().cloned())
        .collect();
    round.buckets = buckets.len();
    archive.put_usage(&buckets).await?;
    for p in &pending {
        if !p.events.is_empty() {
            archive.put_audit(p.ack.tenant, &p.events).await?;
            round.events += p.events.len();
        }
    }
    // Written whole, acknowledged or not.
    round.whole = pending
        .iter()
        .filter(|p| p.whole)
        .map(|p| p.ack.tenant)
        .collect();
    if !pending.is_empty() {
        let acks = pending.into_iter().map(|p| p.ack).collect();
        shard
            .group
            .write(Command::ArchiveTaken(Since(acks)))
            .await?;
    }
    if let Some(index) = applied {
        archive.set_synced_to(group, index).await?;
    }
    let snap_store = store.clone();
    let snapshot = tokio::task::spawn_blocking(move || stored_snapshot(&snap_store, group))
        .await
        .map_err(|e| EngineError::Raft {
            group,
            message: format!("reading the snapshot failed: {e}"),
        })??;
    if let Some((log_id, data)) = snapshot
        && *archived_snapshot != Some(log_id.index)
    {
        archive
            .put_snapshot(&SnapshotRecord {
                group,
                last_index: log_id.index,
                last_term: log_id.leader_id.term,
                taken_at_ms: now_ms,
                data,
            })
            .await?;
        *archived_snapshot = Some(log_id.index);
        round.snapshot = Some(log_id.index);
    }
    let state = shard.group.state.read().map_err(|_| EngineError::Raft {
        group,
        message: "state lock poisoned".into(),
    })?;
    round.pending = state.unarchived.len();
    round.lag_ms = state
        .unarchived
        .values()
        .map(|u| u.since_ms)
        // A tenant moved in is listed from the beginning of time.
        .filter(|s| *s > i64::MIN)
        .min()
        .map_or(0, |oldest| now_ms.saturating_sub(oldest).max(0));
    Ok(round)
}

pub(crate) fn report(r: &SyncRound) {
    let group = r.group.to_string();
    metrics::gauge!(crate::telemetry::ARCHIVE_PENDING, "group" => group.clone())
        .set(r.pending as f64);
    metrics::gauge!(crate::telemetry::ARCHIVE_LAG, "group" => group).set(r.lag_ms as f64 / 1000.0);
    metrics::counter!(crate::telemetry::ARCHIVE_SYNCED_TENANTS).increment(r.tenants as u64);
}
