//! quotad's engine and the `limitador` library (in-memory storage, default
//! features off) on the same workload, in one run: the same keys (tenant
//! ids), the same limit (a fixed hourly window of 10^12, so every decision
//! admits and writes), the same key distribution and the same number of
//! threads. Prints decisions/s for each and quotad's ratio to Limitador.
//!
//! ```sh
//! cargo bench --bench limitador            # defaults below
//! QUOTAD_CMP_KEYS=100000 QUOTAD_CMP_DIST=zipf QUOTAD_CMP_SECS=5 cargo bench --bench limitador
//! ```
//! Limitador is called as its server calls it for one descriptor: a context
//! built from the descriptor's entries, then `check_rate_limited_and_update`.
//! quotad is called through `Engine::increment` (fast: decided in memory,
//! logged to Raft and made durable in the background; strict: answered once
//! durable) and `Engine::batch` (1000 increments a call).
#[path = "support/tenants.rs"]
mod tenants;
#[path = "../src/cli/bench/zipf.rs"]
#[allow(dead_code)]
mod zipf;

use limitador::RateLimiter;
use limitador::limit::{Context, Limit};
use quotad_engine::audit::AuditMeta;
use quotad_engine::model::Consistency;
use quotad_engine::model::{Period, QuotaPolicy, TenantId, Tier};
use quotad_engine::quota::TenantOp;
use quotad_engine::{BatchOp, Engine, EngineConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zipf::{KeyDist, Rng};

/// Who the bench acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("bench"));

const LIMIT: u64 = 1_000_000_000_000;
const WINDOW_SECS: u64 = 3600;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once
    // quickly with `--test`... or nothing at all: run briefly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let threads: usize = env("QUOTAD_CMP_THREADS", 2);
    let keys: usize = env("QUOTAD_CMP_KEYS", 1);
    let secs: f64 = env("QUOTAD_CMP_SECS", if quick { 0.2 } else { 5.0 });
    let dist = match std::env::var("QUOTAD_CMP_DIST").as_deref() {
        Ok("zipf") => KeyDist::zipf(keys, 1.0),
        _ => KeyDist::uniform(keys),
    };
    let duration = Duration::from_secs_f64(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(async { Engine::open(EngineConfig::new(dir.path())).await.unwrap() });
    eprintln!("creating {keys} tenants...");
    let tenants: Vec<TenantId> = rt.block_on(create_tenants(&engine, keys));
    let names: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();

    let limitador = limitador_decisions(&names, &dist, threads, duration);
    let fast = rt.block_on(quotad_decisions(
        &engine,
        &tenants,
        &dist,
        threads,
        duration,
        Consistency::Fast,
    ));
    let strict = rt.block_on(quotad_decisions(
        &engine,
        &tenants,
        &dist,
        threads,
        duration,
        Consistency::Strict,
    ));
    let batch = rt.block_on(quotad_batch(&engine, &tenants, &dist, threads, duration));
    rt.block_on(engine.shutdown());

    let dist_name = std::env::var("QUOTAD_CMP_DIST").unwrap_or_else(|_| "uniform".into());
    println!("{threads} threads, {keys} keys ({dist_name}), {secs} s each");
    println!("| limiter | decisions/s | vs Limitador |");
    println!("|---|---|---|");
    println!("| limitador 0.14, in-memory | {limitador:.0} | 1.00 |");
    for (name, r) in [
        ("quotad engine, increment, fast", fast),
        ("quotad engine, increment, strict", strict),
        ("quotad engine, batch of 1000, fast", batch),
    ] {
        println!("| {name} | {r:.0} | {:.2} |", r / limitador);
    }
}

/// ENTERPRISE tenants, each with `api_requests` as a fixed hourly window.
async fn create_tenants(engine: &Arc<Engine>, n: usize) -> Vec<TenantId> {
    use futures::StreamExt;
    let ids = tenants::create(engine, n, "cmp", Tier::Enterprise).await;
    let by = AuditMeta::new("bench", "bench");
    futures::stream::iter(ids.iter().copied())
        .map(|id| {
            let (engine, by) = (engine.clone(), by.clone());
            async move {
                let policy = QuotaPolicy::counter(Period::Hourly, Some(LIMIT));
                let op = TenantOp::SetQuota {
                    quota: "api_requests".into(),
                    policy,
                };
                engine.admin(id, op, &by).await.unwrap();
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    ids
}

fn limitador_decisions(names: &[String], dist: &KeyDist, threads: usize, d: Duration) -> f64 {
    let limiter = Arc::new(RateLimiter::new(names.len() as u64 + 1024));
    limiter.add_limit(Limit::new(
        "bench",
        LIMIT,
        WINDOW_SECS,
        vec![],
        vec!["tenant_id".try_into().expect("a valid variable")],
    ));
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (limiter, total) = (limiter.clone(), total.clone());
            s.spawn(move || {
                let namespace = "bench".into();
                let mut rng = Rng::new(t as u64 + 1);
                let mut n = 0u64;
                while started.elapsed() < d {
                    for _ in 0..64 {
                        let key = &names[dist.sample(rng.unit())];
                        let ctx: Context =
                            HashMap::from([("tenant_id".to_string(), key.clone())]).into();
                        let r = limiter
                            .check_rate_limited_and_update(&namespace, &ctx, 1)
                            .expect("in-memory storage does not fail");
                        assert!(!r.limited, "the limit is out of reach");
                        n += 1;
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// `callers` tasks, each repeating `step` (which makes some decisions with
/// the task's generator and says how many) until `d` has passed; answers
/// decisions per second.
async fn drive<F, Fut>(callers: usize, d: Duration, step: F) -> f64
where
    F: Fn(Rng) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Rng, u64)> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|t| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(t as u64 + 1);
                let mut n = 0u64;
                while started.elapsed() < d {
                    let (next, made) = step(rng).await;
                    rng = next;
                    n += made;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `threads x 32` callers on a runtime of `threads` workers.
async fn quotad_decisions(
    engine: &Arc<Engine>,
    tenants: &[TenantId],
    dist: &KeyDist,
    threads: usize,
    d: Duration,
    consistency: Consistency,
) -> f64 {
    let (engine, tenants, dist) = (
        engine.clone(),
        Arc::new(tenants.to_vec()),
        Arc::new(dist.clone()),
    );
    drive(threads * 32, d, move |mut rng| {
        let (engine, tenants, dist) = (engine.clone(), tenants.clone(), dist.clone());
        async move {
            let tenant = tenants[dist.sample(rng.unit())];
            let r = engine
                .increment(&BY, tenant, "api_requests", 1, None, Some(consistency))
                .await;
            match r {
                Ok(d) => {
                    assert!(d.allowed, "the limit is out of reach");
                    (rng, 1)
                }
                // Fast decisions outran the group's commits and its queue
                // is full: refused, not counted; back off as a client does.
                Err(quotad_engine::EngineError::Overloaded { .. }) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    (rng, 0)
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
}

/// `threads x 2` callers, each sending Batch of 1000 fast increments.
async fn quotad_batch(
    engine: &Arc<Engine>,
    tenants: &[TenantId],
    dist: &KeyDist,
    threads: usize,
    d: Duration,
) -> f64 {
    let (engine, tenants, dist) = (
        engine.clone(),
        Arc::new(tenants.to_vec()),
        Arc::new(dist.clone()),
    );
    drive(threads * 2, d, move |mut rng| {
        let (engine, tenants, dist) = (engine.clone(), tenants.clone(), dist.clone());
        async move {
            let items = (0..1000)
                .map(|_| {
                    (
                        tenants[dist.sample(rng.unit())],
                        BatchOp::Increment {
                            quota: "api_requests".into(),
                            amount: 1,
                            idempotency_key: None,
                            consistency: Some(Consistency::Fast),
                        },
                    )
                })
                .collect();
            let (mut n, mut shed) = (0, false);
            for r in engine.batch(&BY, items).await {
                match r {
                    Ok(d) => {
                        assert!(d.allowed, "the limit is out of reach");
                        n += 1;
                    }
                    // The group's commit queue is full: items refused so,
                    // not counted; the caller backs off as told.
                    Err(e)
                        if e.code() == quotad_engine::error_code::ErrorCode::ResourceExhausted =>
                    {
                        shed = true;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if shed {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (rng, n)
        }
    })
    .await
}
