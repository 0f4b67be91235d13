//! Rules a quota may carry beyond one limit (format 19; the types are in
//! `quota_policy`, which they nest in): further windows
//! every spend must also fit, scope rules (a limit for each end user, API
//! key, project or model inside the tenant's quota), rollover and preserved
//! overage at the period's end, and shadow mode. Plain data; the decisions
//! are `quota::layers`.
use super::{Action, Period, QuotaKind, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy};

/// At most this many further windows on one quota.
pub const MAX_WINDOWS: usize = 4;
/// At most this many named scope overrides (values and patterns).
pub const MAX_SCOPE_OVERRIDES: usize = 256;
/// Scope values and patterns: at most this many bytes.
pub const MAX_SCOPE_LEN: usize = 128;

impl QuotaRules {
    /// Whether these rules change nothing (a plain quota).
    pub fn is_plain(&self) -> bool {
        *self == QuotaRules::default()
    }
}

impl ScopeRules {
    /// The rule for scope value `value`: its index (0: default, i + 1:
    /// `overrides[i]`) and policy.
    pub fn rule_for(&self, value: &str) -> Option<(usize, &SharedPolicy)> {
        if let Ok(i) = self
            .overrides
            .binary_search_by(|(p, _)| p.as_str().cmp(value))
        {
            return Some((i + 1, &self.overrides[i].1));
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, (pattern, _)) in self.overrides.iter().enumerate() {
            if let Some((prefix, suffix)) = pattern.split_once('*')
                && value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
            {
                let literal = prefix.len() + suffix.len();
                if best.is_none_or(|(_, l)| literal > l) {
                    best = Some((i, literal));
                }
            }
        }
        match best {
            Some((i, _)) => Some((i + 1, &self.overrides[i].1)),
            None => self.default.as_ref().map(|p| (0, p)),
        }
    }

    /// The pattern of rule `index` as `rule_for` numbers them.
    pub fn rule_name(&self, index: usize) -> &str {
        match index {
            0 => "default",
            i => self.overrides.get(i - 1).map_or("default", |(p, _)| p),
        }
    }
}

/// A window or scope limit as a policy: `limit` per `period`, a rate for
/// second and minute, a counter otherwise.
pub fn limit_policy(period: Period, limit: u64, action: Action) -> QuotaPolicy {
    let kind = match period {
        Period::Second | Period::Minute => QuotaKind::Rate,
        _ => QuotaKind::Counter,
    };
    QuotaPolicy {
        kind,
        period,
        limit: Some(limit),
        soft_limit: None,
        action,
        alert_thresholds: Default::default(),
        overridden: false,
        rules: Default::default(),
    }
}

/// Scope values as requests name them: 1-128 bytes of letters, digits and
/// `. _ - : @ / +`. Patterns may add one `*`.
pub fn scope_value_ok(value: &str, pattern: bool) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SCOPE_LEN
        && value.bytes().filter(|b| *b == b'*').count() <= usize::from(pattern)
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b'-' | b':' | b'@' | b'/' | b'+')
                || (pattern && b == b'*')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(overrides: &[&str]) -> ScopeRules {
        let p = |l| SharedPolicy::new(limit_policy(Period::Daily, l, Action::Block));
        ScopeRules {
            default: Some(p(100)),
            overrides: {
                let mut v: Vec<(String, SharedPolicy)> = overrides
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (o.to_string(), p(1000 + i as u64)))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            },
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let r = rules(&["premium_*", "premium_gold_*", "premium_gold_7", "*_test"]);
        let limit = |v: &str| r.rule_for(v).map(|(_, p)| p.limit.unwrap());
        assert_eq!(limit("premium_gold_7"), Some(1002));
        assert_eq!(limit("premium_gold_8"), Some(1001));
        assert_eq!(limit("premium_x"), Some(1000));
        assert_eq!(limit("premium_test"), Some(1000), "8 literal bytes beat 5");
        assert_eq!(limit("x_test"), Some(1003));
        assert_eq!(limit("alice"), Some(100));
        let (i, _) = r.rule_for("premium_x").unwrap();
        assert_eq!(r.rule_name(i), "premium_*");
        assert_eq!(r.rule_name(r.rule_for("alice").unwrap().0), "default");
        let none = ScopeRules {
            default: None,
            ..rules(&["vip"])
        };
        assert!(none.rule_for("alice").is_none());
    }

    #[test]
    fn scope_values_are_plain_and_patterns_have_one_star() {
        assert!(scope_value_ok("user:42@acme.test", false));
        assert!(!scope_value_ok("premium_*", false));
        assert!(scope_value_ok("premium_*", true));
        assert!(!scope_value_ok("a*b*", true));
        assert!(!scope_value_ok("", false));
        assert!(!scope_value_ok("has space", false));
        assert!(!scope_value_ok(&"x".repeat(129), false));
    }
}
