//! The alert types and an alert as raised.
use serde::{Deserialize, Serialize};

/// What an alert is about. Its name (`quota.threshold_reached`) is what
/// webhook payloads carry as `type` and endpoints filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertType {
    QuotaThresholdReached,
    QuotaSoftLimitReached,
    QuotaExceeded,
    UsageAnomaly,
    TrialExpiring,
    TrialExpired,
    PaymentFailed,
    PaymentSucceeded,
    SharingAccessViolation,
    SharingAccessRequested,
    SharingAccessGranted,
    WebhookEndpointDisabled,
}

impl AlertType {
    pub const ALL: [AlertType; 12] = [
        AlertType::QuotaThresholdReached,
        AlertType::QuotaSoftLimitReached,
        AlertType::QuotaExceeded,
        AlertType::UsageAnomaly,
        AlertType::TrialExpiring,
        AlertType::TrialExpired,
        AlertType::PaymentFailed,
        AlertType::PaymentSucceeded,
        AlertType::SharingAccessViolation,
        AlertType::SharingAccessRequested,
        AlertType::SharingAccessGranted,
        AlertType::WebhookEndpointDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::QuotaThresholdReached => "quota.threshold_reached",
            AlertType::QuotaSoftLimitReached => "quota.soft_limit_reached",
            AlertType::QuotaExceeded => "quota.exceeded",
            AlertType::UsageAnomaly => "usage.anomaly",
            AlertType::TrialExpiring => "tenant.trial_expiring",
            AlertType::TrialExpired => "tenant.trial_expired",
            AlertType::PaymentFailed => "billing.payment_failed",
            AlertType::PaymentSucceeded => "billing.payment_succeeded",
            AlertType::SharingAccessViolation => "sharing.access_violation",
            AlertType::SharingAccessRequested => "sharing.access_requested",
            AlertType::SharingAccessGranted => "sharing.access_granted",
            AlertType::WebhookEndpointDisabled => "webhook.endpoint_disabled",
        }
    }

    pub fn parse(raw: &str) -> Result<AlertType, String> {
        AlertType::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown event type {:?}: expected one of {}",
                    crate::excerpt::short(raw),
                    AlertType::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

/// One alert of a tenant. `seq` numbers the tenant's alerts from 1; with
/// the tenant id it is the alert's id, and its webhook message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub seq: u64,
    pub kind: AlertType,
    pub at_ms: i64,
    /// The event's `data`, as JSON text (canonical: keys sorted).
    pub data: String,
}

impl Alert {
    /// The webhook message id: the same for every endpoint and every retry.
    pub fn message_id(&self, tenant: &crate::model::TenantId) -> String {
        format!("msg_{}_{}", tenant.simple(), self.seq)
    }
}
