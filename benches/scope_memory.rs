//! What scope values cost, and that they stop costing when their period
//! ends: one tenant, a quota whose scope rule limits each value per day,
//! 1,000,000 distinct values used once each, then the next day. Heap bytes
//! (a counting allocator) and the process's RSS at each step.
//!
//! ```sh
//! cargo bench --bench scope_memory
//! QUOTAD_SCOPE_VALUES=200000 cargo bench --bench scope_memory
//! ```
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::heap_bytes;
use quotad_engine::format::Since;
use quotad_engine::model::quota_rules::limit_policy;
use quotad_engine::model::{
    Action, Period, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy, Tenant, TenantStatus, Tier,
};
use quotad_engine::quota::{ScopedSpend, TenantOp, TenantState};
use std::collections::BTreeMap;

const T0: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::var("QUOTAD_SCOPE_VALUES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tenant = Tenant {
        id: uuid::Uuid::from_u128(1),
        slug: "scopes".into(),
        name: "Scopes".into(),
        tier: Tier::Enterprise,
        status: TenantStatus::Active,
        timezone: chrono_tz::UTC,
        trial_ends_at_ms: None,
        settings_json: "{}".into(),
        created_at_ms: T0,
        updated_at_ms: T0,
        deleted: None,
    };
    let mut policy = QuotaPolicy::counter(Period::Monthly, Some(u64::MAX / 4));
    policy.rules.0 = Some(Box::new(QuotaRules {
        scopes: Some(ScopeRules {
            default: Some(SharedPolicy::new(limit_policy(
                Period::Daily,
                100,
                Action::Block,
            ))),
            overrides: Vec::new(),
        }),
        ..Default::default()
    }));
    let mut s = TenantState::new(tenant, BTreeMap::from([("chat".to_string(), policy)]));
    s.advance(T0);
    let (heap0, rss0) = (heap_bytes(), rss_kib());
    let started = std::time::Instant::now();
    for i in 0..n {
        // End users such as a platform names them.
        let op = TenantOp::Spend(Since(Box::new(ScopedSpend {
            quota: "chat".into(),
            amount: 1,
            scope: format!("user-{i:08}@example.test"),
            idempotency_key: None,
            max_scopes: [u64::MAX; 4],
            hold: None,
        })));
        let applied = s.apply(&op, T0 + 1 + (i as i64) / 100).unwrap();
        std::hint::black_box(applied);
    }
    let spent = started.elapsed();
    let live = s.quota("chat").unwrap().live_scopes();
    let (heap1, rss1) = (heap_bytes(), rss_kib());
    // The next day: every value's counter reads as fresh again and goes.
    s.advance(T0 + DAY + 1);
    let left = s.quota("chat").unwrap().live_scopes();
    let (heap2, rss2) = (heap_bytes(), rss_kib());
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!("scope values used once each: {n} ({live} live) in {spent:.2?}");
    println!(
        "heap: baseline {:.1} MiB, with them {:.1} MiB (+{:.0} bytes per value), next day {:.1} MiB ({left} live)",
        mib(heap0),
        mib(heap1),
        (heap1 - heap0) as f64 / n as f64,
        mib(heap2),
    );
    println!(
        "RSS:  baseline {:.1} MiB, with them {:.1} MiB, next day {:.1} MiB",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss2 as f64 / 1024.0,
    );
    assert_eq!(left, 0, "every value's period ended");
}
