//! What a sharing grant costs an Increment, in one run: the same engine,
//! the same consumer, increments with and without `sharing_policy_id`, in
//! alternating rounds (so both see the same machine state). A shared
//! increment also checks the consumer's grant, counts its cap and adds the
//! units to the consumer's usage records.
//!
//! Usage: cargo bench --bench shared_use [-- ROUNDS [OPS_PER_ROUND]]
use quotad_engine::audit::AuditMeta;
use quotad_engine::model::{Consistency, Principal, TenantId, Tier};
use quotad_engine::sharing::{
    Amount, Approval, Conditions, Currency, Permission, PolicySpec, Pricing, ResourceType,
    RevenueShare, Via, Visibility,
};
use quotad_engine::{Engine, EngineConfig, NewTenant};
use std::sync::Arc;
use std::time::Instant;

const IN_FLIGHT: usize = 64;

async fn tenant(engine: &Engine, slug: &str, tier: Tier) -> TenantId {
    engine
        .create_tenant(
            NewTenant {
                slug: slug.into(),
                name: slug.into(),
                tier,
                timezone: chrono_tz::UTC,
                trial_days: None,
                settings_json: "{}".into(),
                owner: None,
            },
            &AuditMeta::new("bench", "bench"),
        )
        .await
        .unwrap()
        .tenant
        .id
}

/// Increments per second over `ops`, `IN_FLIGHT` at a time.
async fn run(
    engine: &Arc<Engine>,
    by: &Principal,
    consumer: TenantId,
    via: Option<Via>,
    ops: usize,
    consistency: Consistency,
) -> f64 {
    let started = Instant::now();
    let mut left = ops;
    while left > 0 {
        let n = left.min(IN_FLIGHT);
        left -= n;
        let calls = (0..n).map(|_| async {
            // A full commit queue refuses at once (fast increments can
            // outrun the commits): back off as a client does and try again.
            loop {
                let d = match via {
                    None => {
                        engine
                            .increment(by, consumer, "api_requests", 1, None, Some(consistency))
                            .await
                    }
                    Some(via) => {
                        engine
                            .increment_shared(
                                by,
                                consumer,
                                "api_requests",
                                1,
                                None,
                                Some(consistency),
                                via,
                            )
                            .await
                    }
                };
                match d {
                    Ok(d) => {
                        assert!(d.allowed);
                        break;
                    }
                    Err(quotad_engine::EngineError::Overloaded { .. }) => {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        futures::future::join_all(calls).await;
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let ops: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let by = Principal::platform("bench");
    rt.block_on(async {
        let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
        let provider = tenant(&engine, "provider", Tier::Enterprise).await;
        let consumer = tenant(&engine, "consumer", Tier::Enterprise).await;
        let meta = AuditMeta::new("bench", "bench");
        let policy = engine
            .publish_policy(
                provider,
                PolicySpec {
                    resource_id: "model".into(),
                    resource_type: ResourceType::model(),
                    visibility: Visibility::Marketplace,
                    permissions: [Permission::Execute].into(),
                    pricing: Pricing::UsageBased {
                        price: Amount::parse("0.001").unwrap(),
                        currency: Currency::parse("USD").unwrap(),
                        unit_quota: "api_requests".into(),
                    },
                    revenue_share: RevenueShare {
                        platform_fee_bp: 1_500,
                        provider_share_bp: 8_500,
                    },
                    conditions: Conditions {
                        approval: Approval::Automatic,
                        ..Conditions::default()
                    },
                },
                &meta,
            )
            .await
            .unwrap();
        engine
            .request_access(consumer, policy.id, String::new(), None, &meta)
            .await
            .unwrap();
        let via = Via {
            policy: policy.id,
            permission: Permission::Execute,
        };
        for (consistency, ops) in [(Consistency::Fast, ops), (Consistency::Strict, ops / 4)] {
            // Warm up both paths.
            run(&engine, &by, consumer, None, ops / 10, consistency).await;
            run(&engine, &by, consumer, Some(via), ops / 10, consistency).await;
            let (mut plain, mut shared) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let p = run(&engine, &by, consumer, None, ops, consistency).await;
                let s = run(&engine, &by, consumer, Some(via), ops, consistency).await;
                println!("{consistency:?} round {round}: plain {p:.0}/s, shared {s:.0}/s, shared/plain {:.3}", s / p);
                plain.push(p);
                shared.push(s);
            }
            let ratios: Vec<f64> = shared.iter().zip(&plain).map(|(s, p)| s / p).collect();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            let ratio = median(ratios);
            let (p, s) = (median(plain), median(shared));
            println!(
                "{consistency:?} increments, {IN_FLIGHT} in flight, {rounds} rounds of {ops}: median plain {p:.0}/s, with sharing_policy_id {s:.0}/s; shared/plain per round: median {ratio:.3} (from {lo:.3} to {hi:.3})"
            );
        }
        engine.shutdown().await;
    });
}
