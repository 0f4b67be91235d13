//! Usage history: a quota's series and statistics, read on its group's
//! leader.
use super::Engine;
use crate::cluster::{ForwardReply, ForwardRequest, forward};
use crate::error::EngineError;
use crate::model::TenantId;
use crate::quota::QuotaError;
use crate::usage_history::{Granularity, Point, Statistics};

impl Engine {
    /// A quota's usage series over `[from_ms, to_ms)` and its statistics
    /// (committed state).
    pub async fn usage_history(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<Point>, Statistics), EngineError> {
        if to_ms <= from_ms {
            return Err(QuotaError::invalid("to", "must be after from").into());
        }
        let req = ForwardRequest::Usage {
            tenant,
            quota: quota.to_string(),
            granularity,
            from_ms,
            to_ms,
        };
        match self.router.dispatch_tenant(tenant, req, None, true).await? {
            ForwardReply::Usage(points, stats) => Ok((points, stats)),
            other => Err(forward::unexpected(other)),
        }
    }
}
