use super::batcher::{self, PendingWrite};
use super::call::{TenantAnswer, TenantCall, TenantMsg};
use crate::clock::SharedClock;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::raft::Group;
use crate::shed::{Shed, Shedder};
use dashmap::DashMap;
use futures::future::BoxFuture;
use openraft::ServerState;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

/// Starts the actor of a tenant of a shard. The shard is given one when it
/// starts, so it does not depend on the actor's code.
pub type SpawnActor = Arc<
    dyn Fn(TenantId, Arc<Shard>) -> BoxFuture<'static, Result<ActorRef<TenantMsg>, String>>
        + Send
        + Sync,
>;

/// One shard group on this node: the Raft group, its batcher, and the
/// tenant actors currently active. Actors run only while this node leads the
/// group and has applied everything committed before it took over.
pub struct Shard {
    pub group: Group,
    /// The term this node serves the group in; 0 when it does not.
    pub(crate) serving: Arc<AtomicU64>,
    /// Leadership is being handed over: do not serve even while leader.
    paused: AtomicBool,
    /// The commit queue: bounded (`Limits::commit_queue`); an actor takes
    /// a slot before deciding a change (see `crate::shed`).
    pub(crate) batcher: mpsc::Sender<PendingWrite>,
    pub(crate) actors: DashMap<TenantId, ActorRef<TenantMsg>>,
    /// Per-tenant write tracking, outliving any one actor: a new actor waits
    /// until its predecessor's writes are applied before reading state.
    pub(crate) syncs: DashMap<TenantId, Arc<super::TenantSync>>,
    spawn_lock: Mutex<()>,
    /// Tenants being handed over to another group: refused meanwhile.
    pub(crate) moving: dashmap::DashSet<TenantId>,
    pub(crate) clock: SharedClock,
    pub(crate) idle_after: Duration,
    pub(crate) shedder: Arc<Shedder>,
    /// Starts a tenant's actor (given by the engine: the shard does not
    /// know the actor's code).
    spawn: SpawnActor,
}

/// A place in a tenant's queue, given back when dropped (answered, or the
/// caller gone).
struct Queued(Arc<super::TenantSync>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Attempts to reach a tenant's actor: an actor stopping for idleness drops
/// the messages it had not started, and the next attempt starts a fresh one.
const ATTEMPTS: usize = 50;

impl Shard {
    pub(crate) fn start(
        group: Group,
        clock: SharedClock,
        idle_after: Duration,
        max_batch: usize,
        commit_timeout: Duration,
        shedder: Arc<Shedder>,
        spawn: SpawnActor,
    ) -> Arc<Shard> {
        let (tx, rx) = mpsc::channel(shedder.limits.commit_queue.max(1));
        let serving = Arc::new(AtomicU64::new(0));
        // On the Raft runtime, with the completions it spawns: the commit
        // path must not wait behind request tasks (see `raft::runtime`).
        crate::raft::runtime::spawn(batcher::run(
            group.clone(),
            rx,
            max_batch,
            commit_timeout,
            serving.clone(),
        ));
        let shard = Arc::new(Shard {
            group,
            serving,
            paused: AtomicBool::new(false),
            batcher: tx,
            actors: DashMap::new(),
            syncs: DashMap::new(),
            spawn_lock: Mutex::new(()),
            moving: dashmap::DashSet::new(),
            clock,
            idle_after,
            shedder,
            spawn,
        });
        tokio::spawn(watch_leadership(Arc::downgrade(&shard), commit_timeout));
        shard
    }

    /// Whether this node decides for the group's tenants right now.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst) != 0
    }

    /// Whether `tenant` is being (or has been) moved away from this group.
    pub fn is_moving(&self, tenant: &TenantId) -> bool {
        self.moving.contains(tenant)
            || self
                .group
                .state
                .read()
                .map(|s| s.moved.contains_key(tenant) || s.moved_to.contains_key(tenant))
                .unwrap_or(false)
    }

    /// Stop deciding for `tenant` and wait until its writes are applied,
    /// so its committed state is complete.
    pub(crate) async fn freeze(&self, tenant: TenantId) -> Result<(), EngineError> {
        self.moving.insert(tenant);
        if let Some((_, actor)) = self.actors.remove(&tenant) {
            actor.stop(None);
        }
        let sync = self.syncs.entry(tenant).or_default().clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sync.pending.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() > deadline {
                self.moving.remove(&tenant);
                return Err(EngineError::Busy { tenant });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Stop deciding (for a leadership hand-over).
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.serving.store(0, Ordering::SeqCst);
        self.retire_all();
    }

    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// The group's leader as this node knows it.
    pub fn leader(&self) -> Option<crate::raft::NodeId> {
        self.group.raft.metrics().borrow().current_leader
    }

    fn not_leader(&self) -> EngineError {
        EngineError::NotLeader {
            group: self.group.id,
            leader: self.leader(),
        }
    }

    /// Stop every actor: their state may hold decisions this node can no
    /// longer commit. Their in-flight writes still settle (commit or fail)
    /// before any successor activates.
    fn retire_all(&self) {
        let actors: Vec<_> = self.actors.iter().map(|a| a.value().clone()).collect();
        self.actors.clear();
        for a in actors {
            a.stop(None);
        }
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
        let actor = (self.spawn)(tenant, self.clone())
            .await
            .map_err(|e| EngineError::Raft {
                group: self.group.id,
                message: format!("cannot start tenant actor: {e}"),
            })?;
        self.actors.insert(tenant, actor.clone());
        Ok(actor)
    }

    /// Take a place in `tenant`'s queue (messages sent to its actor and
    /// not yet answered), or refuse when it is full. Counted per tenant,
    /// outliving any one actor, so a restarting actor's queue is bounded too.
    /// `weight`: the requests the message carries (a Batch's items), as
    /// counted by the shed metric when it is refused.
    fn enqueue(&self, tenant: TenantId, weight: usize) -> Result<Queued, EngineError> {
        let sync = match self.syncs.get(&tenant) {
            Some(s) => s.clone(),
            None => self.syncs.entry(tenant).or_default().clone(),
        };
        let limit = self.shedder.limits.tenant_queue;
        if sync.queued.fetch_add(1, Ordering::AcqRel) >= limit {
            sync.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(self
                .shedder
                .shed(Shed::TenantQueue { tenant, limit }, weight)
                .into());
        }
        Ok(Queued(sync))
    }

    /// Ask the tenant's actor, starting it if needed.
    pub async fn call(
        self: &Arc<Self>,
        tenant: TenantId,
        call: &TenantCall,
    ) -> Result<TenantAnswer, EngineError> {
        let weight = call.weight();
        let trace = crate::trace::Sent::current();
        let msg = |reply| TenantMsg::Call {
            call: call.clone(),
            reply,
            trace: trace.clone(),
        };
        let _queued = self.enqueue(tenant, weight)?;
        for _ in 0..ATTEMPTS {
            if !self.serving() {
                return Err(self.not_leader());
            }
            if self.moving.contains(&tenant) {
                return Err(EngineError::TenantMoving { tenant });
            }
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

/// Waits until this leader is confirmed by a quorum and has applied every
/// entry in its log, so actors started afterwards read complete state.
///
/// `ensure_linearizable` alone is not enough: a node that restarts with a
/// committed vote for itself resumes leading in the same term, without a
/// new no-op entry, and openraft then waits only for
/// max(first entry of the term, the commit index it had persisted). That
/// persisted index may predate the last entries it acknowledged before
/// the crash (it is not fsync'd on its own), so the read barrier would pass
/// with those entries unapplied. Everything in a leader's log is committed
/// by that leader while it stays leader, so waiting for the last entry is
/// both complete and bounded.
async fn leader_barrier(raft: &openraft::Raft<crate::raft::TypeConfig>) -> Result<(), String> {
    raft.ensure_linearizable()
        .await
        .map_err(|e| e.to_string())?;
    let last = raft.metrics().borrow().last_log_index;
    raft.wait(None)
        .applied_index_at_least(last, "serving: the leader's whole log applied")
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Follows the group's Raft state: on becoming leader, wait until
/// everything committed before is applied (a linearizable read barrier),
/// then serve; on losing leadership, stop serving and retire the actors.
/// Re-checked periodically too, since a commit timeout also stops serving.
async fn watch_leadership(shard: std::sync::Weak<Shard>, barrier_timeout: Duration) {
    let Some(mut metrics) = shard.upgrade().map(|s| s.group.raft.metrics()) else {
        return;
    };
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.state == ServerState::Leader, m.current_term)
        };
        let Some(s) = shard.upgrade() else { return };
        let served = s.serving.load(Ordering::SeqCst);
        if s.paused.load(Ordering::SeqCst) {
            // Handing over: the transfer resumes us when done.
        } else if leader && served != term {
            if served != 0 {
                s.serving.store(0, Ordering::SeqCst);
            }
            // Actors from an earlier term (or from before a failed commit)
            // must not decide on.
            s.retire_all();
            match tokio::time::timeout(barrier_timeout, leader_barrier(&s.group.raft)).await {
                Ok(Ok(())) => {
                    tracing::info!(group = s.group.id, term, "leading; serving tenants");
                    s.serving.store(term, Ordering::SeqCst);
                }
                Ok(Err(e)) => {
                    tracing::debug!(group = s.group.id, error = %e, "not confirmed as leader")
                }
                Err(_) => tracing::debug!(group = s.group.id, "leadership not confirmed in time"),
            }
        } else if !leader && served != 0 {
            tracing::info!(group = s.group.id, "no longer leading; actors retired");
            s.serving.store(0, Ordering::SeqCst);
            s.retire_all();
        }
        drop(s);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
