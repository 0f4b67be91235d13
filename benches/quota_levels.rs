//! What the quota model's levels cost through the engine: the same fast
//! increments, in alternating rounds in one run, on a flat quota (one
//! hourly counter), on a scoped one (the same counter and a daily limit for
//! each of 1,000 end users named as the scope) and on a layered one (the
//! scoped one plus a per-second burst and a daily cap as further windows).
//! Prints decisions/s and the process's CPU time per decision for each,
//! and their ratios to the flat one.
//!
//! ```sh
//! cargo bench --bench quota_levels
//! QUOTAD_LEVELS_TENANTS=1000 QUOTAD_LEVELS_SECS=3 cargo bench --bench quota_levels
//! QUOTAD_LEVELS_ONLY=scoped cargo bench --bench quota_levels   # one kind, to profile
//! ```
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/tenants.rs"]
mod tenants;

use cpu::cpu;
use quotad_engine::audit::AuditMeta;
use quotad_engine::format::Added;
use quotad_engine::model::quota_rules::limit_policy;
use quotad_engine::model::{
    Action, Consistency, Period, Principal, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy,
    TenantId, Tier,
};
use quotad_engine::quota::TenantOp;
use quotad_engine::{Engine, EngineConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static BY: std::sync::LazyLock<Principal> =
    std::sync::LazyLock::new(|| Principal::platform("bench"));

const LIMIT: u64 = 1_000_000_000_000;
const USERS: u64 = 1_000;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The flat counter with a daily limit per scope value, and nothing else.
fn scoped() -> QuotaPolicy {
    let mut p = QuotaPolicy::counter(Period::Hourly, Some(LIMIT));
    p.rules = Added(Some(Box::new(QuotaRules {
        scopes: Some(ScopeRules {
            default: Some(SharedPolicy::new(limit_policy(
                Period::Daily,
                LIMIT,
                Action::Block,
            ))),
            overrides: Vec::new(),
        }),
        ..Default::default()
    })));
    p
}

fn layered() -> QuotaPolicy {
    let lim = |period, limit| SharedPolicy::new(limit_policy(period, limit, Action::Block));
    let mut p = QuotaPolicy::counter(Period::Hourly, Some(LIMIT));
    p.rules = Added(Some(Box::new(QuotaRules {
        windows: vec![
            lim(Period::Second, 1_000_000_000),
            lim(Period::Daily, LIMIT),
        ],
        scopes: Some(ScopeRules {
            default: Some(lim(Period::Daily, LIMIT)),
            overrides: vec![("premium_*".into(), lim(Period::Daily, LIMIT))],
        }),
        ..Default::default()
    })));
    p
}

/// Fast increments from `callers` tasks for `d`: decisions/s and CPU per
/// decision.
async fn round(
    engine: &Arc<Engine>,
    tenants: &Arc<Vec<TenantId>>,
    callers: usize,
    d: Duration,
    quota: &'static str,
) -> (f64, Duration) {
    let total = Arc::new(AtomicU64::new(0));
    let (started, cpu0) = (Instant::now(), cpu());
    let tasks: Vec<_> = (0..callers)
        .map(|t| {
            let (engine, tenants, total) = (engine.clone(), tenants.clone(), total.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < d {
                    let i = (t as u64).wrapping_mul(7919).wrapping_add(n);
                    let tenant = tenants[(i as usize) % tenants.len()];
                    let d = if quota != "flat" {
                        engine
                            .increment_in(
                                &BY,
                                tenant,
                                quota,
                                1,
                                Some(format!("user-{}", i % USERS)),
                                None,
                                Some(Consistency::Fast),
                            )
                            .await
                    } else {
                        engine
                            .increment(&BY, tenant, "flat", 1, None, Some(Consistency::Fast))
                            .await
                    };
                    match d {
                        Ok(d) => {
                            assert!(d.allowed, "the limits are out of reach");
                            n += 1;
                        }
                        // The commit queue is full: back off as a client
                        // told RESOURCE_EXHAUSTED does; not counted.
                        Err(quotad_engine::EngineError::Overloaded { .. }) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = total.load(Ordering::Relaxed).max(1);
    (
        n as f64 / started.elapsed().as_secs_f64(),
        (cpu() - cpu0) / u32::try_from(n).unwrap_or(u32::MAX),
    )
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = env("QUOTAD_LEVELS_TENANTS", 1);
    let secs: f64 = env("QUOTAD_LEVELS_SECS", if quick { 0.2 } else { 3.0 });
    let rounds: usize = if quick { 1 } else { 3 };
    let threads = 2;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(async { Engine::open(EngineConfig::new(dir.path())).await.unwrap() });
    let tenants = rt.block_on(async {
        let ids = tenants::create(&engine, n, "levels", Tier::Enterprise).await;
        let by = AuditMeta::new("bench", "bench");
        for id in &ids {
            for (quota, policy) in [
                ("flat", QuotaPolicy::counter(Period::Hourly, Some(LIMIT))),
                ("scoped", scoped()),
                ("layered", layered()),
            ] {
                let op = TenantOp::SetQuota {
                    quota: quota.into(),
                    policy,
                };
                engine.admin(*id, op, &by).await.unwrap();
            }
        }
        Arc::new(ids)
    });
    let d = Duration::from_secs_f64(secs);
    let (mut flat, mut scope, mut layered) = (Vec::new(), Vec::new(), Vec::new());
    // QUOTAD_LEVELS_ONLY=scoped runs one kind alone (to profile it); the
    // others then print as zero.
    let only = std::env::var("QUOTAD_LEVELS_ONLY").ok();
    let runs = |k: &str| only.as_deref().is_none_or(|o| o == k);
    let zero = (0.0, Duration::ZERO);
    for _ in 0..rounds {
        for (kind, out) in [
            ("flat", &mut flat),
            ("scoped", &mut scope),
            ("layered", &mut layered),
        ] {
            out.push(if runs(kind) {
                rt.block_on(round(&engine, &tenants, threads * 32, d, kind))
            } else {
                zero
            });
        }
    }
    rt.block_on(engine.shutdown());
    let mean = |v: &[(f64, Duration)]| {
        let rate = v.iter().map(|r| r.0).sum::<f64>() / v.len() as f64;
        let cpu = v.iter().map(|r| r.1).sum::<Duration>() / v.len() as u32;
        (rate, cpu)
    };
    let (f, s, l) = (mean(&flat), mean(&scope), mean(&layered));
    println!(
        "{n} tenant(s), {threads} threads, {rounds} alternating rounds of {secs} s, fast increments"
    );
    println!("| decision | decisions/s | CPU per decision |");
    println!("|---|---|---|");
    println!("| flat (one hourly counter) | {:.0} | {:.2?} |", f.0, f.1);
    println!("| scope (1,000 end users) | {:.0} | {:.2?} |", s.0, s.1);
    println!(
        "| scope (1,000 end users) + 2 further windows | {:.0} | {:.2?} |",
        l.0, l.1
    );
    let ratio = |name: &str, x: (f64, Duration)| {
        println!(
            "cost ratio, {name} / flat: {:.2} by throughput, {:.2} by CPU per decision",
            f.0 / x.0,
            x.1.as_secs_f64() / f.1.as_secs_f64().max(1e-12)
        )
    };
    ratio("scope", s);
    ratio("layered", l);
}
