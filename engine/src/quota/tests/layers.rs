//! The quota model beyond one limit, as data: scopes, stacked windows,
//! credit grants, rollover, preserved overage and shadow mode, and
//! properties over random histories of all of them.
use super::*;
use crate::format::{Added, Since};
use crate::model::quota_rules::limit_policy;
use crate::model::{QuotaRules, ScopeRules, SharedPolicy};
use crate::quota::{GrantChange, NewCreditGrant, ScopedSpend};

fn lim(period: Period, limit: u64) -> SharedPolicy {
    SharedPolicy::new(limit_policy(period, limit, Action::Block))
}

fn with_rules(base: QuotaPolicy, rules: QuotaRules) -> QuotaPolicy {
    QuotaPolicy {
        rules: Added(Some(Box::new(rules))),
        ..base
    }
}

fn scopes(default: Option<u64>, overrides: &[(&str, u64)]) -> ScopeRules {
    let mut o: Vec<(String, SharedPolicy)> = overrides
        .iter()
        .map(|(p, l)| (p.to_string(), lim(Period::Daily, *l)))
        .collect();
    o.sort_by(|a, b| a.0.cmp(&b.0));
    ScopeRules {
        default: default.map(|l| lim(Period::Daily, l)),
        overrides: o,
    }
}

fn scoped(quota: &str, amount: i64, scope: &str) -> TenantOp {
    TenantOp::Spend(Since(Box::new(ScopedSpend {
        quota: quota.into(),
        amount,
        scope: scope.into(),
        idempotency_key: None,
        max_scopes: [1_000_000; 4],
        hold: None,
    })))
}

fn grant(quota: &str, amount: u64, expires_at_ms: Option<i64>, priority: u8) -> TenantOp {
    TenantOp::CreditGrant(Since(Box::new(GrantChange::Add {
        quota: quota.into(),
        grant: NewCreditGrant {
            amount,
            effective_at_ms: None,
            expires_at_ms,
            priority,
            reason: "top-up".into(),
            idempotency_key: None,
        },
    })))
}

fn limiter(d: &Decision) -> (&str, Option<&str>, Option<&str>) {
    let l = d.limited_by.0.as_deref().expect("a level refused");
    (l.level.as_str(), l.scope.as_deref(), l.rule.as_deref())
}

#[test]
fn a_scope_default_and_the_most_specific_override_limit_each_value() {
    let policy = with_rules(
        limited(10, Action::Block),
        QuotaRules {
            scopes: Some(scopes(Some(3), &[("premium_*", 5), ("premium_gold", 7)])),
            ..Default::default()
        },
    );
    let mut s = state_with("q", policy);
    let admitted = |s: &mut TenantState, scope: &str, n: usize| {
        (0..n)
            .filter(|_| decision(s.apply(&scoped("q", 1, scope), T0).unwrap()).allowed)
            .count()
    };
    assert_eq!(admitted(&mut s, "alice", 5), 3, "each end user 3 a day");
    let d = decision(s.apply(&scoped("q", 1, "alice"), T0).unwrap());
    assert_eq!(d.verdict, Verdict::Denied);
    assert_eq!(limiter(&d), ("scope", Some("alice"), Some("default")));
    assert_eq!(admitted(&mut s, "premium_x", 6), 5, "the pattern's 5");
    assert_eq!(s.quotas["q"].used, 8, "a scope's refusals took nothing");
    // The tenant's quota refuses next: 2 left of 10.
    assert_eq!(admitted(&mut s, "bob", 3), 2);
    let d = decision(s.apply(&scoped("q", 1, "carol"), T0).unwrap());
    assert_eq!(limiter(&d).0, "quota");
    let l = s.quotas["q"].layers().unwrap();
    assert!(
        !l.scopes.contains_key("carol"),
        "a refusal at the tenant's level starts no scope meter"
    );
    assert_eq!(l.scopes["bob"].used, 2);
    // A spend without a scope meets the tenant's level only.
    assert!(!decision(s.apply(&inc("q", 1), T0).unwrap()).allowed);
    // Scope meters go when their day ends.
    s.advance(T0 + 2 * 86_400_000);
    assert_eq!(s.quotas["q"].live_scopes(), 0);
}

#[test]
fn the_tiers_cap_on_live_scopes_refuses_a_new_value_only() {
    let policy = with_rules(
        limited(1_000, Action::Block),
        QuotaRules {
            scopes: Some(scopes(Some(100), &[])),
            ..Default::default()
        },
    );
    let mut s = state_with("q", policy);
    let capped = |scope: &str| {
        TenantOp::Spend(Since(Box::new(ScopedSpend {
            max_scopes: [2; 4],
            ..match scoped("q", 1, scope) {
                TenantOp::Spend(Since(b)) => *b,
                _ => unreachable!(),
            }
        })))
    };
    s.apply(&capped("a"), T0).unwrap();
    s.apply(&capped("b"), T0).unwrap();
    let e = s.apply(&capped("c"), T0).unwrap_err();
    assert_eq!(e.code(), crate::error_code::ErrorCode::ResourceExhausted);
    assert!(e.to_string().contains("2 live scope values"), "{e}");
    assert!(decision(s.apply(&capped("a"), T0).unwrap()).allowed);
    assert_eq!(s.quotas["q"].used, 3);
}

#[test]
fn stacked_windows_the_burst_refuses_first_and_the_month_later() {
    let policy = with_rules(
        limited(12, Action::Block),
        QuotaRules {
            windows: vec![lim(Period::Second, 5)],
            ..Default::default()
        },
    );
    let mut s = state_with("q", policy);
    let burst: Vec<Decision> = (0..6)
        .map(|_| decision(s.apply(&inc("q", 1), T0).unwrap()))
        .collect();
    assert!(burst[..5].iter().all(|d| d.allowed));
    let d = &burst[5];
    assert_eq!(d.verdict, Verdict::Denied);
    assert_eq!(limiter(d).0, "window");
    let l = d.limited_by.0.as_deref().unwrap();
    assert_eq!((l.period, l.limit), (Period::Second, Some(5)));
    assert!(d.retry_after_ms.is_some_and(|ms| ms <= 1_000), "{d:?}");
    assert_eq!(s.quotas["q"].used, 5);
    // A second later the burst admits again, until the month's 12.
    let mut at = T0;
    let mut admitted = 5;
    while admitted < 20 {
        at += 1_000;
        let d = decision(s.apply(&inc("q", 5), at).unwrap());
        if !d.allowed {
            assert_eq!(limiter(&d).0, "quota", "{d:?}");
            break;
        }
        admitted += 5;
    }
    assert_eq!(admitted, 10);
    assert!(decision(s.apply(&inc("q", 2), at).unwrap()).allowed);
    assert_eq!(s.quotas["q"].used, 12);
}

#[test]
fn grants_are_drawn_after_the_allowance_then_expire_and_void() {
    let mut s = state_with("q", limited(10, Action::Block));
    let day = 86_400_000;
    s.apply(&grant("q", 5, Some(T0 + day), 1), T0).unwrap();
    s.apply(&grant("q", 100, None, 9), T0).unwrap();
    assert!(decision(s.apply(&inc("q", 10), T0).unwrap()).allowed);
    assert!(decision(s.apply(&inc("q", 3), T0).unwrap()).allowed);
    let l = s.quotas["q"].layers().unwrap();
    assert_eq!(
        (l.grants[0].used, l.grants[1].used, l.from_grants),
        (3, 0, 3),
        "priority 1 before priority 9"
    );
    // The first expires; the second is voided: nothing is left.
    let void = TenantOp::CreditGrant(Since(Box::new(GrantChange::Void {
        quota: "q".into(),
        grant: 2,
    })));
    s.apply(&void, T0 + day).unwrap();
    let d = decision(s.apply(&inc("q", 1), T0 + day).unwrap());
    assert!(!d.allowed);
    let g = &s.quotas["q"].layers().unwrap().grants;
    assert_eq!(
        (g[0].status(T0 + day), g[0].used),
        ("expired", 3),
        "what was drawn stays drawn"
    );
    assert_eq!(g[1].status(T0 + day), "voided");
    let missing = TenantOp::CreditGrant(Since(Box::new(GrantChange::Void {
        quota: "q".into(),
        grant: 9,
    })));
    assert_eq!(
        s.apply(&missing, T0).unwrap_err().code(),
        crate::error_code::ErrorCode::NotFound
    );
}

#[test]
fn rollover_and_preserved_overage_at_a_new_york_month_boundary() {
    let ny = chrono_tz::America::New_York;
    let at = |m, d, h| {
        ny.with_ymd_and_hms(2027, m, d, h, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    let roll = with_rules(
        limited(100, Action::Block),
        QuotaRules {
            rollover: true,
            rollover_max: Some(50),
            ..Default::default()
        },
    );
    let over = with_rules(
        limited(100, Action::AllowOverage),
        QuotaRules {
            preserve_overage: true,
            ..Default::default()
        },
    );
    let mut s = TenantState::new(
        tenant(ny),
        BTreeMap::from([("roll".to_string(), roll), ("over".to_string(), over)]),
    );
    s.apply(&inc("roll", 30), at(1, 15, 12)).unwrap();
    s.apply(&inc("over", 120), at(1, 15, 12)).unwrap();
    // 23:00 on January 31st in New York is already February in UTC.
    s.advance(at(1, 31, 23));
    assert_eq!((s.quotas["roll"].used, s.quotas["over"].used), (30, 120));
    s.advance(at(2, 1, 0));
    let (roll, over) = (&s.quotas["roll"], &s.quotas["over"]);
    assert_eq!(roll.used, 0);
    assert_eq!(roll.allowance(), Some(150), "70 left, at most 50 carried");
    assert_eq!(over.used, 20, "the 20 beyond the limit start February");
    let d = decision(s.apply(&inc("roll", 150), at(2, 2, 0)).unwrap());
    assert!(d.allowed, "{d:?}");
    assert!(!decision(s.apply(&inc("roll", 1), at(2, 2, 0)).unwrap()).allowed);
    // Nothing left in February: March starts with the plain limit.
    s.advance(at(3, 1, 0));
    assert_eq!(s.quotas["roll"].allowance(), Some(100));
}

#[test]
fn shadow_mode_admits_counts_and_reports_the_refusal() {
    let policy = with_rules(
        limited(2, Action::Block),
        QuotaRules {
            shadow: true,
            windows: vec![lim(Period::Second, 100)],
            ..Default::default()
        },
    );
    let mut s = state_with("q", policy);
    for _ in 0..2 {
        assert_eq!(
            decision(s.apply(&inc("q", 1), T0).unwrap()).verdict,
            Verdict::Allowed
        );
    }
    let d = decision(s.apply(&inc("q", 1), T0).unwrap());
    assert_eq!((d.allowed, d.verdict), (true, Verdict::ShadowDenied));
    assert_eq!(limiter(&d).0, "quota");
    assert_eq!(s.quotas["q"].used, 3, "counted as usual");
    // A whole tenant in shadow.
    let mut s = state_with("q", limited(1, Action::Block));
    s.apply(&TenantOp::SetShadow(Since(true)), T0).unwrap();
    s.apply(&inc("q", 1), T0).unwrap();
    assert_eq!(
        decision(s.apply(&inc("q", 1), T0).unwrap()).verdict,
        Verdict::ShadowDenied
    );
    s.apply(&TenantOp::SetShadow(Since(false)), T0).unwrap();
    assert!(!decision(s.apply(&inc("q", 1), T0).unwrap()).allowed);
}

#[test]
fn a_scoped_reservation_holds_every_level_and_gives_back_grants() {
    let policy = with_rules(
        limited(10, Action::Block),
        QuotaRules {
            scopes: Some(scopes(Some(8), &[])),
            ..Default::default()
        },
    );
    let mut s = state_with("q", policy);
    s.apply(&grant("q", 5, None, 0), T0).unwrap();
    s.apply(&inc("q", 9), T0).unwrap();
    let hold = |amount: i64, id: u128| {
        TenantOp::Spend(Since(Box::new(ScopedSpend {
            hold: Some((60_000, Uuid::from_u128(id))),
            ..match scoped("q", amount, "alice") {
                TenantOp::Spend(Since(b)) => *b,
                _ => unreachable!(),
            }
        })))
    };
    // 9 used: a hold of 4 takes 1 of the allowance and 3 of the grant.
    assert!(decision(s.apply(&hold(4, 1), T0).unwrap()).allowed);
    assert_eq!(s.quotas["q"].grant_balance(T0), 2);
    assert!(
        !decision(s.apply(&hold(5, 2), T0).unwrap()).allowed,
        "alice's 8"
    );
    s.apply(
        &TenantOp::Release {
            reservation_id: Uuid::from_u128(1),
        },
        T0,
    )
    .unwrap();
    let q = &s.quotas["q"];
    assert_eq!((q.grant_balance(T0), q.reserved), (5, 0));
    assert_eq!(q.layers().unwrap().scopes["alice"].reserved, 0);
    // Settled: the real cost is charged on every level.
    s.apply(&hold(2, 3), T0).unwrap();
    s.apply(
        &TenantOp::Settle {
            reservation_id: Uuid::from_u128(3),
            actual: 6,
        },
        T0,
    )
    .unwrap();
    let q = &s.quotas["q"];
    assert_eq!((q.used, q.grant_balance(T0)), (15, 0));
    assert_eq!(q.layers().unwrap().scopes["alice"].used, 6);
}

#[test]
fn an_all_or_nothing_refusal_in_a_window_takes_nothing_anywhere() {
    let windowed = with_rules(
        limited(100, Action::Block),
        QuotaRules {
            windows: vec![lim(Period::Daily, 3)],
            ..Default::default()
        },
    );
    let mut s = TenantState::new(
        tenant(chrono_tz::UTC),
        BTreeMap::from([
            ("a".to_string(), limited(100, Action::Block)),
            ("b".to_string(), windowed),
        ]),
    );
    let both = |n| {
        TenantOp::IncrementAll(Since(AllOrNothing {
            spends: vec![
                Spend {
                    quota: "a".into(),
                    amount: n,
                    optional: false,
                    scope: Default::default(),
                },
                Spend {
                    quota: "b".into(),
                    amount: n,
                    optional: false,
                    scope: Default::default(),
                },
            ],
            idempotency_key: None,
            max_scopes: Default::default(),
        }))
    };
    s.apply(&both(2), T0).unwrap();
    let before = s.quotas.clone();
    let OpOutcome::AllDecided(d) = s.apply(&both(2), T0).unwrap().outcome else {
        panic!()
    };
    assert!(!d.0.admitted);
    assert_eq!(s.quotas, before);
}

/// A random step of a history over scopes, windows and grants.
#[derive(Debug, Clone)]
enum Step {
    Spend(u8, u64),
    Hold(u8, u64),
    Settle(usize, u64),
    Release(usize),
    Grant(u64, i64),
    Void(u32),
    Wait(i64),
}

const VALUES: [&str; 4] = ["alice", "bob", "premium_a", "premium_b"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..5, 1u64..12).prop_map(|(s, a)| Step::Spend(s, a)),
        2 => (0u8..5, 1u64..12).prop_map(|(s, a)| Step::Hold(s, a)),
        1 => (0usize..8, 0u64..15).prop_map(|(i, a)| Step::Settle(i, a)),
        1 => (0usize..8).prop_map(Step::Release),
        1 => (1u64..20, 1i64..3 * 86_400_000).prop_map(|(a, e)| Step::Grant(a, e)),
        1 => (1u32..6).prop_map(Step::Void),
        3 => prop_oneof![0i64..2_000, 0i64..2 * 86_400_000].prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Over any history: no level is ever over its limit (the tenant's
    /// allowance plus what grants cover, each window, each scope) except by
    /// what settlements charged beyond their holds; a refusal changes no
    /// quota; a replica applying the logged operations ends byte-identical.
    #[test]
    fn no_level_over_its_limit_refusals_take_nothing_replicas_agree(
        limit in 5u64..60,
        daily in 3u64..40,
        burst in 2u64..20,
        scope_limit in 1u64..15,
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let policy = with_rules(
            QuotaPolicy { period: Period::Monthly, ..limited(limit, Action::Block) },
            QuotaRules {
                windows: vec![lim(Period::Daily, daily), lim(Period::Second, burst)],
                rollover: true,
                scopes: Some(scopes(Some(scope_limit), &[("premium_*", scope_limit * 2)])),
                ..Default::default()
            },
        );
        let mut s = TenantState::new(
            tenant(chrono_tz::America::New_York),
            BTreeMap::from([("q".to_string(), policy)]),
        );
        let mut replica = s.clone();
        let mut now = T0;
        let mut open: Vec<Uuid> = Vec::new();
        let mut charged_beyond = 0u64;
        for (i, st) in steps.iter().enumerate() {
            let scope = |k: &u8| VALUES.get(usize::from(*k)).copied();
            let spend = |k: &u8, amount: u64, hold| match scope(k) {
                Some(v) => TenantOp::Spend(Since(Box::new(ScopedSpend {
                    quota: "q".into(), amount: amount as i64, scope: v.into(),
                    idempotency_key: None, max_scopes: [3; 4], hold,
                }))),
                None => match hold {
                    None => inc("q", amount as i64),
                    Some((ttl_ms, id)) => TenantOp::Reserve {
                        quota: "q".into(), amount, ttl_ms, reservation_id: id,
                        idempotency_key: None,
                    },
                },
            };
            let op = match st {
                Step::Spend(k, a) => spend(k, *a, None),
                Step::Hold(k, a) => spend(k, *a, Some((5_000, Uuid::from_u128(i as u128 + 1)))),
                Step::Settle(j, actual) if !open.is_empty() => {
                    let id = open.remove(j % open.len());
                    if let Some(r) = s.reservations.get(&id) {
                        charged_beyond += actual.saturating_sub(r.amount);
                    }
                    TenantOp::Settle { reservation_id: id, actual: *actual }
                }
                Step::Release(j) if !open.is_empty() => {
                    TenantOp::Release { reservation_id: open.remove(j % open.len()) }
                }
                Step::Grant(a, e) => grant("q", *a, Some(now + e), (*a % 3) as u8),
                Step::Void(g) => TenantOp::CreditGrant(Since(Box::new(GrantChange::Void {
                    quota: "q".into(), grant: *g,
                }))),
                Step::Wait(ms) => { now += ms; continue; }
                _ => continue,
            };
            let mut before = s.clone();
            before.advance(now);
            let applied = s.apply(&op, now);
            match &applied {
                Ok(a) => {
                    if a.changed {
                        let again = replica.apply(&op, now);
                        prop_assert_eq!(again.as_ref(), Ok(a));
                    }
                    let refused = match &a.outcome {
                        OpOutcome::Decision(d) => !d.allowed,
                        OpOutcome::Reserved { decision, reservation_id, .. } => {
                            if let Some(id) = reservation_id { open.push(*id); }
                            !decision.allowed
                        }
                        _ => false,
                    };
                    if refused {
                        prop_assert_eq!(&s.quotas, &before.quotas, "a refusal took something at step {}", i);
                    }
                }
                Err(_) => prop_assert_eq!(&s.quotas, &before.quotas, "an error changed a quota at step {}", i),
            }
            let q = &s.quotas["q"];
            let l = q.layers().cloned().unwrap_or_default();
            // The tenant's level: usage not covered by grants within the allowance.
            prop_assert!(
                (q.used + q.reserved).saturating_sub(l.from_grants) <= limit + l.carry + charged_beyond,
                "tenant level over at step {}: {:?}", i, q
            );
            let rules = q.policy.rules().unwrap();
            for (m, p) in l.windows.iter().zip(&rules.windows) {
                if p.kind == QuotaKind::Counter {
                    prop_assert!(m.used + m.reserved <= p.limit.unwrap() + charged_beyond, "window over at step {}", i);
                }
            }
            for (v, m) in &l.scopes {
                let (_, p) = rules.scopes.as_ref().unwrap().rule_for(v).unwrap();
                prop_assert!(m.used + m.reserved <= p.limit.unwrap() + charged_beyond, "scope {} over at step {}", v, i);
            }
            for g in &l.grants {
                prop_assert!(g.used <= g.amount);
            }
            prop_assert!(l.scopes.len() <= 3, "the cap on live scopes");
        }
        replica.advance(now);
        s.advance(now);
        prop_assert_eq!(&s.quotas, &replica.quotas);
        prop_assert_eq!(&s.reservations, &replica.reservations);
        prop_assert_eq!(&s.alerts, &replica.alerts);
        prop_assert_eq!(
            crate::format::encode(&s).unwrap(),
            crate::format::encode(&replica).unwrap()
        );
    }
}
