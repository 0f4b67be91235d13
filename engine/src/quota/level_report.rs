//! What a quota's further windows and its live scope values read as at an
//! instant: the levels `layers` decides over, as readers see them. A
//! tenant view leaves the scope meters out (a tenant may have millions);
//! a page of them, top usage first, is read in the tenant's actor.
use super::error::QuotaError;
use super::layer_state::Meter;
use super::quota_state::QuotaState;
use crate::model::{Action, Period, QuotaKind, SharedPolicy, TenantId};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// At most this many scope values per page.
pub const MAX_SCOPES_PAGE: u32 = 1_000;

/// One level's limit and usage now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelUsage {
    pub kind: QuotaKind,
    pub period: Period,
    pub action: Action,
    pub limit: Option<u64>,
    /// Usage including holds; for a rate, the part of its burst in use.
    pub usage: u64,
    pub reserved: u64,
    pub remaining: Option<u64>,
    pub reset_at_ms: Option<i64>,
}

/// One scope value of a quota: the rule it falls under ("default" or the
/// override's pattern; `None`: no rule, the tenant's quota alone limits
/// it) and its level now (`None` without a rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeUsage {
    pub value: String,
    pub rule: Option<String>,
    pub usage: Option<LevelUsage>,
}

/// Which scope values of a quota to read: one named value, or a page of
/// the live ones by usage (highest first, then by value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopesQuery {
    pub quota: String,
    pub value: Option<String>,
    pub offset: u64,
    pub limit: u32,
}

/// A page of scope values, and how many are live in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopesPage {
    pub total: u64,
    pub items: Vec<ScopeUsage>,
}

impl QuotaState {
    /// `policy`'s level over meter `m`, rolled to `now_ms`.
    fn level(policy: &SharedPolicy, m: Meter, tz: Tz, now_ms: i64) -> LevelUsage {
        let mut q = QuotaState::metered(policy, m);
        q.roll(tz, now_ms);
        LevelUsage {
            kind: policy.kind,
            period: policy.period,
            action: policy.action,
            limit: policy.limit,
            usage: q.usage(now_ms),
            reserved: q.reserved,
            remaining: q.remaining(now_ms),
            reset_at_ms: q.reset_at_ms(tz, now_ms),
        }
    }

    /// Each further window, in the policy's order.
    pub fn windows_usage(&self, tz: Tz, now_ms: i64) -> Vec<LevelUsage> {
        let Some(rules) = self.policy.rules() else {
            return Vec::new();
        };
        rules
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let m = self
                    .layers()
                    .and_then(|l| l.windows.get(i).copied())
                    .unwrap_or_default();
                Self::level(w, m, tz, now_ms)
            })
            .collect()
    }

    /// The scope values `query` asks for.
    pub fn scopes_page(
        &self,
        tenant: TenantId,
        query: &ScopesQuery,
        tz: Tz,
        now_ms: i64,
    ) -> Result<ScopesPage, QuotaError> {
        let scopes = self.policy.rules().and_then(|r| r.scopes.as_ref());
        let meters = self.layers().map(|l| &l.scopes);
        if let Some(value) = &query.value {
            super::validate::scope(value)?;
            let rule = scopes.and_then(|s| s.rule_for(value));
            let usage = rule.map(|(_, p)| {
                let m = meters.and_then(|m| m.get(value.as_str()).copied());
                Self::level(p, m.unwrap_or_default(), tz, now_ms)
            });
            let live = usage.as_ref().is_some_and(|u| u.usage > 0);
            return Ok(ScopesPage {
                total: u64::from(live),
                items: vec![ScopeUsage {
                    value: value.clone(),
                    rule: rule.and_then(|(i, _)| scopes.map(|s| s.rule_name(i).to_string())),
                    usage,
                }],
            });
        }
        if query.limit == 0 || query.limit > MAX_SCOPES_PAGE {
            return Err(QuotaError::invalid(
                "limit",
                format!("from 1 to {MAX_SCOPES_PAGE}"),
            ));
        }
        let (Some(scopes), Some(meters)) = (scopes, meters) else {
            let _ = tenant;
            return Ok(ScopesPage {
                total: 0,
                items: Vec::new(),
            });
        };
        // Every live value's level (a swept-late meter whose period ended
        // reads as zero and is not live), then the page by selection: the
        // whole map is not sorted for one page.
        let mut live: Vec<(u64, &str, usize, LevelUsage)> = meters
            .iter()
            .filter_map(|(value, m)| {
                let (i, p) = scopes.rule_for(value)?;
                let u = Self::level(p, *m, tz, now_ms);
                (u.usage > 0).then(|| (u.usage, value.as_str(), i, u))
            })
            .collect();
        let total = live.len() as u64;
        let order = |a: &(u64, &str, usize, LevelUsage), b: &(u64, &str, usize, LevelUsage)| {
            b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
        };
        let start = usize::try_from(query.offset).unwrap_or(usize::MAX);
        if start >= live.len() {
            return Ok(ScopesPage {
                total,
                items: Vec::new(),
            });
        }
        let end = start.saturating_add(query.limit as usize).min(live.len());
        if end < live.len() {
            live.select_nth_unstable_by(end, order);
            live.truncate(end);
        }
        live.sort_unstable_by(order);
        let items = live
            .drain(start..)
            .map(|(_, value, i, u)| ScopeUsage {
                value: value.to_string(),
                rule: Some(scopes.rule_name(i).to_string()),
                usage: Some(u),
            })
            .collect();
        Ok(ScopesPage { total, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QuotaPolicy, QuotaRules, ScopeRules, quota_rules::limit_policy};
    use crate::quota::layer_state::SpendCtx;
    use crate::quota::quota_state::Use;

    fn scoped() -> QuotaState {
        let rule = |l| SharedPolicy::new(limit_policy(Period::Daily, l, Action::Block));
        let mut p = QuotaPolicy::counter(Period::Monthly, Some(1_000));
        p.rules.0 = Some(Box::new(QuotaRules {
            windows: vec![SharedPolicy::new(limit_policy(
                Period::Second,
                50,
                Action::Throttle,
            ))],
            scopes: Some(ScopeRules {
                default: Some(rule(10)),
                overrides: vec![("vip_*".into(), rule(100))],
            }),
            ..Default::default()
        }));
        QuotaState::new(p)
    }

    #[test]
    fn pages_go_by_usage_then_value_and_count_only_live_values() {
        let tz = chrono_tz::UTC;
        let now = 1_700_000_000_000;
        let tenant = TenantId::from_u128(1);
        let mut q = scoped();
        q.roll(tz, now);
        for (value, n) in [("a", 3), ("b", 7), ("vip_1", 7), ("c", 1)] {
            let ctx = SpendCtx {
                scope: Some(value),
                ..SpendCtx::plain(tenant, tz, now)
            };
            let (d, _) = q.spend(&ctx, n, Use::Consume).unwrap();
            assert!(d.allowed, "{value}");
        }
        let page = |offset, limit| {
            let query = ScopesQuery {
                quota: "q".into(),
                value: None,
                offset,
                limit,
            };
            q.scopes_page(tenant, &query, tz, now).unwrap()
        };
        let first = page(0, 2);
        assert_eq!(q.used, 18);
        assert_eq!(first.total, 4);
        let names: Vec<_> = first.items.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(names, ["b", "vip_1"]);
        assert_eq!(first.items[1].rule.as_deref(), Some("vip_*"));
        assert_eq!(first.items[1].usage.as_ref().unwrap().remaining, Some(93));
        let rest: Vec<_> = page(2, 10).items.into_iter().map(|s| s.value).collect();
        assert_eq!(rest, ["a", "c"]);
        assert!(page(9, 10).items.is_empty());
        // The next day every value reads as fresh: none is live.
        assert_eq!(page(0, 10).total, 4);
        let later = ScopesQuery {
            quota: "q".into(),
            value: None,
            offset: 0,
            limit: 10,
        };
        let next_day = q.scopes_page(tenant, &later, tz, now + 86_400_000).unwrap();
        assert_eq!(next_day.total, 0);
        // The per-second window holds the 18 units of that instant.
        let w = q.windows_usage(tz, now);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].kind, w[0].limit, w[0].usage),
            (QuotaKind::Rate, Some(50), 18)
        );
    }

    #[test]
    fn a_named_value_reads_fresh_with_its_rule_or_without_one() {
        let tz = chrono_tz::UTC;
        let q = scoped();
        let one = |v: &str| ScopesQuery {
            quota: "q".into(),
            value: Some(v.into()),
            offset: 0,
            limit: 1,
        };
        let tenant = TenantId::from_u128(1);
        let p = q.scopes_page(tenant, &one("vip_9"), tz, 0).unwrap();
        assert_eq!(p.total, 0);
        assert_eq!(p.items[0].rule.as_deref(), Some("vip_*"));
        assert_eq!(p.items[0].usage.as_ref().unwrap().remaining, Some(100));
        let bad = q.scopes_page(tenant, &one("has space"), tz, 0).unwrap_err();
        assert_eq!(bad.field(), Some("scope"));
        let page = ScopesQuery {
            limit: 0,
            ..one("x")
        };
        let none = ScopesQuery {
            value: None,
            ..page
        };
        assert_eq!(
            q.scopes_page(tenant, &none, tz, 0).unwrap_err().field(),
            Some("limit")
        );
    }
}
