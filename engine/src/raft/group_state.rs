use super::audit_trail;
use super::command::{Command, CommandResponse, MetaOp, MovedTenant, StampedOp};
use crate::audit::AuditLog;
use crate::format::Since;
use crate::model::TenantId;
use crate::model::membership::Membership;
use crate::quota::{OpOutcome, TenantOp, TenantState};
use crate::usage_history::UsageHistory;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The replicated state of one group. Shard groups hold tenants; the meta
/// group holds the slug index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Boxed: a hash table keeps up to twice as many slots as entries, and
    /// an empty slot then costs a pointer rather than a whole state.
    pub tenants: HashMap<TenantId, Box<TenantState>>,
    pub slugs: BTreeMap<String, SlugClaim>,
    /// Custom domain -> the tenant that registered it (meta group).
    #[serde(default)]
    pub domains: BTreeMap<String, SlugClaim>,
    /// Each tenant's audit chain.
    #[serde(default)]
    pub audit: HashMap<TenantId, AuditLog>,
    /// Each tenant's usage history.
    #[serde(default)]
    pub usage: HashMap<TenantId, UsageHistory>,
    /// Nodes and placement (meta group).
    #[serde(default)]
    pub membership: Membership,
    /// Tenants handed over to another group, kept until the move is done.
    #[serde(default)]
    pub moved: HashMap<TenantId, MovedTenant>,
    /// Tenants whose usage history or audit chain changed since the
    /// archive last took them. Replicated, so a new leader (or a restarted
    /// node) syncs what its predecessor had not; bounded by the tenant
    /// count however long the archive is away.
    #[serde(default)]
    pub unarchived: HashMap<TenantId, Unarchived>,
    /// Tenants whose move is done -> the group they went to. Requests
    /// still sent here (by a node yet to learn the pin) are told to retry.
    #[serde(default)]
    pub moved_to: HashMap<TenantId, u64>,
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

/// Who holds a slug, since when (leader-stamped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlugClaim {
    pub tenant: TenantId,
    pub at_ms: i64,
}

/// A claim whose tenant never came to exist (its creation died between
/// claiming the slug and creating the tenant) may be taken over after this.
pub const ORPHAN_CLAIM_AFTER_MS: i64 = 60_000;

impl GroupState {
    /// Apply a committed command. Deterministic: uses only the command and
    /// the state (time comes from each operation's stamp).
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        match cmd {
            Command::Batch(ops) => {
                CommandResponse::Batch(ops.iter().map(|op| self.apply_op(op)).collect())
            }
            Command::Meta(MetaOp::ClaimSlug {
                slug,
                tenant,
                at_ms,
                replacing,
            }) => match self.slugs.get(slug) {
                Some(c)
                    if c.tenant != *tenant
                        && !(Some(c.tenant) == *replacing
                            && at_ms - c.at_ms >= ORPHAN_CLAIM_AFTER_MS) =>
                {
                    CommandResponse::SlugTaken { owner: c.tenant }
                }
                _ => {
                    self.slugs.insert(
                        slug.clone(),
                        SlugClaim {
                            tenant: *tenant,
                            at_ms: *at_ms,
                        },
                    );
                    CommandResponse::SlugClaimed
                }
            },
            Command::Meta(MetaOp::ClaimDomain {
                domain,
                tenant,
                at_ms,
                replacing,
            }) => match self.domains.get(domain) {
                Some(c)
                    if c.tenant != *tenant
                        && !(Some(c.tenant) == *replacing
                            && at_ms - c.at_ms >= ORPHAN_CLAIM_AFTER_MS) =>
                {
                    CommandResponse::DomainTaken { owner: c.tenant }
                }
                _ => {
                    self.domains.insert(
                        domain.clone(),
                        SlugClaim {
                            tenant: *tenant,
                            at_ms: *at_ms,
                        },
                    );
                    CommandResponse::DomainClaimed
                }
            },
            Command::Meta(MetaOp::ReleaseDomain { domain, tenant }) => {
                if self
                    .domains
                    .get(domain)
                    .is_some_and(|c| c.tenant == *tenant)
                {
                    self.domains.remove(domain);
                }
                CommandResponse::Applied
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
                    v.insert(Box::new(m.state.clone()));
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
            Command::Meta(MetaOp::Membership(op)) => {
                CommandResponse::Membership(self.membership.apply(op))
            }
            Command::Meta(MetaOp::ReleaseSlug { slug, tenant }) => {
                if self.slugs.get(slug).is_some_and(|c| c.tenant == *tenant) {
                    self.slugs.remove(slug);
                }
                CommandResponse::Applied
            }
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

    fn mark_unarchived(&mut self, tenant: TenantId, at_ms: i64) {
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
                    v.insert(Box::new(TenantState::create(
                        tenant.clone(),
                        quotas.clone(),
                        owner.as_ref(),
                        s.at_ms,
                    )));
                    Some(OpOutcome::Tenant)
                }
            },
            op => {
                // The leader logs only operations that succeeded on the same
                // state, so this succeeds too; if it did not, it changed
                // nothing (apply is all-or-nothing) and the leader is told.
                let t = self.tenants.get_mut(&s.tenant)?;
                match t.apply(op, s.at_ms) {
                    Ok(applied) => Some(applied.outcome),
                    Err(e) => {
                        tracing::error!(tenant = %s.tenant, error = %e, "replicated operation failed on apply");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn claim(slug: &str, tenant: u128, at_ms: i64, replacing: Option<u128>) -> Command {
        Command::Meta(MetaOp::ClaimSlug {
            slug: slug.into(),
            tenant: Uuid::from_u128(tenant),
            at_ms,
            replacing: replacing.map(Uuid::from_u128),
        })
    }

    #[test]
    fn slugs_are_unique_and_orphans_can_be_taken_over_late() {
        let mut g = GroupState::default();
        assert_eq!(
            g.apply(&claim("acme", 1, 0, None)),
            CommandResponse::SlugClaimed
        );
        // Same tenant again (a retry): fine.
        assert_eq!(
            g.apply(&claim("acme", 1, 5, None)),
            CommandResponse::SlugClaimed
        );
        let taken = CommandResponse::SlugTaken {
            owner: Uuid::from_u128(1),
        };
        assert_eq!(g.apply(&claim("acme", 2, 10, None)), taken);
        // Taking over needs the orphan named and old enough.
        assert_eq!(
            g.apply(&claim("acme", 2, ORPHAN_CLAIM_AFTER_MS - 1, Some(1))),
            taken
        );
        assert_eq!(
            g.apply(&claim("acme", 2, ORPHAN_CLAIM_AFTER_MS + 5, Some(9))),
            taken
        );
        assert_eq!(
            g.apply(&claim("acme", 2, ORPHAN_CLAIM_AFTER_MS + 5, Some(1))),
            CommandResponse::SlugClaimed
        );
        assert_eq!(g.slugs["acme"].tenant, Uuid::from_u128(2));
    }

    #[test]
    fn domains_are_unique_and_orphaned_claims_can_be_taken_over_late() {
        let claim = |tenant: u128, at_ms: i64, replacing: Option<u128>| {
            Command::Meta(MetaOp::ClaimDomain {
                domain: "quota.acme.test".into(),
                tenant: Uuid::from_u128(tenant),
                at_ms,
                replacing: replacing.map(Uuid::from_u128),
            })
        };
        let mut g = GroupState::default();
        assert_eq!(g.apply(&claim(1, 0, None)), CommandResponse::DomainClaimed);
        let taken = CommandResponse::DomainTaken {
            owner: Uuid::from_u128(1),
        };
        assert_eq!(g.apply(&claim(2, 5, None)), taken);
        assert_eq!(
            g.apply(&claim(2, ORPHAN_CLAIM_AFTER_MS - 1, Some(1))),
            taken
        );
        assert_eq!(
            g.apply(&claim(2, ORPHAN_CLAIM_AFTER_MS, Some(1))),
            CommandResponse::DomainClaimed
        );
        assert_eq!(g.domains["quota.acme.test"].tenant, Uuid::from_u128(2));
    }

    /// An active ENTERPRISE tenant created at `at_ms`.
    fn enterprise_tenant(id: Uuid, at_ms: i64) -> crate::model::Tenant {
        use crate::model::{Tenant, TenantStatus, Tier};
        Tenant {
            id,
            slug: "acme".into(),
            name: "Acme".into(),
            tier: Tier::Enterprise,
            status: TenantStatus::Active,
            timezone: chrono_tz::UTC,
            trial_ends_at_ms: None,
            settings_json: "{}".into(),
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            deleted: None,
        }
    }

    #[test]
    fn a_finished_move_keeps_where_the_tenant_went_and_drops_its_copy() {
        let id = Uuid::from_u128(7);
        let tenant = enterprise_tenant(id, 0);
        let mut g = GroupState::default();
        g.tenants.insert(
            id,
            Box::new(crate::quota::TenantState::new(tenant, Default::default())),
        );
        let out = g.apply(&Command::MoveOut {
            tenant: id,
            to_group: 9,
        });
        assert!(matches!(out, CommandResponse::MovedOut(m) if m.to_group == 9));
        assert!(g.moved.contains_key(&id) && !g.tenants.contains_key(&id));
        // Done for another destination: not this move.
        g.apply(&Command::MoveDone {
            tenant: id,
            to_group: 10,
        });
        assert!(g.moved.contains_key(&id) && g.moved_to.is_empty());
        g.apply(&Command::MoveDone {
            tenant: id,
            to_group: 9,
        });
        assert!(g.moved.is_empty(), "the copy is gone");
        assert_eq!(g.moved_to.get(&id), Some(&9));
        // Done again, or for a tenant never moved: nothing changes.
        g.apply(&Command::MoveDone {
            tenant: id,
            to_group: 9,
        });
        g.apply(&Command::MoveDone {
            tenant: Uuid::from_u128(8),
            to_group: 9,
        });
        assert_eq!(g.moved_to.len(), 1);
        // Moving away again finds nothing here to move.
        assert_eq!(
            g.apply(&Command::MoveOut {
                tenant: id,
                to_group: 10
            }),
            CommandResponse::TenantNotHere
        );
    }

    /// An unlimited quota spent far past u64 (20,000 increments of the
    /// largest amount, 10^15): apply neither panics nor wraps; the counter
    /// and the history both stop at the ceiling, and still agree.
    #[test]
    fn apply_saturates_at_the_u64_ceiling_instead_of_overflowing() {
        use crate::model::{Period, QuotaPolicy};
        use crate::quota::validate::MAX_AMOUNT;
        use crate::quota::{TenantOp, TenantState};
        use crate::raft::command::StampedOp;
        use crate::usage_history::Granularity;
        const T0: i64 = 1_790_000_000_000;
        let id = Uuid::from_u128(7);
        let tenant = enterprise_tenant(id, T0);
        let quotas = [(
            "llm_tokens".to_string(),
            QuotaPolicy::counter(Period::Monthly, None),
        )]
        .into();
        let mut g = GroupState::default();
        g.tenants
            .insert(id, Box::new(TenantState::new(tenant, quotas)));
        let ops: Vec<StampedOp> = (0..20_000)
            .map(|i| StampedOp {
                tenant: id,
                at_ms: T0 + i,
                op: TenantOp::Increment {
                    quota: "llm_tokens".into(),
                    amount: MAX_AMOUNT as i64,
                    idempotency_key: None,
                },
                audit: None,
            })
            .collect();
        for chunk in ops.chunks(4_096) {
            g.apply(&Command::Batch(chunk.to_vec()));
        }
        assert_eq!(g.tenants[&id].quotas["llm_tokens"].used, u64::MAX);
        let history = &g.usage[&id];
        for granularity in [Granularity::Hour, Granularity::Day] {
            let series = history.series(
                "llm_tokens",
                chrono_tz::UTC,
                granularity,
                T0 - 86_400_000,
                T0 + 86_400_000,
            );
            let total = series
                .iter()
                .fold(0u64, |sum, p| sum.saturating_add(p.amount));
            assert_eq!(total, u64::MAX, "{granularity:?}");
        }
    }

    /// A tenant that changed while a sync round ran stays listed only from
    /// the copy's position on; one that did not is done. (On the old
    /// "nothing changed" acknowledgement a busy tenant stayed listed from
    /// its first change forever.)
    #[test]
    fn the_archive_acknowledges_up_to_a_position() {
        use super::super::command::ArchiveAck;
        let (busy, quiet) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut g = GroupState::default();
        for (t, n) in [(busy, 5u64), (quiet, 2)] {
            for i in 0..n {
                g.mark_unarchived(t, 1_000 + i as i64);
            }
        }
        let copied = |t: Uuid, g: &GroupState, upto_ms: i64| ArchiveAck {
            tenant: t,
            changes: g.unarchived[&t].changes,
            upto_ms,
        };
        let acks = vec![copied(busy, &g, 1_004), copied(quiet, &g, 1_001)];
        // Two more changes of the busy tenant land before the acknowledgement.
        g.mark_unarchived(busy, 1_004);
        g.mark_unarchived(busy, 2_000);
        g.apply(&Command::ArchiveTaken(Since(acks)));
        assert!(!g.unarchived.contains_key(&quiet));
        assert_eq!(g.unarchived[&busy].since_ms, 1_004);
        assert_eq!(g.unarchived[&busy].changes, 7);
        // The next round copies from 1,004 on and the tenant is done.
        g.apply(&Command::ArchiveTaken(Since(vec![copied(busy, &g, 2_000)])));
        assert!(g.unarchived.is_empty());
        // The format-0 acknowledgement still applies as it always did.
        g.mark_unarchived(busy, 3_000);
        g.apply(&Command::ArchiveSynced(vec![(busy, 2)]));
        assert!(
            g.unarchived.contains_key(&busy),
            "one change since, not two"
        );
        g.apply(&Command::ArchiveSynced(vec![(busy, 1)]));
        assert!(g.unarchived.is_empty());
    }

    /// Golden bytes of the format-2 entries, and the format-0 bytes of the
    /// entries around them, which they leave unchanged.
    #[test]
    fn format_2_entries_are_prefixed_and_older_ones_are_not() {
        use super::super::command::ArchiveAck;
        use crate::format::{MAGIC, decode, encode};
        use crate::quota::{AllOrNothing, Spend, TenantOp};
        let t = Uuid::from_u128(1);
        let old = Command::ArchiveSynced(vec![(t, 3)]);
        let mut want = vec![4, 1, 16];
        want.extend_from_slice(t.as_bytes());
        want.push(3);
        assert_eq!(encode(&old).unwrap(), want);
        let ack = Command::ArchiveTaken(Since(vec![ArchiveAck {
            tenant: t,
            changes: 3,
            upto_ms: -1,
        }]));
        let mut want = MAGIC.to_vec();
        want.extend_from_slice(&[2, 6, 1, 16]);
        want.extend_from_slice(t.as_bytes());
        want.extend_from_slice(&[3, 1]);
        assert_eq!(encode(&ack).unwrap(), want);
        assert_eq!(decode::<Command>(&want).unwrap(), ack);
        let op = Command::Batch(vec![StampedOp {
            tenant: t,
            at_ms: 1,
            op: TenantOp::IncrementAll(Since(AllOrNothing {
                spends: vec![Spend {
                    quota: "q".into(),
                    amount: 2,
                    optional: true,
                }],
                idempotency_key: None,
            })),
            audit: None,
        }]);
        let mut want = MAGIC.to_vec();
        want.extend_from_slice(&[2, 0, 1, 16]);
        want.extend_from_slice(t.as_bytes());
        want.extend_from_slice(&[2, 18, 1, 1, b'q', 2, 1, 0, 0]);
        assert_eq!(encode(&op).unwrap(), want);
        assert_eq!(decode::<Command>(&want).unwrap(), op);
        // A payload claiming format 1 may not hold them.
        let mut v1 = MAGIC.to_vec();
        v1.push(1);
        v1.extend_from_slice(&want[MAGIC.len() + 1..]);
        assert!(decode::<Command>(&v1).is_err());
    }
}
