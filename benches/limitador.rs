//! quotad's engine and the `limitador` library (in-memory storage, default
//! features off) on the same workload, in one run: the same keys (tenant
//! ids), the same limit (a fixed hourly window of 10^12, so every decision
//! admits and writes), the same key distribution and the same number of
//! threads. Prints decisions/s for each, quotad's ratio to Limitador, the
//! process's CPU time per decision, and for quotad the Raft log's commits
//! (one fsync each) per second and the decisions each carried.
//!
//! ```sh
//! cargo bench --bench limitador            # defaults below
//! QUOTAD_CMP_KEYS=100000 QUOTAD_CMP_DIST=zipf QUOTAD_CMP_SECS=5 cargo bench --bench limitador
//! ```
//! `QUOTAD_CMP_ONLY=fast,strict,batch,limitador` runs only the runs named
//! (for a profile of one of them).
//!
//! Limitador is called as its server calls it for one descriptor: a context
//! built from the descriptor's entries, then `check_rate_limited_and_update`.
//! quotad is called through `Engine::increment` (fast: decided in memory,
//! logged to Raft and made durable in the background; strict: answered once
//! durable) and `Engine::batch` (1000 increments a call), from 64 callers
//! (strict also from 1,024: a strict answer waits for its fsync, so callers
//! in flight, not CPU, bound it).
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/tenants.rs"]
mod tenants;
#[path = "../src/cli/bench/zipf.rs"]
#[allow(dead_code)]
mod zipf;

use cpu::cpu;
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

    let only = std::env::var("QUOTAD_CMP_ONLY").unwrap_or_default();
    let runs = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let limitador = runs("limitador").then(|| {
        measured(None, || {
            limitador_decisions(&names, &dist, threads, duration)
        })
    });
    let increments = |callers: usize, consistency: Consistency| {
        measured(Some(&engine), || {
            rt.block_on(quotad_decisions(
                &engine,
                &tenants,
                &dist,
                callers,
                duration,
                consistency,
            ))
        })
    };
    let fast = runs("fast").then(|| increments(threads * 32, Consistency::Fast));
    let strict = runs("strict").then(|| increments(threads * 32, Consistency::Strict));
    // Strict answers wait for the fsync, so what they reach is callers /
    // commit latency: with more callers waiting, each fsync carries more.
    let strict_many = runs("strict").then(|| increments(threads * 512, Consistency::Strict));
    let batch = runs("batch").then(|| {
        measured(Some(&engine), || {
            rt.block_on(quotad_batch(&engine, &tenants, &dist, threads, duration))
        })
    });
    rt.block_on(engine.shutdown());

    let dist_name = std::env::var("QUOTAD_CMP_DIST").unwrap_or_else(|_| "uniform".into());
    println!("{threads} threads, {keys} keys ({dist_name}), {secs} s each");
    println!(
        "| limiter | decisions/s | vs Limitador | CPU per decision | log fsyncs/s | decisions per fsync |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, r) in [
        ("limitador 0.14, in-memory", limitador),
        ("quotad engine, increment, fast", fast),
        ("quotad engine, increment, strict", strict),
        (
            "quotad engine, increment, strict, 16x the callers",
            strict_many,
        ),
        ("quotad engine, batch of 1000, fast", batch),
    ] {
        let Some(r) = r else { continue };
        let fsyncs = match r.log {
            Some((commits, ops)) => format!(
                "{:.0} | {:.1}",
                commits as f64 / r.secs,
                ops as f64 / commits.max(1) as f64
            ),
            None => "— | —".into(),
        };
        println!(
            "| {name} | {:.0} | {} | {:.2} µs | {fsyncs} |",
            r.rate,
            limitador.map_or("—".into(), |l| format!("{:.2}", r.rate / l.rate)),
            r.cpu_us
        );
    }
}

/// One measured run: decisions/s, CPU per decision, and for quotad the
/// log commits (fsyncs) and the operations they carried.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    secs: f64,
    cpu_us: f64,
    log: Option<(u64, u64)>,
}

fn measured(engine: Option<&Arc<Engine>>, f: impl FnOnce() -> f64) -> Run {
    let (started, cpu0) = (Instant::now(), cpu());
    let log0 = engine.map(|e| e.log_commits());
    let rate = f();
    let secs = started.elapsed().as_secs_f64();
    let log = engine.zip(log0).map(|(e, a)| {
        let b = e.log_commits();
        (b.commits - a.commits, b.ops - a.ops)
    });
    let decisions = (rate * secs).max(1.0);
    Run {
        rate,
        secs,
        cpu_us: (cpu() - cpu0).as_secs_f64() * 1e6 / decisions,
        log,
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

/// `callers` tasks on a runtime of `threads` workers.
async fn quotad_decisions(
    engine: &Arc<Engine>,
    tenants: &[TenantId],
    dist: &KeyDist,
    callers: usize,
    d: Duration,
    consistency: Consistency,
) -> f64 {
    let (engine, tenants, dist) = (
        engine.clone(),
        Arc::new(tenants.to_vec()),
        Arc::new(dist.clone()),
    );
    drive(callers, d, move |mut rng| {
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
