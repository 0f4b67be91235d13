//! Quota math as data: scenarios and properties over random histories.
use super::*;
use crate::model::{Action, Period, QuotaKind, QuotaPolicy, Tenant, TenantStatus, Tier};
use chrono::TimeZone;
use proptest::prelude::*;
use std::collections::BTreeMap;
use uuid::Uuid;

const T0: i64 = 1_790_000_000_000; // 2026-09-21

fn tenant(tz: chrono_tz::Tz) -> Tenant {
    Tenant {
        id: Uuid::from_u128(7),
        slug: "acme".into(),
        name: "Acme".into(),
        tier: Tier::Free,
        status: TenantStatus::Active,
        timezone: tz,
        trial_ends_at_ms: None,
        settings_json: "{}".into(),
        created_at_ms: T0,
        updated_at_ms: T0,
        deleted: None,
    }
}

fn state_with(quota: &str, policy: QuotaPolicy) -> TenantState {
    TenantState::new(
        tenant(chrono_tz::UTC),
        BTreeMap::from([(quota.to_string(), policy)]),
    )
}

fn limited(limit: u64, action: Action) -> QuotaPolicy {
    QuotaPolicy {
        action,
        ..QuotaPolicy::counter(Period::Monthly, Some(limit))
    }
}

fn inc(quota: &str, amount: i64) -> TenantOp {
    TenantOp::Increment {
        quota: quota.into(),
        amount,
        idempotency_key: None,
    }
}

fn decision(applied: Applied) -> Decision {
    match applied.outcome {
        OpOutcome::Decision(d) => d,
        OpOutcome::Reserved { decision, .. } => decision,
        other => panic!("not a decision: {other:?}"),
    }
}

fn reserve(s: &mut TenantState, amount: u64, ttl_ms: u64, now: i64) -> (Decision, Option<Uuid>) {
    let id = Uuid::from_u128(now as u128 + amount as u128);
    let applied = s
        .apply(
            &TenantOp::Reserve {
                quota: "q".into(),
                amount,
                ttl_ms,
                reservation_id: id,
                idempotency_key: None,
            },
            now,
        )
        .unwrap();
    match applied.outcome {
        OpOutcome::Reserved {
            decision,
            reservation_id,
            ..
        } => (decision, reservation_id),
        other => panic!("{other:?}"),
    }
}

#[test]
fn block_admits_exactly_up_to_the_limit() {
    let mut s = state_with("q", limited(100, Action::Block));
    let allowed = (0..150)
        .filter(|_| decision(s.apply(&inc("q", 1), T0).unwrap()).allowed)
        .count();
    assert_eq!(allowed, 100);
    let d = decision(s.apply(&inc("q", 1), T0).unwrap());
    assert_eq!(
        (d.verdict, d.usage, d.remaining),
        (Verdict::Denied, 100, Some(0))
    );
}

#[test]
fn a_denial_without_key_needs_no_log_entry() {
    let mut s = state_with("q", limited(1, Action::Block));
    assert!(s.apply(&inc("q", 1), T0).unwrap().changed);
    assert!(!s.apply(&inc("q", 1), T0).unwrap().changed);
}

#[test]
fn reservations_hold_settle_and_expire() {
    let mut s = state_with("q", limited(100, Action::Block));
    let (d, id) = reserve(&mut s, 50, 60_000, T0);
    assert!(d.allowed);
    assert_eq!(d.usage, 50);
    let id = id.unwrap();
    let d = decision(
        s.apply(
            &TenantOp::Settle {
                reservation_id: id,
                actual: 30,
            },
            T0 + 1,
        )
        .unwrap(),
    );
    assert_eq!(d.usage, 30);
    assert!(decision(s.apply(&inc("q", 70), T0 + 2).unwrap()).allowed);
    let d = decision(s.apply(&inc("q", 1), T0 + 3).unwrap());
    assert_eq!((d.allowed, d.usage), (false, 100));

    // An expired reservation gives its amount back.
    let mut s = state_with("q", limited(100, Action::Block));
    let (_, id) = reserve(&mut s, 80, 1_000, T0);
    assert!(!decision(s.apply(&inc("q", 21), T0 + 999).unwrap()).allowed);
    let d = decision(s.apply(&inc("q", 21), T0 + 1_000).unwrap());
    assert!(d.allowed);
    assert_eq!(d.usage, 21);
    let err = s
        .apply(
            &TenantOp::Settle {
                reservation_id: id.unwrap(),
                actual: 1,
            },
            T0 + 1_001,
        )
        .unwrap_err();
    assert!(
        matches!(err, QuotaError::ReservationNotFound { .. }),
        "{err}"
    );
}

#[test]
fn release_returns_the_hold() {
    let mut s = state_with("q", limited(10, Action::Block));
    let (_, id) = reserve(&mut s, 10, 60_000, T0);
    let out = s
        .apply(
            &TenantOp::Release {
                reservation_id: id.unwrap(),
            },
            T0,
        )
        .unwrap();
    assert_eq!(out.outcome, OpOutcome::Released { amount: 10 });
    assert!(decision(s.apply(&inc("q", 10), T0).unwrap()).allowed);
}

#[test]
fn monthly_counter_resets_at_new_york_midnight_on_the_first() {
    let tz = chrono_tz::America::New_York;
    let mut s = TenantState::new(
        tenant(tz),
        BTreeMap::from([("q".to_string(), limited(5, Action::Block))]),
    );
    let midnight = tz
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let d = decision(s.apply(&inc("q", 5), midnight - 1).unwrap());
    assert_eq!(d.reset_at_ms, Some(midnight));
    assert!(!decision(s.apply(&inc("q", 1), midnight - 1).unwrap()).allowed);
    let d = decision(s.apply(&inc("q", 1), midnight).unwrap());
    assert!(d.allowed);
    assert_eq!(d.usage, 1);
}

#[test]
fn idempotent_retry_counts_once_and_replays_the_answer() {
    let mut s = state_with("q", limited(100, Action::Block));
    let op = TenantOp::Increment {
        quota: "q".into(),
        amount: 7,
        idempotency_key: Some("k1".into()),
    };
    let first = decision(s.apply(&op, T0).unwrap());
    let again = s.apply(&op, T0 + 5).unwrap();
    assert!(!again.changed);
    let again = decision(again);
    assert!(again.replayed);
    assert_eq!(again.usage, 7);
    assert_eq!(first.usage, 7);
    assert_eq!(s.quotas["q"].used, 7);
    let other = TenantOp::Increment {
        quota: "q".into(),
        amount: 8,
        idempotency_key: Some("k1".into()),
    };
    assert!(matches!(
        s.apply(&other, T0 + 6),
        Err(QuotaError::IdempotencyKeyReused { .. })
    ));
}

#[test]
fn actions_over_the_limit() {
    for (action, allowed, verdict) in [
        (Action::Block, false, Verdict::Denied),
        (Action::Throttle, false, Verdict::Throttled),
        (Action::Alert, true, Verdict::AllowedOverSoftLimit),
        (Action::AllowOverage, true, Verdict::AllowedOverage),
    ] {
        let mut s = state_with("q", limited(10, action));
        s.apply(&inc("q", 8), T0).unwrap();
        let d = decision(s.apply(&inc("q", 5), T0).unwrap());
        assert_eq!((d.allowed, d.verdict), (allowed, verdict), "{action:?}");
        if action == Action::Throttle {
            assert_eq!(d.retry_after_ms, d.reset_at_ms.map(|r| (r - T0) as u64));
        }
        if action == Action::AllowOverage {
            assert_eq!(s.quotas["q"].overage, 3);
        }
    }
}

#[test]
fn soft_limit_and_thresholds_fire_once_per_period() {
    let mut s = state_with(
        "q",
        QuotaPolicy {
            soft_limit: Some(50),
            ..limited(100, Action::Block)
        },
    );
    let d = decision(s.apply(&inc("q", 85), T0).unwrap());
    assert_eq!(d.verdict, Verdict::AllowedOverSoftLimit);
    assert_eq!(d.thresholds_crossed, vec![80]);
    let d = decision(s.apply(&inc("q", 11), T0).unwrap());
    assert_eq!(d.thresholds_crossed, vec![90, 95]);
    let d = decision(s.apply(&inc("q", 1), T0).unwrap());
    assert!(d.thresholds_crossed.is_empty());
}

#[test]
fn check_changes_nothing() {
    let s = state_with("q", limited(10, Action::Block));
    let before = s.clone();
    let d = s.check("q", 4, T0).unwrap();
    assert!(d.allowed);
    assert_eq!((d.usage, d.remaining), (0, Some(10)));
    assert!(!s.check("q", 11, T0).unwrap().allowed);
    assert_eq!(s, before);
}

#[test]
fn rate_quota_paces_with_gcra() {
    let mut s = state_with("r", QuotaPolicy::rate(Period::Second, Some(10)));
    let allowed = (0..15)
        .filter(|_| decision(s.apply(&inc("r", 1), T0).unwrap()).allowed)
        .count();
    assert_eq!(allowed, 10);
    let d = decision(s.apply(&inc("r", 1), T0).unwrap());
    assert_eq!(
        (d.verdict, d.retry_after_ms),
        (Verdict::Throttled, Some(100))
    );
    // One emission interval later exactly one more fits.
    assert!(decision(s.apply(&inc("r", 1), T0 + 100).unwrap()).allowed);
    assert!(!decision(s.apply(&inc("r", 1), T0 + 100).unwrap()).allowed);
}

#[test]
fn gauges_go_up_and_down_but_not_below_zero() {
    let mut s = state_with("g", QuotaPolicy::gauge(Some(3)));
    for _ in 0..3 {
        assert!(decision(s.apply(&inc("g", 1), T0).unwrap()).allowed);
    }
    assert!(!decision(s.apply(&inc("g", 1), T0).unwrap()).allowed);
    assert_eq!(decision(s.apply(&inc("g", -2), T0).unwrap()).usage, 1);
    let err = s.apply(&inc("g", -2), T0).unwrap_err();
    assert!(
        matches!(err, QuotaError::GaugeUnderflow { level: 1, .. }),
        "{err}"
    );
    assert_eq!(s.quotas["g"].used, 1);
}

#[test]
fn suspended_and_expired_trial_tenants_are_denied() {
    let mut s = state_with("q", limited(10, Action::Block));
    s.tenant.status = TenantStatus::Suspended;
    let d = decision(s.apply(&inc("q", 1), T0).unwrap());
    assert_eq!(
        (d.allowed, d.reason.as_deref()),
        (false, Some("tenant is suspended"))
    );
    s.tenant.status = TenantStatus::Trial;
    s.tenant.trial_ends_at_ms = Some(T0 + 10);
    assert!(decision(s.apply(&inc("q", 1), T0 + 9).unwrap()).allowed);
    assert!(!decision(s.apply(&inc("q", 1), T0 + 10).unwrap()).allowed);
}

#[test]
fn tier_change_keeps_overrides_and_reports_usage_over_new_limits() {
    let cat = TierCatalog::builtin();
    let mut s = TenantState::new(tenant(chrono_tz::UTC), cat.defaults(Tier::Starter).clone());
    s.apply(&inc("api_requests", 50_000), T0).unwrap();
    s.apply(
        &TenantOp::SetQuota {
            quota: "users".into(),
            policy: QuotaPolicy {
                overridden: true,
                ..QuotaPolicy::gauge(Some(99))
            },
        },
        T0,
    )
    .unwrap();
    let out = s
        .apply(
            &TenantOp::ChangeTier {
                tier: Tier::Free,
                defaults: cat.defaults(Tier::Free).clone(),
            },
            T0,
        )
        .unwrap();
    assert_eq!(
        out.outcome,
        OpOutcome::TierChanged {
            over_limit: vec!["api_requests".into()]
        }
    );
    assert_eq!(s.quotas["api_requests"].used, 50_000);
    assert_eq!(s.quotas["api_requests"].policy.limit, Some(10_000));
    assert_eq!(s.quotas["users"].policy.limit, Some(99));
}

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

#[test]
fn members_count_against_users_and_the_last_owner_stays() {
    let cat = TierCatalog::builtin();
    // FREE: 3 users, the owner is the first.
    let mut s = TenantState::create(
        tenant(chrono_tz::UTC),
        cat.defaults(Tier::Free).clone(),
        Some(&crate::model::NewOwner {
            user_id: "alice".into(),
            email: None,
        }),
        T0,
    );
    assert_eq!(s.role_of("alice"), Some(crate::model::Role::Owner));
    assert_eq!(s.quotas["users"].used, 1);
    let add = |u: &str, role| TenantOp::AddMember {
        user_id: u.into(),
        role,
    };
    use crate::model::Role::*;
    s.apply(&add("bob", Admin), T0).unwrap();
    s.apply(&add("carol", Viewer), T0).unwrap();
    let err = s.apply(&add("dave", Member), T0).unwrap_err();
    assert!(matches!(err, QuotaError::QuotaExceeded { .. }), "{err}");
    // Waiting frees nothing: a precondition, not a rate (409, not 429).
    assert_eq!(err.code().as_str(), "FAILED_PRECONDITION");
    assert!(matches!(
        s.apply(&add("bob", Viewer), T0),
        Err(QuotaError::MemberExists { .. })
    ));
    // The only owner can be neither removed nor demoted.
    let err = s
        .apply(
            &TenantOp::RemoveMember {
                user_id: "alice".into(),
            },
            T0,
        )
        .unwrap_err();
    assert!(matches!(err, QuotaError::LastOwner { .. }), "{err}");
    let demote = TenantOp::ChangeRole {
        user_id: "alice".into(),
        role: Admin,
    };
    assert!(matches!(
        s.apply(&demote, T0),
        Err(QuotaError::LastOwner { .. })
    ));
    // With a second owner, she can go.
    s.apply(
        &TenantOp::ChangeRole {
            user_id: "bob".into(),
            role: Owner,
        },
        T0,
    )
    .unwrap();
    s.apply(
        &TenantOp::RemoveMember {
            user_id: "alice".into(),
        },
        T0,
    )
    .unwrap();
    assert_eq!(s.quotas["users"].used, 2);
    s.apply(&add("dave", Member), T0).unwrap();
    assert_eq!(s.members.len(), 3);
    assert!(matches!(
        s.apply(
            &TenantOp::RemoveMember {
                user_id: "zed".into()
            },
            T0
        ),
        Err(QuotaError::MemberNotFound { .. })
    ));
}

#[test]
fn a_deleted_tenant_changes_status_only_by_restore_within_retention() {
    use crate::model::TenantStatus;
    let mut s = state_with("q", limited(10, Action::Block));
    s.apply(
        &TenantOp::Delete {
            retention_ms: 1_000,
        },
        T0,
    )
    .unwrap();
    let reactivate = TenantOp::Update(TenantUpdate {
        status: Some(TenantStatus::Active),
        ..Default::default()
    });
    assert_eq!(
        s.apply(&reactivate, T0 + 1).unwrap_err().field(),
        Some("status")
    );
    assert_eq!(
        s.apply(&TenantOp::Restore, T0 + 1_000).unwrap_err().field(),
        Some("status")
    );
    s.apply(&TenantOp::Restore, T0 + 999).unwrap();
    assert_eq!(s.tenant.status, TenantStatus::Active);
}

fn spend(quota: &str, amount: u64, optional: bool) -> Spend {
    Spend {
        quota: quota.into(),
        amount,
        optional,
    }
}

fn all(spends: Vec<Spend>, key: Option<&str>) -> TenantOp {
    TenantOp::IncrementAll(crate::format::Since(AllOrNothing {
        spends,
        idempotency_key: key.map(str::to_string),
    }))
}

fn decided(applied: Applied) -> AllDecided {
    match applied.outcome {
        OpOutcome::AllDecided(d) => d.0,
        other => panic!("not an all-or-nothing answer: {other:?}"),
    }
}

fn two_quotas(requests: u64, tokens: u64) -> TenantState {
    TenantState::new(
        tenant(chrono_tz::UTC),
        BTreeMap::from([
            ("requests".to_string(), limited(requests, Action::Block)),
            ("tokens".to_string(), limited(tokens, Action::Block)),
        ]),
    )
}

#[test]
fn all_or_nothing_spends_every_part_or_none() {
    let mut s = two_quotas(10, 100);
    let ok = decided(
        s.apply(
            &all(
                vec![
                    spend("requests", 1, false),
                    spend("tokens", 60, false),
                    spend("tokens_model_x", 5, true),
                ],
                None,
            ),
            T0,
        )
        .unwrap(),
    );
    assert!(ok.admitted);
    assert_eq!(
        ok.decisions[2], None,
        "an undefined optional part limits nothing"
    );
    assert_eq!(
        (s.quotas["requests"].used, s.quotas["tokens"].used),
        (1, 60)
    );
    // Tokens would go over: the request part is not spent either.
    let applied = s
        .apply(
            &all(
                vec![spend("requests", 1, false), spend("tokens", 50, false)],
                None,
            ),
            T0,
        )
        .unwrap();
    assert!(
        !applied.changed,
        "a refusal without a key needs no log entry"
    );
    let refused = decided(applied);
    assert!(!refused.admitted);
    let [Some(req), Some(tok)] = &refused.decisions[..] else {
        panic!("{refused:?}")
    };
    assert!(req.allowed && !tok.allowed);
    assert_eq!((req.usage, tok.usage), (1, 60), "usage as it stands");
    assert_eq!(
        (s.quotas["requests"].used, s.quotas["tokens"].used),
        (1, 60)
    );
    // A quota named twice sees its first part.
    let twice = decided(
        s.apply(
            &all(
                vec![spend("tokens", 30, false), spend("tokens", 30, false)],
                None,
            ),
            T0,
        )
        .unwrap(),
    );
    assert!(!twice.admitted);
    assert_eq!(s.quotas["tokens"].used, 60);
    // A required quota missing is an error that changes nothing.
    let e = s
        .apply(
            &all(
                vec![spend("requests", 1, false), spend("nope", 1, false)],
                None,
            ),
            T0,
        )
        .unwrap_err();
    assert!(matches!(e, QuotaError::QuotaNotFound { .. }), "{e:?}");
    assert_eq!(s.quotas["requests"].used, 1);
}

#[test]
fn all_or_nothing_with_a_key_is_decided_once() {
    let mut s = two_quotas(10, 100);
    let op = all(
        vec![spend("requests", 1, false), spend("tokens", 10, false)],
        Some("req-1"),
    );
    let first = decided(s.apply(&op, T0).unwrap());
    let again = s.apply(&op, T0 + 5).unwrap();
    assert!(!again.changed && again.outcome.is_replay());
    let again = decided(again);
    assert!(again.admitted && again.decisions.iter().flatten().all(|d| d.replayed));
    assert!(first.decisions.iter().flatten().all(|d| !d.replayed));
    assert_eq!(
        (s.quotas["requests"].used, s.quotas["tokens"].used),
        (1, 10)
    );
    // The same key for other amounts is a caller bug.
    let other = all(vec![spend("requests", 2, false)], Some("req-1"));
    assert!(matches!(
        s.apply(&other, T0),
        Err(QuotaError::IdempotencyKeyReused { .. })
    ));
}

proptest! {
    /// Whatever the limits and amounts, an all-or-nothing request either
    /// takes every amount or changes no quota at all, and a blocking limit
    /// is never passed.
    #[test]
    fn a_refused_all_or_nothing_consumes_nothing_at_any_level(
        limits in (1u64..100, 1u64..100),
        requests in prop::collection::vec(prop::collection::vec((0usize..2, 1u64..40), 1..4), 1..40),
    ) {
        let mut s = two_quotas(limits.0, limits.1);
        for parts in requests {
            let before = (s.quotas["requests"].used, s.quotas["tokens"].used);
            let spends: Vec<Spend> = parts
                .iter()
                .map(|(q, a)| spend(["requests", "tokens"][*q], *a, false))
                .collect();
            let d = decided(s.apply(&all(spends, None), T0).unwrap());
            let after = (s.quotas["requests"].used, s.quotas["tokens"].used);
            let want = |q: usize| parts.iter().filter(|p| p.0 == q).map(|p| p.1).sum::<u64>();
            if d.admitted {
                prop_assert_eq!(after, (before.0 + want(0), before.1 + want(1)));
            } else {
                prop_assert_eq!(after, before);
            }
            prop_assert!(after.0 <= limits.0 && after.1 <= limits.1);
        }
    }
}
