//! What probes and scrapes read: readiness, liveness, load, and the
//! tenant counts and usage that metrics report.
use super::Engine;
use crate::model::Tier;

/// Per-tier tenant counts and per-tenant usage, for a metrics scrape.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub tenants_by_tier: Vec<(Tier, u64)>,
    /// (tenant label, quota, usage) for tenants within the label bound.
    pub usage: Vec<(String, String, u64)>,
}

impl Engine {
    /// Ready when every group this node is a member of has a leader, none
    /// of them has failed, and every group it should lead is served.
    pub async fn ready(&self) -> Result<(), String> {
        self.router.ready()
    }

    /// A group of this node that stopped on an error (a failed write of
    /// the data dir), with why: only a restart brings it back, so the node
    /// is not live (`/healthz`).
    pub fn failure(&self) -> Option<String> {
        self.router.failure()
    }

    /// Requests this node is serving now (what `Limits::max_in_flight`
    /// bounds).
    pub fn in_flight(&self) -> usize {
        self.router.shedder.in_flight()
    }

    /// What this node's Raft log writer has made durable since it started:
    /// commits (one fsync each), entries, and the tenant operations in them.
    pub fn log_commits(&self) -> crate::storage::LogCommits {
        self.router.store.log_commits()
    }

    /// Tenant actors active on this node.
    pub fn active_actors(&self) -> usize {
        self.router.served().iter().map(|s| s.active_actors()).sum()
    }

    /// What a metrics scrape reports from state: tenants per tier, and the
    /// usage of labelled tenants' quotas (committed state).
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let now = self.clock.now_ms();
        let mut per_tier = std::collections::BTreeMap::new();
        let mut usage = Vec::new();
        for shard in &self.router.served() {
            let Ok(state) = shard.group.state.read() else {
                continue;
            };
            for t in state.tenants.values() {
                *per_tier.entry(t.tenant.tier).or_insert(0u64) += 1;
                let label = self.labels.label(&t.tenant.id);
                if label == "other" {
                    continue;
                }
                for (name, q) in &t.quotas {
                    let mut q = q.clone();
                    q.roll(t.tenant.timezone, now);
                    usage.push((label.clone(), name.to_string(), q.usage(now)));
                }
            }
        }
        MetricsSnapshot {
            tenants_by_tier: Tier::ALL
                .iter()
                .map(|t| (*t, per_tier.get(t).copied().unwrap_or(0)))
                .collect(),
            usage,
        }
    }
}
