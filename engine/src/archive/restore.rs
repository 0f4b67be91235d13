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
use super::{Archive, SnapshotRecord, UsageBucket};
use crate::audit::{AuditEvent, AuditLog};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::model::{QuotaKind, TenantId};
use crate::raft::{Command, GroupState, MetaOp, MovedTenant};
use crate::usage_history::{Granularity, UsageHistory};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

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
struct Found {
    moved: MovedTenant,
    /// From its own schema; held live (not a hand-over copy); archived at.
    rank: (bool, bool, i64),
}

/// Keep the better of two finds.
fn offer(found: &mut BTreeMap<TenantId, Found>, candidate: Found) {
    let tenant = candidate.moved.tenant;
    if found.get(&tenant).is_none_or(|f| f.rank < candidate.rank) {
        found.insert(tenant, candidate);
    }
}

/// A group's newest archived snapshot, if any.
pub(crate) async fn newest_snapshot(
    archive: &dyn Archive,
    group: u64,
) -> Result<Option<SnapshotRecord>, EngineError> {
    Ok(archive.snapshots(group).await?.into_iter().next())
}

pub(crate) fn decode(snap: &SnapshotRecord) -> Result<GroupState, EngineError> {
    crate::format::decode(&snap.data).map_err(|e| {
        super::ArchiveError::Corrupt {
            what: "snapshot",
            message: format!("group {} at {}: {e}", snap.group, snap.last_index),
        }
        .into()
    })
}

/// The tenants a snapshot holds live, with their history and chain.
fn live_tenants(state: &mut GroupState) -> Vec<MovedTenant> {
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

impl Engine {
    /// Rebuild tenants from `archive` into this (normally fresh) cluster.
    pub async fn restore_from_archive(
        &self,
        archive: &dyn Archive,
    ) -> Result<RestoreReport, EngineError> {
        let mut report = RestoreReport::default();
        // Dedicated tenants first found, restored last: a hand-over copy in
        // one group may be outranked by a later group or their own schema.
        let mut dedicated: BTreeMap<TenantId, Found> = BTreeMap::new();
        let mut own: BTreeMap<TenantId, Arc<dyn Archive>> = BTreeMap::new();
        // Purged in their own group: older copies must not bring them back.
        let mut purged = HashSet::new();
        for schema in archive.dedicated_schemas().await? {
            let theirs = archive.dedicated(schema.tenant).await?;
            for group in theirs.snapshot_groups().await? {
                let Some(snap) = newest_snapshot(theirs.as_ref(), group).await? else {
                    continue;
                };
                report.snapshots.push((group, snap.last_index));
                let mut state = decode(&snap)?;
                for moved in live_tenants(&mut state) {
                    let rank = (true, true, snap.taken_at_ms);
                    offer(&mut dedicated, Found { moved, rank });
                }
                // A chain without its tenant: purged (the chain stays).
                purged.extend(state.audit.into_keys());
            }
            own.insert(schema.tenant, theirs);
        }
        let (mut restored, mut left_out) = (HashSet::new(), HashSet::new());
        for group in archive.snapshot_groups().await? {
            let Some(snap) = newest_snapshot(archive, group).await? else {
                continue;
            };
            report.snapshots.push((group, snap.last_index));
            let mut state = decode(&snap)?;
            for moved in live_tenants(&mut state) {
                if own.contains_key(&moved.tenant) {
                    let rank = (false, true, snap.taken_at_ms);
                    offer(&mut dedicated, Found { moved, rank });
                    continue;
                }
                let tenant = moved.tenant;
                if self
                    .restore_archived(&[archive], moved, false, &mut report)
                    .await?
                {
                    restored.insert(tenant);
                } else {
                    left_out.insert(tenant);
                }
            }
            for (_, moved) in state.moved {
                let rank = (false, false, snap.taken_at_ms);
                offer(&mut dedicated, Found { moved, rank });
            }
        }
        for (tenant, found) in dedicated {
            // Held live in a shared group: an archive from before dedicated
            // schemas, where its dedicated group's snapshot went there.
            if restored.contains(&tenant) || left_out.contains(&tenant) {
                continue;
            }
            if purged.contains(&tenant) {
                left_out.insert(tenant);
                continue;
            }
            let mut sources = vec![archive];
            if let Some(theirs) = own.get(&tenant) {
                sources.push(theirs.as_ref());
            }
            if !self
                .restore_archived(&sources, found.moved, true, &mut report)
                .await?
            {
                left_out.insert(tenant);
            }
        }
        report.purged = left_out.len();
        Ok(report)
    }

    /// Bring one tenant's state forward by what `sources` archived after
    /// it (the shared schema, and its own), then back in; unless the
    /// archived chain says it was purged since. Whether it came back.
    async fn restore_archived(
        &self,
        sources: &[&dyn Archive],
        moved: MovedTenant,
        dedicated: bool,
        report: &mut RestoreReport,
    ) -> Result<bool, EngineError> {
        let tenant = moved.tenant;
        let now = self.now_ms();
        let since = usage_window_start(&moved);
        let quotas = super::sync::quota_names_of(Some(&moved.state), moved.usage.as_ref());
        let mut usage = Vec::new();
        // By sequence number: a chain may be split between the schemas.
        let mut audit = BTreeMap::new();
        for source in sources {
            for q in &quotas {
                for g in [Granularity::Hour, Granularity::Day] {
                    usage.extend(source.usage(tenant, q, g, since, now + 86_400_000).await?);
                }
            }
            for e in source.audit(tenant, 0, usize::MAX).await? {
                audit.entry(e.seq).or_insert(e);
            }
        }
        let audit: Vec<AuditEvent> = audit.into_values().collect();
        if audit
            .last()
            .is_some_and(|e| e.action == crate::raft::TENANT_PURGED)
        {
            return Ok(false);
        }
        // Hourly first in time order, so counters roll forward in order.
        usage.sort_by_key(|b| (b.start_ms, b.granularity == Granularity::Day));
        let (mut moved, added, audit_added) = merge_tenant(moved, &usage, &audit);
        report.usage_added += added;
        report.audit_added += audit_added;
        self.bring_back(&mut moved, now, dedicated).await?;
        report.tenants += 1;
        report.dedicated += usize::from(dedicated);
        Ok(true)
    }

    /// Claim the tenant's slug and domains, then move it into its group (a
    /// dedicated one, pinned, if it had one).
    async fn bring_back(
        &self,
        moved: &mut MovedTenant,
        now: i64,
        dedicated: bool,
    ) -> Result<(), EngineError> {
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
        if dedicated {
            moved.to_group = self.dedicated_group(tenant).await?;
            return self.move_in(moved.clone()).await;
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
