//! Reads of a shard's committed state that the group's leader answers for
//! other nodes: a tenant's usage history and its audit chain.
use super::Shard;
use crate::audit::{AuditPage, AuditQuery};
use crate::error::EngineError;
use crate::model::TenantId;
use crate::quota::QuotaError;
use crate::usage_history::{Granularity, Point, Statistics, UsageHistory, statistics};

impl Shard {
    /// A quota's usage series and statistics, from committed state (what
    /// `Engine::usage_history` asks of the group's leader).
    pub fn usage(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<Point>, Statistics), EngineError> {
        let state = self.group.state.read().map_err(|_| EngineError::Raft {
            group: self.group.id,
            message: "state lock poisoned".into(),
        })?;
        let t = state
            .tenants
            .get(&tenant)
            .ok_or(QuotaError::TenantNotFound { tenant })?;
        let tz = t.tenant.timezone;
        let now = self.clock.now_ms();
        let mut q = t.quota(quota)?.clone();
        q.roll(tz, now);
        let period = crate::quota::period::window(q.policy.period, tz, now);
        let points = state
            .usage
            .get(&tenant)
            .map(|h| h.series(quota, tz, granularity, from_ms, to_ms))
            .unwrap_or_else(|| {
                UsageHistory::default().series(quota, tz, granularity, from_ms, to_ms)
            });
        let stats = statistics(
            &points,
            q.policy.limit,
            q.used,
            period.start_ms,
            period.end_ms,
            now,
        );
        Ok((points, stats))
    }

    /// A page of a tenant's audit chain, from committed state (what
    /// `Engine::audit` asks of the group's leader).
    pub fn audit_page(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<AuditPage, EngineError> {
        let state = self.group.state.read().map_err(|_| EngineError::Raft {
            group: self.group.id,
            message: "state lock poisoned".into(),
        })?;
        let Some(log) = state.audit.get(&tenant) else {
            if state.tenants.contains_key(&tenant) {
                return Ok(AuditPage::default());
            }
            return Err(QuotaError::TenantNotFound { tenant }.into());
        };
        let (events, more) = log.query(query);
        Ok(AuditPage {
            events,
            more,
            chain: log.verify(),
            total: log.len(),
        })
    }
}
