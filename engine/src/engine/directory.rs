//! Every tenant of the deployment, for operators' listings.
use super::Engine;
use crate::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{Tenant, TenantId};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};

/// How many tenants held by other nodes are read at once.
const REMOTE_READS: usize = 16;

impl Engine {
    /// The tenant holding `slug`, as this node's copy of the meta group
    /// knows.
    pub fn tenant_with_slug(&self, slug: &str) -> Option<TenantId> {
        match self.router.meta.state.read() {
            Ok(s) => s.slugs.get(slug).map(|c| c.tenant),
            Err(p) => p.into_inner().slugs.get(slug).map(|c| c.tenant),
        }
    }

    /// Every tenant, soft-deleted ones included, in no particular order.
    ///
    /// The meta group's slug claims name every tenant of the deployment.
    /// Those in a group this node replicates are read from its copy; the
    /// rest are read from their groups' leaders.
    pub async fn tenant_directory(&self) -> Result<Vec<Tenant>, EngineError> {
        let named: BTreeSet<TenantId> = match self.router.meta.state.read() {
            Ok(s) => s.slugs.values().map(|c| c.tenant).collect(),
            Err(p) => p.into_inner().slugs.values().map(|c| c.tenant).collect(),
        };
        let mut found: HashMap<TenantId, Tenant> = HashMap::with_capacity(named.len());
        for shard in self.router.served() {
            if let Ok(state) = shard.group.state.read() {
                for t in state.tenants.values() {
                    if named.contains(&t.tenant.id) {
                        found.insert(t.tenant.id, t.tenant.clone());
                    }
                }
            }
        }
        let missing: Vec<TenantId> = named
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        let mut reads = futures::stream::iter(missing)
            .map(|id| async move { (id, self.tenant(id).await) })
            .buffer_unordered(REMOTE_READS);
        while let Some((id, read)) = reads.next().await {
            match read {
                Ok(state) => {
                    found.insert(id, state.tenant);
                }
                // A claim whose tenant was never created, or was purged
                // since the claims were read.
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found.into_values().collect())
    }
}
