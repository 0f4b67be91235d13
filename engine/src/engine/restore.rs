//! Restore from the archive into this (normally fresh) cluster; the pure
//! parts (which snapshot wins, merging what was archived since) are in
//! `archive::restore`.
use super::Engine;
use crate::archive::restore::{
    Found, RestoreReport, live_tenants, merge_tenant, offer, usage_window_start,
};
use crate::archive::{Archive, records};
use crate::audit::AuditEvent;
use crate::cluster::ForwardRequest;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::raft::{Command, MetaOp, MovedTenant};
use crate::usage_history::Granularity;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

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
                let Some(snap) = records::newest_snapshot(theirs.as_ref(), group).await? else {
                    continue;
                };
                report.snapshots.push((group, snap.last_index));
                let mut state = records::decode(&snap)?;
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
        let mut catalog = None;
        for group in archive.snapshot_groups().await? {
            let Some(snap) = records::newest_snapshot(archive, group).await? else {
                continue;
            };
            report.snapshots.push((group, snap.last_index));
            if group == crate::cluster::META_GROUP {
                // The meta group's: the sharing catalog, brought back below.
                catalog = Some(records::decode_meta(&snap)?.sharing.0);
                continue;
            }
            let mut state = records::decode(&snap)?;
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
            if self
                .restore_archived(&sources, found.moved, true, &mut report)
                .await?
            {
                restored.insert(tenant);
            } else {
                left_out.insert(tenant);
            }
        }
        report.purged = left_out.len();
        // Policies, requests and grants among the tenants that came back.
        if let Some(catalog) = catalog {
            let kept = catalog.only(&restored);
            report.sharing_policies = kept.policies.len();
            let op = crate::sharing::SharingOp::Restore(crate::format::Since(Box::new(kept)));
            self.router
                .meta_write(Command::Meta(MetaOp::Sharing(crate::format::Since(
                    Box::new(op),
                ))))
                .await?;
        }
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
        let quotas = records::quota_names_of(Some(&moved.state), moved.usage.as_ref());
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
            self.router.meta_write(claim).await?;
        }
        if dedicated {
            moved.to_group = self.router.dedicated_group(tenant, None).await?;
            return self.router.move_in(moved.clone()).await;
        }
        let group = self.router.group_of(&tenant);
        moved.to_group = group;
        let write = ForwardRequest::GroupWrite {
            group,
            cmd: Command::MoveIn(Box::new(moved.clone())),
        };
        self.router.dispatch(group, &write, None, true).await?;
        Ok(())
    }
}
