//! The pure quota math: one decision, one check, one calendar window; and
//! a decision over a scope and two further windows beside a flat one (the
//! quota model's cost, as a ratio in one run).
use criterion::{Criterion, criterion_group, criterion_main};
use quotad_engine::format::Since;
use quotad_engine::model::quota_rules::limit_policy;
use quotad_engine::model::{
    Action, Period, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy, Tenant, TenantStatus, Tier,
};
use quotad_engine::quota::{ScopedSpend, TenantOp, TenantState, period};
use std::collections::BTreeMap;
use std::hint::black_box;

const T0: i64 = 1_790_000_000_000;

fn state() -> TenantState {
    let tenant = Tenant {
        id: uuid::Uuid::from_u128(1),
        slug: "bench".into(),
        name: "Bench".into(),
        tier: Tier::Professional,
        status: TenantStatus::Active,
        timezone: chrono_tz::America::New_York,
        trial_ends_at_ms: None,
        settings_json: "{}".into(),
        created_at_ms: T0,
        updated_at_ms: T0,
        deleted: None,
    };
    let quotas = BTreeMap::from([
        (
            "api_requests".to_string(),
            QuotaPolicy::counter(Period::Monthly, Some(u64::MAX / 4)),
        ),
        (
            "rps".to_string(),
            QuotaPolicy::rate(Period::Second, Some(1_000_000_000)),
        ),
        ("layered".to_string(), layered()),
    ]);
    TenantState::new(tenant, quotas)
}

/// A monthly counter with a per-second burst and a daily cap, and a daily
/// limit for each scope value (limits high enough never to refuse).
fn layered() -> QuotaPolicy {
    let lim = |period, limit| SharedPolicy::new(limit_policy(period, limit, Action::Block));
    let mut p = QuotaPolicy::counter(Period::Monthly, Some(u64::MAX / 4));
    p.rules.0 = Some(Box::new(QuotaRules {
        windows: vec![
            lim(Period::Second, 1_000_000_000),
            lim(Period::Daily, u64::MAX / 8),
        ],
        scopes: Some(ScopeRules {
            default: Some(lim(Period::Daily, 1_000_000_000)),
            overrides: vec![("premium_*".into(), lim(Period::Daily, 2_000_000_000))],
        }),
        ..Default::default()
    }));
    p
}

/// A spend of 1 in `scope` (no idempotency key, as the flat increment).
fn scoped(scope: &str) -> TenantOp {
    TenantOp::Spend(Since(Box::new(ScopedSpend {
        quota: "layered".into(),
        amount: 1,
        scope: scope.into(),
        idempotency_key: None,
        max_scopes: [u64::MAX; 4],
        hold: None,
    })))
}

fn bench(c: &mut Criterion) {
    let inc = TenantOp::Increment {
        quota: "api_requests".into(),
        amount: 1,
        idempotency_key: None,
    };
    c.bench_function("apply increment (monthly counter, New York)", |b| {
        let mut s = state();
        let mut now = T0;
        b.iter(|| {
            now += 1;
            black_box(s.apply(black_box(&inc), now).unwrap());
        })
    });
    let rate = TenantOp::Increment {
        quota: "rps".into(),
        amount: 1,
        idempotency_key: None,
    };
    c.bench_function("apply increment (GCRA rate)", |b| {
        let mut s = state();
        let mut now = T0;
        b.iter(|| {
            now += 1;
            black_box(s.apply(black_box(&rate), now).unwrap());
        })
    });
    // The flat increment again, then the same through a scope (1,000 end
    // users taking turns) and two further windows: the ratio is the cost
    // of the quota model's levels.
    c.bench_function("apply increment, flat (monthly counter)", |b| {
        let mut s = state();
        let mut now = T0;
        b.iter(|| {
            now += 1;
            black_box(s.apply(black_box(&inc), now).unwrap());
        })
    });
    let users: Vec<TenantOp> = (0..1_000).map(|i| scoped(&format!("user-{i}"))).collect();
    c.bench_function("apply increment, scope + 2 windows", |b| {
        let mut s = state();
        let mut now = T0;
        let mut i = 0;
        b.iter(|| {
            now += 1;
            i = (i + 1) % users.len();
            black_box(s.apply(black_box(&users[i]), now).unwrap());
        })
    });
    c.bench_function("check (no change)", |b| {
        let s = state();
        b.iter(|| black_box(s.check(black_box("api_requests"), 1, None, T0).unwrap()))
    });
    c.bench_function("monthly window in America/New_York", |b| {
        let mut now = T0;
        b.iter(|| {
            now += 997;
            black_box(period::window(
                Period::Monthly,
                chrono_tz::America::New_York,
                now,
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
