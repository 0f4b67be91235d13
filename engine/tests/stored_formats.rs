//! The bytes quotad stores and replicates, held still: golden files of a
//! group's snapshot and of Raft log entries as today's formats write them
//! (`tests/fixtures/golden/`), and replicas whose snapshots of the same
//! state are the same bytes.
//!
//! A change that alters these bytes is a format change: it needs a new
//! format version (`quotad_engine::format`) and new golden files next to
//! the old ones, which must keep decoding. To write the files of the
//! current format: `QUOTAD_WRITE_GOLDEN=1 cargo test -p quotad-engine --test
//! stored_formats`.
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use quotad_engine::audit::AuditMeta;
use quotad_engine::cluster::membership::{DedicateIn, MembersReport};
use quotad_engine::cluster::{Membership, MembershipOp, NodeInfo};
use quotad_engine::format::{self, Since};
use quotad_engine::model::{
    Caller, KeyProof, NewOwner, Period, Principal, QuotaPolicy, Role, Scope, Scopes, Tenant,
    TenantStatus, Tier,
};
use quotad_engine::quota::{
    AllOrNothing, ApiKeyRotation, NewApiKey, PolicyPatch, QuotaPatch, Spend, TenantOp,
};
use quotad_engine::raft::{
    Command, GroupState, MetaOp, MetaState, ShardState, StampedOp, TypeConfig,
};
use quotad_engine::sharing::SharingOp;
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

const T0: i64 = 1_790_000_000_000;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// Compare `bytes` with the golden file `name`, or write it when asked.
fn check_golden(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = golden(name);
    if std::env::var_os("QUOTAD_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with QUOTAD_WRITE_GOLDEN=1 (see the module doc)",
            path.display()
        )
    });
    assert!(
        stored == bytes,
        "{name}: today's encoding differs from the golden file ({} bytes now, {} stored): a \
         format change needs a new version and new golden files",
        bytes.len(),
        stored.len()
    );
    stored
}

fn tenant_id(n: u128) -> Uuid {
    Uuid::from_u128(0x5157_0000_0000_0000_0000_0000_0000_0000 | n)
}

fn create(n: u128, at_ms: i64) -> StampedOp {
    let id = tenant_id(n);
    let tenant = Tenant {
        id,
        slug: format!("tenant-{n}"),
        name: format!("Tenant {n}"),
        tier: Tier::Professional,
        status: TenantStatus::Active,
        timezone: chrono_tz::Europe::Berlin,
        trial_ends_at_ms: None,
        settings_json: "{}".into(),
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
        deleted: None,
    };
    let quotas = BTreeMap::from([
        (
            "api_requests".to_string(),
            QuotaPolicy::counter(Period::Monthly, Some(10_000)),
        ),
        (
            "llm_tokens".to_string(),
            QuotaPolicy::counter(Period::Daily, Some(1_000_000)),
        ),
        ("users".to_string(), QuotaPolicy::gauge(Some(25))),
    ]);
    stamped(
        id,
        at_ms,
        TenantOp::Create {
            tenant: Box::new(tenant),
            quotas,
            owner: Some(NewOwner {
                user_id: format!("owner-{n}"),
                email: Some(format!("owner-{n}@example.com")),
            }),
        },
    )
}

fn stamped(tenant: Uuid, at_ms: i64, op: TenantOp) -> StampedOp {
    StampedOp {
        tenant,
        at_ms,
        op,
        audit: Some(AuditMeta::new("admin-1", format!("req-{at_ms}"))),
    }
}

fn increment(n: u128, at_ms: i64, key: Option<&str>) -> StampedOp {
    StampedOp {
        audit: None,
        ..stamped(
            tenant_id(n),
            at_ms,
            TenantOp::Increment {
                quota: "api_requests".into(),
                amount: 3,
                idempotency_key: key.map(str::to_string),
            },
        )
    }
}

fn increment_all(n: u128, at_ms: i64) -> StampedOp {
    StampedOp {
        audit: None,
        ..stamped(
            tenant_id(n),
            at_ms,
            TenantOp::IncrementAll(Since(AllOrNothing {
                spends: vec![
                    Spend {
                        quota: "api_requests".into(),
                        amount: 1,
                        optional: false,
                        scope: Default::default(),
                    },
                    Spend {
                        quota: "llm_tokens".into(),
                        amount: 700,
                        optional: false,
                        scope: Default::default(),
                    },
                ],
                idempotency_key: Some(format!("all-{n}-{at_ms}")),
                max_scopes: Default::default(),
            })),
        )
    }
}

fn patch_quota(n: u128, at_ms: i64) -> StampedOp {
    let patch = PolicyPatch {
        limit: Some(20_000),
        soft_limit: Some(Some(15_000)),
        period: None,
        action: None,
        kind: None,
        alert_thresholds: Some(vec![50, 90]),
        by_operator: false,
        tier_policies: BTreeMap::from([(
            Tier::Professional,
            QuotaPolicy::counter(Period::Monthly, Some(100_000)),
        )]),
        rules: Default::default(),
    };
    stamped(
        tenant_id(n),
        at_ms,
        TenantOp::PatchQuota(Since(Box::new(QuotaPatch {
            quota: "api_requests".into(),
            patch,
        }))),
    )
}

/// API key changes (format 4): tenant `n` gets two keys, rotates one with a
/// grace period and revokes the other.
fn api_key_ops(n: u128, at_ms: i64) -> Vec<StampedOp> {
    let id = tenant_id(n);
    let new = |k: u8| NewApiKey {
        id: format!("{n:08x}{k:08x}"),
        name: format!("key {k}"),
        scopes: Scopes::of([Scope::Check, Scope::Increment]),
        hash: [k; 32],
        last4: format!("{k:04}"),
        created_by: "alice".into(),
        expires_at_ms: Some(at_ms + 86_400_000),
    };
    vec![
        stamped(id, at_ms, TenantOp::CreateApiKey(Since(Box::new(new(1))))),
        stamped(
            id,
            at_ms + 1,
            TenantOp::CreateApiKey(Since(Box::new(new(2)))),
        ),
        stamped(
            id,
            at_ms + 2,
            TenantOp::RotateApiKey(Since(ApiKeyRotation {
                id: format!("{n:08x}{:08x}", 1),
                hash: [9; 32],
                last4: "9999".into(),
                grace_ms: 60_000,
            })),
        ),
        stamped(
            id,
            at_ms + 3,
            TenantOp::RevokeApiKey(Since(format!("{n:08x}{:08x}", 2))),
        ),
    ]
}

/// What a shard group of `tenants` tenants has logged: creations, members,
/// keyed and keyless increments, an all-or-nothing spend, a reservation, a
/// domain, an audit event, and the meta group's slug claims.
fn history(tenants: u128) -> Vec<Command> {
    let mut commands = Vec::new();
    for n in 0..tenants {
        let at = T0 + n as i64 * 1_000;
        commands.push(Command::Meta(MetaOp::ClaimSlug {
            slug: format!("tenant-{n}"),
            tenant: tenant_id(n),
            at_ms: at,
            replacing: None,
        }));
        commands.push(Command::Batch(vec![create(n, at)]));
    }
    for n in 0..tenants {
        let at = T0 + 3_600_000 + n as i64 * 1_000;
        let id = tenant_id(n);
        commands.push(Command::Batch(vec![
            increment(n, at, None),
            increment(n, at + 1, Some(&format!("key-{n}"))),
            increment_all(n, at + 2),
            patch_quota(n, at + 7),
            stamped(
                id,
                at + 3,
                TenantOp::AddMember {
                    user_id: format!("dev-{n}"),
                    role: Role::Member,
                },
            ),
            stamped(
                id,
                at + 4,
                TenantOp::Reserve {
                    quota: "llm_tokens".into(),
                    amount: 500,
                    ttl_ms: 60_000,
                    reservation_id: Uuid::from_u128(0xAB00 + n),
                    idempotency_key: None,
                },
            ),
            stamped(
                id,
                at + 5,
                TenantOp::AddDomain {
                    domain: format!("t{n}.example.com"),
                    token: format!("{n:032x}"),
                },
            ),
            stamped(
                id,
                at + 6,
                TenantOp::Audit {
                    action: "access.denied".into(),
                    target: "quota api_requests".into(),
                    detail: "viewer tried to change a quota".into(),
                },
            ),
        ]));
    }
    commands
}

fn replay(commands: &[Command]) -> GroupState {
    let mut state = GroupState::default();
    for c in commands {
        state.apply(c);
    }
    state
}

#[test]
fn two_replicas_snapshots_of_the_same_state_are_byte_identical() {
    let commands = history(64);
    let (a, b) = (replay(&commands), replay(&commands));
    assert_eq!(a, b);
    let (bytes_a, bytes_b) = (format::encode(&a).unwrap(), format::encode(&b).unwrap());
    assert!(
        bytes_a == bytes_b,
        "two replicas encode the same state differently"
    );
    // A replica that installed the snapshot writes the same bytes again.
    let installed: GroupState = format::decode(&bytes_a).unwrap();
    assert_eq!(installed, a);
    assert!(format::encode(&installed).unwrap() == bytes_a);
}

#[test]
fn a_snapshot_decodes_from_its_golden_bytes() {
    let state = replay(&history(3));
    let bytes = format::encode(&state).unwrap();
    let stored = check_golden("snapshot-format2.bin", &bytes);
    assert_eq!(format::split(&stored).unwrap().0, 2, "the format it is in");
    let decoded: GroupState = format::decode(&stored).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.shard.tenants.len(), 3);
    // A shard group reads its part, the meta group its own.
    assert_eq!(format::decode::<ShardState>(&stored).unwrap(), state.shard);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), state.meta);
}

#[test]
fn a_snapshot_with_api_keys_decodes_from_its_golden_bytes() {
    let mut commands = history(3);
    for n in 0..3 {
        commands.push(Command::Batch(api_key_ops(n, T0 + 7_200_000)));
    }
    let state = replay(&commands);
    let bytes = format::encode(&state).unwrap();
    let stored = check_golden("snapshot-format4.bin", &bytes);
    assert_eq!(format::split(&stored).unwrap().0, 4, "the format it is in");
    let decoded: GroupState = format::decode(&stored).unwrap();
    assert_eq!(decoded, state);
    let keys = &decoded.shard.tenants[&tenant_id(1)].api_keys.0;
    assert_eq!(keys.len(), 1, "one created key is revoked");
    let rotated = &keys[&format!("{:08x}{:08x}", 1, 1)];
    assert_eq!(
        (rotated.hash, rotated.previous),
        ([9; 32], Some(([1; 32], T0 + 7_200_000 + 2 + 60_000)))
    );
    // Without keys, the same tenants keep the format-2 bytes (the test above).
}

#[test]
fn log_entries_decode_from_their_golden_bytes() {
    let entry = |index, command| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Normal(command),
    };
    // Format 0 (nothing newer in it), 1 (an owner's email), 2 (an
    // all-or-nothing spend) and 3 (a quota patch), and a meta-group entry.
    let entries = [
        (
            "entry-format0.bin",
            0,
            entry(40, Command::Batch(vec![increment(1, T0, None)])),
        ),
        (
            "entry-format1.bin",
            1,
            entry(41, Command::Batch(vec![create(2, T0)])),
        ),
        (
            "entry-format2.bin",
            2,
            entry(42, Command::Batch(vec![increment_all(1, T0 + 5)])),
        ),
        (
            "entry-format3.bin",
            3,
            entry(44, Command::Batch(vec![patch_quota(1, T0 + 6)])),
        ),
        (
            "entry-format4.bin",
            4,
            entry(45, Command::Batch(api_key_ops(1, T0 + 8))),
        ),
        (
            "entry-meta-format0.bin",
            0,
            entry(
                43,
                Command::Meta(MetaOp::ClaimSlug {
                    slug: "acme".into(),
                    tenant: tenant_id(9),
                    at_ms: T0,
                    replacing: None,
                }),
            ),
        ),
    ];
    for (name, version, e) in entries {
        let stored = check_golden(name, &format::encode(&e).unwrap());
        assert_eq!(format::split(&stored).unwrap().0, version, "{name}");
        let decoded: Entry<TypeConfig> = format::decode(&stored).unwrap();
        assert_eq!(decoded, e, "{name}");
    }
}

#[test]
fn a_forwarded_principal_decodes_from_its_golden_bytes() {
    // The `quotad-principal-bin` metadata of a forwarded call, of each kind
    // of caller.
    let principals = vec![
        Principal {
            caller: Caller::Tenant {
                tenant: tenant_id(1),
                name: "api-key:0123456789abcdef".into(),
                scopes: Scopes::of([Scope::Check, Scope::Increment]),
            },
            expires_at_ms: Some(T0 + 86_400_000),
            key: Some(KeyProof {
                id: "0123456789abcdef".into(),
                hash: [5; 32],
            }),
        },
        Principal {
            caller: Caller::Tenant {
                tenant: tenant_id(2),
                name: "user-7".into(),
                scopes: Scopes::ALL,
            },
            expires_at_ms: Some(T0),
            key: None,
        },
        Principal {
            caller: Caller::Platform {
                name: "gateway".into(),
                operator: true,
            },
            expires_at_ms: None,
            key: None,
        },
        Principal::anonymous(),
    ];
    let bytes = format::encode(&principals).unwrap();
    let stored = check_golden("principal-format0.bin", &bytes);
    assert_eq!(format::split(&stored).unwrap().0, 0, "the format it is in");
    assert_eq!(
        format::decode::<Vec<Principal>>(&stored).unwrap(),
        principals
    );
}

/// A cluster map with format-5 parts: labelled and reserved nodes, a
/// group with a learner, a dedicated group in a node pool.
fn pooled_membership() -> Membership {
    let node = |port: u16, labels: &[(&str, &str)], reserved: bool| NodeInfo {
        peer_addr: format!("127.0.0.1:{port}"),
        grpc_addr: format!("127.0.0.1:{}", port + 1),
        http_addr: format!("127.0.0.1:{}", port + 2),
        draining: false,
        joined_at_ms: T0,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reserved,
    };
    let mut m = Membership::default();
    m.apply(&MembershipOp::Bootstrap {
        node: 1,
        info: node(7000, &[("zone", "a")], false),
        shards: 2,
    });
    m.apply(&MembershipOp::AddNode {
        info: node(7010, &[("pool", "acme"), ("zone", "b")], true),
    });
    m.apply(&MembershipOp::Members(Since(MembersReport {
        group: 0,
        voters: vec![1],
        learners: vec![2],
        leader: 1,
        term: 3,
    })));
    m.apply(&MembershipOp::DedicateIn(Since(DedicateIn {
        tenant: tenant_id(3),
        replication: 3,
        pool: Some("acme".into()),
    })));
    m
}

#[test]
fn a_cluster_map_with_pools_and_learners_decodes_from_its_golden_bytes() {
    let meta = MetaState {
        membership: pooled_membership(),
        ..MetaState::default()
    };
    assert_eq!(meta.membership.groups[&3].pool.as_deref(), Some("acme"));
    let stored = check_golden("meta-snapshot-format5.bin", &format::encode(&meta).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 5, "the format it is in");
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);

    // The ops that carry them, as log entries.
    let entry = |index, op| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Normal(Command::Meta(MetaOp::Membership(op))),
    };
    let ops = [
        (
            "entry-meta-members-format5.bin",
            entry(
                50,
                MembershipOp::Members(Since(MembersReport {
                    group: 1,
                    voters: vec![1, 2, 3],
                    learners: vec![4],
                    leader: 2,
                    term: 7,
                })),
            ),
        ),
        (
            "entry-meta-dedicate-in-format5.bin",
            entry(
                51,
                MembershipOp::DedicateIn(Since(DedicateIn {
                    tenant: tenant_id(4),
                    replication: 3,
                    pool: Some("acme".into()),
                })),
            ),
        ),
        (
            "entry-meta-add-labelled-node-format5.bin",
            entry(
                52,
                MembershipOp::AddNode {
                    info: pooled_membership().nodes[&2].clone(),
                },
            ),
        ),
    ];
    for (name, e) in ops {
        let stored = check_golden(name, &format::encode(&e).unwrap());
        assert_eq!(format::split(&stored).unwrap().0, 5, "{name}");
        assert_eq!(
            format::decode::<Entry<TypeConfig>>(&stored).unwrap(),
            e,
            "{name}"
        );
    }

    // A map without labels, learners or pools keeps its old bytes: a
    // cluster mid-upgrade reads it.
    let mut plain = pooled_membership();
    for n in plain.nodes.values_mut() {
        n.labels.clear();
        n.reserved = false;
    }
    for g in plain.groups.values_mut() {
        g.learners.clear();
        g.pool = None;
    }
    let old = MetaState {
        membership: plain,
        ..MetaState::default()
    };
    assert_eq!(format::split(&format::encode(&old).unwrap()).unwrap().0, 0);
    let legacy = entry(
        53,
        MembershipOp::Dedicate {
            tenant: tenant_id(5),
            replication: 3,
        },
    );
    assert_eq!(
        format::split(&format::encode(&legacy).unwrap()).unwrap().0,
        0
    );
}

/// The sharing catalog's ops: a marketplace policy with every condition,
/// a consumer's automatic request, a revocation.
fn sharing_ops() -> Vec<SharingOp> {
    use quotad_engine::sharing::*;
    let provider = tenant_id(1);
    let spec = PolicySpec {
        resource_id: "llama-70b".into(),
        resource_type: ResourceType::model(),
        visibility: Visibility::Marketplace,
        permissions: [Permission::Read, Permission::Execute].into(),
        pricing: Pricing::UsageBased {
            price: Amount::parse("0.001").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            unit_quota: "llm_tokens".into(),
        },
        revenue_share: RevenueShare {
            platform_fee_bp: 1_500,
            provider_share_bp: 8_500,
        },
        conditions: Conditions {
            allowed_tenants: Default::default(),
            denied_tenants: [tenant_id(3)].into(),
            min_consumer_tier: Some(Tier::Starter),
            max_consumers: Some(10),
            expires_at_ms: Some(T0 + 86_400_000 * 365),
            usage_cap: Some(UsageCap {
                units: 50_000,
                period: Period::Daily,
            }),
            justification_required: true,
            approval: Approval::Automatic,
        },
    };
    let policy = Uuid::from_u128(0x9001);
    vec![
        SharingOp::Publish {
            policy: Policy {
                id: policy,
                provider,
                spec,
                created_at_ms: T0,
                updated_at_ms: T0,
            },
            max_policies: Some(25),
        },
        SharingOp::Request {
            request: AccessRequest {
                id: Uuid::from_u128(0x9002),
                policy,
                provider,
                consumer: tenant_id(2),
                justification: "Need this service for our ML pipeline".into(),
                permissions: [Permission::Execute].into(),
                state: RequestState::Pending,
                reason: None,
                grant: None,
                requested_at_ms: T0 + 10,
                decided_at_ms: None,
                decided_by: None,
            },
            grant: Uuid::from_u128(0x9003),
            consumer_tier: Tier::Professional,
        },
    ]
}

#[test]
fn a_sharing_catalog_and_held_grants_decode_from_their_golden_bytes() {
    use quotad_engine::raft::{CommandResponse, ReplicatedState};
    use quotad_engine::sharing::{SharingOp as Op, SharingReply};
    let mut meta = MetaState {
        membership: pooled_membership(),
        ..MetaState::default()
    };
    let mut grant = None;
    for op in sharing_ops() {
        let r = meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))));
        if let CommandResponse::Sharing(Since(r)) = r
            && let SharingReply::Request { grant: Some(g), .. } = *r
        {
            grant = Some(g);
        }
    }
    let grant = grant.expect("the automatic request was granted");
    assert_eq!(meta.sharing.grants.len(), 1);
    let stored = check_golden("meta-snapshot-format6.bin", &format::encode(&meta).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 6, "the format it is in");
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);

    // The consumer holds it (a tenant snapshot), and it ends.
    let mut commands = history(3);
    commands.push(Command::Batch(vec![stamped(
        tenant_id(2),
        T0 + 7_200_000,
        TenantOp::HoldGrant(Since(Box::new(grant.clone()))),
    )]));
    let state = replay(&commands);
    let held = &state.shard.tenants[&tenant_id(2)].grants[&grant.policy];
    assert_eq!(held.grant, grant);
    let stored = check_golden("snapshot-format6.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 6, "the format it is in");
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);

    let entry = |index, command| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Normal(command),
    };
    let mut ended = grant.clone();
    ended.ended = Some(quotad_engine::sharing::GrantEnd {
        at_ms: T0 + 9,
        reason: "revoked by the provider".into(),
        by: Some(tenant_id(1)),
    });
    let revoke = Op::Revoke {
        grant: grant.id,
        by: tenant_id(1),
        reason: "revoked by the provider".into(),
        at_ms: T0 + 9,
    };
    let entries = [
        (
            "entry-meta-sharing-publish-format6.bin",
            entry(
                60,
                Command::Meta(MetaOp::Sharing(Since(Box::new(sharing_ops()[0].clone())))),
            ),
        ),
        (
            "entry-meta-sharing-request-format6.bin",
            entry(
                61,
                Command::Meta(MetaOp::Sharing(Since(Box::new(sharing_ops()[1].clone())))),
            ),
        ),
        (
            "entry-meta-sharing-revoke-format6.bin",
            entry(62, Command::Meta(MetaOp::Sharing(Since(Box::new(revoke))))),
        ),
        (
            "entry-hold-grant-format6.bin",
            entry(
                63,
                Command::Batch(vec![stamped(
                    tenant_id(2),
                    T0 + 9,
                    TenantOp::HoldGrant(Since(Box::new(ended))),
                )]),
            ),
        ),
    ];
    for (name, e) in entries {
        let stored = check_golden(name, &format::encode(&e).unwrap());
        assert_eq!(format::split(&stored).unwrap().0, 6, "{name}");
        assert_eq!(
            format::decode::<Entry<TypeConfig>>(&stored).unwrap(),
            e,
            "{name}"
        );
    }
    // Without sharing, the same map keeps its format-5 bytes.
    meta.sharing = Default::default();
    assert_eq!(format::split(&format::encode(&meta).unwrap()).unwrap().0, 5);
}

/// Format 7: a use through a grant, its usage records on both sides, the
/// transfer ops, and a forwarded check through a grant.
#[test]
fn shared_use_and_its_transfers_decode_from_their_golden_bytes() {
    use quotad_engine::cluster::ForwardRequest;
    use quotad_engine::quota::{Received, SharedUse};
    use quotad_engine::raft::{CommandResponse, ReplicatedState};
    use quotad_engine::shard::{BatchItem, SharedCheck, TenantCall};
    use quotad_engine::sharing::{Permission, SharingReply};
    let (provider, consumer) = (tenant_id(1), tenant_id(2));
    let mut meta = MetaState::default();
    let mut grant = None;
    for op in sharing_ops() {
        if let CommandResponse::Sharing(Since(r)) =
            meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))))
            && let SharingReply::Request { grant: Some(g), .. } = *r
        {
            grant = Some(g);
        }
    }
    let grant = grant.unwrap();
    let policy = grant.policy;
    let at = T0 + 7_200_000;
    let use_op = |n: i64| {
        TenantOp::SharedUse(Since(SharedUse {
            quota: "llm_tokens".into(),
            amount: 1_000 * n,
            idempotency_key: Some(format!("use-{n}")),
            policy,
            permission: Permission::Execute,
        }))
    };
    let mut commands = history(3);
    commands.push(Command::Batch(vec![
        stamped(consumer, at, TenantOp::HoldGrant(Since(Box::new(grant)))),
        StampedOp {
            audit: None,
            ..stamped(consumer, at + 1, use_op(1))
        },
        StampedOp {
            audit: None,
            ..stamped(consumer, at + 2, use_op(2))
        },
        StampedOp {
            audit: None,
            ..stamped(consumer, at + 3, TenantOp::SealTransfer(Since(provider)))
        },
    ]));
    let sealed = replay(&commands).shard.tenants[&consumer].shared.outbox[&provider]
        .sending
        .clone()
        .expect("sealed");
    assert_eq!(sealed.lines.iter().map(|(_, u)| u).sum::<u64>(), 3_000);
    commands.push(Command::Batch(vec![
        StampedOp {
            audit: None,
            ..stamped(
                provider,
                at + 4,
                TenantOp::ReceiveUsage(Since(Box::new(Received {
                    consumer,
                    transfer: sealed.clone(),
                }))),
            )
        },
        StampedOp {
            audit: None,
            ..stamped(
                consumer,
                at + 5,
                TenantOp::AckTransfer(Since((provider, sealed.seq))),
            )
        },
        StampedOp {
            audit: None,
            ..stamped(consumer, at + 6, use_op(3))
        },
    ]));
    let state = replay(&commands);
    let (c, p) = (
        &state.shard.tenants[&consumer].shared,
        &state.shard.tenants[&provider].shared,
    );
    assert_eq!(c.used.values().sum::<u64>(), 6_000);
    assert_eq!(p.received.values().sum::<u64>(), 3_000, "the sealed part");
    assert_eq!(c.outbox[&provider].pending.values().sum::<u64>(), 3_000);
    let stored = check_golden("snapshot-format7.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 7, "the format it is in");
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);

    let entry = |index, command| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Normal(command),
    };
    let entries = [
        (
            "entry-shared-use-format7.bin",
            entry(70, commands[commands.len() - 2].clone()),
        ),
        (
            "entry-transfer-format7.bin",
            entry(71, commands[commands.len() - 1].clone()),
        ),
    ];
    for (name, e) in entries {
        let stored = check_golden(name, &format::encode(&e).unwrap());
        assert_eq!(format::split(&stored).unwrap().0, 7, "{name}");
        assert_eq!(
            format::decode::<Entry<TypeConfig>>(&stored).unwrap(),
            e,
            "{name}"
        );
    }
    // A check through a grant, forwarded to the consumer's leader.
    let check = SharedCheck {
        quota: "llm_tokens".into(),
        amount: 5,
        policy,
        permission: Permission::Read,
    };
    let forwarded = vec![
        ForwardRequest::Tenant {
            tenant: consumer,
            call: TenantCall::SharedCheck(Since(check.clone())),
        },
        ForwardRequest::Tenant {
            tenant: consumer,
            call: TenantCall::Batch(vec![BatchItem::SharedCheck(Since(check))]),
        },
    ];
    let bytes = format::encode(&forwarded).unwrap();
    let stored = check_golden("forward-shared-check-format7.bin", &bytes);
    assert_eq!(format::split(&stored).unwrap().0, 7);
    let decoded: Vec<ForwardRequest> = format::decode(&stored).unwrap();
    assert!(format::encode(&decoded).unwrap() == bytes);
}

/// Format 8: a reservation through a grant (it holds part of the cap).
#[test]
fn a_reservation_through_a_grant_decodes_from_its_golden_bytes() {
    use quotad_engine::quota::SharedReserve;
    use quotad_engine::raft::{CommandResponse, ReplicatedState};
    use quotad_engine::sharing::{Permission, SharingReply, Via};
    let consumer = tenant_id(2);
    let mut meta = MetaState::default();
    let mut grant = None;
    for op in sharing_ops() {
        if let CommandResponse::Sharing(Since(r)) =
            meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))))
            && let SharingReply::Request { grant: Some(g), .. } = *r
        {
            grant = Some(g);
        }
    }
    let grant = grant.unwrap();
    let at = T0 + 7_200_000;
    let reserve = StampedOp {
        audit: None,
        ..stamped(
            consumer,
            at + 1,
            TenantOp::SharedReserve(Since(Box::new(SharedReserve {
                quota: "llm_tokens".into(),
                amount: 700,
                ttl_ms: 60_000,
                reservation_id: Uuid::from_u128(0x7e5),
                idempotency_key: Some("hold-1".into()),
                via: Via {
                    policy: grant.policy,
                    permission: Permission::Execute,
                },
            }))),
        )
    };
    let mut commands = history(3);
    commands.push(Command::Batch(vec![
        stamped(
            consumer,
            at,
            TenantOp::HoldGrant(Since(Box::new(grant.clone()))),
        ),
        reserve.clone(),
    ]));
    let state = replay(&commands);
    let t = &state.shard.tenants[&consumer];
    assert_eq!(*t.grants[&grant.policy].cap_held, 700);
    assert!(t.reservations[&Uuid::from_u128(0x7e5)].via.is_some());
    let stored = check_golden("snapshot-format8.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 8, "the format it is in");
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 80),
        payload: EntryPayload::Normal(Command::Batch(vec![reserve])),
    };
    let stored = check_golden(
        "entry-shared-reserve-format8.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 8);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 9: a subscription grant, billed (its line and the month billed).
#[test]
fn a_billed_subscription_decodes_from_its_golden_bytes() {
    use quotad_engine::sharing::{Amount, Currency, Pricing};
    let consumer = tenant_id(2);
    let mut meta = MetaState::default();
    let mut grant = None;
    for op in sharing_ops() {
        use quotad_engine::raft::{CommandResponse, ReplicatedState};
        use quotad_engine::sharing::SharingReply;
        if let CommandResponse::Sharing(Since(r)) =
            meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))))
            && let SharingReply::Request { grant: Some(g), .. } = *r
        {
            grant = Some(g);
        }
    }
    let mut grant = grant.unwrap();
    grant.pricing = Pricing::Subscription {
        price: Amount::parse("49.99").unwrap(),
        currency: Currency::parse("EUR").unwrap(),
    };
    let at = T0 + 7_200_000;
    let bill = StampedOp {
        audit: None,
        ..stamped(
            consumer,
            at + 40 * 86_400_000,
            TenantOp::BillSubscriptions(Since(())),
        )
    };
    let mut commands = history(3);
    commands.push(Command::Batch(vec![
        stamped(
            consumer,
            at,
            TenantOp::HoldGrant(Since(Box::new(grant.clone()))),
        ),
        bill.clone(),
    ]));
    let state = replay(&commands);
    let t = &state.shard.tenants[&consumer];
    assert_eq!(
        t.shared.used.len(),
        2,
        "the first month prorated, the next in full"
    );
    assert!(*t.grants[&grant.policy].billed_period > 0);
    let stored = check_golden("snapshot-format9.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 9, "the format it is in");
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 90),
        payload: EntryPayload::Normal(Command::Batch(vec![bill])),
    };
    let stored = check_golden(
        "entry-bill-subscriptions-format9.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 9);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 10: a closed period, in the catalog and in a tenant's usage,
/// with an adjustment that arrived after it closed.
#[test]
fn a_closed_period_decodes_from_its_golden_bytes() {
    use quotad_engine::quota::Received;
    use quotad_engine::raft::ReplicatedState;
    use quotad_engine::sharing::catalog::ClosePeriod;
    use quotad_engine::sharing::ledger::{LineKind, period_of};
    use quotad_engine::sharing::{Amount, Currency, Transfer, UsageKey};
    let (provider, consumer) = (tenant_id(1), tenant_id(2));
    let mut meta = MetaState::default();
    let period = period_of(T0);
    let close = Command::Meta(MetaOp::Sharing(Since(Box::new(SharingOp::ClosePeriod(
        Since(ClosePeriod {
            period,
            at_ms: T0 + 40 * 86_400_000,
        }),
    )))));
    meta.apply(&close);
    assert!(meta.sharing.closed.contains_key(&period));
    let stored = check_golden(
        "meta-snapshot-format10.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 10);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);

    let key = UsageKey {
        period,
        policy: Uuid::from_u128(0x9001),
        provider,
        consumer,
        price: Amount::parse("0.001").unwrap(),
        currency: Some(Currency::parse("USD").unwrap()),
        fee_bp: 1_500,
        kind: format::Added(LineKind::Usage),
    };
    let at = T0 + 40 * 86_400_000;
    let mut commands = history(3);
    commands.push(Command::Batch(vec![
        StampedOp {
            audit: None,
            ..stamped(provider, at, TenantOp::ClosePeriod(Since((period, at))))
        },
        StampedOp {
            audit: None,
            ..stamped(
                provider,
                at + 1,
                TenantOp::ReceiveUsage(Since(Box::new(Received {
                    consumer,
                    transfer: Transfer {
                        seq: 1,
                        lines: vec![(key, 42)],
                    },
                }))),
            )
        },
    ]));
    let state = replay(&commands);
    let shared = &state.shard.tenants[&provider].shared;
    assert!(shared.received.is_empty(), "late: an adjustment");
    assert_eq!(shared.adjustments[&key], 42);
    let stored = check_golden("snapshot-format10.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 10);
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    for (name, e) in [
        ("entry-meta-close-period-format10.bin", close),
        (
            "entry-close-period-format10.bin",
            commands[commands.len() - 1].clone(),
        ),
    ] {
        let e = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), 100),
            payload: EntryPayload::Normal(e),
        };
        let stored = check_golden(name, &format::encode(&e).unwrap());
        assert_eq!(format::split(&stored).unwrap().0, 10, "{name}");
        assert_eq!(
            format::decode::<Entry<TypeConfig>>(&stored).unwrap(),
            e,
            "{name}"
        );
    }
}

/// Format 11: the catalog brought back by a restore.
#[test]
fn a_restored_catalog_decodes_from_its_golden_bytes() {
    use quotad_engine::raft::ReplicatedState;
    let mut meta = MetaState::default();
    for op in sharing_ops() {
        meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))));
    }
    let op = SharingOp::Restore(Since(Box::new(meta.sharing.0.clone())));
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 110),
        payload: EntryPayload::Normal(Command::Meta(MetaOp::Sharing(Since(Box::new(op))))),
    };
    let stored = check_golden(
        "entry-meta-sharing-restore-format11.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 11);
    let decoded: Entry<TypeConfig> = format::decode(&stored).unwrap();
    assert_eq!(decoded, e);
    // Applied to an empty catalog, it is the archived one.
    let mut fresh = MetaState::default();
    let EntryPayload::Normal(cmd) = decoded.payload else {
        panic!("a normal entry")
    };
    fresh.apply(&cmd);
    assert_eq!(fresh.sharing, meta.sharing);
}

/// Format 12: a policy of a resource type the catalog configured (the
/// built-in four keep their old bytes, see the format 6 files).
#[test]
fn a_configured_resource_type_decodes_from_its_golden_bytes() {
    use quotad_engine::raft::ReplicatedState;
    use quotad_engine::sharing::ResourceType;
    let mut ops = sharing_ops();
    if let SharingOp::Publish { policy, .. } = &mut ops[0] {
        policy.spec.resource_type = ResourceType::named("prompt_pack").unwrap();
    }
    let mut meta = MetaState::default();
    for op in ops {
        meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))));
    }
    let stored = check_golden(
        "meta-snapshot-format12.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 12);
    let decoded = format::decode::<MetaState>(&stored).unwrap();
    assert_eq!(decoded, meta);
    let p = decoded.sharing.policies.values().next().unwrap();
    assert_eq!(p.spec.resource_type.as_str(), "prompt_pack");
}

/// Format 13: the platform's statement zone, and a grant made in it.
#[test]
fn a_statement_zone_decodes_from_its_golden_bytes() {
    use quotad_engine::raft::ReplicatedState;
    let mut meta = MetaState::default();
    let zone = Command::Meta(MetaOp::Sharing(Since(Box::new(
        SharingOp::SetStatementZone(Since(chrono_tz::Pacific::Kiritimati)),
    ))));
    meta.apply(&zone);
    for op in sharing_ops() {
        meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))));
    }
    let g = meta.sharing.grants.values().next().unwrap();
    assert_eq!(g.zone(), chrono_tz::Pacific::Kiritimati);
    let stored = check_golden(
        "meta-snapshot-format13.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 13);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 130),
        payload: EntryPayload::Normal(zone),
    };
    let stored = check_golden(
        "entry-meta-statement-zone-format13.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 13);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 14: grants paused while their provider may not share.
#[test]
fn a_paused_grant_decodes_from_its_golden_bytes() {
    use quotad_engine::raft::ReplicatedState;
    use quotad_engine::sharing::catalog::ProviderStanding;
    let mut meta = MetaState::default();
    for op in sharing_ops() {
        meta.apply(&Command::Meta(MetaOp::Sharing(Since(Box::new(op)))));
    }
    let pause = Command::Meta(MetaOp::Sharing(Since(Box::new(
        SharingOp::ProviderStanding(Since(ProviderStanding {
            provider: tenant_id(1),
            paused: Some("tenant is suspended".into()),
        })),
    ))));
    meta.apply(&pause);
    let g = meta.sharing.grants.values().next().unwrap();
    assert!(!g.admits(T0 + 20));
    let stored = check_golden(
        "meta-snapshot-format14.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 14);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 140),
        payload: EntryPayload::Normal(pause),
    };
    let stored = check_golden(
        "entry-meta-provider-standing-format14.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 14);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 15: a console session signed out before it expires.
#[test]
fn a_signed_out_console_session_decodes_from_its_golden_bytes() {
    use quotad_engine::raft::{ReplicatedState, SignOut};
    let mut meta = MetaState::default();
    let sign_out = Command::Meta(MetaOp::SignOut(Since(SignOut {
        session: [7; 16],
        until_ms: T0 + 3_600_000,
        at_ms: T0,
    })));
    meta.apply(&sign_out);
    assert!(meta.signed_out.contains(&[7; 16]));
    let stored = check_golden(
        "meta-snapshot-format15.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 15);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 150),
        payload: EntryPayload::Normal(sign_out),
    };
    let stored = check_golden(
        "entry-meta-sign-out-format15.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 15);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 16 tenant ops: a branding and flag values (a defined flag's and
/// one of the tenant's own), one removed again.
fn customization_ops(n: u128, at_ms: i64) -> Vec<StampedOp> {
    use quotad_engine::custom::{BrandingInput, FlagType, FlagValue, Needs};
    use quotad_engine::quota::{BrandingChange, FlagChange};
    let id = tenant_id(n);
    let branding = BrandingInput {
        logo_url: Some("https://cdn.acme.test/logo.svg".into()),
        primary_color: Some("#0b3d91".into()),
        theme: Some("dark".into()),
        product_name: Some("Acme AI".into()),
        ..BrandingInput::default()
    }
    .check()
    .unwrap();
    let flag = |key: &str, value: Option<serde_json::Value>, kind| FlagChange {
        key: key.into(),
        value: value.map(|v| FlagValue::of("value", &v).unwrap()),
        kind,
        needs: None,
        limit: Some(100),
    };
    vec![
        stamped(
            id,
            at_ms,
            TenantOp::SetBranding(Since(Box::new(BrandingChange {
                branding: Some(branding),
                needs: vec![Needs {
                    feature: "custom_branding".into(),
                    tier: Tier::Professional,
                }],
            }))),
        ),
        stamped(
            id,
            at_ms + 1,
            TenantOp::SetFlag(Since(Box::new(flag(
                "max_context_tokens",
                Some(serde_json::json!(65536)),
                Some(FlagType::Number),
            )))),
        ),
        stamped(
            id,
            at_ms + 2,
            TenantOp::SetFlag(Since(Box::new(flag(
                "checkout_v2",
                Some(serde_json::json!({"variant": "b"})),
                None,
            )))),
        ),
        stamped(
            id,
            at_ms + 3,
            TenantOp::SetFlag(Since(Box::new(flag("checkout_v2", None, None)))),
        ),
    ]
}

/// Format 16: a tenant's branding and flags, and the platform's flags.
#[test]
fn customization_decodes_from_its_golden_bytes() {
    use quotad_engine::custom::{FlagDef, FlagType, FlagValue, PlatformFlagOp};
    use quotad_engine::raft::ReplicatedState;
    let mut commands = history(2);
    commands.push(Command::Batch(customization_ops(1, T0 + 7_200_000)));
    let state = replay(&commands);
    let custom = &state.shard.tenants[&tenant_id(1)].custom;
    assert_eq!(
        custom.branding.as_ref().unwrap().primary_color.hex(),
        "#0b3d91"
    );
    assert_eq!(
        custom.flags.keys().collect::<Vec<_>>(),
        ["max_context_tokens"]
    );
    let stored = check_golden("snapshot-format16.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 16);
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 160),
        payload: EntryPayload::Normal(Command::Batch(customization_ops(1, T0 + 9))),
    };
    let stored = check_golden(
        "entry-customization-format16.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 16);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);

    let def = FlagDef {
        kind: FlagType::Boolean,
        default: FlagValue::of("default", &serde_json::json!(false)).unwrap(),
        tiers: BTreeMap::from([(
            Tier::Enterprise,
            FlagValue::of("tiers", &serde_json::json!(true)).unwrap(),
        )]),
        min_tier: Some(Tier::Starter),
        enabled: true,
        description: "New billing page".into(),
    };
    let set = Command::Meta(MetaOp::PlatformFlag(Since(PlatformFlagOp {
        key: "billing_v2".into(),
        def: Some(def),
        by: "op-1".into(),
        request_id: "req-16".into(),
        at_ms: T0,
    })));
    let mut meta = MetaState::default();
    meta.apply(&set);
    assert_eq!(meta.platform_flags.history.len(), 1);
    let stored = check_golden(
        "meta-snapshot-format16.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 16);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 161),
        payload: EntryPayload::Normal(set),
    };
    let stored = check_golden(
        "entry-meta-platform-flag-format16.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 16);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 17: a tenant's webhook endpoint (secret sealed), an alert raised
/// by a spend, its delivery and an attempt.
#[test]
fn alerts_and_webhooks_decode_from_their_golden_bytes() {
    use quotad_engine::alerts::{Attempt, Endpoint, Outcome};
    use quotad_engine::custom::Needs;
    use quotad_engine::custom::secret::Sealed;
    use quotad_engine::quota::WebhookChange;
    let id = tenant_id(1);
    let endpoint = Endpoint {
        id: "ep_1".into(),
        url: "https://hooks.acme.test/quotad".into(),
        events: vec![],
        description: "ops".into(),
        enabled: true,
        secret: Sealed {
            nonce: [3; 12],
            ciphertext: vec![9; 48],
            last4: "wxyz".into(),
        },
        previous: None,
        created_at_ms: 0,
        disabled_reason: None,
        dead_in_a_row: 0,
    };
    let webhook = |at_ms, change| stamped(id, at_ms, TenantOp::Webhook(Since(Box::new(change))));
    let policy = QuotaPolicy::counter(Period::Monthly, Some(10));
    let ops = vec![
        webhook(
            T0 + 7_200_000,
            WebhookChange::Add {
                endpoint: Box::new(endpoint),
                limit: Some(3),
                needs: Needs {
                    feature: "webhooks".into(),
                    tier: Tier::Starter,
                },
            },
        ),
        stamped(
            id,
            T0 + 7_200_001,
            TenantOp::SetQuota {
                quota: "gpu_minutes".into(),
                policy,
            },
        ),
        StampedOp {
            audit: None,
            ..stamped(
                id,
                T0 + 7_200_002,
                TenantOp::Increment {
                    quota: "gpu_minutes".into(),
                    amount: 9,
                    idempotency_key: None,
                },
            )
        },
        webhook(
            T0 + 7_200_003,
            WebhookChange::Delivered {
                id: 1,
                attempt: Attempt {
                    at_ms: T0 + 7_200_003,
                    status: Some(500),
                    latency_ms: 12,
                    error: None,
                },
                outcome: Outcome::Retry {
                    next_at_ms: T0 + 7_205_003,
                },
            },
        ),
        stamped(
            id,
            T0 + 7_200_004,
            TenantOp::Alerts(Since(Box::new(quotad_engine::quota::AlertOp::Billing {
                succeeded: false,
                grace_ms: 604_800_000,
                suspend: true,
                data: "{\"invoiceId\":\"in_1\"}".into(),
            }))),
        ),
    ];
    let mut commands = history(2);
    commands.push(Command::Batch(ops.clone()));
    let state = replay(&commands);
    let alerts = &state.shard.tenants[&id].alerts;
    assert_eq!(
        alerts.recent.len(),
        3,
        "the 80% and 90% thresholds, a payment failure: {alerts:?}"
    );
    assert_eq!(alerts.deliveries[&1].tries, 1);
    assert_eq!(alerts.billing.as_ref().unwrap().failures, 1);
    let stored = check_golden("snapshot-format17.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 17);
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 170),
        payload: EntryPayload::Normal(Command::Batch(ops)),
    };
    let stored = check_golden("entry-webhooks-format17.bin", &format::encode(&e).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 17);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 18: the operators' webhook endpoint, a tenant's alerts handed on
/// to them (once, though handed on twice), a delivery's attempt.
#[test]
fn the_operators_alerts_decode_from_their_golden_bytes() {
    use quotad_engine::alerts::platform::Mirrored;
    use quotad_engine::alerts::{
        Alert, AlertType, Attempt, Endpoint, Outcome, PlatformAlertOp, PlatformChange,
    };
    use quotad_engine::custom::secret::Sealed;
    use quotad_engine::raft::ReplicatedState;
    let endpoint = Endpoint {
        id: "ep_ops".into(),
        url: "https://ops.example.test/quotad".into(),
        events: vec![AlertType::WebhookEndpointDisabled, AlertType::PaymentFailed],
        description: "on call".into(),
        enabled: true,
        secret: Sealed {
            nonce: [5; 12],
            ciphertext: vec![8; 48],
            last4: "pqrs".into(),
        },
        previous: None,
        created_at_ms: 0,
        disabled_reason: None,
        dead_in_a_row: 0,
    };
    let handed = PlatformChange::Mirror(vec![Mirrored {
        tenant: tenant_id(1),
        alert: Alert {
            seq: 4,
            kind: AlertType::PaymentFailed,
            at_ms: T0 + 1_000,
            data: "{\"invoiceId\":\"in_1\"}".into(),
        },
    }]);
    let op = |change, at_ms| {
        Command::Meta(MetaOp::PlatformAlerts(Since(Box::new(PlatformAlertOp {
            change,
            by: "ops".into(),
            request_id: "req-18".into(),
            at_ms,
        }))))
    };
    let commands = vec![
        op(PlatformChange::Add(Box::new(endpoint)), T0),
        op(handed.clone(), T0 + 2_000),
        op(handed, T0 + 2_001),
        op(
            PlatformChange::Delivered {
                id: 1,
                attempt: Attempt {
                    at_ms: T0 + 2_100,
                    status: Some(503),
                    latency_ms: 40,
                    error: None,
                },
                outcome: Outcome::Retry {
                    next_at_ms: T0 + 7_100,
                },
            },
            T0 + 2_100,
        ),
    ];
    let mut meta = MetaState::default();
    for c in &commands {
        meta.apply(c);
    }
    let p = &meta.platform_alerts;
    assert_eq!(p.feed.raised, 1, "handed on twice, raised once");
    assert_eq!(p.feed.deliveries[&1].tries, 1);
    let stored = check_golden(
        "meta-snapshot-format18.bin",
        &format::encode(&meta).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 18);
    assert_eq!(format::decode::<MetaState>(&stored).unwrap(), meta);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 180),
        payload: EntryPayload::Normal(commands[1].clone()),
    };
    let stored = check_golden(
        "entry-platform-alerts-format18.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 18);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}

/// Format 19: a quota with further windows, scope rules, rollover and
/// shadow mode (set by a patch), a credit grant drawn from, scoped spends
/// and a scoped hold, a tenant in shadow mode, a period's carry.
#[test]
fn the_quota_model_beyond_one_limit_decodes_from_its_golden_bytes() {
    use quotad_engine::format::Added;
    use quotad_engine::model::quota_rules::limit_policy;
    use quotad_engine::model::{Action, ScopeRules, SharedPolicy};
    use quotad_engine::quota::{GrantChange, NewCreditGrant, OpOutcome, RulesPatch, ScopedSpend};
    let id = tenant_id(1);
    let lim = |period, limit| SharedPolicy::new(limit_policy(period, limit, Action::Block));
    let patch = PolicyPatch {
        limit: Some(30),
        soft_limit: None,
        period: Some(Period::Monthly),
        action: None,
        kind: None,
        alert_thresholds: None,
        by_operator: true,
        tier_policies: BTreeMap::new(),
        rules: Added(Some(Box::new(RulesPatch {
            windows: Some(vec![lim(Period::Second, 50), lim(Period::Daily, 100)]),
            rollover: Some(true),
            rollover_max: Some(Some(30)),
            preserve_overage: None,
            shadow: Some(false),
            scopes: Some(Some(ScopeRules {
                default: Some(lim(Period::Daily, 10)),
                overrides: vec![("premium_*".into(), lim(Period::Daily, 20))],
            })),
        }))),
    };
    let spend = |scope: &str, amount, hold| {
        TenantOp::Spend(Since(Box::new(ScopedSpend {
            quota: "gpu_minutes".into(),
            amount,
            scope: scope.into(),
            idempotency_key: Some(format!("{scope}-{amount}")),
            max_scopes: [10_000; 4],
            hold,
        })))
    };
    let at = T0 + 7_200_000;
    let ops = vec![
        stamped(
            id,
            at,
            TenantOp::PatchQuota(Since(Box::new(QuotaPatch {
                quota: "gpu_minutes".into(),
                patch,
            }))),
        ),
        stamped(
            id,
            at + 1,
            TenantOp::CreditGrant(Since(Box::new(GrantChange::Add {
                quota: "gpu_minutes".into(),
                grant: NewCreditGrant {
                    amount: 25,
                    effective_at_ms: None,
                    expires_at_ms: Some(at + 30 * 86_400_000),
                    priority: 1,
                    reason: "launch promo".into(),
                    idempotency_key: Some("promo-1".into()),
                },
            }))),
        ),
        stamped(id, at + 2, spend("alice", 9, None)),
        stamped(id, at + 3, spend("premium_gold", 20, None)),
        stamped(id, at + 4, TenantOp::SetShadow(Since(true))),
        stamped(
            id,
            at + 5,
            spend("bob", 10, Some((600_000, Uuid::from_u128(0x19)))),
        ),
        stamped(id, at + 2_000, spend("alice", 5, None)),
    ];
    let mut commands = history(2);
    commands.push(Command::Batch(ops.clone()));
    let state = replay(&commands);
    let t = &state.shard.tenants[&id];
    assert!(*t.shadow);
    let q = &t.quotas["gpu_minutes"];
    let layers = q.layers().expect("the quota has layers");
    assert_eq!(layers.scopes.len(), 3, "{layers:?}");
    assert_eq!(layers.scopes["alice"].used, 14, "over alice's 10: shadow");
    assert!(layers.grants[0].used > 0, "the grant is drawn: {layers:?}");
    assert!(
        t.reservations
            .values()
            .any(|r| r.scope.as_deref() == Some("bob"))
    );
    let stored = check_golden("snapshot-format19.bin", &format::encode(&state).unwrap());
    assert_eq!(format::split(&stored).unwrap().0, 19);
    assert_eq!(format::decode::<GroupState>(&stored).unwrap(), state);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 190),
        payload: EntryPayload::Normal(Command::Batch(ops)),
    };
    let stored = check_golden(
        "entry-quota-model-format19.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 19);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
    // A decision that names its limiter, as an idempotency log keeps it.
    let kept = t
        .idempotency
        .get("alice-5")
        .map(|r| r.outcome.clone())
        .expect("remembered");
    let OpOutcome::Decision(d) = &kept else {
        panic!("{kept:?}")
    };
    assert_eq!(d.verdict, quotad_engine::quota::Verdict::ShadowDenied);
    assert_eq!(
        d.limited_by.0.as_ref().map(|l| l.level.as_str()),
        Some("scope")
    );
}

/// Format 20: an all-or-nothing spend whose parts name scopes (Envoy's
/// `scope_key`), with every tier's cap; a plain one still encodes as
/// before (format 2).
#[test]
fn scoped_all_or_nothing_spends_decode_from_their_golden_bytes() {
    use quotad_engine::format::Added;
    use quotad_engine::model::quota_rules::limit_policy;
    use quotad_engine::model::{Action, ScopeRules, SharedPolicy};
    use quotad_engine::quota::RulesPatch;
    let id = tenant_id(1);
    let patch = PolicyPatch {
        limit: Some(100_000),
        soft_limit: Some(None),
        period: Some(Period::Monthly),
        action: None,
        kind: None,
        alert_thresholds: None,
        by_operator: true,
        tier_policies: BTreeMap::new(),
        rules: Added(Some(Box::new(RulesPatch {
            scopes: Some(Some(ScopeRules {
                default: Some(SharedPolicy::new(limit_policy(
                    Period::Daily,
                    2,
                    Action::Block,
                ))),
                overrides: Vec::new(),
            })),
            ..Default::default()
        }))),
    };
    let all = |user: &str, key: &str| {
        TenantOp::IncrementAll(Since(AllOrNothing {
            spends: vec![
                Spend {
                    quota: "api_requests".into(),
                    amount: 1,
                    optional: false,
                    scope: Added(Some(user.into())),
                },
                Spend {
                    quota: "llm_tokens".into(),
                    amount: 50,
                    optional: false,
                    scope: Default::default(),
                },
            ],
            idempotency_key: Some(key.into()),
            max_scopes: Added(Some([10_000, 100_000, 1_000_000, 10_000_000])),
        }))
    };
    let at = T0 + 7_200_000;
    let ops = vec![
        stamped(
            id,
            at,
            TenantOp::PatchQuota(Since(Box::new(QuotaPatch {
                quota: "api_requests".into(),
                patch,
            }))),
        ),
        stamped(id, at + 1, all("alice", "r-1")),
        stamped(id, at + 2, all("alice", "r-2")),
        // Alice's third is refused by her scope: neither part is taken.
        stamped(id, at + 3, all("alice", "r-3")),
        stamped(id, at + 4, all("bob", "r-4")),
    ];
    let mut commands = history(2);
    commands.push(Command::Batch(ops.clone()));
    let state = replay(&commands);
    let t = &state.shard.tenants[&id];
    let layers = t.quotas["api_requests"].layers().expect("scope meters");
    assert_eq!(layers.scopes["alice"].used, 2);
    assert_eq!(layers.scopes["bob"].used, 1);
    let e = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 200),
        payload: EntryPayload::Normal(Command::Batch(ops)),
    };
    let stored = check_golden(
        "entry-scoped-all-or-nothing-format20.bin",
        &format::encode(&e).unwrap(),
    );
    assert_eq!(format::split(&stored).unwrap().0, 20);
    assert_eq!(format::decode::<Entry<TypeConfig>>(&stored).unwrap(), e);
}
