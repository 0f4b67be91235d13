//! The pure quota math: one decision, one check, one calendar window.
use criterion::{Criterion, criterion_group, criterion_main};
use quotad_engine::model::{Period, QuotaPolicy, Tenant, TenantStatus, Tier};
use quotad_engine::quota::{TenantOp, TenantState, period};
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
    ]);
    TenantState::new(tenant, quotas)
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
