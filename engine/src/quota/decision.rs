use crate::format::Added;
use crate::model::{Period, QuotaKind};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Verdict {
    Allowed,
    Denied,
    Throttled,
    AllowedOverSoftLimit,
    AllowedOverage,
    /// Refused by some level, admitted because the quota (or the tenant)
    /// is in shadow mode (format 19).
    ShadowDenied,
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if *self == Verdict::ShadowDenied
            && !s.is_human_readable()
            && crate::format::encoding_version() < 19
        {
            crate::format::needs_newer_version();
            return Err(serde::ser::Error::custom(
                "verdict shadow_denied needs format version 19",
            ));
        }
        let (index, name) = match self {
            Verdict::Allowed => (0, "Allowed"),
            Verdict::Denied => (1, "Denied"),
            Verdict::Throttled => (2, "Throttled"),
            Verdict::AllowedOverSoftLimit => (3, "AllowedOverSoftLimit"),
            Verdict::AllowedOverage => (4, "AllowedOverage"),
            Verdict::ShadowDenied => (5, "ShadowDenied"),
        };
        s.serialize_unit_variant("Verdict", index, name)
    }
}

/// The level of a decision that refused (or, in shadow mode, would have):
/// the quota's own window, one of its further windows, or the scope named
/// in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limiter {
    /// "quota", "window" or "scope".
    pub level: String,
    /// The scope value, for a scope.
    pub scope: Option<String>,
    /// The scope rule that applied: "default" or the override's pattern.
    pub rule: Option<String>,
    pub kind: QuotaKind,
    pub period: Period,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at_ms: Option<i64>,
    /// What that level said.
    pub verdict: Verdict,
    pub retry_after_ms: Option<u64>,
    pub reason: Option<String>,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Throttled => "throttled",
            Verdict::AllowedOverSoftLimit => "allowed_over_soft_limit",
            Verdict::AllowedOverage => "allowed_overage",
            Verdict::ShadowDenied => "shadow_denied",
        }
    }
}

/// The answer to one check, increment, reservation or settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub verdict: Verdict,
    /// Period usage after the decision, held reservations included.
    pub usage: u64,
    pub limit: Option<u64>,
    pub soft_limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at_ms: Option<i64>,
    pub retry_after_ms: Option<u64>,
    pub thresholds_crossed: Vec<u8>,
    /// Why an amount was refused, when the verdict alone does not say it.
    pub reason: Option<String>,
    /// The stored answer of an earlier request with the same idempotency key.
    pub replayed: bool,
    /// The level that refused, or in shadow mode would have (format 19).
    #[serde(default)]
    pub limited_by: Added<19, Option<Box<Limiter>>>,
}

impl Decision {
    pub fn denied(reason: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            verdict: Verdict::Denied,
            usage: 0,
            limit: None,
            soft_limit: None,
            remaining: None,
            reset_at_ms: None,
            retry_after_ms: None,
            thresholds_crossed: Vec::new(),
            reason: Some(reason.into()),
            replayed: false,
            limited_by: Added::default(),
        }
    }
}
