//! The archive contract suite (`quotad_engine::archive::contract`) against
//! every backend: `embedded` always.
use quotad_engine::archive::{Archive, ArchiveError, EmbeddedArchive, contract};
use quotad_engine::clock::SystemClock;
use std::sync::Arc;

fn embedded(dir: &tempfile::TempDir) -> Arc<EmbeddedArchive> {
    EmbeddedArchive::open(dir.path(), Arc::new(SystemClock)).unwrap()
}

macro_rules! embedded_contract {
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
    };
}

embedded_contract!(
    migrate_is_idempotent,
    usage_buckets_are_upserted_not_added,
    expired_buckets_are_dropped,
    audit_events_keep_their_chain,
    newest_snapshots_are_kept,
    sync_position_only_moves_forward,
);

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
    assert_eq!(archive.migrate().await.unwrap(), 1);
    assert_eq!(archive.synced_to(3).await.unwrap(), Some(42));
}
