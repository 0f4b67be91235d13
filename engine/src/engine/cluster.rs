//! The engine's view of the cluster: where a tenant lives and who leads
//! it, and moving an ENTERPRISE tenant to a group of its own. The rest of
//! the cluster (membership, joins, status) is the [`Router`]'s.
use super::Engine;
use crate::audit::AuditMeta;
use crate::cluster::{ForwardReply, ForwardRequest, NodeInfo, Router, forward};
use crate::error::EngineError;
use crate::model::TenantId;
use crate::quota::QuotaError;
use std::sync::Arc;

impl Engine {
    /// The node's groups and peers: what the `Cluster` service serves.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Where the tenant lives, replica by replica.
    pub fn placement_view(&self, tenant: &TenantId) -> crate::cluster::PlacementView {
        self.router.placement_view(tenant)
    }

    /// The tenant's group, and whether it is dedicated to the tenant.
    pub fn placement_of(&self, tenant: &TenantId) -> (u64, bool) {
        self.router.placement_of(tenant)
    }

    /// The client gRPC address of the leader of `tenant`'s group, when that
    /// is another node: a hint for clients to go there directly.
    pub fn leader_hint(&self, tenant: &TenantId) -> Option<String> {
        self.router.leader_hint(tenant)
    }

    /// The node leading `tenant`'s group, when that is another node.
    pub fn leader_node(&self, tenant: &TenantId) -> Option<NodeInfo> {
        self.router.leader_node(tenant)
    }

    /// Give an ENTERPRISE tenant a group of its own; returns the group. A
    /// tenant already dedicated gets its group back.
    ///
    /// `pool`: `Some(Some(p))` pins the group to node pool `p` (placement
    /// then keeps its replicas on that pool's nodes), `Some(None)` takes it
    /// out of its pool, `None` leaves it where it is.
    pub async fn dedicate_tenant(
        &self,
        tenant: TenantId,
        pool: Option<Option<String>>,
        by: &AuditMeta,
    ) -> Result<u64, EngineError> {
        let state = self.tenant(tenant).await?;
        self.catalog
            .requires(state.tenant.tier, crate::custom::features::DEDICATED_SCHEMA)
            .map_err(QuotaError::NotInTier)?;
        let group = self.router.dedicated_group(tenant, pool.clone()).await?;
        let from = self.router.group_of(&tenant);
        if from != group {
            let moved = match self
                .router
                .dispatch(
                    from,
                    &ForwardRequest::MoveOut {
                        tenant,
                        to_group: group,
                    },
                    None,
                    true,
                )
                .await?
            {
                ForwardReply::Moved(m) => m,
                other => return Err(forward::unexpected(other)),
            };
            self.router.move_in(*moved).await?;
        }
        // Answered from this node's view: wait for it to show the pin.
        self.router
            .await_meta(|m| m.membership.pins.get(&tenant) == Some(&group))
            .await;
        let mut what = if from != group {
            format!("moved from group {from} to its own group {group}")
        } else {
            format!("its own group {group}")
        };
        match &pool {
            Some(Some(p)) => what.push_str(&format!(", in node pool {p}")),
            Some(None) => what.push_str(", in no node pool"),
            None => {}
        }
        self.record_audit(
            tenant,
            by,
            "tenant.dedicated",
            &format!("group {group}"),
            what,
        )
        .await?;
        Ok(group)
    }
}
