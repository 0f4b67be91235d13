//! Dedicated groups ("dedicated instance" isolation): an ENTERPRISE tenant
//! moved to a Raft group of its own, with its own log, batcher and actors.
//!
//! ```text
//!  meta:   Dedicate{tenant}            -> new group G (placed like any group)
//!  source: freeze tenant, MoveOut{G}   -> state kept as "moved" (durable)
//!  G:      MoveIn(state)               -> tenant lives in G (idempotent)
//!  meta:   Pin{tenant, G}              -> every node routes the tenant to G
//! ```
//! Requests meanwhile get "moving; retry" and follow the pin. If the
//! coordinator dies after MoveOut, the source group's leader finishes the
//! move from the kept state (see [`Router::finish_moves`]).
use super::forward::{ForwardReply, ForwardRequest};
use super::membership::{DedicateIn, MembershipOp, MembershipReply};
use super::router::Router;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::TenantId;
use crate::quota::QuotaError;
use crate::raft::{Command, CommandResponse, MetaOp, MovedTenant};
use crate::shard::Shard;
use std::sync::Arc;

impl Router {
    /// The tenant's dedicated group, created (and placed) if it has none.
    /// `pool`: `Some` pins the group to a node pool (`Some(None)`: to
    /// none); `None` leaves an existing group where it is.
    pub(crate) async fn dedicated_group(
        &self,
        tenant: TenantId,
        pool: Option<Option<String>>,
    ) -> Result<u64, EngineError> {
        let replication = self.config.replication;
        let op = match pool {
            // Without a pool the op keeps its oldest format, so a cluster
            // mid-upgrade still dedicates groups.
            None => MembershipOp::Dedicate {
                tenant,
                replication,
            },
            Some(pool) => MembershipOp::DedicateIn(Since(DedicateIn {
                tenant,
                replication,
                pool,
            })),
        };
        match self
            .meta_write(Command::Meta(MetaOp::Membership(op)))
            .await?
        {
            CommandResponse::Membership(MembershipReply::Dedicated { group }) => Ok(group),
            CommandResponse::Membership(MembershipReply::Refused { reason }) => {
                Err(QuotaError::invalid("pool", reason).into())
            }
            other => Err(EngineError::unexpected(other)),
        }
    }

    /// Source side: stop deciding for the tenant, then log its hand-over.
    pub(crate) async fn move_out(
        &self,
        shard: &Arc<Shard>,
        tenant: TenantId,
        to_group: u64,
    ) -> Result<ForwardReply, EngineError> {
        // Asked of the destination itself (routed by a node that already
        // follows the pin): nothing to hand over.
        if to_group == shard.group.id {
            return Err(EngineError::AlreadyInGroup {
                tenant,
                group: to_group,
            });
        }
        // Served for a forward, this future is dropped when the forwarding
        // node gives up (its forward timeout): the tenant must not stay
        // frozen then. Unless the hand-over is known to be logged, it is
        // decided again; if it did commit, the kept state refuses requests
        // until the move is finished.
        let mut unfreeze = Unfreeze {
            shard,
            tenant,
            armed: true,
        };
        shard.freeze(tenant).await?;
        let r = shard
            .group
            .write(Command::MoveOut { tenant, to_group })
            .await;
        match r {
            Ok(CommandResponse::MovedOut(m)) => {
                unfreeze.armed = false;
                Ok(ForwardReply::Moved(m))
            }
            Ok(CommandResponse::TenantNotHere) => Err(QuotaError::TenantNotFound { tenant }.into()),
            Ok(other) => Err(crate::cluster::forward::unexpected(other)),
            Err(e) => Err(e),
        }
    }

    /// Destination side, then the pin.
    pub(crate) async fn move_in(&self, moved: MovedTenant) -> Result<(), EngineError> {
        let (tenant, group) = (moved.tenant, moved.to_group);
        let write = ForwardRequest::GroupWrite {
            group,
            cmd: Command::MoveIn(Box::new(moved)),
        };
        // Retried across the new group's first election: MoveIn is idempotent.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match self.dispatch(group, &write, None, true).await {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::info!(group, error = %e, "waiting for the dedicated group");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let pin = MembershipOp::Pin { tenant, group };
        match self
            .meta_write(Command::Meta(MetaOp::Membership(pin)))
            .await?
        {
            CommandResponse::Membership(MembershipReply::Done) => Ok(()),
            other => Err(EngineError::unexpected(other)),
        }
    }

    /// Finish moves whose coordinator stopped after the hand-over, and
    /// drop the kept copies of moves that are done: run by the source
    /// group's leader.
    pub(crate) async fn finish_moves(&self, shard: &Arc<Shard>) -> Result<(), EngineError> {
        let (pending, done): (Vec<MovedTenant>, Vec<MovedTenant>) = {
            let Ok(state) = shard.group.state.read() else {
                return Ok(());
            };
            if state.moved.is_empty() {
                return Ok(());
            }
            let pins = self
                .meta
                .state
                .read()
                .map(|m| m.membership.pins.clone())
                .unwrap_or_default();
            state.moved.values().cloned().partition(|m| {
                // A move to this very group is undone by moving it in.
                pins.get(&m.tenant) != Some(&m.to_group) || m.to_group == shard.group.id
            })
        };
        // The copy would otherwise stay in this group's state and in its
        // snapshots, shared-archive ones included, for good. It goes once
        // the tenant's own archive schema holds its new group's snapshot:
        // until then it is the only full state a restore could find.
        for m in done {
            let archived = match self.archive.get().await {
                Ok(archive) => {
                    crate::archive::sync::held_by_own_snapshot(
                        archive.as_ref(),
                        m.tenant,
                        m.to_group,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match archived {
                Ok(true) => {
                    let done = Command::MoveDone {
                        tenant: m.tenant,
                        to_group: m.to_group,
                    };
                    if let Err(e) = shard.group.write(done).await {
                        tracing::info!(tenant = %m.tenant, error = %e, "dropping a finished move's copy failed");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(tenant = %m.tenant, error = %e, "cannot tell whether a moved tenant is archived");
                }
            }
        }
        for m in pending {
            tracing::info!(tenant = %m.tenant, group = m.to_group, "finishing a tenant move");
            self.move_in(m).await?;
        }
        Ok(())
    }
}

/// Lets a tenant be decided for again when a hand-over ends without being
/// logged, including when it is dropped half-way.
struct Unfreeze<'a> {
    shard: &'a Shard,
    tenant: TenantId,
    armed: bool,
}

impl Drop for Unfreeze<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shard.moving.remove(&self.tenant);
        }
    }
}
