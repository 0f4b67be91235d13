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
// The node's allocator maintenance (`quotad serve` runs it every 30 s).
#[path = "../src/memory.rs"]
#[allow(unsafe_code, dead_code)]
mod memory;

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
    use_values(&mut s, n, T0 + 1, "a");
    let spent = started.elapsed();
    let live = s.quota("chat").unwrap().live_scopes();
    let (heap1, rss1) = (heap_bytes(), rss_kib());
    // The next day: every value's counter reads as fresh again and goes.
    s.advance(T0 + DAY + 1);
    let left = s.quota("chat").unwrap().live_scopes();
    let (heap2, rss2) = (heap_bytes(), rss_kib());
    // What the node's maintenance does with what the allocator now holds.
    let trimmed = memory::maintain();
    let rss2t = rss_kib();
    // The day after: as many new values again reuse what the allocator
    // kept from the first day's.
    use_values(&mut s, n, T0 + DAY + 2, "b");
    let rss3 = rss_kib();
    s.advance(T0 + 2 * DAY + 1);
    memory::maintain();
    let (heap4, rss4) = (heap_bytes(), rss_kib());
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!("scope values used once each: {n} ({live} live) in {spent:.2?}");
    println!(
        "heap: baseline {:.1} MiB, with them {:.1} MiB (+{:.0} bytes per value), next day {:.1} MiB ({left} live)",
        mib(heap0),
        mib(heap1),
        (heap1 - heap0) as f64 / n as f64,
        mib(heap2),
    );
    let m = |k: u64| k as f64 / 1024.0;
    println!(
        "RSS:  baseline {:.1} MiB, with them {:.1} MiB, next day {:.1} MiB",
        m(rss0),
        m(rss1),
        m(rss2),
    );
    println!(
        "after the node's allocator maintenance ({} MiB free returned): RSS {:.1} MiB",
        trimmed.map_or(0, |f| f >> 20),
        m(rss2t),
    );
    println!(
        "day 2: {n} new values: RSS {:.1} MiB; day 3 (swept, maintained): RSS {:.1} MiB, heap {:.1} MiB",
        m(rss3),
        m(rss4),
        mib(heap4),
    );
    assert_eq!(left, 0, "every value's period ended");
}

/// `n` distinct end users spend once each from `at_ms` on (100 a ms).
fn use_values(s: &mut TenantState, n: u64, at_ms: i64, prefix: &str) {
    for i in 0..n {
        let op = TenantOp::Spend(Since(Box::new(ScopedSpend {
            quota: "chat".into(),
            amount: 1,
            scope: format!("{prefix}-user-{i:08}@example.test").into(),
            idempotency_key: None,
            max_scopes: [u64::MAX; 4],
            hold: None,
        })));
        std::hint::black_box(s.apply(&op, at_ms + (i as i64) / 100).unwrap());
    }
}
