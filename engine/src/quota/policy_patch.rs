//! A change to one quota's policy as a caller asks for it: the fields it
//! names, the rest from the quota's current policy or from what its kind
//! implies. It is resolved where it is applied, inside the replicated
//! apply, against the tenant's tier as it is at that moment: a tier change
//! cannot slip in between a check and the write, and every API that sets
//! a quota shares the one rule.
use super::error::QuotaError;
use super::validate;
use crate::format::Added;
use crate::model::{
    Action, Period, QuotaKind, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy, Tier, well_known,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPatch {
    /// `None` is unlimited (a patch always names its limit).
    pub limit: Option<u64>,
    /// `Some(None)` removes the soft limit; `None` keeps the current one.
    pub soft_limit: Option<Option<u64>>,
    pub period: Option<Period>,
    pub action: Option<Action>,
    pub kind: Option<QuotaKind>,
    pub alert_thresholds: Option<Vec<u8>>,
    /// Asked by a platform operator: it may go beyond the tier, and it
    /// survives tier changes. A tenant admin's follows the tier.
    pub by_operator: bool,
    /// This quota's policy on each tier whose catalog has it, as the
    /// deciding node's catalog says: the ceiling for a tenant admin on
    /// whichever tier the tenant is when the patch applies.
    pub tier_policies: BTreeMap<Tier, QuotaPolicy>,
    /// Changes to the rules beyond the one limit (format 19); `None`
    /// keeps them.
    #[serde(default)]
    pub rules: Added<19, Option<Box<RulesPatch>>>,
}

/// The rules fields a caller named; `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesPatch {
    pub windows: Option<Vec<SharedPolicy>>,
    pub rollover: Option<bool>,
    /// `Some(None)`: carry at most one period's limit.
    pub rollover_max: Option<Option<u64>>,
    pub preserve_overage: Option<bool>,
    pub shadow: Option<bool>,
    /// `Some(None)` removes the scope rules.
    pub scopes: Option<Option<ScopeRules>>,
}

impl RulesPatch {
    fn apply(&self, mut rules: QuotaRules) -> QuotaRules {
        if let Some(w) = &self.windows {
            rules.windows = w.clone();
        }
        if let Some(r) = self.rollover {
            rules.rollover = r;
        }
        if let Some(m) = self.rollover_max {
            rules.rollover_max = m;
        }
        if let Some(p) = self.preserve_overage {
            rules.preserve_overage = p;
        }
        if let Some(s) = self.shadow {
            rules.shadow = s;
        }
        if let Some(s) = &self.scopes {
            rules.scopes = s.clone();
        }
        rules
    }
}

impl PolicyPatch {
    /// The policy of quota `name` after the patch, given its current policy
    /// (if the quota exists) and the tenant's tier. Pure.
    pub fn resolve(
        &self,
        name: &str,
        existing: Option<&QuotaPolicy>,
        tier: Tier,
    ) -> Result<QuotaPolicy, QuotaError> {
        let kind = self.kind.unwrap_or_else(|| match (self.period, existing) {
            (Some(Period::Second | Period::Minute), _) => QuotaKind::Rate,
            (_, Some(p)) => p.kind,
            (Some(_), None) => QuotaKind::Counter,
            (None, None)
                if [well_known::STORAGE, well_known::USERS, well_known::SERVICES]
                    .contains(&name) =>
            {
                QuotaKind::Gauge
            }
            (None, None) => QuotaKind::Counter,
        });
        // Fields not named are kept only from a policy of the same kind.
        let same_kind = existing.filter(|p| p.kind == kind);
        let period = match (self.period, same_kind, kind) {
            (Some(p), _, _) => p,
            (None, Some(p), _) => p.period,
            (None, None, QuotaKind::Counter) => Period::Monthly,
            (None, None, QuotaKind::Gauge) => Period::Never,
            (None, None, QuotaKind::Rate) => {
                return Err(QuotaError::invalid(
                    "period",
                    "a rate needs period second or minute",
                ));
            }
        };
        let action = self
            .action
            .or(same_kind.map(|p| p.action))
            .unwrap_or(match kind {
                QuotaKind::Rate => Action::Throttle,
                _ => Action::Block,
            });
        let mut thresholds = self
            .alert_thresholds
            .clone()
            .or(existing.map(|p| p.alert_thresholds.to_vec()))
            .unwrap_or_else(|| QuotaPolicy::DEFAULT_THRESHOLDS.to_vec());
        thresholds.sort_unstable();
        thresholds.dedup();
        let policy = QuotaPolicy {
            kind,
            period,
            limit: self.limit,
            soft_limit: match self.soft_limit {
                Some(explicit) => explicit,
                None => same_kind.and_then(|p| p.soft_limit),
            },
            action,
            alert_thresholds: thresholds.into(),
            overridden: self.by_operator,
            rules: Added::default(),
        };
        let kept = same_kind
            .and_then(|p| p.rules())
            .cloned()
            .unwrap_or_default();
        let rules = match self.rules.0.as_deref() {
            Some(patch) => patch.apply(kept.clone()),
            None => kept.clone(),
        };
        let mut policy = policy;
        policy.rules.0 = (!rules.is_plain()).then(|| Box::new(rules.clone()));
        if !self.by_operator {
            within_tier(name, &policy, tier, self.tier_policies.get(&tier))?;
            if self.tier_policies.contains_key(&tier)
                && (rules.rollover, rules.rollover_max, rules.shadow)
                    != (kept.rollover, kept.rollover_max, kept.shadow)
            {
                return Err(QuotaError::BeyondTier {
                    reason: format!(
                        "{name} is a quota of the {tier} tier: only a platform operator may change its rollover or shadow mode, which let usage past the tier's limit"
                    ),
                });
            }
        }
        validate::policy(&policy)?;
        Ok(policy)
    }
}

/// Tenant admins may shape their quotas but not buy more than their tier
/// grants: a tier quota keeps the tier's kind, period and action, and a
/// limit at or below the tier's.
fn within_tier(
    name: &str,
    policy: &QuotaPolicy,
    tier: Tier,
    ceiling: Option<&QuotaPolicy>,
) -> Result<(), QuotaError> {
    let Some(t) = ceiling else { return Ok(()) };
    let beyond_limit = t.limit.is_some_and(|t| policy.limit.is_none_or(|l| l > t));
    if !beyond_limit
        && policy.kind == t.kind
        && policy.period == t.period
        && policy.action == t.action
    {
        return Ok(());
    }
    let lower = |v: String| v.to_lowercase();
    Err(QuotaError::BeyondTier {
        reason: format!(
            "on the {tier} tier, {name} stays a {} {} quota with action {} and a limit of at most {}; only a platform operator may set more",
            lower(format!("{:?}", t.period)),
            lower(format!("{:?}", t.kind)),
            lower(format!("{:?}", t.action)),
            t.limit.map_or("unlimited".to_string(), |l| l.to_string()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(limit: Option<u64>) -> PolicyPatch {
        PolicyPatch {
            limit,
            soft_limit: None,
            period: None,
            action: None,
            kind: None,
            alert_thresholds: None,
            by_operator: false,
            rules: Added::default(),
            tier_policies: BTreeMap::from([
                (
                    Tier::Free,
                    QuotaPolicy::counter(Period::Monthly, Some(1_000)),
                ),
                (
                    Tier::Starter,
                    QuotaPolicy::counter(Period::Monthly, Some(10_000)),
                ),
            ]),
        }
    }

    #[test]
    fn the_ceiling_is_the_tier_the_tenant_is_on_when_it_applies() {
        let p = patch(Some(5_000));
        let existing = QuotaPolicy::counter(Period::Monthly, Some(1_000));
        let e = p
            .resolve("api_requests", Some(&existing), Tier::Free)
            .unwrap_err();
        assert_eq!(e.code(), crate::error_code::ErrorCode::PermissionDenied);
        assert!(e.to_string().contains("at most 1000"), "{e}");
        let ok = p
            .resolve("api_requests", Some(&existing), Tier::Starter)
            .unwrap();
        assert_eq!(ok.limit, Some(5_000));
        assert!(!ok.overridden);
        // An operator may go beyond, and the setting then survives tiers.
        let op = PolicyPatch {
            by_operator: true,
            ..patch(None)
        };
        let set = op
            .resolve("api_requests", Some(&existing), Tier::Free)
            .unwrap();
        assert_eq!((set.limit, set.overridden), (None, true));
    }

    #[test]
    fn unnamed_fields_come_from_the_same_kind_or_the_kinds_defaults() {
        // A quota the tier catalog does not have: no ceiling.
        let patch = |limit| PolicyPatch {
            tier_policies: BTreeMap::new(),
            ..patch(limit)
        };
        let existing = QuotaPolicy {
            soft_limit: Some(50),
            ..QuotaPolicy::counter(Period::Daily, Some(100))
        };
        let kept = patch(Some(80))
            .resolve("custom", Some(&existing), Tier::Free)
            .unwrap();
        assert_eq!((kept.period, kept.soft_limit), (Period::Daily, Some(50)));
        let rate = PolicyPatch {
            period: Some(Period::Second),
            ..patch(Some(10))
        };
        let r = rate.resolve("custom", Some(&existing), Tier::Free).unwrap();
        assert_eq!(
            (r.kind, r.action, r.soft_limit),
            (QuotaKind::Rate, Action::Throttle, None)
        );
        let gauge = patch(Some(5)).resolve(well_known::USERS, None, Tier::Enterprise);
        assert_eq!(gauge.unwrap().kind, QuotaKind::Gauge);
        let bad = PolicyPatch {
            kind: Some(QuotaKind::Rate),
            ..patch(Some(5))
        };
        assert_eq!(
            bad.resolve("custom", None, Tier::Free).unwrap_err().field(),
            Some("period")
        );
    }
}
