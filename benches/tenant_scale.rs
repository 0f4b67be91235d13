//! Tenant scale: resident memory with many tenants, each with its tier's
//! default quotas, and the cost of activating a cold tenant's actor.
//!
//! ```sh
//! QUOTAD_SCALE_TENANTS=100000 cargo bench --bench tenant_scale
//! QUOTAD_SCALE_TENANTS=1000000 cargo bench --bench tenant_scale
//! ```
//! Tenants are created through the engine (strict, audited, as the REST
//! API does), on one node with the default 4 shards. Memory is the
//! process's VmRSS once every actor has retired (actors run only for
//! active tenants), so it is what idle tenants cost. Activation is the
//! first `check` of a cold tenant (starting its actor from committed
//! state) minus a warm `check`, over 1000 tenants.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/tenants.rs"]
mod tenants;

use counting_alloc::heap_bytes;

use quotad_engine::model::{TenantId, Tier};
use quotad_engine::{Engine, EngineConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who the bench acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("bench"));

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("QUOTAD_SCALE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.idle_after = Duration::from_millis(500);
    let engine = rt.block_on(async { Engine::open(config).await.unwrap() });
    let base = rss_bytes();
    let heap_base = heap_bytes();
    let started = Instant::now();
    let tenants = rt.block_on(tenants::create(&engine, n, "scale", Tier::Free));
    let created_in = started.elapsed();
    rt.block_on(settle(&engine));
    let rss = rss_bytes();
    let heap = heap_bytes() - heap_base;
    let per_tenant = (rss.saturating_sub(base)) as f64 / n as f64;

    // Cold activation: 1000 tenants spread over the set, one at a time.
    let sample: Vec<TenantId> = tenants
        .iter()
        .step_by((n / 1000).max(1))
        .take(1000)
        .copied()
        .collect();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for t in &sample {
            let at = Instant::now();
            engine.check(&BY, *t, "api_requests", 1).await.unwrap();
            cold.push(at.elapsed());
            let at = Instant::now();
            engine.check(&BY, *t, "api_requests", 1).await.unwrap();
            warm.push(at.elapsed());
        }
    });
    rt.block_on(engine.shutdown());
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let (c50, c99) = (pct(&mut cold, 0.5), pct(&mut cold, 0.99));
    let (w50, w99) = (pct(&mut warm, 0.5), pct(&mut warm, 0.99));
    println!(
        "{n} tenants (FREE tier defaults) created in {:.1} s ({:.0}/s)",
        created_in.as_secs_f64(),
        n as f64 / created_in.as_secs_f64()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| RSS, engine open, no tenants | {:.1} MiB |",
        base as f64 / 1048576.0
    );
    println!(
        "| RSS with {n} idle tenants | {:.1} MiB |",
        rss as f64 / 1048576.0
    );
    println!("| per tenant (RSS) | {per_tenant:.0} bytes |");
    println!(
        "| per tenant (live heap) | {:.0} bytes |",
        heap as f64 / n as f64
    );
    println!(
        "| first check, cold tenant (actor activation), p50 / p99 | {} / {} µs |",
        c50.as_micros(),
        c99.as_micros()
    );
    println!(
        "| check, warm tenant, p50 / p99 | {} / {} µs |",
        w50.as_micros(),
        w99.as_micros()
    );
    println!(
        "| activation cost (cold p50 - warm p50) | {} µs |",
        c50.saturating_sub(w50).as_micros()
    );
}

/// Wait until every actor has retired.
async fn settle(engine: &Arc<Engine>) {
    for _ in 0..600 {
        if engine.active_actors() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("warning: {} actors still active", engine.active_actors());
}
