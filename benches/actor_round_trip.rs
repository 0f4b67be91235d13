//! One request through the engine in-process: shard routing, the tenant
//! actor, and (for increments) the group-commit batcher and Raft with a
//! durable redb append.
use criterion::{Criterion, criterion_group, criterion_main};
use quotad_engine::audit::AuditMeta;
use quotad_engine::model::Consistency;
use quotad_engine::model::Tier;
use quotad_engine::{Engine, EngineConfig, NewTenant};
use std::hint::black_box;

/// Who the bench acts as: in process, a platform service.
static BY: std::sync::LazyLock<quotad_engine::model::Principal> =
    std::sync::LazyLock::new(|| quotad_engine::model::Principal::platform("bench"));

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (engine, tenant) = rt.block_on(async {
        let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
        let t = engine
            .create_tenant(
                NewTenant {
                    slug: "bench".into(),
                    name: "Bench".into(),
                    tier: Tier::Enterprise,
                    timezone: chrono_tz::UTC,
                    trial_days: None,
                    settings_json: "{}".into(),
                    owner: None,
                },
                &AuditMeta::new("bench", "bench"),
            )
            .await
            .unwrap();
        (engine, t.tenant.id)
    });
    c.bench_function("actor round trip: check", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(engine.check(&BY, tenant, "api_requests", 1).await.unwrap())
        })
    });
    c.bench_function("actor round trip: increment, fast", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                engine
                    .increment(
                        &BY,
                        tenant,
                        "api_requests",
                        1,
                        None,
                        Some(Consistency::Fast),
                    )
                    .await
                    .unwrap(),
            )
        })
    });
    c.bench_function(
        "increment, strict (commit incl. fsync), one at a time",
        |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    engine
                        .increment(
                            &BY,
                            tenant,
                            "api_requests",
                            1,
                            None,
                            Some(Consistency::Strict),
                        )
                        .await
                        .unwrap(),
                )
            })
        },
    );
    // Group commit: 256 strict increments in flight share entries (and
    // fsyncs); throughput is per increment.
    let mut group = c.benchmark_group("group commit");
    group.throughput(criterion::Throughput::Elements(256));
    group.bench_function("256 concurrent strict increments", |b| {
        b.to_async(&rt).iter(|| async {
            let calls = (0..256).map(|_| {
                engine.increment(
                    &BY,
                    tenant,
                    "api_requests",
                    1,
                    None,
                    Some(Consistency::Strict),
                )
            });
            for d in futures::future::join_all(calls).await {
                black_box(d.unwrap());
            }
        })
    });
    group.finish();
    rt.block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
