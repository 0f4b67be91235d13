//! The state a quota's rules beyond its one limit keep (format 19): a
//! meter per further window and per live scope value, credit grants, the
//! allowance carried into the period. Plain data; the decisions over them
//! are `quota::layers`.
use super::error::QuotaError;
pub use super::meter::Meter;
pub use super::scope_meters::ScopeMeters;
use crate::model::{QuotaKind, TenantId};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// At most this many credit grants kept per quota; adding one beyond drops
/// the oldest finished (voided, expired or used up) first.
pub const MAX_GRANTS: usize = 64;

/// Units added to a quota beyond its period allowance, by an operator or
/// the platform's billing system: drawn once the allowance (and what rolled
/// over) is spent, in priority then expiry order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditGrant {
    /// Numbered per quota from 1, in the order added.
    pub seq: u32,
    pub amount: u64,
    /// Drawn so far (what was drawn stays drawn when it is voided or
    /// expires).
    pub used: u64,
    pub effective_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Lower first.
    pub priority: u8,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at_ms: i64,
    pub voided_at_ms: Option<i64>,
}

impl CreditGrant {
    pub fn remaining(&self) -> u64 {
        self.amount.saturating_sub(self.used)
    }

    /// Whether it can be drawn from at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.voided_at_ms.is_none()
            && self.effective_at_ms <= now_ms
            && self.expires_at_ms.is_none_or(|e| now_ms < e)
            && self.used < self.amount
    }

    /// "active", "pending", "expired", "voided" or "used".
    pub fn status(&self, now_ms: i64) -> &'static str {
        if self.voided_at_ms.is_some() {
            "voided"
        } else if self.expires_at_ms.is_some_and(|e| now_ms >= e) {
            "expired"
        } else if self.used >= self.amount {
            "used"
        } else if now_ms < self.effective_at_ms {
            "pending"
        } else {
            "active"
        }
    }

    pub(super) fn finished(&self, now_ms: i64) -> bool {
        matches!(self.status(now_ms), "voided" | "expired" | "used")
    }
}

/// What a new grant asks for (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCreditGrant {
    pub amount: u64,
    pub effective_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub priority: u8,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

/// Longest grant reason, in bytes.
pub const MAX_GRANT_REASON: usize = 500;

/// A new grant's fields, each as a caller names it.
pub fn check_grant(g: &NewCreditGrant) -> Result<(), QuotaError> {
    if g.amount == 0 || g.amount > super::validate::MAX_LIMIT {
        return Err(QuotaError::invalid(
            "amount",
            format!("from 1 to {}", super::validate::MAX_LIMIT),
        ));
    }
    if let (Some(from), Some(to)) = (g.effective_at_ms, g.expires_at_ms)
        && to <= from
    {
        return Err(QuotaError::invalid(
            "expiresAt",
            "must be after effectiveAt",
        ));
    }
    if g.reason.len() > MAX_GRANT_REASON || g.reason.chars().any(char::is_control) {
        return Err(QuotaError::invalid(
            "reason",
            format!("at most {MAX_GRANT_REASON} bytes, no control characters"),
        ));
    }
    if g.idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 256)
    {
        return Err(QuotaError::invalid("idempotencyKey", "1-256 bytes"));
    }
    Ok(())
}

/// A quota's state beyond its own window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Layers {
    /// One per further window of the policy, in its order.
    pub windows: Vec<Meter>,
    /// Allowance rolled over into the current period.
    pub carry: u64,
    /// Drawn from grants in the current period (units of `used` beyond
    /// the allowance that grants cover).
    pub from_grants: u64,
    pub grants: Vec<CreditGrant>,
    pub next_grant: u32,
    /// Live scope values only: a value's meter exists once it is used and
    /// goes when it would read as fresh again. Encoded sorted by value.
    pub scopes: ScopeMeters,
    /// No scope meter is idle before this (a sweep is due from then). A
    /// cache each replica keeps for itself (0 after a load: a sweep is
    /// due), so neither stored nor compared: which meters a sweep at `t`
    /// keeps depends on the meters alone.
    #[serde(skip)]
    pub scopes_idle_from_ms: i64,
}

impl PartialEq for Layers {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.windows,
            self.carry,
            self.from_grants,
            &self.grants,
            self.next_grant,
            &self.scopes,
        ) == (
            &o.windows,
            o.carry,
            o.from_grants,
            &o.grants,
            o.next_grant,
            &o.scopes,
        )
    }
}

impl Eq for Layers {}

impl Layers {
    /// Keep the sweep cache a lower bound after meter `m` changed.
    pub(super) fn note_idle(&mut self, m: &Meter, kind: QuotaKind) {
        if let Some(idle) = m.idle_from_ms(kind) {
            self.scopes_idle_from_ms = self.scopes_idle_from_ms.min(idle);
        }
    }
}

/// What a spend needs to know beyond the quota.
#[derive(Debug, Clone, Copy)]
pub struct SpendCtx<'a> {
    pub tenant: TenantId,
    pub tz: Tz,
    pub now_ms: i64,
    pub scope: Option<&'a str>,
    /// Whether a scope value not live yet may start (the tenant's cap).
    pub new_scope_fits: bool,
    pub max_scopes: u64,
    /// The whole tenant is in shadow mode.
    pub tenant_shadow: bool,
}

impl<'a> SpendCtx<'a> {
    /// A spend with no scope, as of `now_ms`.
    pub fn plain(tenant: TenantId, tz: Tz, now_ms: i64) -> Self {
        SpendCtx {
            tenant,
            tz,
            now_ms,
            scope: None,
            new_scope_fits: true,
            max_scopes: u64::MAX,
            tenant_shadow: false,
        }
    }
}

/// Units drawn from grants by one spend: `(grant seq, units)`.
pub type Draws = Vec<(u32, u64)>;
