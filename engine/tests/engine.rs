//! The engine in-process, on a real embedded store in a temp dir, with an
//! injected clock: actors, group commit, Raft apply, snapshots and restart.
use chrono::TimeZone;
use quotad_engine::audit::AuditMeta;
use quotad_engine::clock::{Clock, ManualClock};
use quotad_engine::engine::Hold;
use quotad_engine::model::Consistency;
use quotad_engine::model::{Action, Period, QuotaPolicy, Tier};
use quotad_engine::quota::{TenantOp, Verdict};
use quotad_engine::{Engine, EngineConfig, EngineError, NewTenant};
use std::sync::Arc;
use std::time::Duration;

/// Who the test acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("test"));

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
    let op = TenantOp::SetQuota {
        quota: quota.to_string(),
        policy: block(limit),
    };
    engine.admin(id, op, &by()).await.unwrap();
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
    let op = TenantOp::SetQuota {
        quota: "api_requests".into(),
        policy: block(100),
    };
    engine.admin(id, op, &by()).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..150 {
        let e = engine.clone();
        let mode = if i % 2 == 0 {
            Consistency::Strict
        } else {
            Consistency::Fast
        };
        tasks.push(tokio::spawn(async move {
            e.increment(&BY, id, "api_requests", 1, None, Some(mode))
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
        .increment(&BY, id, "api_requests", 1, Some("k".into()), None)
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
        .increment(&BY, id, "api_requests", 1, Some("k".into()), None)
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
            .increment(&BY, id, "llm_tokens", 3, None, None)
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
        .reserve(
            &BY,
            id,
            "gpu_hours",
            Hold {
                amount: 50,
                ttl_ms: 60_000,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(r.decision.allowed);
    let d = engine
        .settle(&BY, id, r.reservation_id.unwrap(), 30, None)
        .await
        .unwrap();
    assert_eq!(d.usage, 30);
    assert!(
        engine
            .increment(&BY, id, "gpu_hours", 70, None, None)
            .await
            .unwrap()
            .allowed
    );
    let d = engine
        .increment(&BY, id, "gpu_hours", 1, None, None)
        .await
        .unwrap();
    assert_eq!((d.allowed, d.verdict), (false, Verdict::Denied));

    // Expiry: a hold that is never settled comes back after its TTL.
    let id2 = tenant_with_quota(&engine, "gpu2", chrono_tz::UTC, "gpu_hours", 100).await;
    let r = engine
        .reserve(
            &BY,
            id2,
            "gpu_hours",
            Hold {
                amount: 80,
                ttl_ms: 10_000,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        !engine
            .check(&BY, id2, "gpu_hours", 21)
            .await
            .unwrap()
            .allowed
    );
    clock.advance(10_000);
    assert!(
        engine
            .check(&BY, id2, "gpu_hours", 100)
            .await
            .unwrap()
            .allowed
    );
    let err = engine
        .settle(&BY, id2, r.reservation_id.unwrap(), 5, None)
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
        .increment(&BY, id, "api_requests", 10, None, None)
        .await
        .unwrap();
    assert_eq!(d.reset_at_ms, Some(midnight));
    clock.set(midnight - 1);
    assert!(
        !engine
            .increment(&BY, id, "api_requests", 1, None, None)
            .await
            .unwrap()
            .allowed
    );
    clock.set(midnight);
    let d = engine
        .increment(&BY, id, "api_requests", 1, None, None)
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
        .increment(&BY, id, "api_requests", 5, None, Some(Consistency::Fast))
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
            engine
                .increment(&BY, id, "api_requests", 0, None, None)
                .await,
            "INVALID_ARGUMENT",
            "amount",
        ),
        (
            engine
                .increment(&BY, id, "api_requests", i64::MAX, None, None)
                .await,
            "INVALID_ARGUMENT",
            "amount",
        ),
        (
            engine.increment(&BY, id, "nope", 1, None, None).await,
            "NOT_FOUND",
            "quota",
        ),
        (
            engine.increment(&BY, id, "Bad Name", 1, None, None).await,
            "INVALID_ARGUMENT",
            "quota",
        ),
        (
            engine
                .increment(&BY, uuid::Uuid::new_v4(), "api_requests", 1, None, None)
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
    let spend = || engine.increment(&BY, id, "api_requests", 1, None, None);

    assert!(spend().await.unwrap().allowed);
    clock.set(T0 + 14 * DAY - 1);
    assert!(spend().await.unwrap().allowed, "still in the trial");
    clock.set(T0 + 14 * DAY);
    let d = spend().await.unwrap();
    assert_eq!(
        (d.allowed, d.reason.as_deref()),
        (false, Some("tenant trial has expired"))
    );
    assert!(
        !engine
            .check(&BY, id, "api_requests", 1)
            .await
            .unwrap()
            .allowed
    );

    // Choosing a tier ends the trial.
    engine.change_tier(id, Tier::Starter, &by()).await.unwrap();
    assert!(spend().await.unwrap().allowed);

    let status = |s| TenantUpdate {
        status: Some(s),
        ..Default::default()
    };
    let op = TenantOp::Update(status(TenantStatus::Suspended));
    engine.admin(id, op, &by()).await.unwrap();
    let d = spend().await.unwrap();
    assert_eq!(
        (d.allowed, d.reason.as_deref()),
        (false, Some("tenant is suspended"))
    );
    let op = TenantOp::Update(status(TenantStatus::Active));
    engine.admin(id, op, &by()).await.unwrap();
    assert!(spend().await.unwrap().allowed);

    // Soft delete: refused; restorable; purged only after the retention.
    engine.delete_tenant(id, &by()).await.unwrap();
    assert_eq!(
        spend().await.unwrap().reason.as_deref(),
        Some("tenant is deleted")
    );
    let restored = engine.admin(id, TenantOp::Restore, &by()).await.unwrap();
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
                    .increment(&BY, id, "llm_tokens", 10, None, None)
                    .await
                    .unwrap()
                    .allowed
            );
        }
        if h == 12 {
            let r = engine
                .reserve(
                    &BY,
                    id,
                    "llm_tokens",
                    Hold {
                        amount: 100,
                        ttl_ms: 60_000,
                    },
                    None,
                    None,
                )
                .await
                .unwrap();
            engine
                .settle(&BY, id, r.reservation_id.unwrap(), 25, None)
                .await
                .unwrap();
        }
    }
    let denied = engine
        .increment(&BY, id, "llm_tokens", 999_999, None, None)
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

/// What a flood of concurrent increments got: decisions allowed, denied,
/// and the refusals (load shed) by bound.
#[derive(Default)]
struct Flood {
    allowed: u64,
    denied: u64,
    shed: Vec<quotad_engine::shed::Shed>,
}

impl std::fmt::Debug for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut by_reason = std::collections::BTreeMap::new();
        for s in &self.shed {
            *by_reason.entry(s.reason()).or_insert(0) += 1;
        }
        write!(
            f,
            "{} allowed, {} denied, shed {by_reason:?}",
            self.allowed, self.denied
        )
    }
}

/// `n` concurrent increments of 1 on `api_requests` of `id`, in `mode(i)`.
/// Any error other than load shedding fails the test.
async fn flood(
    engine: &Arc<Engine>,
    id: uuid::Uuid,
    n: usize,
    mode: fn(usize) -> Consistency,
) -> Flood {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let e = engine.clone();
            tokio::spawn(async move {
                e.increment(&BY, id, "api_requests", 1, None, Some(mode(i)))
                    .await
            })
        })
        .collect();
    let mut f = Flood::default();
    for t in tasks {
        match t.await.unwrap() {
            Ok(d) if d.allowed => f.allowed += 1,
            Ok(_) => f.denied += 1,
            Err(EngineError::Overloaded { why }) => f.shed.push(why),
            Err(e) => panic!("only load shedding may refuse here: {e}"),
        }
    }
    f
}

/// A strict increment, retried while it is shed: once answered, every
/// fast increment before it is applied too (it orders after them).
async fn strict_barrier(engine: &Engine, id: uuid::Uuid) -> quotad_engine::quota::Decision {
    for _ in 0..500 {
        match engine
            .increment(&BY, id, "api_requests", 1, None, Some(Consistency::Strict))
            .await
        {
            Err(EngineError::Overloaded { .. }) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => return other.unwrap(),
        }
    }
    panic!("still shed after 5 s without load");
}

/// The bounds of `limits` on a fresh engine; a FREE tenant whose
/// `api_requests` blocks at `limit`; `n` concurrent increments. Every
/// refusal is load shedding by `expected`, some requests are refused, and
/// usage is exactly the allowed answers, also after a restart.
async fn shed_and_account(
    limits: quotad_engine::shed::Limits,
    limit: u64,
    n: usize,
    mode: fn(usize) -> Consistency,
    expected: fn(&quotad_engine::shed::Shed) -> bool,
) -> Flood {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut c = config(dir.path(), clock.clone());
    c.limits = limits;
    let engine = Engine::open(c.clone()).await.unwrap();
    let id = tenant_with_quota(&engine, "flooded", chrono_tz::UTC, "api_requests", limit).await;
    let f = flood(&engine, id, n, mode).await;
    assert!(!f.shed.is_empty(), "nothing was refused: {f:?}");
    assert!(f.allowed > 0, "nothing was admitted: {f:?}");
    let unexpected: Vec<_> = f.shed.iter().filter(|s| !expected(s)).collect();
    assert!(
        unexpected.is_empty(),
        "{} of {} refused by another bound, e.g. {:?}",
        unexpected.len(),
        f.shed.len(),
        unexpected[0]
    );
    assert_eq!(f.allowed + f.denied + f.shed.len() as u64, n as u64);
    assert!(f.allowed <= limit);
    let barrier = strict_barrier(&engine, id).await;
    let expected_usage = f.allowed + u64::from(barrier.allowed);
    assert_eq!(
        engine.tenant(id).await.unwrap().quotas["api_requests"].used,
        expected_usage,
        "usage is not the allowed answers ({f:?})"
    );
    assert_eq!(engine.in_flight(), 0, "admissions not given back");
    engine.shutdown().await;
    drop(engine);
    let engine = Engine::open(c).await.unwrap();
    assert_eq!(
        engine.tenant(id).await.unwrap().quotas["api_requests"].used,
        expected_usage,
        "an acknowledged increment was lost across the restart"
    );
    engine.shutdown().await;
    f
}

fn strict(_: usize) -> Consistency {
    Consistency::Strict
}

fn fast(_: usize) -> Consistency {
    Consistency::Fast
}

fn mixed(i: usize) -> Consistency {
    if i.is_multiple_of(2) {
        Consistency::Strict
    } else {
        Consistency::Fast
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_in_flight_bound_refuses_the_excess_and_applies_every_admitted_one() {
    use quotad_engine::shed::{Limits, Shed};
    let limits = Limits {
        max_in_flight: 16,
        ..Limits::default()
    };
    // A blocking limit the flood reaches unless most of it is refused.
    shed_and_account(limits, 1_500, 2_000, mixed, |s| {
        matches!(s, Shed::NodeInFlight { limit: 16 })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_queue_bound_is_refused_without_a_trace() {
    use quotad_engine::shed::{Limits, Shed};
    let limits = Limits {
        tenant_queue: 4,
        ..Limits::default()
    };
    shed_and_account(limits, 1_000_000, 2_000, strict, |s| {
        matches!(s, Shed::TenantQueue { limit: 4, .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_increments_are_refused_not_queued_when_the_commit_queue_is_full() {
    use quotad_engine::shed::{Limits, Shed};
    // Only the commit queue bounds this flood.
    let limits = Limits {
        commit_queue: 2,
        tenant_queue: 10_000,
        max_in_flight: 10_000,
    };
    // Fast: answered before commit, so refused unless a slot was free.
    let f = shed_and_account(limits, 1_000_000, 5_000, fast, |s| {
        matches!(s, Shed::CommitQueue { limit: 2, .. })
    })
    .await;
    assert_eq!(f.denied, 0);
}
