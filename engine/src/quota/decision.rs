use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Allowed,
    Denied,
    Throttled,
    AllowedOverSoftLimit,
    AllowedOverage,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Throttled => "throttled",
            Verdict::AllowedOverSoftLimit => "allowed_over_soft_limit",
            Verdict::AllowedOverage => "allowed_overage",
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
        }
    }
}
