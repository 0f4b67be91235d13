//! All-or-nothing spends over several quotas.
use super::*;

fn spend(quota: &str, amount: u64, optional: bool) -> Spend {
    Spend {
        quota: quota.into(),
        amount,
        optional,
        scope: Default::default(),
    }
}

fn all(spends: Vec<Spend>, key: Option<&str>) -> TenantOp {
    TenantOp::IncrementAll(crate::format::Since(AllOrNothing {
        spends,
        idempotency_key: key.map(str::to_string),
        max_scopes: Default::default(),
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
        applied.changed,
        "the period's first refusal raises quota.exceeded, which is logged"
    );
    let again = s
        .apply(
            &all(
                vec![spend("requests", 1, false), spend("tokens", 50, false)],
                None,
            ),
            T0,
        )
        .unwrap();
    assert!(
        !again.changed,
        "a refusal without a key needs no log entry after that"
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
