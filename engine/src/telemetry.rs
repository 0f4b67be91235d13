//! Metrics the engine records (through the `metrics` facade; the binary
//! installs the Prometheus recorder) and the bound on per-tenant labels.
//!
//! Per-tenant series are labelled with the tenant id for the first
//! `max_tenants` tenants seen by this process; the rest share the label
//! `other`, so a node with a million tenants does not export a million
//! series per metric.
use crate::model::TenantId;
use dashmap::DashSet;

pub const API_REQUESTS: &str = "tenant_api_requests_total";
pub const QUOTA_EXCEEDED: &str = "quota_exceeded_events";
pub const CROSS_TENANT_SHARES: &str = "cross_tenant_shares_total";
pub const GRPC_DURATION: &str = "grpc_request_duration_seconds";

pub struct TenantLabels {
    max: usize,
    labelled: DashSet<TenantId>,
}

impl TenantLabels {
    pub fn new(max: usize) -> Self {
        TenantLabels {
            max,
            labelled: DashSet::new(),
        }
    }

    /// The `tenant_id` label for `tenant`.
    pub fn label(&self, tenant: &TenantId) -> String {
        if self.labelled.contains(tenant) {
            return tenant.to_string();
        }
        if self.labelled.len() < self.max {
            self.labelled.insert(*tenant);
            return tenant.to_string();
        }
        "other".to_string()
    }

    pub fn is_labelled(&self, tenant: &TenantId) -> bool {
        self.labelled.contains(tenant)
    }
}

/// Count a decision request, and a refusal if it was one.
pub fn decision(labels: &TenantLabels, tenant: &TenantId, allowed: bool) {
    let label = labels.label(tenant);
    metrics::counter!(API_REQUESTS, "tenant_id" => label.clone()).increment(1);
    if !allowed {
        metrics::counter!(QUOTA_EXCEEDED, "tenant_id" => label).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let l = TenantLabels::new(2);
        let ids: Vec<TenantId> = (1..=3).map(uuid::Uuid::from_u128).collect();
        assert_eq!(l.label(&ids[0]), ids[0].to_string());
        assert_eq!(l.label(&ids[1]), ids[1].to_string());
        assert_eq!(l.label(&ids[2]), "other");
        assert_eq!(l.label(&ids[0]), ids[0].to_string());
    }
}
