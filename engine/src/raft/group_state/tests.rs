//! Claims, moves, the archive position and entry formats, applied as data.
use super::*;
use crate::format::Since;
use crate::quota::TenantOp;
use crate::raft::command::{MetaOp, StampedOp};
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
    assert_eq!(g.meta.slugs["acme"].tenant, Uuid::from_u128(2));
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
    assert_eq!(g.meta.domains["quota.acme.test"].tenant, Uuid::from_u128(2));
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
    let mut g = ShardState::default();
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
    let mut g = ShardState::default();
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
    let mut g = ShardState::default();
    for (t, n) in [(busy, 5u64), (quiet, 2)] {
        for i in 0..n {
            g.mark_unarchived(t, 1_000 + i as i64);
        }
    }
    let copied = |t: Uuid, g: &ShardState, upto_ms: i64| ArchiveAck {
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
                scope: Default::default(),
            }],
            idempotency_key: None,
            max_scopes: Default::default(),
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

#[test]
fn a_groups_tenants_share_their_policies_and_so_does_a_decoded_snapshot() {
    let catalog = crate::quota::TierCatalog::builtin();
    let create = |n: u128| StampedOp {
        tenant: Uuid::from_u128(n),
        at_ms: n as i64,
        op: TenantOp::Create {
            tenant: Box::new(enterprise_tenant(Uuid::from_u128(n), n as i64)),
            quotas: catalog.defaults(crate::model::Tier::Enterprise).clone(),
            owner: None,
        },
        audit: None,
    };
    let mut g = ShardState::default();
    g.apply(&Command::Batch(vec![create(1), create(2)]));
    let policy = |g: &ShardState, n: u128| {
        g.tenants[&Uuid::from_u128(n)].quotas["api_requests"]
            .policy
            .clone()
    };
    assert!(policy(&g, 1).shares_with(&policy(&g, 2)));
    // A changed policy is shared too, with a third tenant's equal one.
    let set = |n: u128| StampedOp {
        op: TenantOp::SetQuota {
            quota: "api_requests".into(),
            policy: crate::model::QuotaPolicy::counter(crate::model::Period::Daily, Some(5)),
        },
        ..create(n)
    };
    g.apply(&Command::Batch(vec![create(3), set(1), set(3)]));
    assert!(policy(&g, 1).shares_with(&policy(&g, 3)));
    assert!(!policy(&g, 1).shares_with(&policy(&g, 2)));
    let bytes = crate::format::encode(&g).unwrap();
    let mut decoded: ShardState = crate::format::decode(&bytes).unwrap();
    assert!(!policy(&decoded, 1).shares_with(&policy(&decoded, 3)));
    decoded.share_policies();
    assert!(policy(&decoded, 1).shares_with(&policy(&decoded, 3)));
    assert_eq!(decoded, g);
}

/// A full state of both kinds, every one of the nine stored fields set.
fn both_kinds() -> GroupState {
    let id = Uuid::from_u128(7);
    let mut g = GroupState::default();
    g.apply(&claim("acme", 7, 1, None));
    g.apply(&Command::Meta(MetaOp::ClaimDomain {
        domain: "quota.acme.test".into(),
        tenant: id,
        at_ms: 1,
        replacing: None,
    }));
    g.meta.membership.shards = 4;
    g.meta.membership.pins.insert(id, 5);
    g.shard.tenants.insert(
        id,
        Box::new(crate::quota::TenantState::new(
            enterprise_tenant(id, 0),
            Default::default(),
        )),
    );
    g.apply(&Command::Batch(vec![StampedOp {
        tenant: id,
        at_ms: 10,
        op: TenantOp::Audit {
            action: "a".into(),
            target: "t".into(),
            detail: "d".into(),
        },
        audit: Some(crate::audit::AuditMeta::new("u", "r")),
    }]));
    let other = Uuid::from_u128(8);
    g.shard.tenants.insert(
        other,
        Box::new(crate::quota::TenantState::new(
            enterprise_tenant(other, 0),
            Default::default(),
        )),
    );
    g.apply(&Command::MoveOut {
        tenant: other,
        to_group: 9,
    });
    g.shard.moved_to.insert(Uuid::from_u128(9), 3);
    g
}

/// The stored layout is the one the single state had before the split: a
/// copy of its old derived definition encodes to the same bytes.
#[test]
fn the_split_states_write_the_bytes_the_single_state_wrote() {
    use super::super::command::MovedTenant;
    use crate::audit::AuditLog;
    use crate::model::TenantId;
    use crate::model::membership::Membership;
    use crate::usage_history::UsageHistory;
    use std::collections::HashMap;
    #[derive(serde::Serialize)]
    struct Before<'a> {
        #[serde(serialize_with = "crate::format::sorted_map")]
        tenants: &'a HashMap<TenantId, Box<crate::quota::TenantState>>,
        slugs: &'a Claims,
        domains: &'a Claims,
        #[serde(serialize_with = "crate::format::sorted_map")]
        audit: &'a HashMap<TenantId, AuditLog>,
        #[serde(serialize_with = "crate::format::sorted_map")]
        usage: &'a HashMap<TenantId, UsageHistory>,
        membership: &'a Membership,
        #[serde(serialize_with = "crate::format::sorted_map")]
        moved: &'a HashMap<TenantId, MovedTenant>,
        #[serde(serialize_with = "crate::format::sorted_map")]
        unarchived: &'a HashMap<TenantId, Unarchived>,
        #[serde(serialize_with = "crate::format::sorted_map")]
        moved_to: &'a HashMap<TenantId, u64>,
    }
    let g = both_kinds();
    assert!(!g.shard.moved.is_empty() && !g.shard.unarchived.is_empty());
    assert!(!g.shard.audit.is_empty() && !g.meta.domains.is_empty());
    let before = |meta: &MetaState, shard: &ShardState| {
        crate::format::encode(&Before {
            tenants: &shard.tenants,
            slugs: &meta.slugs,
            domains: &meta.domains,
            audit: &shard.audit,
            usage: &shard.usage,
            membership: &meta.membership,
            moved: &shard.moved,
            unarchived: &shard.unarchived,
            moved_to: &shard.moved_to,
        })
        .unwrap()
    };
    let bytes = crate::format::encode(&g).unwrap();
    assert_eq!(bytes, before(&g.meta, &g.shard));
    // Each kind writes the other's fields empty, as a group of that kind
    // always had them.
    assert_eq!(
        crate::format::encode(&g.meta).unwrap(),
        before(&g.meta, &ShardState::default())
    );
    assert_eq!(
        crate::format::encode(&g.shard).unwrap(),
        before(&MetaState::default(), &g.shard)
    );
    // And reads its own part of any snapshot.
    let decoded: GroupState = crate::format::decode(&bytes).unwrap();
    assert_eq!(decoded, g);
    assert_eq!(crate::format::decode::<MetaState>(&bytes).unwrap(), g.meta);
    assert_eq!(
        crate::format::decode::<ShardState>(&bytes).unwrap(),
        g.shard
    );
}

#[test]
fn each_kind_of_group_changes_nothing_on_the_others_commands() {
    let g = both_kinds();
    let (mut meta, mut shard) = (g.meta.clone(), g.shard.clone());
    let batch = Command::Batch(vec![StampedOp {
        tenant: Uuid::from_u128(7),
        at_ms: 20,
        op: TenantOp::Restore,
        audit: None,
    }]);
    assert!(!MetaState::accepts(&batch) && ShardState::accepts(&batch));
    assert_eq!(meta.apply(&batch), CommandResponse::Batch(vec![None]));
    let out = Command::MoveOut {
        tenant: Uuid::from_u128(7),
        to_group: 3,
    };
    assert_eq!(meta.apply(&out), CommandResponse::TenantNotHere);
    let slug = claim("other", 8, 30, None);
    assert!(MetaState::accepts(&slug) && !ShardState::accepts(&slug));
    assert_eq!(shard.apply(&slug), CommandResponse::Applied);
    assert_eq!((meta, shard), (g.meta, g.shard), "nothing changed");
}
