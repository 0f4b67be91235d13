//! The engine in-process, on a real embedded store in a temp dir, with an
//! injected clock: actors, group commit, Raft apply, snapshots and restart.
use chrono::TimeZone;
use quotad_engine::actor::Consistency;
use quotad_engine::audit::AuditMeta;
use quotad_engine::clock::{Clock, ManualClock};
use quotad_engine::model::{Action, Period, QuotaPolicy, Tier};
use quotad_engine::quota::Verdict;
use quotad_engine::{Engine, EngineConfig, EngineError, NewTenant};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_790_000_000_000;

fn by() -> AuditMeta {
    AuditMeta::new("test", "test-request")
}

fn config(dir: &std::path::Path, clock: Arc<ManualClock>) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.clock = clock;
    c.shards = 2;
    c.raft.snapshot_every = 50;
    c
}

fn new_tenant(slug: &str, tz: chrono_tz::Tz) -> NewTenant {
    NewTenant {
        slug: slug.into(),
        name: format!("Tenant {slug}"),
        tier: Tier::Free,
        timezone: tz,
        trial_days: None,
        settings_json: "{}".into(),
        owner: None,
    }
}

/// A new tenant whose `quota` blocks at `limit`.
async fn tenant_with_quota(
    engine: &Engine,
    slug: &str,
    tz: chrono_tz::Tz,
    quota: &str,
    limit: u64,
) -> uuid::Uuid {
    let id = engine
        .create_tenant(new_tenant(slug, tz), &by())
        .await
        .unwrap()
        .tenant
        .id;
    engine
        .set_quota(id, quota, block(limit), &by())
        .await
        .unwrap();
    id
}

fn block(limit: u64) -> QuotaPolicy {
    QuotaPolicy {
        action: Action::Block,
        ..QuotaPolicy::counter(Period::Monthly, Some(limit))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_admit_exactly_the_limit_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let t = engine
        .create_tenant(new_tenant("acme", chrono_tz::UTC), &by())
        .await
        .unwrap();
    let id = t.tenant.id;
    engine
        .set_quota(id, "api_requests", block(100), &by())
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..150 {
        let e = engine.clone();
        let mode = if i % 2 == 0 {
            Consistency::Strict
        } else {
            Consistency::Fast
        };
        tasks.push(tokio::spawn(async move {
            e.increment(id, "api_requests", 1, None, Some(mode))
                .await
                .unwrap()
                .allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 100);
    // A strict write after the fast ones orders after them in the log.
    let d = engine
        .increment(id, "api_requests", 1, Some("k".into()), None)
        .await
        .unwrap();
    assert_eq!((d.allowed, d.usage), (false, 100));
    engine.shutdown().await;
    drop(engine);

    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let state = engine.tenant(id).await.unwrap();
    assert_eq!(state.quotas["api_requests"].used, 100);
    // The idempotency key survived too.
    let d = engine
        .increment(id, "api_requests", 1, Some("k".into()), None)
        .await
        .unwrap();
    assert!(d.replayed);
    let err = engine
        .create_tenant(new_tenant("acme", chrono_tz::UTC), &by())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SlugTaken { .. }), "{err}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_log_compaction_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let id = tenant_with_quota(&engine, "snap", chrono_tz::UTC, "llm_tokens", 1_000_000).await;
    // Strict and sequential: one entry each, several snapshots' worth.
    for _ in 0..300 {
        engine
            .increment(id, "llm_tokens", 3, None, None)
            .await
            .unwrap();
    }
    engine.shutdown().await;
    drop(engine);
    // A snapshot was taken (300 entries, one every 50 at least), so the
    // restart below comes from a snapshot plus the log after it.
    {
        let store = quotad_engine::storage::Store::open(dir.path()).unwrap();
        let snapshotted: Vec<u64> = (1..=2)
            .filter(|g| store.read_snapshot(*g).unwrap().is_some())
            .collect();
        assert_eq!(
            snapshotted.len(),
            1,
            "groups with a snapshot: {snapshotted:?}"
        );
    }
    let engine = Engine::open(config(dir.path(), clock)).await.unwrap();
    assert_eq!(
        engine.tenant(id).await.unwrap().quotas["llm_tokens"].used,
        900
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_flow_and_expiry_with_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let id = tenant_with_quota(&engine, "gpu", chrono_tz::UTC, "gpu_hours", 100).await;

    let r = engine
        .reserve(id, "gpu_hours", 50, 60_000, None, None)
        .await
        .unwrap();
    assert!(r.decision.allowed);
    let d = engine
        .settle(id, r.reservation_id.unwrap(), 30, None)
        .await
        .unwrap();
    assert_eq!(d.usage, 30);
    assert!(
        engine
            .increment(id, "gpu_hours", 70, None, None)
            .await
            .unwrap()
            .allowed
    );
    let d = engine
        .increment(id, "gpu_hours", 1, None, None)
        .await
        .unwrap();
    assert_eq!((d.allowed, d.verdict), (false, Verdict::Denied));

    // Expiry: a hold that is never settled comes back after its TTL.
    let id2 = tenant_with_quota(&engine, "gpu2", chrono_tz::UTC, "gpu_hours", 100).await;
    let r = engine
        .reserve(id2, "gpu_hours", 80, 10_000, None, None)
        .await
        .unwrap();
    assert!(!engine.check(id2, "gpu_hours", 21).await.unwrap().allowed);
    clock.advance(10_000);
    assert!(engine.check(id2, "gpu_hours", 100).await.unwrap().allowed);
    let err = engine
        .settle(id2, r.reservation_id.unwrap(), 5, None)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "NOT_FOUND");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_reset_at_new_york_midnight_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let tz = chrono_tz::America::New_York;
    let midnight = tz
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let clock = ManualClock::new(midnight - 60_000);
    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let id = tenant_with_quota(&engine, "nyc", tz, "api_requests", 10).await;
    let d = engine
        .increment(id, "api_requests", 10, None, None)
        .await
        .unwrap();
    assert_eq!(d.reset_at_ms, Some(midnight));
    clock.set(midnight - 1);
    assert!(
        !engine
            .increment(id, "api_requests", 1, None, None)
            .await
            .unwrap()
            .allowed
    );
    clock.set(midnight);
    let d = engine
        .increment(id, "api_requests", 1, None, None)
        .await
        .unwrap();
    assert!(d.allowed);
    assert_eq!(d.usage, 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_stop_and_reactivate_from_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut c = config(dir.path(), clock.clone());
    c.idle_after = Duration::from_millis(50);
    let engine = Engine::open(c).await.unwrap();
    let id = engine
        .create_tenant(new_tenant("idle", chrono_tz::UTC), &by())
        .await
        .unwrap()
        .tenant
        .id;
    engine
        .increment(id, "api_requests", 5, None, Some(Consistency::Fast))
        .await
        .unwrap();
    // Idleness is measured on the engine's clock: however long the idle
    // checks run, the actor stays until the clock passes `idle_after`.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.active_actors(), 1, "stopped before it was idle");
    clock.advance(50);
    let mut waited = 0;
    while engine.active_actors() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(engine.active_actors(), 0, "actor did not stop when idle");
    assert_eq!(
        engine.tenant(id).await.unwrap().quotas["api_requests"].used,
        5
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), ManualClock::new(T0)))
        .await
        .unwrap();
    let id = engine
        .create_tenant(new_tenant("bad", chrono_tz::UTC), &by())
        .await
        .unwrap()
        .tenant
        .id;
    let before = engine.tenant(id).await.unwrap();
    let cases: Vec<(Result<_, EngineError>, &str, &str)> = vec![
        (
            engine.increment(id, "api_requests", 0, None, None).await,
            "INVALID_ARGUMENT",
            "amount",
        ),
        (
            engine
                .increment(id, "api_requests", i64::MAX, None, None)
                .await,
            "INVALID_ARGUMENT",
            "amount",
        ),
        (
            engine.increment(id, "nope", 1, None, None).await,
            "NOT_FOUND",
            "quota",
        ),
        (
            engine.increment(id, "Bad Name", 1, None, None).await,
            "INVALID_ARGUMENT",
            "quota",
        ),
        (
            engine
                .increment(uuid::Uuid::new_v4(), "api_requests", 1, None, None)
                .await,
            "NOT_FOUND",
            "tenant_id",
        ),
    ];
    for (result, code, field) in cases {
        let err = result.unwrap_err();
        assert_eq!(
            (err.code().as_str(), err.field()),
            (code, Some(field)),
            "{err}"
        );
    }
    assert_eq!(engine.tenant(id).await.unwrap(), before);
    assert_eq!(engine.active_actors(), 1, "no actor for the unknown tenant");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_expiry_suspension_and_deletion_change_verdicts() {
    use quotad_engine::model::TenantStatus;
    use quotad_engine::quota::TenantUpdate;
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut c = config(dir.path(), clock.clone());
    c.deletion_retention = Duration::from_secs(7 * 86_400);
    let engine = Engine::open(c).await.unwrap();
    let mut trial = new_tenant("trial", chrono_tz::UTC);
    trial.trial_days = Some(14);
    let id = engine.create_tenant(trial, &by()).await.unwrap().tenant.id;
    let spend = || engine.increment(id, "api_requests", 1, None, None);

    assert!(spend().await.unwrap().allowed);
    clock.set(T0 + 14 * DAY - 1);
    assert!(spend().await.unwrap().allowed, "still in the trial");
    clock.set(T0 + 14 * DAY);
    let d = spend().await.unwrap();
    assert_eq!(
        (d.allowed, d.reason.as_deref()),
        (false, Some("tenant trial has expired"))
    );
    assert!(!engine.check(id, "api_requests", 1).await.unwrap().allowed);

    // Choosing a tier ends the trial.
    engine.change_tier(id, Tier::Starter, &by()).await.unwrap();
    assert!(spend().await.unwrap().allowed);

    let status = |s| TenantUpdate {
        status: Some(s),
        ..Default::default()
    };
    engine
        .update_tenant(id, status(TenantStatus::Suspended), &by())
        .await
        .unwrap();
    let d = spend().await.unwrap();
    assert_eq!(
        (d.allowed, d.reason.as_deref()),
        (false, Some("tenant is suspended"))
    );
    engine
        .update_tenant(id, status(TenantStatus::Active), &by())
        .await
        .unwrap();
    assert!(spend().await.unwrap().allowed);

    // Soft delete: refused; restorable; purged only after the retention.
    engine.delete_tenant(id, &by()).await.unwrap();
    assert_eq!(
        spend().await.unwrap().reason.as_deref(),
        Some("tenant is deleted")
    );
    let restored = engine.restore_tenant(id, &by()).await.unwrap();
    assert_eq!(restored.tenant.status, TenantStatus::Active);
    assert!(spend().await.unwrap().allowed);
    engine.delete_tenant(id, &by()).await.unwrap();
    let deleted_at = clock.now_ms();
    clock.set(deleted_at + 7 * DAY - 1);
    assert_eq!(engine.purge_expired().await.unwrap(), 0);
    let err = engine.purge_tenant(id, &by()).await.unwrap_err();
    assert_eq!(err.field(), Some("status"), "{err}");
    clock.set(deleted_at + 7 * DAY);
    assert_eq!(engine.purge_expired().await.unwrap(), 1);
    let err = spend().await.unwrap_err();
    assert_eq!(err.code().as_str(), "NOT_FOUND");
    // The slug is free again; the audit chain of the purged tenant stays.
    engine
        .create_tenant(new_tenant("trial", chrono_tz::UTC), &by())
        .await
        .unwrap();
    let page = engine
        .audit(
            id,
            &quotad_engine::audit::AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.chain, Ok(()));
    let actions: Vec<&str> = page.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.created",
            "tenant.tier_changed",
            "tenant.updated",
            "tenant.updated",
            "tenant.deleted",
            "tenant.restored",
            "tenant.deleted",
            "tenant.purged"
        ]
    );
    assert_eq!(page.events.last().unwrap().actor, "system");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_day_of_usage_sums_to_the_counter() {
    use quotad_engine::usage_history::Granularity;
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-02 00:00 in New York: a day without DST changes.
    let tz = chrono_tz::America::New_York;
    let day = tz
        .with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let clock = ManualClock::new(day);
    let engine = Engine::open(config(dir.path(), clock.clone()))
        .await
        .unwrap();
    let id = tenant_with_quota(&engine, "day", tz, "llm_tokens", 1_000_000).await;
    let before_day = engine.tenant(id).await.unwrap().quotas["llm_tokens"].used;
    // Hour h sees h+1 requests of 10 tokens (more in the evening), plus a
    // reservation settled at 25 in hour 12 and denied attempts that count nothing.
    for h in 0..24i64 {
        for k in 0..=h {
            clock.set(day + h * HOUR + k * 60_000);
            assert!(
                engine
                    .increment(id, "llm_tokens", 10, None, None)
                    .await
                    .unwrap()
                    .allowed
            );
        }
        if h == 12 {
            let r = engine
                .reserve(id, "llm_tokens", 100, 60_000, None, None)
                .await
                .unwrap();
            engine
                .settle(id, r.reservation_id.unwrap(), 25, None)
                .await
                .unwrap();
        }
    }
    let denied = engine
        .increment(id, "llm_tokens", 999_999, None, None)
        .await
        .unwrap();
    assert!(!denied.allowed);
    clock.set(day + 24 * HOUR - 1);
    let counter = engine.tenant(id).await.unwrap().quotas["llm_tokens"].used - before_day;
    let (points, stats) = engine
        .usage_history(id, "llm_tokens", Granularity::Hour, day, day + 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(points.len(), 24);
    assert_eq!(points.iter().map(|p| p.amount).sum::<u64>(), counter);
    assert_eq!(counter, 10 * 300 + 25);
    assert_eq!(points[12].amount, 130 + 25);
    assert_eq!(stats.total, counter);
    assert_eq!((stats.peak, stats.peak_at_ms), (240, Some(day + 23 * HOUR)));
    assert_eq!(stats.average, counter as f64 / 24.0);
    assert!(
        stats.trend_percent.unwrap() > 100.0,
        "the evening is busier"
    );
    // 3025 tokens in the first day of a 30-day month: nowhere near a million.
    assert_eq!(stats.projected_exhaustion_ms, None);
    let (days, _) = engine
        .usage_history(id, "llm_tokens", Granularity::Day, day, day + 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].amount, counter);
    engine.shutdown().await;
}
