//! A shard group's replicated state: its tenants, their audit chains and
//! usage history, tenants handed over to other groups, and what the
//! archive has yet to take.
use super::{ReplicatedState, misrouted};
use crate::audit::AuditLog;
use crate::format::Since;
use crate::model::TenantId;
use crate::quota::{OpOutcome, PolicyPool, TenantOp, TenantState};
use crate::raft::audit_trail;
use crate::raft::command::{Command, CommandResponse, MovedTenant, StampedOp};
use crate::usage_history::UsageHistory;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardState {
    /// Boxed: a hash table keeps up to twice as many slots as entries, and
    /// an empty slot then costs a pointer rather than a whole state.
    pub tenants: HashMap<TenantId, Box<TenantState>>,
    /// Each tenant's audit chain.
    pub audit: HashMap<TenantId, AuditLog>,
    /// Each tenant's usage history.
    pub usage: HashMap<TenantId, UsageHistory>,
    /// Tenants handed over to another group, kept until the move is done.
    pub moved: HashMap<TenantId, MovedTenant>,
    /// Tenants whose usage history or audit chain changed since the
    /// archive last took them. Replicated, so a new leader (or a restarted
    /// node) syncs what its predecessor had not; bounded by the tenant
    /// count however long the archive is away.
    pub unarchived: HashMap<TenantId, Unarchived>,
    /// Tenants whose move is done -> the group they went to. Requests
    /// still sent here (by a node yet to learn the pin) are told to retry.
    pub moved_to: HashMap<TenantId, u64>,
    /// The quota policies its tenants hold, shared (memory only: never
    /// serialized, and equal in any two states).
    pub policies: PolicyPool,
}

/// What the archive has yet to take from one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unarchived {
    /// Changes so far; the archive acknowledges a count, and changes after
    /// it keep the tenant listed.
    pub changes: u64,
    /// Stamp of the earliest change not archived: usage buckets from its
    /// hour (and day) on, and audit events from it on, are to be sent.
    pub since_ms: i64,
}

impl ReplicatedState for ShardState {
    fn accepts(cmd: &Command) -> bool {
        !matches!(cmd, Command::Meta(_))
    }

    /// Deterministic: uses only the command and the state (time comes from
    /// each operation's stamp).
    fn apply(&mut self, cmd: &Command) -> CommandResponse {
        match cmd {
            Command::Batch(ops) => {
                CommandResponse::Batch(ops.iter().map(|op| self.apply_op(op)).collect())
            }
            Command::MoveOut { tenant, to_group } => {
                if let Some(m) = self.moved.get(tenant) {
                    return CommandResponse::MovedOut(Box::new(m.clone()));
                }
                let Some(state) = self.tenants.remove(tenant) else {
                    return CommandResponse::TenantNotHere;
                };
                // Its history travels with it; the new group archives it.
                self.unarchived.remove(tenant);
                let moved = MovedTenant {
                    tenant: *tenant,
                    to_group: *to_group,
                    state: *state,
                    audit: self.audit.remove(tenant),
                    usage: self.usage.remove(tenant),
                };
                self.moved.insert(*tenant, moved.clone());
                CommandResponse::MovedOut(Box::new(moved))
            }
            Command::ArchiveSynced(synced) => {
                for (tenant, changes) in synced {
                    if self
                        .unarchived
                        .get(tenant)
                        .is_some_and(|u| u.changes == *changes)
                    {
                        self.unarchived.remove(tenant);
                    }
                }
                CommandResponse::Applied
            }
            Command::ArchiveTaken(Since(acks)) => {
                for ack in acks {
                    let Some(u) = self.unarchived.get_mut(&ack.tenant) else {
                        continue;
                    };
                    if u.changes == ack.changes {
                        self.unarchived.remove(&ack.tenant);
                    } else {
                        // Changed while the round ran. What the copy held
                        // is archived; a tenant's stamps never go back in
                        // log order (its leader serves only once the whole
                        // log is applied, and its actor continues from the
                        // latest stamp), so every change it had not seen is
                        // stamped at or after `upto_ms`.
                        u.since_ms = u.since_ms.max(ack.upto_ms);
                    }
                }
                CommandResponse::Applied
            }
            Command::MoveIn(m) => {
                // Everything it brings is new to this group's sync.
                self.mark_unarchived(m.tenant, i64::MIN);
                if let std::collections::hash_map::Entry::Vacant(v) = self.tenants.entry(m.tenant) {
                    let mut state = Box::new(m.state.clone());
                    state.share_policies(&mut self.policies);
                    v.insert(state);
                    if let Some(a) = &m.audit {
                        self.audit.insert(m.tenant, a.clone());
                    }
                    if let Some(u) = &m.usage {
                        self.usage.insert(m.tenant, u.clone());
                    }
                }
                // A tenant moving back here is here again.
                self.moved.remove(&m.tenant);
                self.moved_to.remove(&m.tenant);
                CommandResponse::Applied
            }
            Command::MoveDone { tenant, to_group } => {
                // Only the move it names: a copy kept for a later move
                // elsewhere stays.
                if self
                    .moved
                    .get(tenant)
                    .is_some_and(|m| m.to_group == *to_group)
                {
                    self.moved.remove(tenant);
                    self.moved_to.insert(*tenant, *to_group);
                }
                CommandResponse::Applied
            }
            other => misrouted("a shard group", other),
        }
    }

    fn loaded(&mut self) {
        self.share_policies();
    }
}

impl ShardState {
    /// Share the policies of every tenant through the pool: for a state
    /// just decoded from a snapshot, whose policies are each a copy.
    pub fn share_policies(&mut self) {
        for t in self.tenants.values_mut() {
            t.share_policies(&mut self.policies);
        }
    }

    fn apply_op(&mut self, s: &StampedOp) -> Option<OpOutcome> {
        let before = s
            .audit
            .as_ref()
            .map(|_| audit_trail::part(&s.op, self.tenants.get(&s.tenant).map(|t| &**t)));
        let settled_quota = match &s.op {
            TenantOp::Settle { reservation_id, .. } => self
                .tenants
                .get(&s.tenant)
                .and_then(|t| t.reservations.get(reservation_id))
                .map(|r| r.quota.clone()),
            _ => None,
        };
        let outcome = self.apply_tenant_op(s)?;
        let mut archivable = self.record_usage(s, &outcome, settled_quota);
        if let (Some(meta), Some(before)) = (&s.audit, before) {
            archivable = true;
            let after = self.tenants.get(&s.tenant).map(|t| &**t);
            let entry = audit_trail::entry(&s.op, before, after, &outcome);
            self.audit
                .entry(s.tenant)
                .or_default()
                .append(meta, s.at_ms, entry);
        }
        if archivable {
            self.mark_unarchived(s.tenant, s.at_ms);
        }
        if s.op == TenantOp::Purge {
            // The tenant is gone; its audit chain stays.
            self.tenants.remove(&s.tenant);
        }
        Some(outcome)
    }

    pub(super) fn mark_unarchived(&mut self, tenant: TenantId, at_ms: i64) {
        let u = self.unarchived.entry(tenant).or_insert(Unarchived {
            changes: 0,
            since_ms: at_ms,
        });
        // Compared for equality only ("did it move?"): wrapping keeps that
        // true, where saturating would freeze it.
        u.changes = u.changes.wrapping_add(1);
        u.since_ms = u.since_ms.min(at_ms);
    }

    /// Consumption goes into the usage history: admitted increments, and
    /// the actual cost of settled reservations (holds are not usage).
    /// Returns whether anything was recorded.
    fn record_usage(
        &mut self,
        s: &StampedOp,
        outcome: &OpOutcome,
        settled_quota: Option<String>,
    ) -> bool {
        let spent: Vec<(&str, u64)> = match (&s.op, outcome) {
            (TenantOp::Increment { quota, amount, .. }, OpOutcome::Decision(d))
                if d.allowed && !d.replayed && *amount > 0 =>
            {
                vec![(quota.as_str(), *amount as u64)]
            }
            (TenantOp::Settle { actual, .. }, OpOutcome::Decision(_)) if *actual > 0 => {
                match &settled_quota {
                    Some(q) => vec![(q.as_str(), *actual)],
                    None => return false,
                }
            }
            (TenantOp::IncrementAll(all), OpOutcome::AllDecided(decided))
                if decided.0.admitted && !outcome.is_replay() =>
            {
                all.0
                    .spends
                    .iter()
                    .zip(&decided.0.decisions)
                    .filter(|(_, d)| d.is_some())
                    .map(|(spend, _)| (spend.quota.as_str(), spend.amount))
                    .collect()
            }
            _ => return false,
        };
        let Some(tz) = self.tenants.get(&s.tenant).map(|t| t.tenant.timezone) else {
            return false;
        };
        if spent.is_empty() {
            return false;
        }
        let history = self.usage.entry(s.tenant).or_default();
        for (quota, amount) in spent {
            history.record(quota, tz, s.at_ms, amount);
        }
        true
    }

    fn apply_tenant_op(&mut self, s: &StampedOp) -> Option<OpOutcome> {
        match &s.op {
            TenantOp::Create {
                tenant,
                quotas,
                owner,
            } => match self.tenants.entry(s.tenant) {
                std::collections::hash_map::Entry::Occupied(_) => None,
                std::collections::hash_map::Entry::Vacant(v) => {
                    let mut state = Box::new(TenantState::create(
                        (**tenant).clone(),
                        quotas.clone(),
                        owner.as_ref(),
                        s.at_ms,
                    ));
                    state.share_policies(&mut self.policies);
                    v.insert(state);
                    Some(OpOutcome::Tenant)
                }
            },
            op => {
                // The leader logs only operations that succeeded on the same
                // state, so this succeeds too; if it did not, it changed
                // nothing (apply is all-or-nothing) and the leader is told.
                let t = self.tenants.get_mut(&s.tenant)?;
                match t.apply(op, s.at_ms) {
                    Ok(applied) => {
                        if op.sets_policies() {
                            t.share_policies(&mut self.policies);
                        }
                        Some(applied.outcome)
                    }
                    Err(e) => {
                        tracing::error!(tenant = %s.tenant, error = %e, "replicated operation failed on apply");
                        None
                    }
                }
            }
        }
    }
}
