//! Alerts raised from outside a decision: time (trial milestones), the
//! platform's billing system (payment failures, their grace period and
//! suspension), the engine's own observations (usage anomalies, sharing
//! events), each once per occasion.
use super::TenantState;
use crate::alerts::AlertType;
use crate::alerts::due::trial_milestone;
use crate::alerts::tenant_alerts::PaymentTrouble;
use crate::model::TenantStatus;
use crate::quota::error::QuotaError;
use crate::quota::op::{AlertOp, Applied, OpOutcome};
use serde_json::json;

impl TenantState {
    /// Whether a [`AlertOp::Tick`] would raise something now.
    pub fn tick_due(&self, now_ms: i64) -> bool {
        match trial_milestone(&self.tenant, now_ms) {
            Some((days, end)) => self.alerts.fired.get(&trial_key(days)) != Some(&end),
            None => false,
        }
    }

    /// Whether the grace period of an unpaid bill has run out on a tenant
    /// to be suspended for it.
    pub fn billing_suspension_due(&self, now_ms: i64) -> bool {
        self.alerts
            .billing
            .as_ref()
            .is_some_and(|b| b.suspend && !b.suspended && now_ms >= b.grace_until_ms)
            && self.tenant.status == TenantStatus::Active
    }

    pub(super) fn alert_op(&mut self, op: &AlertOp, now_ms: i64) -> Result<Applied, QuotaError> {
        let id = self.tenant.id.to_string();
        match op {
            AlertOp::Tick => {
                let Some((days, end)) = trial_milestone(&self.tenant, now_ms) else {
                    return Ok(Applied {
                        outcome: OpOutcome::Tenant,
                        changed: false,
                    });
                };
                let key = trial_key(days);
                if self.alerts.fired.get(&key) == Some(&end) {
                    return Ok(Applied {
                        outcome: OpOutcome::Tenant,
                        changed: false,
                    });
                }
                // A nearer milestone (or the end) passed: the farther ones
                // are not raised late.
                for d in crate::alerts::due::TRIAL_WARNINGS
                    .iter()
                    .filter(|d| **d >= days)
                {
                    self.alerts.fired.insert(trial_key(*d), end);
                }
                self.alerts.fired.insert(key, end);
                let ends_at = rfc3339(end);
                if days == 0 {
                    self.alerts.raise(
                        AlertType::TrialExpired,
                        now_ms,
                        &json!({ "tenantId": id, "endedAt": ends_at }),
                    );
                } else {
                    self.alerts.raise(
                        AlertType::TrialExpiring,
                        now_ms,
                        &json!({ "tenantId": id, "daysLeft": days, "endsAt": ends_at, "timezone": self.tenant.timezone.name() }),
                    );
                }
            }
            AlertOp::Raise {
                kind,
                key,
                window,
                data,
            } => {
                if !self.alerts.first_in_period(key, *kind, *window) {
                    return Ok(Applied {
                        outcome: OpOutcome::Tenant,
                        changed: false,
                    });
                }
                let data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                self.alerts.raise(*kind, now_ms, &data);
            }
            AlertOp::Billing {
                succeeded,
                grace_ms,
                suspend,
                data,
            } => {
                let mut data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                if let Some(o) = data.as_object_mut() {
                    o.insert("tenantId".into(), json!(id));
                }
                if *succeeded {
                    // Read before writing: a write boxes the tenant's
                    // alert state (`Sparse`), and most payments succeed
                    // with no trouble to clear.
                    let was = match self.alerts.billing {
                        Some(_) => self.alerts.billing.take(),
                        None => None,
                    };
                    if was.as_ref().is_some_and(|b| b.suspended)
                        && self.tenant.status == TenantStatus::Suspended
                    {
                        self.tenant.status = TenantStatus::Active;
                        self.tenant.updated_at_ms = now_ms;
                    }
                    if let Some(o) = data.as_object_mut() {
                        o.insert(
                            "reactivated".into(),
                            json!(was.is_some_and(|b| b.suspended)),
                        );
                    }
                    self.alerts
                        .raise(AlertType::PaymentSucceeded, now_ms, &data);
                } else {
                    let b = self.alerts.billing.get_or_insert(PaymentTrouble {
                        since_ms: now_ms,
                        failures: 0,
                        grace_until_ms: now_ms.saturating_add(*grace_ms),
                        suspend: *suspend,
                        suspended: false,
                    });
                    b.failures = b.failures.saturating_add(1);
                    if let Some(o) = data.as_object_mut() {
                        o.insert("failures".into(), json!(b.failures));
                        o.insert("graceEndsAt".into(), json!(rfc3339(b.grace_until_ms)));
                        o.insert("suspendAtGraceEnd".into(), json!(b.suspend));
                    }
                    self.alerts.raise(AlertType::PaymentFailed, now_ms, &data);
                }
            }
            AlertOp::BillingSuspend => {
                if !self.billing_suspension_due(now_ms) {
                    return Ok(Applied {
                        outcome: OpOutcome::Tenant,
                        changed: false,
                    });
                }
                let b = self.alerts.billing.as_mut().expect("checked above");
                b.suspended = true;
                let (since, failures) = (b.since_ms, b.failures);
                self.tenant.status = TenantStatus::Suspended;
                self.tenant.updated_at_ms = now_ms;
                self.alerts.raise(
                    AlertType::PaymentFailed,
                    now_ms,
                    &json!({ "tenantId": id, "failures": failures, "failingSince": rfc3339(since), "suspended": true }),
                );
            }
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }
}

/// The `fired` key of a trial milestone (`days` 0: the end); its value is
/// the trial's end, so a new trial end raises them again.
fn trial_key(days: i64) -> (String, AlertType) {
    let kind = if days == 0 {
        AlertType::TrialExpired
    } else {
        AlertType::TrialExpiring
    };
    (format!("trial:{days}"), kind)
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
