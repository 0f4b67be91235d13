//! Restore from the archive: each group's newest archived snapshot, plus
//! the usage and audit archived after it.
//!
//! Tenants are re-created in the target cluster as moved-in tenants
//! (`Command::MoveIn`, idempotent) in whatever group the target cluster
//! places them, with their slugs and custom domains claimed again, so a
//! restore works into a fresh node or a whole (fresh) cluster, and can be
//! run again after an interruption.
//!
//! What a snapshot does not hold is not restored, except usage and audit:
//! descriptive changes made after the newest archived snapshot are lost
//! (snapshots are archived as the groups take them, see `sync`).
use super::{Archive, SnapshotRecord, UsageBucket};
use crate::audit::{AuditEvent, AuditLog};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::model::QuotaKind;
use crate::raft::{Command, GroupState, MetaOp, MovedTenant};
use crate::usage_history::{Granularity, UsageHistory};

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

impl Engine {
    /// Rebuild tenants from `archive` into this (normally fresh) cluster.
    pub async fn restore_from_archive(
        &self,
        archive: &dyn Archive,
    ) -> Result<RestoreReport, EngineError> {
        let mut report = RestoreReport::default();
        for group in archive.snapshot_groups().await? {
            let Some(snap) = archive.snapshots(group).await?.into_iter().next() else {
                continue;
            };
            report.snapshots.push((group, snap.last_index));
            self.restore_group(archive, &snap, &mut report).await?;
        }
        Ok(report)
    }

    async fn restore_group(
        &self,
        archive: &dyn Archive,
        snap: &SnapshotRecord,
        report: &mut RestoreReport,
    ) -> Result<(), EngineError> {
        let mut state: GroupState =
            postcard::from_bytes(&snap.data).map_err(|e| super::ArchiveError::Corrupt {
                what: "snapshot",
                message: format!("group {} at {}: {e}", snap.group, snap.last_index),
            })?;
        let now = self.now_ms();
        // Buckets that may have grown after the snapshot was taken.
        let since = snap.taken_at_ms.saturating_sub(26 * 3_600_000);
        for (tenant, ts) in std::mem::take(&mut state.tenants) {
            let moved = MovedTenant {
                tenant,
                to_group: 0,
                state: *ts,
                audit: state.audit.remove(&tenant),
                usage: state.usage.remove(&tenant),
            };
            let mut quotas: Vec<String> = moved.state.quotas.keys().map(str::to_string).collect();
            if let Some(h) = &moved.usage {
                quotas.extend(
                    h.buckets_since(i64::MIN)
                        .into_iter()
                        .map(|(_, q, _, _)| q.to_string()),
                );
            }
            quotas.sort();
            quotas.dedup();
            let mut usage = Vec::new();
            for q in &quotas {
                for g in [Granularity::Hour, Granularity::Day] {
                    usage.extend(archive.usage(tenant, q, g, since, now + 86_400_000).await?);
                }
            }
            // Hourly first in time order, so counters roll forward in order.
            usage.sort_by_key(|b| (b.start_ms, b.granularity == Granularity::Day));
            let audit = archive.audit(tenant, 0, usize::MAX).await?;
            let (mut moved, added, audit_added) = merge_tenant(moved, &usage, &audit);
            report.usage_added += added;
            report.audit_added += audit_added;
            self.bring_back(&mut moved, now).await?;
            report.tenants += 1;
        }
        Ok(())
    }

    /// Claim the tenant's slug and domains, then move it into its group.
    async fn bring_back(&self, moved: &mut MovedTenant, now: i64) -> Result<(), EngineError> {
        let tenant = moved.tenant;
        self.claim_slug(&moved.state.tenant.slug, tenant, now)
            .await?;
        for domain in moved.state.domains.keys() {
            let claim = Command::Meta(MetaOp::ClaimDomain {
                domain: domain.clone(),
                tenant,
                at_ms: now,
                replacing: None,
            });
            self.meta_write(claim).await?;
        }
        let group = self.group_of(&tenant);
        moved.to_group = group;
        let write = crate::cluster::forward::ForwardRequest::GroupWrite {
            group,
            cmd: Command::MoveIn(Box::new(moved.clone())),
        };
        self.dispatch(group, write, true).await?;
        Ok(())
    }
}
