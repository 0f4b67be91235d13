//! Properties over random histories of spends, holds and time.
use super::*;

/// A random operation in a history.
#[derive(Debug, Clone)]
enum Step {
    Inc(i64),
    Reserve(u64, u64),
    Settle(usize, u64),
    Release(usize),
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..40).prop_map(Step::Inc),
        2 => (1u64..60, 1u64..5_000).prop_map(|(a, t)| Step::Reserve(a, t)),
        1 => (0usize..8, 0u64..80).prop_map(|(i, a)| Step::Settle(i, a)),
        1 => (0usize..8).prop_map(Step::Release),
        2 => (0i64..40 * 86_400_000).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Whatever the history, admitted usage (consumed + held) never exceeds a
    /// blocking limit, except by what settlements charged beyond their hold;
    /// replaying the same history gives the same state (determinism).
    #[test]
    fn usage_never_exceeds_a_blocking_limit(
        limit in 1u64..200,
        period in prop::sample::select(vec![Period::Hourly, Period::Daily, Period::Monthly, Period::Never]),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let policy = QuotaPolicy { kind: QuotaKind::Counter, ..limited(limit, Action::Block) };
        let policy = QuotaPolicy { period, ..policy };
        let mut s = TenantState::new(
            tenant(chrono_tz::America::New_York),
            BTreeMap::from([("q".to_string(), policy)]),
        );
        let mut replica = s.clone();
        let mut now = T0;
        let mut open: Vec<(Uuid, u64)> = Vec::new();
        let mut settled_excess = 0u64;
        let mut window = s.quotas["q"].window_start_ms;
        for (i, st) in steps.iter().enumerate() {
            let op = match st {
                Step::Inc(a) => inc("q", *a),
                Step::Reserve(a, ttl) => TenantOp::Reserve {
                    quota: "q".into(), amount: *a, ttl_ms: *ttl,
                    reservation_id: Uuid::from_u128(i as u128), idempotency_key: None,
                },
                Step::Settle(j, actual) if !open.is_empty() => {
                    let (id, held) = open.remove(j % open.len());
                    settled_excess += actual.saturating_sub(held);
                    TenantOp::Settle { reservation_id: id, actual: *actual }
                }
                Step::Release(j) if !open.is_empty() => {
                    let (id, _) = open.remove(j % open.len());
                    TenantOp::Release { reservation_id: id }
                }
                Step::Wait(ms) => { now += ms; continue; }
                _ => continue,
            };
            let applied = s.apply(&op, now);
            if let Ok(a) = &applied {
                if a.changed { replica.apply(&op, now).unwrap(); }
                if let OpOutcome::Reserved { reservation_id: Some(id), .. } = &a.outcome
                    && let Step::Reserve(amt, _) = st {
                    open.push((*id, *amt));
                }
            }
            let q = &s.quotas["q"];
            if q.window_start_ms != window {
                window = q.window_start_ms;
                settled_excess = 0;
            }
            prop_assert!(
                q.used + q.reserved <= limit + settled_excess,
                "usage {} + held {} over limit {} at step {}", q.used, q.reserved, limit, i
            );
        }
        replica.advance(now);
        s.advance(now);
        prop_assert_eq!(&replica.quotas, &s.quotas);
    }
}

#[test]
fn changing_timezone_or_period_keeps_usage() {
    let mut s = state_with("q", limited(100, Action::Block));
    s.apply(&inc("q", 60), T0).unwrap();
    let update = TenantUpdate {
        timezone: Some(chrono_tz::Asia::Tokyo),
        ..Default::default()
    };
    s.apply(&TenantOp::Update(update), T0 + 1).unwrap();
    assert_eq!(s.quotas["q"].used, 60);
    let d = decision(s.apply(&inc("q", 1), T0 + 2).unwrap());
    assert_eq!(d.usage, 61);
    let tokyo_month_end = chrono_tz::Asia::Tokyo
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(d.reset_at_ms, Some(tokyo_month_end));
    let daily = QuotaPolicy {
        period: Period::Daily,
        ..limited(100, Action::Block)
    };
    s.apply(
        &TenantOp::SetQuota {
            quota: "q".into(),
            policy: daily,
        },
        T0 + 3,
    )
    .unwrap();
    assert_eq!(s.quotas["q"].used, 61);
    // The next day starts from zero.
    assert_eq!(
        decision(s.apply(&inc("q", 1), T0 + 86_400_000).unwrap()).usage,
        1
    );
}

#[test]
fn rate_never_admits_more_than_its_limit_per_window() {
    // 500_001 per second: an emission interval that is not a whole number
    // of microseconds must not round into a bigger burst.
    for limit in [500_001u64, 7, 1_000_003, 59_999_999] {
        let mut s = state_with("r", QuotaPolicy::rate(Period::Second, Some(limit)));
        let d = decision(s.apply(&inc("r", limit as i64), T0).unwrap());
        assert!(d.allowed, "a full burst of {limit} fits");
        let d = decision(s.apply(&inc("r", 1), T0).unwrap());
        assert!(!d.allowed, "nothing more fits at once ({limit})");
        // After one full window the whole burst is available again.
        assert!(decision(s.apply(&inc("r", limit as i64), T0 + 1000).unwrap()).allowed);
    }
}

#[test]
fn time_going_back_does_not_reset_a_period() {
    let mut s = state_with("q", QuotaPolicy::counter(Period::Hourly, Some(10)));
    let hour = 3_600_000;
    let next_hour = (T0 / hour + 1) * hour;
    s.apply(&inc("q", 10), next_hour + 5).unwrap();
    // A lagging clock: 10 ms before the hour began.
    let d = decision(s.apply(&inc("q", 1), next_hour - 10).unwrap());
    assert!(!d.allowed);
    assert_eq!(s.quotas["q"].used, 10);
}

#[test]
fn a_quota_in_use_cannot_change_kind() {
    let mut s = state_with("q", limited(10, Action::Block));
    s.apply(&inc("q", 3), T0).unwrap();
    let err = s
        .apply(
            &TenantOp::SetQuota {
                quota: "q".into(),
                policy: QuotaPolicy::rate(Period::Second, Some(5)),
            },
            T0,
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("kind"), "{err}");
    assert_eq!(s.quotas["q"].used, 3);
}

#[test]
fn idempotency_keys_expire_after_the_retention() {
    let mut log = super::idempotency::IdempotencyLog::default();
    log.remember("a".into(), "f".into(), OpOutcome::Tenant, T0);
    log.expire(T0 + super::idempotency::RETENTION_MS - 1);
    assert!(log.get("a").is_some());
    log.expire(T0 + super::idempotency::RETENTION_MS);
    assert!(log.get("a").is_none());
}
