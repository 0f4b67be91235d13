//! The archive contract suite (`quotad_engine::archive::contract`) against
//! every backend: `embedded` always, `scylla` when `QUOTAD_SCYLLA_NODES`
//! names a reachable ScyllaDB cluster (comma-separated `host:port`;
//! `QUOTAD_SCYLLA_KEYSPACE` and `QUOTAD_SCYLLA_DC` choose the keyspace,
//! default `quotad_contract`, and its datacenter, default `datacenter1`,
//! replication factor 1). The ScyllaDB tests are `#[ignore]`d, so that a
//! run without a cluster reports them as skipped, never as passed;
//! `scripts/test.sh` runs them (`--ignored`) when `QUOTAD_SCYLLA_NODES` is
//! set, and run that way without it they fail.
use quotad_engine::archive::{
    Archive, ArchiveError, EmbeddedArchive, SCHEMA_VERSION, ScyllaArchive, ScyllaConfig, contract,
};
use quotad_engine::clock::SystemClock;
use std::sync::Arc;

fn embedded(dir: &tempfile::TempDir) -> Arc<EmbeddedArchive> {
    EmbeddedArchive::open(dir.path(), Arc::new(SystemClock)).unwrap()
}

/// The ScyllaDB archive that `QUOTAD_SCYLLA_NODES` names.
async fn scylla() -> Arc<ScyllaArchive> {
    let nodes = std::env::var("QUOTAD_SCYLLA_NODES").expect(
        "the ScyllaDB contract tests need QUOTAD_SCYLLA_NODES (host:port[,host:port]) naming \
         a reachable cluster",
    );
    let mut config = ScyllaConfig::new(
        nodes.split(',').map(|n| n.trim().to_string()).collect(),
        std::env::var("QUOTAD_SCYLLA_KEYSPACE").unwrap_or_else(|_| "quotad_contract".into()),
    );
    config.replication = [(
        std::env::var("QUOTAD_SCYLLA_DC").unwrap_or_else(|_| "datacenter1".into()),
        1,
    )]
    .into();
    let archive = ScyllaArchive::connect(config, Arc::new(SystemClock))
        .await
        .expect("QUOTAD_SCYLLA_NODES is set, so the cluster must be reachable");
    archive.migrate().await.unwrap();
    archive
}

macro_rules! contract_suite {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let archive = embedded(&dir);
                    archive.migrate().await.unwrap();
                    contract::$check(archive.as_ref()).await;
                }
            )*
        }

        mod scylla {
            use super::*;
            $(
                #[tokio::test]
                #[ignore = "needs a ScyllaDB cluster: set QUOTAD_SCYLLA_NODES and run --ignored"]
                async fn $check() {
                    let archive = super::scylla().await;
                    contract::$check(archive.as_ref()).await;
                }
            )*
        }

        /// The same checks inside a tenant's dedicated schema: the same
        /// tables, the same behaviour.
        mod embedded_dedicated {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let archive = embedded(&dir);
                    archive.migrate().await.unwrap();
                    let own = archive.dedicated(contract::DEDICATED_TENANT).await.unwrap();
                    contract::$check(own.as_ref()).await;
                }
            )*
        }

        mod scylla_dedicated {
            use super::*;
            $(
                #[tokio::test]
                #[ignore = "needs a ScyllaDB cluster: set QUOTAD_SCYLLA_NODES and run --ignored"]
                async fn $check() {
                    let archive = super::scylla().await;
                    let own = archive.dedicated(contract::DEDICATED_TENANT).await.unwrap();
                    contract::$check(own.as_ref()).await;
                }
            )*
        }
    };
}

contract_suite!(
    migrate_is_idempotent,
    usage_buckets_are_upserted_not_added,
    expired_buckets_are_dropped,
    audit_events_keep_their_chain,
    newest_snapshots_are_kept,
    sync_position_only_moves_forward,
    purging_a_tenant_removes_only_its_history,
    snapshots_are_ordered_by_when_they_were_taken,
);

#[tokio::test]
async fn embedded_a_dedicated_schema_is_apart_and_registered() {
    let dir = tempfile::tempdir().unwrap();
    let archive = embedded(&dir);
    archive.migrate().await.unwrap();
    contract::a_dedicated_schema_is_apart_and_registered(archive.as_ref()).await;
}

#[tokio::test]
#[ignore = "needs a ScyllaDB cluster: set QUOTAD_SCYLLA_NODES and run --ignored"]
async fn scylla_a_dedicated_schema_is_apart_and_registered() {
    let archive = scylla().await;
    contract::a_dedicated_schema_is_apart_and_registered(archive.as_ref()).await;
}

#[tokio::test]
async fn embedded_out_of_service_fails_as_unavailable_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let archive = embedded(&dir);
    archive.migrate().await.unwrap();
    archive.set_synced_to(1, 7).await.unwrap();
    archive.set_available(false);
    let err = archive.set_synced_to(1, 9).await.unwrap_err();
    assert!(
        matches!(err, ArchiveError::Unavailable { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(archive.synced_to(1).await.unwrap_err().is_transient());
    archive.set_available(true);
    assert_eq!(archive.synced_to(1).await.unwrap(), Some(7));
}

#[tokio::test]
async fn embedded_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let archive = embedded(&dir);
        archive.migrate().await.unwrap();
        archive.set_synced_to(3, 42).await.unwrap();
    }
    let archive = embedded(&dir);
    assert_eq!(archive.migrate().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(archive.synced_to(3).await.unwrap(), Some(42));
}

#[tokio::test]
async fn embedded_dedicated_schemas_survive_reopening_and_share_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let t = uuid::Uuid::new_v4();
    {
        let archive = embedded(&dir);
        archive.migrate().await.unwrap();
        let own = archive.dedicated(t).await.unwrap();
        own.set_synced_to(5, 50).await.unwrap();
        // One disk, one switch: out of service, the tenant's file too.
        archive.set_available(false);
        assert!(own.synced_to(5).await.unwrap_err().is_transient());
        archive.set_available(true);
    }
    let archive = embedded(&dir);
    archive.migrate().await.unwrap();
    let listed = archive.dedicated_schemas().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.tenant).collect::<Vec<_>>(), [t]);
    assert!(
        dir.path().join(&listed[0].name).is_file(),
        "{} names its file",
        listed[0].name
    );
    let own = archive.dedicated(t).await.unwrap();
    assert_eq!(own.synced_to(5).await.unwrap(), Some(50));
    assert_eq!(archive.synced_to(5).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_scylla_cluster_is_reported_as_unavailable() {
    // A port nothing listens on: the real driver, a refused connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut config = ScyllaConfig::new(vec![addr.clone()], "quotad_contract");
    config.connect_timeout = std::time::Duration::from_secs(2);
    let err = match ScyllaArchive::connect(config, Arc::new(SystemClock)).await {
        Ok(_) => panic!("connected to {addr}, where nothing listens"),
        Err(e) => e,
    };
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn a_bad_scylla_configuration_names_the_field() {
    let config = ScyllaConfig::new(vec!["127.0.0.1:9042".into()], "no-dashes");
    let err = match ScyllaArchive::connect(config, Arc::new(SystemClock)).await {
        Ok(_) => panic!("accepted a bad keyspace name"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            ArchiveError::Config {
                field: "keyspace",
                ..
            }
        ),
        "{err}"
    );
}
