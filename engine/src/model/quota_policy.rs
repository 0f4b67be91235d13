use serde::{Deserialize, Serialize};

/// Well-known quota names; tenants may define others (e.g. `llm_tokens`).
pub mod well_known {
    pub const API_REQUESTS: &str = "api_requests";
    pub const STORAGE: &str = "storage";
    pub const COMPUTE_HOURS: &str = "compute_hours";
    pub const GPU_HOURS: &str = "gpu_hours";
    pub const USERS: &str = "users";
    pub const SERVICES: &str = "services";
}

/// How a quota's usage evolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// Usage accumulates and resets at calendar period boundaries.
    Counter,
    /// Requests per second or minute, enforced with GCRA (burst = limit).
    Rate,
    /// A current level (bytes stored, users, services) that goes up and down.
    Gauge,
}

/// The period of a counter (calendar-aligned in the tenant's timezone) or the
/// window of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Hourly,
    Daily,
    Monthly,
    /// Never resets (lifetime counters, gauges).
    Never,
    /// Rate window of one second.
    Second,
    /// Rate window of one minute.
    Minute,
}

/// What happens when an amount does not fit under the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deny.
    Block,
    /// Deny with a retry-after: the caller is paced to the limit's rate.
    Throttle,
    /// Allow, and raise an alert: the limit acts as a soft limit.
    Alert,
    /// Allow, and record the excess as overage for billing.
    AllowOverage,
}

/// One quota of a tenant.
/// Alert thresholds, in percent of the limit. At most 8 are allowed, and
/// they are kept inline: a heap allocation for three bytes cost every
/// quota of every tenant 32 bytes. Serialized as a list, like a `Vec`.
pub type Thresholds = smallvec::SmallVec<[u8; 8]>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuotaPolicy {
    pub kind: QuotaKind,
    pub period: Period,
    /// `None` is unlimited.
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub soft_limit: Option<u64>,
    pub action: Action,
    /// Percentages of `limit` at which an alert fires once per period.
    #[serde(default = "default_thresholds")]
    pub alert_thresholds: Thresholds,
    /// Set by an explicit quota update; a tier change keeps overridden quotas.
    #[serde(default)]
    pub overridden: bool,
    /// Further windows, scope rules, rollover, preserved overage, shadow
    /// mode (format 19; `None` for a plain quota).
    #[serde(default)]
    pub rules: crate::format::Added<19, Option<Box<QuotaRules>>>,
}

impl QuotaPolicy {
    pub const DEFAULT_THRESHOLDS: [u8; 3] = [80, 90, 95];

    /// Its rules beyond the one limit, if any.
    pub fn rules(&self) -> Option<&QuotaRules> {
        self.rules.0.as_deref()
    }

    /// Whether its decisions are reported but never refuse.
    pub fn shadow(&self) -> bool {
        self.rules().is_some_and(|r| r.shadow)
    }

    pub fn counter(period: Period, limit: Option<u64>) -> Self {
        Self {
            kind: QuotaKind::Counter,
            period,
            limit,
            soft_limit: None,
            action: Action::Block,
            alert_thresholds: default_thresholds(),
            overridden: false,
            rules: Default::default(),
        }
    }

    pub fn gauge(limit: Option<u64>) -> Self {
        Self {
            kind: QuotaKind::Gauge,
            period: Period::Never,
            ..Self::counter(Period::Never, limit)
        }
    }

    pub fn rate(period: Period, limit: Option<u64>) -> Self {
        Self {
            kind: QuotaKind::Rate,
            period,
            action: Action::Throttle,
            ..Self::counter(period, limit)
        }
    }
}

fn default_thresholds() -> Thresholds {
    Thresholds::from_slice(&QuotaPolicy::DEFAULT_THRESHOLDS)
}

/// A quota policy behind a shared pointer (see `shared_policy`). Here with
/// the policy it holds and the rules that hold it in turn.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedPolicy(pub(super) std::sync::Arc<QuotaPolicy>);

/// What a quota may carry beyond its one limit (format 19; see
/// `quota_rules` for how they are read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuotaRules {
    /// Further windows, each a counter or a rate policy with a limit; the
    /// quota's own action applies to them. A spend must fit every one.
    pub windows: Vec<SharedPolicy>,
    /// Unused allowance carried into the next period (counters).
    pub rollover: bool,
    /// At most this much is carried (`None`: one period's limit).
    pub rollover_max: Option<u64>,
    /// Usage beyond the limit (not covered by grants) is carried into the
    /// next period's usage instead of forgotten at the reset.
    pub preserve_overage: bool,
    /// Decide and report, but admit: refusals become `shadow_denied`.
    pub shadow: bool,
    /// Limits for each value of a scope named in a request.
    pub scopes: Option<ScopeRules>,
}

/// A limit for every scope value (`default`), and for named values and
/// wildcard patterns (`overrides`, each value at most one `*`). A value's
/// rule: its exact override, else the matching pattern with the most
/// literal characters (ties: the first in byte order), else the default.
/// A value without a rule is limited by the tenant's quota only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScopeRules {
    pub default: Option<SharedPolicy>,
    /// Sorted by pattern, each pattern once.
    pub overrides: Vec<(String, SharedPolicy)>,
}
