use super::batcher::{self, PendingWrite};
use crate::actor::{TenantActor, TenantMsg};
use crate::clock::SharedClock;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::raft::Group;
use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

/// One shard on its leader: the Raft group, its batcher, and the tenant
/// actors currently active.
pub struct Shard {
    pub group: Group,
    pub(crate) batcher: mpsc::UnboundedSender<PendingWrite>,
    pub(crate) actors: DashMap<TenantId, ActorRef<TenantMsg>>,
    /// Per-tenant write tracking, outliving any one actor: a new actor waits
    /// until its predecessor's writes are applied before reading state.
    pub(crate) syncs: DashMap<TenantId, Arc<super::TenantSync>>,
    spawn_lock: Mutex<()>,
    pub(crate) clock: SharedClock,
    pub(crate) idle_after: Duration,
}

/// Attempts to reach a tenant's actor: an actor stopping for idleness drops
/// the messages it had not started, and the next attempt starts a fresh one.
const ATTEMPTS: usize = 50;

impl Shard {
    pub fn start(
        group: Group,
        clock: SharedClock,
        idle_after: Duration,
        max_batch: usize,
    ) -> Arc<Shard> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batcher::run(group.clone(), rx, max_batch));
        Arc::new(Shard {
            group,
            batcher: tx,
            actors: DashMap::new(),
            syncs: DashMap::new(),
            spawn_lock: Mutex::new(()),
            clock,
            idle_after,
        })
    }

    /// Tenants with an active actor.
    pub fn active_actors(&self) -> usize {
        self.actors.len()
    }

    /// Whether the state machine knows `tenant` (without activating it).
    pub fn knows(&self, tenant: &TenantId) -> bool {
        self.group
            .state
            .read()
            .map(|s| s.tenants.contains_key(tenant))
            .unwrap_or(false)
    }

    async fn actor_for(
        self: &Arc<Self>,
        tenant: TenantId,
    ) -> Result<ActorRef<TenantMsg>, EngineError> {
        if let Some(a) = self.actors.get(&tenant) {
            return Ok(a.clone());
        }
        let _one_at_a_time = self.spawn_lock.lock().await;
        if let Some(a) = self.actors.get(&tenant) {
            return Ok(a.clone());
        }
        let (actor, _) = Actor::spawn(None, TenantActor, (tenant, self.clone()))
            .await
            .map_err(|e| EngineError::Raft {
                group: self.group.id,
                message: format!("cannot start tenant actor: {e}"),
            })?;
        self.actors.insert(tenant, actor.clone());
        Ok(actor)
    }

    /// Ask the tenant's actor, starting it if needed.
    pub async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: TenantId,
        msg: impl Fn(RpcReplyPort<Result<T, EngineError>>) -> TenantMsg,
    ) -> Result<T, EngineError> {
        for _ in 0..ATTEMPTS {
            let actor = self.actor_for(tenant).await?;
            match actor.call(&msg, None).await {
                Ok(CallResult::Success(answer)) => return answer,
                Ok(CallResult::Timeout) => break,
                // Dropped unanswered: the actor is retiring (idle, or
                // rebuilding after a failed commit). It unregisters itself.
                Ok(CallResult::SenderError) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                // Gone (stopped or crashed): forget it, start a fresh one.
                Err(_) => {
                    self.actors
                        .remove_if(&tenant, |_, a| a.get_id() == actor.get_id());
                }
            }
        }
        Err(EngineError::Busy { tenant })
    }
}
