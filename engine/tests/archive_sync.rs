//! State machine → archive sync on a real engine and the embedded archive:
//! what is synced, that a down archive stops nothing on the hot path, and
//! that it catches up afterwards (across a restart too) with nothing lost
//! and nothing doubled.
use quotad_engine::archive::{Archive, ArchiveChoice, EmbeddedArchive};
use quotad_engine::audit::{AuditMeta, AuditQuery};
use quotad_engine::clock::ManualClock;
use quotad_engine::model::Consistency;
use quotad_engine::model::Tier;
use quotad_engine::quota::TenantOp;
use quotad_engine::usage_history::Granularity;
use quotad_engine::{Engine, EngineConfig, EngineError, NewTenant};
use std::sync::Arc;
use std::time::Duration;

/// Who the test acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("test"));

const T0: i64 = 1_790_000_000_000;
const HOUR: i64 = 3_600_000;

fn config(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
    archive: Arc<EmbeddedArchive>,
) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("node"));
    c.clock = clock;
    c.shards = 2;
    c.archive = ArchiveChoice::Opened(archive);
    // Rounds are run by the test, not by the timer.
    c.sync_interval = Duration::from_secs(3600);
    c
}

async fn tenant(engine: &Engine, slug: &str) -> uuid::Uuid {
    tenant_of_tier(engine, slug, Tier::Free).await
}

async fn tenant_of_tier(engine: &Engine, slug: &str, tier: Tier) -> uuid::Uuid {
    let new = NewTenant {
        slug: slug.into(),
        name: slug.into(),
        tier,
        timezone: chrono_tz::UTC,
        trial_days: None,
        settings_json: "{}".into(),
        owner: None,
    };
    engine
        .create_tenant(new, &AuditMeta::new("test", "req"))
        .await
        .unwrap()
        .tenant
        .id
}

async fn increments(engine: &Engine, t: uuid::Uuid, n: usize) {
    for _ in 0..n {
        let d = engine
            .increment(&BY, t, "api_requests", 1, None, Some(Consistency::Strict))
            .await
            .unwrap();
        assert!(d.allowed);
    }
}

/// An audited change that only snapshots keep (restore brings usage and
/// audit forward from the archive, not descriptive fields).
async fn rename(engine: &Engine, t: uuid::Uuid, name: &str, by: &AuditMeta) {
    let update = quotad_engine::quota::TenantUpdate {
        name: Some(name.into()),
        ..Default::default()
    };
    engine.admin(t, TenantOp::Update(update), by).await.unwrap();
}

async fn archived_total(archive: &EmbeddedArchive, t: uuid::Uuid, g: Granularity) -> u64 {
    archive
        .usage(t, "api_requests", g, T0 - 48 * HOUR, T0 + 48 * HOUR)
        .await
        .unwrap()
        .iter()
        .map(|b| b.amount)
        .sum()
}

/// The engine's hourly `api_requests` history from 4 h before T0 to 4 h after.
async fn hourly_around_t0(
    engine: &Engine,
    t: uuid::Uuid,
) -> Vec<quotad_engine::usage_history::Point> {
    let (series, _) = engine
        .usage_history(
            t,
            "api_requests",
            Granularity::Hour,
            T0 - 4 * HOUR,
            T0 + 4 * HOUR,
        )
        .await
        .unwrap();
    series
}

async fn audit_of(engine: &Engine, t: uuid::Uuid) -> Vec<quotad_engine::audit::AuditEvent> {
    let q = AuditQuery {
        limit: 1000,
        ..Default::default()
    };
    engine.audit(t, &q).await.unwrap().events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_audit_reach_the_archive_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let archive = EmbeddedArchive::open(&dir.path().join("archive"), clock.clone()).unwrap();
    let engine = Engine::open(config(dir.path(), clock.clone(), archive.clone()))
        .await
        .unwrap();
    let (a, b) = (tenant(&engine, "a").await, tenant(&engine, "b").await);
    increments(&engine, a, 5).await;
    clock.advance(HOUR);
    increments(&engine, a, 2).await;
    increments(&engine, b, 3).await;
    let rounds = engine.sync_archive().await.unwrap();
    assert_eq!(rounds.iter().map(|r| r.tenants).sum::<usize>(), 2);
    assert!(rounds.iter().all(|r| r.pending == 0 && r.lag_ms == 0));
    assert_eq!(archived_total(&archive, a, Granularity::Hour).await, 7);
    assert_eq!(archived_total(&archive, a, Granularity::Day).await, 7);
    assert_eq!(archived_total(&archive, b, Granularity::Hour).await, 3);
    let hourly = archive
        .usage(
            a,
            "api_requests",
            Granularity::Hour,
            T0 - 48 * HOUR,
            T0 + 48 * HOUR,
        )
        .await
        .unwrap();
    assert_eq!(hourly.iter().map(|b| b.amount).collect::<Vec<_>>(), [5, 2]);
    assert_eq!(
        archive.audit(a, 0, 100).await.unwrap(),
        audit_of(&engine, a).await
    );

    // Nothing new: a round takes nothing and changes nothing.
    let rounds = engine.sync_archive().await.unwrap();
    assert_eq!(rounds.iter().map(|r| r.tenants).sum::<usize>(), 0);
    assert_eq!(archived_total(&archive, a, Granularity::Hour).await, 7);

    // More usage in a bucket already archived: its total, not a sum.
    increments(&engine, a, 4).await;
    engine.sync_archive().await.unwrap();
    assert_eq!(archived_total(&archive, a, Granularity::Hour).await, 11);
    for r in engine.sync_archive().await.unwrap() {
        assert!(
            archive.synced_to(r.group).await.unwrap().is_some(),
            "group {} records its sync position",
            r.group
        );
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_archive_stops_nothing_and_is_caught_up_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let archive = EmbeddedArchive::open(&dir.path().join("archive"), clock.clone()).unwrap();
    let engine = Engine::open(config(dir.path(), clock.clone(), archive.clone()))
        .await
        .unwrap();
    let t = tenant(&engine, "acme").await;
    increments(&engine, t, 3).await;
    engine.sync_archive().await.unwrap();
    assert_eq!(archived_total(&archive, t, Granularity::Hour).await, 3);

    archive.set_available(false);
    // The hot path does not wait for the archive.
    increments(&engine, t, 6).await;
    clock.advance(2 * HOUR);
    increments(&engine, t, 1).await;
    let err = engine.sync_archive().await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Archive(a) if a.is_transient()),
        "{err}"
    );
    let err = engine.sync_archive().await.unwrap_err();
    assert!(matches!(err, EngineError::Archive(_)), "{err}");
    // The node stops with the archive still down; what it had not synced
    // is in its replicated state, not in memory.
    engine.shutdown().await;
    drop(engine);

    let engine = Engine::open(config(dir.path(), clock.clone(), archive.clone()))
        .await
        .unwrap();
    increments(&engine, t, 2).await;
    archive.set_available(true);
    let rounds = engine.sync_archive().await.unwrap();
    assert_eq!(rounds.iter().map(|r| r.tenants).sum::<usize>(), 1);
    assert_eq!(archived_total(&archive, t, Granularity::Hour).await, 12);
    assert_eq!(archived_total(&archive, t, Granularity::Day).await, 12);
    assert_eq!(
        archive.audit(t, 0, 100).await.unwrap(),
        audit_of(&engine, t).await
    );
    // Again: nothing doubles.
    engine.sync_archive().await.unwrap();
    assert_eq!(archived_total(&archive, t, Granularity::Hour).await, 12);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_node_is_restored_from_the_archive_with_usage_and_audit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let archive = EmbeddedArchive::open(&dir.path().join("archive"), clock.clone()).unwrap();
    let by = AuditMeta::new("ops", "req-restore");
    let mut before = Vec::new();
    let gone = {
        let mut c = config(dir.path(), clock.clone(), archive.clone());
        c.deletion_retention = Duration::ZERO;
        let engine = Engine::open(c).await.unwrap();
        let (a, b, gone) = (
            tenant(&engine, "alpha").await,
            tenant(&engine, "beta").await,
            tenant(&engine, "gone").await,
        );
        increments(&engine, a, 4).await;
        increments(&engine, b, 2).await;
        // The whole state, as of now.
        let rounds = engine.backup_to_archive().await.unwrap();
        assert!(rounds.iter().any(|r| r.snapshot.is_some()), "{rounds:?}");
        // Purged after the snapshot that holds it: it must stay gone.
        engine.delete_tenant(gone, &by).await.unwrap();
        engine.purge_tenant(gone, &by).await.unwrap();
        // After the snapshot: usage in the same hour and a later one, and
        // an audited change; the regular sync takes them.
        increments(&engine, a, 3).await;
        clock.advance(2 * HOUR);
        increments(&engine, a, 5).await;
        increments(&engine, b, 1).await;
        rename(&engine, b, "Beta Renamed", &by).await;
        engine.sync_archive().await.unwrap();
        assert!(engine.tenant(gone).await.is_err());
        for t in [a, b] {
            let state = engine.tenant(t).await.unwrap();
            let series = hourly_around_t0(&engine, t).await;
            before.push((
                t,
                state.tenant.slug.clone(),
                state.quotas["api_requests"].used,
                series,
                audit_of(&engine, t).await,
            ));
        }
        engine.shutdown().await;
        gone
    };
    // The node's data is gone; the archive is all there is.
    std::fs::remove_dir_all(dir.path().join("node")).unwrap();

    let engine = Engine::open(config(dir.path(), clock.clone(), archive.clone()))
        .await
        .unwrap();
    let report = engine.restore_from_archive(archive.as_ref()).await.unwrap();
    assert_eq!((report.tenants, report.purged), (2, 1), "{report:?}");
    assert!(
        engine.tenant(gone).await.is_err(),
        "a purged tenant came back"
    );
    assert_eq!(
        report.usage_added, 9,
        "usage after the snapshot: {report:?}"
    );
    assert_eq!(report.audit_added, 1, "the rename after the snapshot");
    for (t, slug, used, series, audit) in &before {
        let state = engine.tenant(*t).await.unwrap();
        assert_eq!(&state.tenant.slug, slug);
        assert_eq!(state.quotas["api_requests"].used, *used, "tenant {slug}");
        let restored_series = hourly_around_t0(&engine, *t).await;
        assert_eq!(&restored_series, series, "tenant {slug}");
        let restored_audit = audit_of(&engine, *t).await;
        assert_eq!(&restored_audit, audit, "tenant {slug}");
        assert_eq!(quotad_engine::audit::verify(&restored_audit), Ok(()));
    }
    // Restoring again changes nothing (slugs are the tenants' own, moves
    // are idempotent), and the restored node keeps counting.
    engine.restore_from_archive(archive.as_ref()).await.unwrap();
    let (a, used_a) = (before[0].0, before[0].2);
    assert_eq!(
        engine.tenant(a).await.unwrap().quotas["api_requests"].used,
        used_a
    );
    increments(&engine, a, 1).await;
    assert_eq!(
        engine.tenant(a).await.unwrap().quotas["api_requests"].used,
        used_a + 1
    );
    engine.shutdown().await;
}

/// What a tenant looks like from outside: slug, counter, hourly series and
/// audit chain.
type Seen = (
    uuid::Uuid,
    String,
    String,
    Option<u64>,
    Vec<quotad_engine::usage_history::Point>,
    Vec<quotad_engine::audit::AuditEvent>,
);

async fn seen(engine: &Engine, t: uuid::Uuid) -> Seen {
    let state = engine.tenant(t).await.unwrap();
    (
        t,
        state.tenant.slug.clone(),
        state.tenant.name.clone(),
        state.quotas.get("api_requests").map(|q| q.used),
        hourly_around_t0(engine, t).await,
        audit_of(engine, t).await,
    )
}

/// Destroy the node's data, restore a fresh node from the archive, and
/// check that every tenant in `before` looks as it did.
async fn restore_into_a_fresh_node(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    archive: &Arc<EmbeddedArchive>,
    before: &[Seen],
) -> (Arc<Engine>, quotad_engine::archive::restore::RestoreReport) {
    std::fs::remove_dir_all(dir.join("node")).unwrap();
    let engine = Engine::open(config(dir, clock.clone(), archive.clone()))
        .await
        .unwrap();
    let report = engine.restore_from_archive(archive.as_ref()).await.unwrap();
    for b in before {
        assert_eq!(&seen(&engine, b.0).await, b, "tenant {}", b.1);
    }
    (engine, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_tenant_is_archived_apart_and_restored_into_a_dedicated_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let archive = EmbeddedArchive::open(&dir.path().join("archive"), clock.clone()).unwrap();
    let by = AuditMeta::new("ops", "req-dedicate");
    let (big, small, before) = {
        let engine = Engine::open(config(dir.path(), clock.clone(), archive.clone()))
            .await
            .unwrap();
        let big = tenant_of_tier(&engine, "bigco", Tier::Enterprise).await;
        let small = tenant(&engine, "small").await;
        increments(&engine, big, 4).await;
        increments(&engine, small, 2).await;
        // The shared schema's snapshots hold bigco, before it moves.
        engine.backup_to_archive().await.unwrap();
        assert_eq!(archived_total(&archive, big, Granularity::Hour).await, 4);

        let group = engine.dedicate_tenant(big, None, &by).await.unwrap();
        assert_eq!(engine.placement_of(&big), (group, true));
        clock.advance(HOUR);
        increments(&engine, big, 3).await;
        engine.sync_archive().await.unwrap();

        // Its whole history and chain (the move included) are in its own
        // schema; the shared schema still has its copy (it goes a round
        // later) and all of small.
        let own = archive.dedicated(big).await.unwrap();
        let hourly = own
            .usage(
                big,
                "api_requests",
                Granularity::Hour,
                T0 - HOUR,
                T0 + 2 * HOUR,
            )
            .await
            .unwrap();
        assert_eq!(hourly.iter().map(|b| b.amount).collect::<Vec<_>>(), [4, 3]);
        let chain = own.audit(big, 0, 100).await.unwrap();
        assert_eq!(chain, audit_of(&engine, big).await);
        assert!(chain.iter().any(|e| e.action == "tenant.dedicated"));
        assert!(own.snapshots(group).await.unwrap().is_empty());
        assert_eq!(archived_total(&archive, big, Granularity::Hour).await, 4);
        assert_eq!(archived_total(&archive, small, Granularity::Hour).await, 2);
        let registered: Vec<_> = archive
            .dedicated_schemas()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.tenant)
            .collect();
        assert_eq!(registered, [big]);
        let before = vec![seen(&engine, big).await, seen(&engine, small).await];
        engine.shutdown().await;
        (big, small, before)
    };

    // Gone, with no snapshot of its dedicated group archived yet: bigco
    // comes from the shared snapshot, brought forward by its own schema.
    let (engine, report) = restore_into_a_fresh_node(dir.path(), &clock, &archive, &before).await;
    assert_eq!((report.tenants, report.dedicated), (2, 1), "{report:?}");
    assert_eq!(
        report.usage_added, 3,
        "bigco's usage after its move: {report:?}"
    );
    let (group, dedicated) = engine.placement_of(&big);
    assert!(dedicated, "bigco is in a dedicated group again");
    assert!(!engine.placement_of(&small).1);

    // The next rounds archive its new group's snapshot in its own schema,
    // then delete the shared schema's copy; small's stays.
    for _ in 0..2 {
        engine.sync_archive().await.unwrap();
    }
    let own = archive.dedicated(big).await.unwrap();
    let snaps = own.snapshots(group).await.unwrap();
    assert!(
        !snaps.is_empty(),
        "its group's snapshot is in its own schema"
    );
    assert_eq!(archived_total(&archive, big, Granularity::Hour).await, 0);
    assert_eq!(archived_total(&archive, big, Granularity::Day).await, 0);
    assert!(archive.audit(big, 0, 100).await.unwrap().is_empty());
    assert_eq!(archived_total(&archive, small, Granularity::Hour).await, 2);
    assert!(!archive.audit(small, 0, 100).await.unwrap().is_empty());

    // Again, now from its own schema's snapshot. The restored cluster's
    // logs start afresh (lower indexes than the snapshots it came from);
    // its newer snapshots must still win, or the rename below is lost
    // (only snapshots hold descriptive state).
    clock.advance(HOUR);
    increments(&engine, big, 2).await;
    rename(&engine, small, "Small Renamed", &by).await;
    engine.backup_to_archive().await.unwrap();
    let before = vec![seen(&engine, big).await, seen(&engine, small).await];
    engine.shutdown().await;
    drop(engine);
    let (engine, report) = restore_into_a_fresh_node(dir.path(), &clock, &archive, &before).await;
    assert_eq!((report.tenants, report.dedicated), (2, 1), "{report:?}");
    assert_eq!(
        report.usage_added, 0,
        "the snapshots hold everything: {report:?}"
    );
    assert!(engine.placement_of(&big).1);
    engine.shutdown().await;
}

/// The embedded archive, taking a while over each usage write: a sync
/// round then always overlaps the increments the test keeps making.
struct SlowArchive(Arc<EmbeddedArchive>);

#[async_trait::async_trait]
impl Archive for SlowArchive {
    fn name(&self) -> &'static str {
        "slow embedded"
    }
    async fn migrate(&self) -> Result<u32, quotad_engine::archive::ArchiveError> {
        self.0.migrate().await
    }
    async fn put_usage(
        &self,
        buckets: &[quotad_engine::archive::UsageBucket],
    ) -> Result<(), quotad_engine::archive::ArchiveError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.0.put_usage(buckets).await
    }
    async fn usage(
        &self,
        tenant: uuid::Uuid,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<quotad_engine::archive::UsageBucket>, quotad_engine::archive::ArchiveError>
    {
        self.0
            .usage(tenant, quota, granularity, from_ms, to_ms)
            .await
    }
    async fn put_audit(
        &self,
        tenant: uuid::Uuid,
        events: &[quotad_engine::audit::AuditEvent],
    ) -> Result<(), quotad_engine::archive::ArchiveError> {
        self.0.put_audit(tenant, events).await
    }
    async fn audit(
        &self,
        tenant: uuid::Uuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<quotad_engine::audit::AuditEvent>, quotad_engine::archive::ArchiveError> {
        self.0.audit(tenant, after_seq, limit).await
    }
    async fn put_snapshot(
        &self,
        snapshot: &quotad_engine::archive::SnapshotRecord,
    ) -> Result<(), quotad_engine::archive::ArchiveError> {
        self.0.put_snapshot(snapshot).await
    }
    async fn snapshot_groups(&self) -> Result<Vec<u64>, quotad_engine::archive::ArchiveError> {
        self.0.snapshot_groups().await
    }
    async fn snapshots(
        &self,
        group: u64,
    ) -> Result<Vec<quotad_engine::archive::SnapshotRecord>, quotad_engine::archive::ArchiveError>
    {
        self.0.snapshots(group).await
    }
    async fn synced_to(
        &self,
        group: u64,
    ) -> Result<Option<u64>, quotad_engine::archive::ArchiveError> {
        self.0.synced_to(group).await
    }
    async fn set_synced_to(
        &self,
        group: u64,
        index: u64,
    ) -> Result<(), quotad_engine::archive::ArchiveError> {
        self.0.set_synced_to(group, index).await
    }
    async fn dedicated(
        &self,
        tenant: uuid::Uuid,
    ) -> Result<Arc<dyn Archive>, quotad_engine::archive::ArchiveError> {
        self.0.dedicated(tenant).await
    }
    async fn dedicated_schemas(
        &self,
    ) -> Result<Vec<quotad_engine::archive::DedicatedSchema>, quotad_engine::archive::ArchiveError>
    {
        self.0.dedicated_schemas().await
    }
    async fn purge_tenant(
        &self,
        tenant: uuid::Uuid,
        quotas: &[String],
    ) -> Result<(), quotad_engine::archive::ArchiveError> {
        self.0.purge_tenant(tenant, quotas).await
    }
}

/// A tenant incremented throughout every sync round still leaves the
/// unarchived list for all it had before the round: its lag stays within a
/// round instead of growing from its first change, and once it goes quiet
/// the archive holds exactly its usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_busy_through_every_round_is_archived_up_to_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let archive = EmbeddedArchive::open(&dir.path().join("archive"), clock.clone()).unwrap();
    let mut c = config(dir.path(), clock.clone(), archive.clone());
    c.archive = ArchiveChoice::Opened(Arc::new(SlowArchive(archive.clone())));
    let engine = Engine::open(c).await.unwrap();
    let busy = tenant(&engine, "busy").await;
    increments(&engine, busy, 1).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move {
            let mut n = 1u64;
            // Bounded: at most 20,000 increments, or until told to stop.
            while n < 20_000 && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let d = engine
                    .increment(
                        &BY,
                        busy,
                        "api_requests",
                        1,
                        None,
                        Some(Consistency::Strict),
                    )
                    .await
                    .unwrap();
                assert!(d.allowed);
                n += 1;
            }
            n
        }
    });
    for round in 1..=4 {
        clock.advance(60_000);
        // A barrier: once this strict increment, decided at the new time,
        // is committed, so is every increment the tenant's actor decided
        // before it (one actor, log order). A 20 ms sleep here was not
        // always enough on a loaded machine.
        increments(&engine, busy, 1).await;
        let rounds = engine.sync_archive().await.unwrap();
        let lag = rounds.iter().map(|r| r.lag_ms).max().unwrap();
        assert!(
            lag < 60_000,
            "round {round}: the busy tenant lags {lag} ms, more than one round"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // The load's increments (counting the first one) and the 4 barriers.
    let made = load.await.unwrap() + 4;
    let rounds = engine.sync_archive().await.unwrap();
    assert!(rounds.iter().all(|r| r.pending == 0), "{rounds:?}");
    assert_eq!(archived_total(&archive, busy, Granularity::Day).await, made);
    assert_eq!(
        archived_total(&archive, busy, Granularity::Hour).await,
        made
    );
    engine.shutdown().await;
}
