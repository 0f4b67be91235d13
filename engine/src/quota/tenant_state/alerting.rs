//! The alerts decisions raise, in apply: each threshold crossed (the quota
//! fires each once per period), the soft limit passed and the quota
//! exceeded (each once per period; for rates, at most once a minute), and
//! webhook endpoints, deliveries and replays.
use super::TenantState;
use crate::alerts::AlertType;
use crate::alerts::outbox::{Attempt, Outcome};
use crate::model::QuotaKind;
use crate::quota::decision::{Decision, Verdict};
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome, WebhookChange};
use serde_json::json;

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl TenantState {
    /// Raise what `d`, a decision on `quota`, calls for; whether any.
    pub(super) fn alert_on(&mut self, quota: &str, d: &Decision, now_ms: i64) -> bool {
        let over_soft = d.verdict == Verdict::AllowedOverSoftLimit;
        let exceeded = d.reason.is_none()
            && matches!(
                d.verdict,
                Verdict::Denied | Verdict::Throttled | Verdict::AllowedOverage
            );
        if d.thresholds_crossed.is_empty() && !over_soft && !exceeded {
            return false;
        }
        let Some(q) = self.quotas.get(quota) else {
            return false;
        };
        let period = if q.policy.kind == QuotaKind::Rate {
            now_ms - now_ms.rem_euclid(60_000)
        } else {
            q.window_start_ms
        };
        let data = |extra: serde_json::Value| {
            let mut v = json!({
                "tenantId": self.tenant.id.to_string(),
                "quota": quota,
                "usage": d.usage,
                "limit": d.limit,
                "softLimit": d.soft_limit,
                "percentage": d.limit.filter(|l| *l > 0).map(|l| (d.usage as f64 * 1000.0 / l as f64).round() / 10.0),
                "resetAt": d.reset_at_ms.and_then(rfc3339),
                "verdict": d.verdict.as_str(),
            });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        let mut raised = Vec::new();
        for t in &d.thresholds_crossed {
            raised.push((
                AlertType::QuotaThresholdReached,
                data(json!({ "threshold": t })),
            ));
        }
        if over_soft
            && self
                .alerts
                .first_in_period(quota, AlertType::QuotaSoftLimitReached, period)
        {
            raised.push((AlertType::QuotaSoftLimitReached, data(json!({}))));
        }
        if exceeded
            && self
                .alerts
                .first_in_period(quota, AlertType::QuotaExceeded, period)
        {
            raised.push((AlertType::QuotaExceeded, data(json!({}))));
        }
        let any = !raised.is_empty();
        for (kind, data) in raised {
            self.alerts.raise(kind, now_ms, &data);
        }
        any
    }

    pub(super) fn change_webhook(
        &mut self,
        c: &WebhookChange,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let missing = |id: &str| QuotaError::WebhookNotFound {
            tenant: self.tenant.id,
            id: id.to_string(),
        };
        match c {
            WebhookChange::Add {
                endpoint,
                limit,
                needs,
            } => {
                self.needs(needs)?;
                if let Some(limit) = limit
                    && self.alerts.endpoints.len() >= *limit as usize
                {
                    return Err(QuotaError::TooManyWebhooks {
                        tenant: self.tenant.id,
                        limit: *limit,
                    });
                }
                self.alerts.add_endpoint(endpoint, now_ms);
            }
            WebhookChange::Update { id, spec } => {
                if !self.alerts.update_endpoint(id, spec) {
                    return Err(missing(id));
                }
            }
            WebhookChange::Remove { id } => {
                if !self.alerts.remove_endpoint(id) {
                    return Err(missing(id));
                }
            }
            WebhookChange::Rotate {
                id,
                secret,
                overlap_until_ms,
            } => {
                if !self
                    .alerts
                    .rotate_secret(id, secret, *overlap_until_ms, now_ms)
                {
                    return Err(missing(id));
                }
            }
            WebhookChange::Delivered {
                id,
                attempt,
                outcome,
            } => {
                return Ok(self.delivered(*id, attempt, *outcome, now_ms));
            }
            WebhookChange::Replay { id } => {
                if !self.alerts.replay(*id, now_ms) {
                    return Err(QuotaError::invalid(
                        "id",
                        format!("delivery {id} is unknown or still pending"),
                    ));
                }
            }
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    fn delivered(&mut self, id: u64, attempt: &Attempt, outcome: Outcome, now_ms: i64) -> Applied {
        if let Some(endpoint) = self.alerts.record(id, attempt, outcome) {
            let url = self.alerts.endpoints.get(&endpoint).map(|e| e.url.clone());
            self.alerts.raise(
                AlertType::WebhookEndpointDisabled,
                now_ms,
                &json!({ "tenantId": self.tenant.id.to_string(), "endpointId": endpoint, "url": url }),
            );
        }
        Applied::changed(OpOutcome::Tenant)
    }
}
