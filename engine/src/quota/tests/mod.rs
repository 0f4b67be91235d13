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
fn a_denial_without_key_needs_no_log_entry_beyond_the_periods_first() {
    let mut s = state_with("q", limited(1, Action::Block));
    assert!(s.apply(&inc("q", 1), T0).unwrap().changed);
    // The period's first refusal raises quota.exceeded, a replicated
    // alert: it is logged. The refusals after it change nothing.
    assert!(s.apply(&inc("q", 1), T0).unwrap().changed);
    assert_eq!(
        s.alerts.recent.back().unwrap().kind.as_str(),
        "quota.exceeded"
    );
    for _ in 0..3 {
        assert!(!s.apply(&inc("q", 1), T0).unwrap().changed);
    }
    assert_eq!(
        s.alerts.raised, 4,
        "80, 90 and 95% crossed at once, then exceeded once"
    );
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
    let d = s.check("q", 4, None, T0).unwrap();
    assert!(d.allowed);
    assert_eq!((d.usage, d.remaining), (0, Some(10)));
    assert!(!s.check("q", 11, None, T0).unwrap().allowed);
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

/// A tenant admin's quota change is held to the tier the tenant is on when
/// the change applies, not when it was asked: no tier change can slip in
/// between a check and the write.
#[test]
fn a_quota_patch_is_held_to_the_tier_at_apply_time() {
    let cat = TierCatalog::builtin();
    let mut s = TenantState::new(tenant(chrono_tz::UTC), cat.defaults(Tier::Free).clone());
    let free = cat.defaults(Tier::Free)["api_requests"].limit.unwrap();
    let starter = cat.defaults(Tier::Starter)["api_requests"].limit.unwrap();
    assert!(starter > free);
    let patch = TenantOp::PatchQuota(crate::format::Since(Box::new(QuotaPatch {
        quota: "api_requests".into(),
        patch: PolicyPatch {
            limit: Some(starter),
            soft_limit: None,
            period: None,
            action: None,
            kind: None,
            alert_thresholds: None,
            by_operator: false,
            tier_policies: Tier::ALL
                .iter()
                .filter_map(|t| Some((*t, cat.defaults(*t).get("api_requests")?.clone())))
                .collect(),
            rules: Default::default(),
        },
    })));
    // Only time moves (what `advance` does at any apply).
    let mut before = s.clone();
    before.advance(T0);
    let e = s.apply(&patch, T0).unwrap_err();
    assert_eq!(e.code(), crate::error_code::ErrorCode::PermissionDenied);
    assert_eq!(s, before, "a refused patch changes nothing");
    s.apply(
        &TenantOp::ChangeTier {
            tier: Tier::Starter,
            defaults: cat.defaults(Tier::Starter).clone(),
        },
        T0 + 1,
    )
    .unwrap();
    s.apply(&patch, T0 + 2).unwrap();
    assert_eq!(s.quotas["api_requests"].policy.limit, Some(starter));
    assert!(!s.quotas["api_requests"].policy.overridden);
}

#[test]
fn a_read_view_leaves_out_only_the_idempotency_log() {
    let mut s = state_with("q", limited(1_000, Action::Block));
    for i in 0..100 {
        let op = TenantOp::Increment {
            quota: "q".into(),
            amount: 1,
            idempotency_key: Some(format!("k{i}")),
        };
        s.apply(&op, T0 + i).unwrap();
    }
    reserve(&mut s, 5, 60_000, T0 + 200);
    assert_eq!(s.idempotency.len(), 100);
    let view = s.view(T0 + 300);
    assert_eq!(view.idempotency.len(), 0);
    let mut full = s.clone();
    full.advance(T0 + 300);
    full.idempotency = view.idempotency.clone();
    assert_eq!(
        view, full,
        "everything else as the state has it, as of then"
    );
}

mod all_or_nothing;
mod histories;
mod layers;
mod tenants;

fn alerts_op(a: AlertOp) -> TenantOp {
    TenantOp::Alerts(crate::format::Since(Box::new(a)))
}

#[test]
fn trial_alerts_come_at_local_milestones_once_each_and_at_the_end() {
    let ny = chrono_tz::America::New_York;
    let at = |d, h| {
        ny.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    let mut t = tenant(ny);
    t.status = TenantStatus::Trial;
    t.trial_ends_at_ms = Some(at(20, 15));
    let mut s = TenantState::new(t, BTreeMap::new());
    let tick = |s: &mut TenantState, now| s.apply(&alerts_op(AlertOp::Tick), now).unwrap().changed;
    assert!(!s.tick_due(at(12, 23)));
    assert!(!tick(&mut s, at(12, 23)), "before the 7-day milestone");
    assert!(s.tick_due(at(13, 0)));
    assert!(tick(&mut s, at(13, 0)));
    assert!(!tick(&mut s, at(14, 0)), "once");
    assert!(!s.tick_due(at(14, 0)));
    assert!(tick(&mut s, at(17, 1)));
    assert!(tick(&mut s, at(19, 9)));
    assert!(tick(&mut s, at(20, 15)));
    assert!(!tick(&mut s, at(21, 0)));
    let raised: Vec<String> = s
        .alerts
        .recent
        .iter()
        .map(|a| {
            let d: serde_json::Value = serde_json::from_str(&a.data).unwrap();
            format!("{}:{}", a.kind.as_str(), d["daysLeft"])
        })
        .collect();
    assert_eq!(
        raised,
        [
            "tenant.trial_expiring:7",
            "tenant.trial_expiring:3",
            "tenant.trial_expiring:1",
            "tenant.trial_expired:null"
        ]
    );
}

#[test]
fn a_failed_payment_is_suspended_after_its_grace_and_a_payment_reactivates() {
    let mut s = state_with("q", limited(10, Action::Block));
    let billing = |succeeded| {
        alerts_op(AlertOp::Billing {
            succeeded,
            grace_ms: 1_000,
            suspend: true,
            data: "{\"invoiceId\":\"in_1\"}".into(),
        })
    };
    s.apply(&billing(false), T0).unwrap();
    s.apply(&billing(false), T0 + 10).unwrap();
    let b = s.alerts.billing.clone().unwrap();
    assert_eq!(
        (b.failures, b.grace_until_ms),
        (2, T0 + 1_000),
        "the grace runs from the first"
    );
    assert!(!s.billing_suspension_due(T0 + 999));
    assert!(
        !s.apply(&alerts_op(AlertOp::BillingSuspend), T0 + 999)
            .unwrap()
            .changed
    );
    assert!(s.billing_suspension_due(T0 + 1_000));
    assert!(
        s.apply(&alerts_op(AlertOp::BillingSuspend), T0 + 1_000)
            .unwrap()
            .changed
    );
    assert_eq!(s.tenant.status, TenantStatus::Suspended);
    assert!(!s.billing_suspension_due(T0 + 2_000), "once");
    s.apply(&billing(true), T0 + 3_000).unwrap();
    assert_eq!(s.tenant.status, TenantStatus::Active);
    assert!(s.alerts.billing.is_none());
    let kinds: Vec<&str> = s.alerts.recent.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "billing.payment_failed",
            "billing.payment_failed",
            "billing.payment_failed",
            "billing.payment_succeeded"
        ]
    );
}

#[test]
fn raised_alerts_fire_once_per_window_of_their_key() {
    let mut s = state_with("q", limited(10, Action::Block));
    let raise = |window| {
        alerts_op(AlertOp::Raise {
            kind: crate::alerts::AlertType::UsageAnomaly,
            key: "q".into(),
            window,
            data: "{}".into(),
        })
    };
    assert!(s.apply(&raise(0), T0).unwrap().changed);
    assert!(!s.apply(&raise(0), T0 + 1).unwrap().changed);
    assert!(s.apply(&raise(6), T0 + 2).unwrap().changed);
    assert_eq!(s.alerts.raised, 2);
}
