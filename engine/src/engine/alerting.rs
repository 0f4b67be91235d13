//! Alerts raised outside a decision: sharing events and access
//! violations, billing events from the platform's billing system, and the
//! time-driven ones the alert loop raises on the groups this node leads
//! (trial milestones, the end of a payment's grace period, usage
//! anomalies). Each goes through the tenant's replicated apply, which
//! raises it once per occasion.
use super::Engine;
use crate::alerts::AlertType;
use crate::alerts::due::{ANOMALY_BASELINE_HOURS, anomaly};
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, Period, TenantId};
use crate::quota::period::window;
use crate::quota::{AlertOp, TenantOp, TenantState};
use crate::usage_history::Granularity;
use std::sync::Weak;
use std::time::Duration;

/// A usage anomaly is raised at most once per quota in this long.
pub const ANOMALY_COOL_DOWN_MS: i64 = 6 * 3_600_000;

/// What a reported payment failure does.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// How long a tenant keeps working after a failed payment.
    pub grace: Duration,
    /// Whether it is suspended when the grace period ends (a payment
    /// reactivates it).
    pub suspend: bool,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            grace: Duration::from_secs(7 * 86_400),
            suspend: false,
        }
    }
}

fn op(a: AlertOp) -> TenantOp {
    TenantOp::Alerts(Since(Box::new(a)))
}

impl Engine {
    /// Raise `kind` on `tenant` once per `window` of `key`.
    pub async fn raise_alert(
        &self,
        tenant: TenantId,
        kind: AlertType,
        key: &str,
        window: i64,
        data: serde_json::Value,
    ) -> Result<(), EngineError> {
        let a = AlertOp::Raise {
            kind,
            key: key.to_string(),
            window,
            data: data.to_string(),
        };
        self.apply(tenant, op(a), None, Some(Consistency::Strict))
            .await?;
        Ok(())
    }

    /// Raise it without waiting, logging a failure (a refused call must
    /// not wait for, or fail on, the alert it raises).
    pub fn raise_alert_in_background(
        self: &std::sync::Arc<Self>,
        tenant: TenantId,
        kind: AlertType,
        key: String,
        window: i64,
        data: serde_json::Value,
    ) {
        let e = self.clone();
        tokio::spawn(async move {
            if let Err(err) = e.raise_alert(tenant, kind, &key, window, data).await
                && err.code() != crate::error_code::ErrorCode::NotFound
            {
                tracing::warn!(error = %err, %tenant, kind = kind.as_str(), "could not raise an alert");
            }
        });
    }

    /// A payment the platform's billing system reports for the tenant.
    pub async fn billing_event(
        &self,
        tenant: TenantId,
        succeeded: bool,
        data: serde_json::Value,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let a = AlertOp::Billing {
            succeeded,
            grace_ms: self.billing.grace.as_millis() as i64,
            suspend: self.billing.suspend,
            data: data.to_string(),
        };
        self.apply(tenant, op(a), Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    /// One round of the alert loop: the time-driven alerts due in the
    /// groups this node leads. `anomalies`: also look for usage anomalies
    /// (once an hour is enough: they compare whole hours).
    pub async fn raise_due_alerts(&self, anomalies: bool) -> Result<usize, EngineError> {
        let now = self.now_ms();
        let mut ops: Vec<(TenantId, TenantOp, bool)> = Vec::new();
        for shard in self.router.served() {
            let Ok(state) = shard.group.state.read() else {
                continue;
            };
            for (id, t) in state.tenants.iter() {
                if t.tick_due(now) {
                    ops.push((*id, op(AlertOp::Tick), false));
                }
                if t.billing_suspension_due(now) {
                    ops.push((*id, op(AlertOp::BillingSuspend), true));
                }
                if !anomalies {
                    continue;
                }
                let Some(history) = state.usage.get(id) else {
                    continue;
                };
                let tz = t.tenant.timezone;
                let this_hour = window(Period::Hourly, tz, now).start_ms;
                let from = this_hour - (ANOMALY_BASELINE_HOURS as i64 + 1) * 3_600_000;
                for quota in t.quotas.keys() {
                    let hours = history.series(quota, tz, Granularity::Hour, from, this_hour);
                    if let Some(a) = anomaly(&hours) {
                        let data = serde_json::json!({
                            "tenantId": id.to_string(),
                            "quota": quota,
                            "hourStart": chrono::DateTime::from_timestamp_millis(a.hour_start_ms).map(|t| t.to_rfc3339()),
                            "usage": a.usage,
                            "baselineMean": (a.mean * 10.0).round() / 10.0,
                            "baselineStddev": (a.stddev * 10.0).round() / 10.0,
                            "baselineHours": ANOMALY_BASELINE_HOURS,
                            "statistic": "last hour > mean + 4 stddev and > 3 x mean of the 24 hours before",
                        });
                        let a = AlertOp::Raise {
                            kind: AlertType::UsageAnomaly,
                            key: quota.to_string(),
                            window: a.hour_start_ms
                                - a.hour_start_ms.rem_euclid(ANOMALY_COOL_DOWN_MS),
                            data: data.to_string(),
                        };
                        ops.push((*id, op(a), false));
                    }
                }
            }
        }
        let n = ops.len();
        let system = AuditMeta::new("system", "alerts");
        for (tenant, op, audited) in ops {
            let by = audited.then_some(&system);
            if let Err(e) = self.apply(tenant, op, by, Some(Consistency::Strict)).await {
                tracing::debug!(error = %e, %tenant, "a due alert was not raised; next round");
            }
        }
        Ok(n)
    }
}

/// The alert loop: every `interval`, what time has made due (anomalies
/// once per hour), then tenants' new alerts handed on to the operators.
pub(super) fn spawn_alert_loop(engine: Weak<Engine>, interval: Duration) {
    tokio::spawn(async move {
        let mut checked_hour = i64::MIN;
        loop {
            tokio::time::sleep(interval).await;
            let Some(e) = engine.upgrade() else { return };
            if e.router.is_closing() {
                return;
            }
            let hour = e.now_ms().div_euclid(3_600_000);
            let anomalies = hour != checked_hour;
            match e.raise_due_alerts(anomalies).await {
                Ok(_) if anomalies => checked_hour = hour,
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "alert round failed"),
            }
            if let Err(err) = e.hand_on_alerts().await {
                tracing::debug!(error = %err, "tenants' alerts not handed on to the operators; next round");
            }
        }
    });
}
