//! Metrics the engine records (through the `metrics` facade; the binary
//! installs the Prometheus recorder) and the bound on per-tenant labels.
//!
//! Per-tenant series are labelled with the tenant id for the first
//! `max_tenants` tenants seen by this process; the rest share the label
//! `other`, so a node with a million tenants does not export a million
//! series per metric.
use crate::model::TenantId;
use dashmap::{DashMap, DashSet};
use metrics::Counter;
use std::sync::{Arc, OnceLock};

pub const API_REQUESTS: &str = "tenant_api_requests_total";
pub const QUOTA_EXCEEDED: &str = "quota_exceeded_events";
/// Active sharing grants, by `resource_type` (a gauge, named as the
/// product names it).
pub const CROSS_TENANT_SHARES: &str = "cross_tenant_shares_total";
/// Units used through sharing grants, by `resource_type`.
pub const CROSS_TENANT_USAGE: &str = "cross_tenant_usage_total";
/// Access requests in the sharing catalog, by `state`.
pub const SHARING_ACCESS_REQUESTS: &str = "sharing_access_requests";
/// Calls refused because a credential of one tenant named another, on the
/// control plane (403) and the data plane (PERMISSION_DENIED).
pub const CROSS_TENANT_VIOLATIONS: &str = "cross_tenant_access_violations_total";
/// Data-plane calls refused before any work, by `reason`: missing,
/// malformed, invalid (bad signature, unknown or revoked key), expired,
/// no_grant (a token that grants no data-plane access).
pub const AUTH_FAILURES: &str = "quotad_auth_failures_total";
pub const GRPC_DURATION: &str = "grpc_request_duration_seconds";
/// Tenants of a group with changes the archive has not taken yet.
pub const ARCHIVE_PENDING: &str = "quotad_archive_pending_tenants";
/// Age of the oldest change the archive has not taken, per group.
pub const ARCHIVE_LAG: &str = "quotad_archive_lag_seconds";
pub const ARCHIVE_SYNC_FAILURES: &str = "quotad_archive_sync_failures_total";
pub const ARCHIVE_SYNCED_TENANTS: &str = "quotad_archive_synced_tenants_total";
/// How far this node's clock is ahead of its cluster's median (negative:
/// behind), as measured over Raft round trips.
pub const CLOCK_OFFSET: &str = "quotad_clock_offset_seconds";
/// Clock reads moved back within `--max-clock-skew-ms` of the cluster.
pub const CLOCK_SKEW_CLAMPED: &str = "quotad_clock_skew_clamped_total";
/// Requests refused by load shedding, by the bound that was full
/// (`reason`: node_in_flight, tenant_queue, commit_queue); see [`crate::shed`].
pub const REQUESTS_SHED: &str = "quotad_requests_shed_total";
/// Flag evaluations over OFREP and gRPC, by OpenFeature reason (`reason`:
/// STATIC, DEFAULT, TARGETING_MATCH, DISABLED; BULK for a bulk evaluation).
pub const FLAG_EVALUATIONS: &str = "quotad_flag_evaluations_total";
/// Alerts raised, by type (`type`: quota.threshold_reached, ...), counted
/// once, by the group leader that decided them.
pub const ALERTS_RAISED: &str = "quotad_alerts_total";
/// Webhook delivery attempts, by what they came to (`result`: delivered,
/// retry, dead).
pub const WEBHOOK_ATTEMPTS: &str = "quotad_webhook_attempts_total";
/// Decisions a level refused that were admitted because the quota (or
/// its tenant) is in shadow mode, by `tenant_id` and `quota_type`.
pub const SHADOW_DENIALS: &str = "quota_shadow_denials_total";
/// Durable commits of the Raft log: one fsync each, however many groups
/// and operations they carry (group commit, `storage/log_appender.rs`).
pub const LOG_COMMITS: &str = "quotad_log_commits_total";
/// Raft log entries made durable.
pub const LOG_ENTRIES: &str = "quotad_log_entries_total";
/// Tenant operations (decisions and changes) in the entries made durable:
/// divided by the commits, how many operations one fsync carries.
pub const LOG_OPS: &str = "quotad_log_ops_total";
/// Tier feature checks (`CheckFeature`), by outcome (`enabled`: true/false).
pub const FEATURE_CHECKS: &str = "quotad_feature_checks_total";

pub struct TenantLabels {
    max: usize,
    labelled: DashSet<TenantId>,
    /// Registered counters by tenant: counting a decision is then a map
    /// lookup and an atomic add, not a label string and a registry lookup.
    counters: DashMap<TenantId, Arc<DecisionCounters>>,
    other: OnceLock<Arc<DecisionCounters>>,
}

/// One label's decision counters; the refusal counter is registered at the
/// first refusal, so tenants never refused export no refusal series.
struct DecisionCounters {
    label: String,
    requests: Counter,
    exceeded: OnceLock<Counter>,
}

impl DecisionCounters {
    fn new(label: String) -> Self {
        DecisionCounters {
            requests: metrics::counter!(API_REQUESTS, "tenant_id" => label.clone()),
            label,
            exceeded: OnceLock::new(),
        }
    }

    fn add(&self, requests: u64, refused: u64) {
        self.requests.increment(requests);
        if refused > 0 {
            self.exceeded
                .get_or_init(
                    || metrics::counter!(QUOTA_EXCEEDED, "tenant_id" => self.label.clone()),
                )
                .increment(refused);
        }
    }
}

impl TenantLabels {
    pub fn new(max: usize) -> Self {
        TenantLabels {
            max,
            labelled: DashSet::new(),
            counters: DashMap::new(),
            other: OnceLock::new(),
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

    /// Count `requests` decisions for `tenant`, `refused` of them refusals.
    pub fn count(&self, tenant: &TenantId, requests: u64, refused: u64) {
        if let Some(c) = self.counters.get(tenant) {
            c.add(requests, refused);
            return;
        }
        let label = self.label(tenant);
        let c = if label == "other" {
            self.other
                .get_or_init(|| Arc::new(DecisionCounters::new(label)))
                .clone()
        } else {
            self.counters
                .entry(*tenant)
                .or_insert_with(|| Arc::new(DecisionCounters::new(label)))
                .clone()
        };
        c.add(requests, refused);
    }
}

/// Count a decision request, and a refusal if it was one.
pub fn decision(labels: &TenantLabels, tenant: &TenantId, allowed: bool) {
    labels.count(tenant, 1, u64::from(!allowed));
}

/// Count a refusal that shadow mode admitted.
pub fn shadow_denial(labels: &TenantLabels, tenant: &TenantId, quota: &str) {
    metrics::counter!(
        SHADOW_DENIALS,
        "tenant_id" => labels.label(tenant),
        "quota_type" => quota.to_string()
    )
    .increment(1);
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
