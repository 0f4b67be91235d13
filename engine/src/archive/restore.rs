//! Restore from the archive: each group's newest archived snapshot, plus
//! the usage and audit archived after it.
//!
//! Tenants are re-created in the target cluster as moved-in tenants
//! (`Command::MoveIn`, idempotent) in whatever group the target cluster
//! places them, with their slugs and custom domains claimed again, so a
//! restore works into a fresh node or a whole (fresh) cluster, and can be
//! run again after an interruption.
//!
//! Dedicated tenants (those with a schema of their own in the registry,
//! or handed over to a dedicated group in a snapshot) come back into a
//! dedicated group, from the best state found for them:
//!
//! ```text
//!  their own schema's snapshot  >  a shared snapshot holding them live
//!                               >  a shared snapshot's hand-over copy
//! ```
//! (newer first within each), with usage and audit from both schemas.
//!
//! What a snapshot does not hold is not restored, except usage and audit:
//! descriptive changes made after the newest archived snapshot are lost
//! (snapshots are archived as the groups take them, see `sync`).
use super::UsageBucket;
use crate::audit::{AuditEvent, AuditLog};
use crate::model::{QuotaKind, TenantId};
use crate::raft::{MovedTenant, ShardState};
use crate::usage_history::{Granularity, UsageHistory};
use std::collections::BTreeMap;

const HOUR_MS: i64 = 3_600_000;

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Archived groups read, with the log index of the snapshot used.
    pub snapshots: Vec<(u64, u64)>,
    pub tenants: usize,
    /// Usage added on top of the snapshots (units, all tenants).
    pub usage_added: u64,
    /// Audit events beyond the snapshots.
    pub audit_added: usize,
    /// Tenants brought back into a dedicated group.
    pub dedicated: usize,
    /// Tenants found in a snapshot but purged after it: left out.
    pub purged: usize,
    /// Sharing policies brought back (with their requests and grants).
    pub sharing_policies: usize,
}

/// Where archived usage that may postdate a tenant's snapshot starts: the
/// snapshot holds everything stamped up to its newest hourly bucket or
/// audit event, so later usage lands in buckets from then on; 26 hours
/// earlier covers the longest day and leaders whose clocks disagree. Not
/// the snapshot's archive time: an archive that was away took it late.
/// A tenant with neither is read whole. Pure.
pub fn usage_window_start(moved: &MovedTenant) -> i64 {
    let bucket = moved.usage.as_ref().and_then(UsageHistory::newest_hour);
    let event = moved.audit.as_ref().and_then(AuditLog::last_at_ms);
    match bucket.max(event) {
        Some(marker) => marker.saturating_sub(26 * HOUR_MS),
        None => i64::MIN,
    }
}

/// A dedicated tenant's state as found in one snapshot.
pub(crate) struct Found {
    pub moved: MovedTenant,
    /// From its own schema; held live (not a hand-over copy); archived at.
    pub rank: (bool, bool, i64),
}

/// Keep the better of two finds.
pub(crate) fn offer(found: &mut BTreeMap<TenantId, Found>, candidate: Found) {
    let tenant = candidate.moved.tenant;
    if found.get(&tenant).is_none_or(|f| f.rank < candidate.rank) {
        found.insert(tenant, candidate);
    }
}

/// The tenants a snapshot holds live, with their history and chain.
pub(crate) fn live_tenants(state: &mut ShardState) -> Vec<MovedTenant> {
    std::mem::take(&mut state.tenants)
        .into_iter()
        .map(|(tenant, ts)| MovedTenant {
            tenant,
            to_group: 0,
            state: *ts,
            audit: state.audit.remove(&tenant),
            usage: state.usage.remove(&tenant),
        })
        .collect()
}

/// A tenant as of its snapshot, brought forward by what the archive holds
/// since: usage buckets raised to their archived totals (and each counter's
/// current period raised by the same), and the archived audit chain when
/// it extends the snapshot's. Pure.
pub fn merge_tenant(
    mut moved: MovedTenant,
    archived_usage: &[UsageBucket],
    archived_audit: &[AuditEvent],
) -> (MovedTenant, u64, usize) {
    let tz = moved.state.tenant.timezone;
    let history = moved.usage.get_or_insert_with(UsageHistory::default);
    let mut added_total = 0;
    for b in archived_usage {
        let added = history.raise(b.granularity, &b.quota, b.start_ms, b.amount);
        if b.granularity != Granularity::Hour || added == 0 {
            continue;
        }
        added_total += added;
        if let Some(q) = moved.state.quotas.get_mut(&b.quota)
            && q.policy.kind == QuotaKind::Counter
        {
            // A bucket of a later period starts that period first.
            q.roll(tz, b.start_ms);
            if (q.window_start_ms..q.window_end_ms).contains(&b.start_ms) {
                q.used += added;
            }
        }
    }
    let in_snapshot = moved.audit.as_ref().map_or(0, |a| a.len());
    let mut audit_added = 0;
    if archived_audit.len() > in_snapshot {
        let prefix_matches = moved
            .audit
            .as_ref()
            .is_none_or(|a| a.events().as_slice() == &archived_audit[..in_snapshot]);
        if prefix_matches && let Ok(log) = AuditLog::from_events(archived_audit) {
            audit_added = archived_audit.len() - in_snapshot;
            moved.audit = Some(log);
        }
    }
    (moved, added_total, audit_added)
}
