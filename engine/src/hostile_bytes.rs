//! Hostile bytes: every decoder that reads what another node (or a disk)
//! hands it is fed random and mutated payloads, and must answer an error,
//! never panic. Seeds are real encodings, so mutations reach deep into the
//! message (past the variant tags) rather than failing on the first byte.
//!
//! Bounded: a fixed number of cases per decoder (a few seconds in all on
//! a debug build); `PROPTEST_CASES` raises it for a longer run.
use crate::cluster::forward::{ForwardRequest, decode_request};
use crate::format::{MAGIC, Since, decode, encode};
use crate::grpc::rls_config::RlsConfig;
use crate::model::{Tenant, TenantStatus, Tier};
use crate::quota::{AllOrNothing, Spend, TenantOp, TenantState};
use crate::raft::{Command, GroupState, StampedOp, TypeConfig};
use crate::shard::TenantCall;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
use proptest::prelude::*;
use uuid::Uuid;

fn tenant_state() -> TenantState {
    let tenant = Tenant {
        id: Uuid::from_u128(7),
        slug: "acme".into(),
        name: "Acme".into(),
        tier: Tier::Professional,
        status: TenantStatus::Active,
        timezone: chrono_tz::Europe::Berlin,
        trial_ends_at_ms: None,
        settings_json: "{\"a\":1}".into(),
        created_at_ms: 1,
        updated_at_ms: 2,
        deleted: None,
    };
    let quotas = crate::quota::TierCatalog::builtin()
        .defaults(Tier::Professional)
        .clone();
    TenantState::new(tenant, quotas)
}

fn op() -> StampedOp {
    StampedOp {
        tenant: Uuid::from_u128(7),
        at_ms: 1_790_000_000_000,
        op: TenantOp::IncrementAll(Since(AllOrNothing {
            spends: vec![
                Spend {
                    quota: "api_requests".into(),
                    amount: 3,
                    optional: false,
                    scope: Default::default(),
                },
                Spend {
                    quota: "llm_tokens_model_x".into(),
                    amount: 900,
                    optional: true,
                    scope: Default::default(),
                },
            ],
            idempotency_key: Some("req-1".into()),
            max_scopes: Default::default(),
        })),
        audit: None,
    }
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

fn seeds_forward() -> Vec<u8> {
    encode(&ForwardRequest::Tenant {
        tenant: Uuid::from_u128(7),
        call: TenantCall::Apply {
            op: op().op,
            audit: None,
            consistency: crate::model::Consistency::Strict,
        },
    })
    .unwrap()
}

fn seed_principal() -> Vec<u8> {
    encode(&crate::model::Principal {
        caller: crate::model::Caller::Tenant {
            tenant: Uuid::from_u128(7),
            name: "api-key:0123456789abcdef".into(),
            scopes: crate::model::Scopes::ALL,
        },
        expires_at_ms: Some(1_790_000_000_000),
        key: Some(crate::model::KeyProof {
            id: "0123456789abcdef".into(),
            hash: [3; 32],
        }),
    })
    .unwrap()
}

fn seed_append() -> Vec<u8> {
    let entries = (1..4)
        .map(|i| Entry::<TypeConfig> {
            log_id: log_id(i),
            payload: EntryPayload::Normal(Command::Batch(vec![op(); i as usize])),
        })
        .collect();
    encode(&AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(0)),
        entries,
        leader_commit: Some(log_id(2)),
    })
    .unwrap()
}

fn seed_snapshot_state() -> Vec<u8> {
    let mut g = GroupState::default();
    g.shard
        .tenants
        .insert(Uuid::from_u128(7), Box::new(tenant_state()));
    g.apply(&Command::Batch(vec![op()]));
    encode(&g).unwrap()
}

fn seed_install() -> Vec<u8> {
    encode(&InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(9)),
            last_membership: Default::default(),
            snapshot_id: "9-1".into(),
        },
        offset: 0,
        data: seed_snapshot_state(),
        done: true,
    })
    .unwrap()
}

/// A seed with up to eight bytes changed, inserted or removed, or cut
/// short; sometimes given a version prefix.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    (
        prop::collection::vec((0..len.max(1), 0u8..3, any::<u8>()), 0..8),
        prop::option::of(0..len.max(1)),
        prop::option::of(0u8..4),
    )
        .prop_map(move |(edits, cut, version)| {
            let mut b = seed.clone();
            for (at, kind, byte) in edits {
                let at = at.min(b.len().saturating_sub(1));
                match kind {
                    0 if !b.is_empty() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ if !b.is_empty() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            if let Some(cut) = cut {
                b.truncate(cut);
            }
            if let Some(v) = version {
                let mut prefixed = MAGIC.to_vec();
                prefixed.push(v);
                prefixed.extend_from_slice(&b);
                b = prefixed;
            }
            b
        })
}

fn hostile(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mutated(seed),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn the_forward_decoder_never_panics(bytes in hostile(seeds_forward())) {
        let _ = decode_request(&bytes);
    }

    /// The caller a forwarded call carries, which the leader then checks.
    #[test]
    fn the_principal_decoder_never_panics(bytes in hostile(seed_principal())) {
        let mut meta = tonic::metadata::MetadataMap::new();
        meta.insert_bin(
            crate::cluster::principal::HEADER,
            tonic::metadata::BinaryMetadataValue::from_bytes(&bytes),
        );
        if let Ok(Some(p)) = crate::cluster::principal::from_metadata(&meta) {
            let _ = crate::cluster::principal::allows(&p, &Uuid::from_u128(7), &TenantCall::Read, 0);
        }
    }

    #[test]
    fn raft_message_decoders_never_panic(
        append in hostile(seed_append()),
        install in hostile(seed_install()),
        vote in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = decode::<AppendEntriesRequest<TypeConfig>>(&append);
        let _ = decode::<InstallSnapshotRequest<TypeConfig>>(&install);
        let _ = decode::<VoteRequest<u64>>(&vote);
        // A log entry read back from disk.
        let _ = decode::<Entry<TypeConfig>>(&append);
    }

    /// A snapshot that decodes is applied to as any state is: applying the
    /// seed's operation to it must not panic either.
    #[test]
    fn snapshot_decoding_never_panics(bytes in hostile(seed_snapshot_state())) {
        if let Ok(mut g) = decode::<GroupState>(&bytes) {
            g.apply(&Command::Batch(vec![op()]));
        }
    }

    #[test]
    fn envoy_descriptor_mapping_never_panics(
        entries in prop::collection::vec((".{0,12}", ".{0,40}"), 0..6),
        sub_limit in "[a-z_]{1,8}",
    ) {
        let config = RlsConfig::parse(&format!(
            "[[domains]]\ndomain = \"*\"\ndefault_quota = \"api_requests\"\nsub_limit_keys = [\"{sub_limit}\"]\n"
        ))
        .unwrap();
        let rule = config.domain("any").unwrap();
        let it = entries.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let _ = rule.target(it.clone());
        let _ = rule.request_id(it);
    }
}

#[test]
fn the_seeds_decode_as_themselves() {
    assert!(decode_request(&seeds_forward()).is_ok());
    assert!(decode::<crate::model::Principal>(&seed_principal()).is_ok());
    assert!(decode::<AppendEntriesRequest<TypeConfig>>(&seed_append()).is_ok());
    assert!(decode::<InstallSnapshotRequest<TypeConfig>>(&seed_install()).is_ok());
    assert!(decode::<GroupState>(&seed_snapshot_state()).is_ok());
}
