//! `quotad restore --from-archive`, the real binary: an archive filled by
//! a node whose data dir is then lost, restored into a new data dir, and
//! served from there; an ENTERPRISE tenant in a dedicated group (and a
//! dedicated archive schema) comes back into a dedicated group.
mod common;

use common::Node;
use quotad_engine::archive::ArchiveChoice;
use quotad_engine::audit::{AuditMeta, AuditQuery};
use quotad_engine::model::Consistency;
use quotad_engine::model::Tier;
use quotad_engine::{Engine, EngineConfig, NewTenant};
use std::process::Command;

/// Who the test acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("test"));

fn quotad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run quotad")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_data_dir_is_restored_from_the_archive_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let (lost, restored, archive_dir) = (
        dir.path().join("lost"),
        dir.path().join("restored"),
        dir.path().join("archive"),
    );
    // A node (in this process) fills the archive, then its data is lost.
    let (tenant, events, big) = {
        let mut config = EngineConfig::new(&lost);
        config.archive = ArchiveChoice::EmbeddedAt(archive_dir.clone());
        config.sync_interval = std::time::Duration::from_secs(3600);
        let engine = Engine::open(config).await.unwrap();
        let new = NewTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            tier: Tier::Free,
            timezone: chrono_tz::UTC,
            trial_days: None,
            settings_json: "{}".into(),
            owner: None,
        };
        let by = AuditMeta::new("ops", "req-1");
        let big = NewTenant {
            slug: "bigco".into(),
            name: "BigCo".into(),
            tier: Tier::Enterprise,
            ..new.clone()
        };
        let t = engine.create_tenant(new, &by).await.unwrap().tenant.id;
        let big = engine.create_tenant(big, &by).await.unwrap().tenant.id;
        engine.dedicate_tenant(big, None, &by).await.unwrap();
        for _ in 0..3 {
            engine
                .increment(&BY, big, "api_requests", 1, None, Some(Consistency::Strict))
                .await
                .unwrap();
        }
        for _ in 0..5 {
            engine
                .increment(&BY, t, "api_requests", 1, None, Some(Consistency::Strict))
                .await
                .unwrap();
        }
        engine.backup_to_archive().await.unwrap();
        for _ in 0..2 {
            engine
                .increment(&BY, t, "api_requests", 1, None, Some(Consistency::Strict))
                .await
                .unwrap();
        }
        engine.sync_archive().await.unwrap();
        // The dedicated tenant's copy leaves the shared schema a round later.
        engine.sync_archive().await.unwrap();
        let q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        let events = engine.audit(t, &q).await.unwrap().events.len();
        engine.shutdown().await;
        (t, events, big)
    };
    {
        // bigco's usage is in its own schema, a file of its own, and no
        // longer in the shared one.
        use quotad_engine::archive::{Archive, EmbeddedArchive};
        use quotad_engine::usage_history::Granularity;
        assert!(
            archive_dir
                .join(format!("dedicated/{}.redb", big.simple()))
                .is_file()
        );
        let clock = std::sync::Arc::new(quotad_engine::clock::SystemClock);
        let shared = EmbeddedArchive::open(&archive_dir, clock).unwrap();
        let (from, to) = (0, i64::MAX / 2);
        let hourly = |a: std::sync::Arc<dyn Archive>| async move {
            a.usage(big, "api_requests", Granularity::Hour, from, to)
                .await
                .unwrap()
                .iter()
                .map(|b| b.amount)
                .sum::<u64>()
        };
        assert_eq!(hourly(shared.clone()).await, 0);
        assert_eq!(hourly(shared.dedicated(big).await.unwrap()).await, 3);
    }
    std::fs::remove_dir_all(&lost).unwrap();

    let restored_s = restored.to_str().unwrap();
    let archive_s = archive_dir.to_str().unwrap();
    let out = quotad(&[
        "restore",
        "--data-dir",
        restored_s,
        "--archive-dir",
        archive_s,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from-archive"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = quotad(&[
        "restore",
        "--from-archive",
        "--data-dir",
        restored_s,
        "--archive-dir",
        archive_s,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("restored 2 tenants (1 into dedicated groups)"),
        "{stdout}"
    );

    let mut args = Node::local_args();
    args.extend(["--archive-dir".to_string(), archive_s.to_string()]);
    let node = Node::start_with(&restored, &args);
    assert_eq!(
        common::api_requests_used(&node, &tenant.to_string()).await,
        7,
        "the 5 in the snapshot and 2 after"
    );
    let page =
        common::get_json(&node.url(&format!("/api/v1/tenants/{tenant}/audit?limit=100"))).await;
    assert_eq!(page["data"]["events"].as_array().unwrap().len(), events);
    assert_eq!(page["data"]["chain"]["valid"], true, "{page}");

    assert_eq!(common::api_requests_used(&node, &big.to_string()).await, 3);
    let placement = common::get_json(&node.url(&format!("/api/v1/tenants/{big}/placement"))).await;
    assert_eq!(placement["data"]["dedicated"], true, "{placement}");
    let page = common::get_json(&node.url(&format!("/api/v1/tenants/{big}/audit?limit=100"))).await;
    let actions: Vec<&str> = page["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"tenant.dedicated"), "{actions:?}");
    assert_eq!(page["data"]["chain"]["valid"], true, "{page}");
}

/// Sharing comes back with a restore: the provider's policy, the
/// consumer's grant (in the catalog and in the consumer's own state), and
/// the usage records on both sides; shared use goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_back_policies_grants_and_shared_usage() {
    use quotad_engine::sharing::{
        Amount, Approval, Conditions, Currency, Permission, PolicySpec, Pricing, ResourceType,
        RevenueShare, Via, Visibility,
    };
    let dir = tempfile::tempdir().unwrap();
    let (lost, restored, archive_dir) = (
        dir.path().join("lost"),
        dir.path().join("restored"),
        dir.path().join("archive"),
    );
    let (provider, consumer, policy) = {
        let mut config = EngineConfig::new(&lost);
        config.archive = ArchiveChoice::EmbeddedAt(archive_dir.clone());
        config.sync_interval = std::time::Duration::from_secs(3600);
        let engine = Engine::open(config).await.unwrap();
        let by = AuditMeta::new("ops", "req-1");
        let new = |slug: &str, tier| NewTenant {
            slug: slug.into(),
            name: slug.into(),
            tier,
            timezone: chrono_tz::UTC,
            trial_days: None,
            settings_json: "{}".into(),
            owner: None,
        };
        let provider = engine
            .create_tenant(new("lab", Tier::Professional), &by)
            .await
            .unwrap()
            .tenant
            .id;
        let consumer = engine
            .create_tenant(new("app", Tier::Starter), &by)
            .await
            .unwrap()
            .tenant
            .id;
        let policy = engine
            .publish_policy(
                provider,
                PolicySpec {
                    resource_id: "llama".into(),
                    resource_type: ResourceType::model(),
                    visibility: Visibility::Marketplace,
                    permissions: [Permission::Execute].into(),
                    pricing: Pricing::UsageBased {
                        price: Amount::parse("0.5").unwrap(),
                        currency: Currency::parse("USD").unwrap(),
                        unit_quota: "api_requests".into(),
                    },
                    revenue_share: RevenueShare {
                        platform_fee_bp: 1_500,
                        provider_share_bp: 8_500,
                    },
                    conditions: Conditions {
                        approval: Approval::Automatic,
                        ..Conditions::default()
                    },
                },
                &by,
            )
            .await
            .unwrap()
            .id;
        engine
            .request_access(consumer, policy, "pipeline".into(), None, &by)
            .await
            .unwrap();
        let via = Via {
            policy,
            permission: Permission::Execute,
        };
        for _ in 0..4 {
            let d = engine
                .increment_shared(
                    &BY,
                    consumer,
                    "api_requests",
                    2,
                    None,
                    Some(Consistency::Strict),
                    via,
                )
                .await
                .unwrap();
            assert!(d.allowed);
        }
        assert_eq!(engine.transfer_shared_usage().await.unwrap(), 1);
        engine.backup_to_archive().await.unwrap();
        engine.shutdown().await;
        (provider, consumer, policy)
    };
    std::fs::remove_dir_all(&lost).unwrap();
    let (restored_s, archive_s) = (restored.to_str().unwrap(), archive_dir.to_str().unwrap());
    let out = quotad(&[
        "restore",
        "--from-archive",
        "--data-dir",
        restored_s,
        "--archive-dir",
        archive_s,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("restored 1 sharing policies"), "{stdout}");

    let mut args = Node::local_args();
    args.extend(["--archive-dir".to_string(), archive_s.to_string()]);
    let node = Node::start_with(&restored, &args);
    let as_tenant = |tenant: uuid::Uuid, path: &str| {
        common::http()
            .get(node.url(path))
            .header("X-Tenant-ID", tenant.to_string())
            .send()
    };
    let v: serde_json::Value = as_tenant(consumer, &format!("/api/v1/sharing/policies/{policy}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["resourceId"], "llama", "{v}");
    let v: serde_json::Value = as_tenant(consumer, "/api/v1/sharing/grants")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["status"], "active", "{v}");
    let v: serde_json::Value = as_tenant(provider, "/api/v1/sharing/statements")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["lines"][0]["units"], 8, "{v}");
    assert_eq!(v["data"]["lines"][0]["gross"], "4", "{v}");
    // Shared use goes on through the restored grant.
    let mut grpc = node.grpc().await;
    let d = grpc
        .increment(quotad_proto::v1::IncrementRequest {
            tenant_id: consumer.to_string(),
            quota: "api_requests".into(),
            amount: 1,
            sharing_policy_id: policy.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.allowed);
}
