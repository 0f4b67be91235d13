//! Group commit: tenant actors hand their logged operations to the shard's
//! batcher, which packs whatever has queued up into one Raft entry.
//!
//! ```text
//!  actor A ─┐                  ┌─ entry n:   [a1 b1 a2]  ─┐
//!  actor B ─┼─> queue ─> batcher                          ├─> raft (≤ 2 in flight)
//!  actor C ─┘                  └─ entry n+1: [c1 a3 ...]  ─┘
//! ```
//!
//! Batches are sized by load, not by a timer: while earlier entries are
//! being made durable, new operations queue, and the next entry takes them
//! all (up to `max_batch`). The queue is bounded (`Limits::commit_queue`):
//! an actor takes a slot before it decides a change, and refuses the
//! request when there is none (`crate::shed`). Entries are handed to Raft in queue order, so the
//! log keeps each tenant's operations in the order its actor decided them.
//!
//! Callers are answered with what the state machine applied, not with the
//! actor's prediction; the two must agree, and if they ever do not, the
//! actor is rebuilt from committed state.
use crate::error::EngineError;
use crate::quota::OpOutcome;
use crate::raft::{Command, CommandResponse, Group, NodeId, StampedOp};
use openraft::error::ClientWriteError;
use ractor::RpcReplyPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Shared between a tenant's actor(s) and the batcher: how many of the
/// tenant's operations are not yet applied, and whether one failed.
#[derive(Debug, Default)]
pub struct TenantSync {
    pub pending: AtomicUsize,
    /// Messages sent to the tenant's actor and not yet answered (bounded
    /// by `Limits::tenant_queue`).
    pub queued: AtomicUsize,
    /// Set when a logged operation failed to commit or applied differently:
    /// the actor's state is not the log's and must be rebuilt.
    pub poisoned: AtomicBool,
}

pub struct PendingWrite {
    /// `None`: a barrier, answered once everything queued before it is
    /// applied (a replayed answer to a change still in flight).
    pub op: Option<StampedOp>,
    /// What the actor decided.
    pub expected: OpOutcome,
    /// Strict callers wait here; fast callers already have their answer.
    pub reply: Option<RpcReplyPort<Result<OpOutcome, EngineError>>>,
    pub sync: Arc<TenantSync>,
}

struct Waiter {
    index: Option<usize>,
    expected: OpOutcome,
    reply: Option<RpcReplyPort<Result<OpOutcome, EngineError>>>,
    sync: Arc<TenantSync>,
}

/// Entries in flight at once: one being made durable while the next fills.
const MAX_IN_FLIGHT: usize = 2;

/// Why a batch did not commit.
#[derive(Debug, Clone)]
enum Failure {
    /// Refused before it was appended: nothing happened.
    NotLeader(Option<NodeId>),
    /// Appended, then the leader lost track of it (deposed, partitioned,
    /// stopped): it may still commit under the next leader.
    Unknown(String),
}

pub async fn run(
    group: Group,
    mut rx: mpsc::Receiver<PendingWrite>,
    max_batch: usize,
    commit_timeout: Duration,
    serving: Arc<AtomicU64>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut ops = Vec::with_capacity(64);
        let mut waiters = Vec::with_capacity(64);
        let mut next = Some(first);
        while let Some(w) = next {
            let index = w.op.map(|op| {
                ops.push(op);
                ops.len() - 1
            });
            waiters.push(Waiter {
                index,
                expected: w.expected,
                reply: w.reply,
                sync: w.sync,
            });
            next = if waiters.len() < max_batch {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let group_id = group.id;
        match group.raft.client_write_ff(Command::Batch(ops)).await {
            Ok(done) => {
                let serving = serving.clone();
                tokio::spawn(async move {
                    let result = match tokio::time::timeout(commit_timeout, done).await {
                        Ok(Ok(Ok(r))) => match r.data {
                            CommandResponse::Batch(outcomes) => Ok(outcomes),
                            other => {
                                Err(Failure::Unknown(format!("unexpected response {other:?}")))
                            }
                        },
                        Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => {
                            Err(Failure::NotLeader(f.leader_id))
                        }
                        Ok(Ok(Err(e))) => Err(Failure::Unknown(e.to_string())),
                        Ok(Err(_)) => Err(Failure::Unknown("raft dropped the write".into())),
                        Err(_) => {
                            // No quorum within the timeout (a partitioned
                            // leader): stop deciding until leadership is
                            // confirmed again.
                            serving.store(0, Ordering::SeqCst);
                            Err(Failure::Unknown(format!(
                                "not committed within {} ms",
                                commit_timeout.as_millis()
                            )))
                        }
                    };
                    complete(group_id, waiters, result);
                    drop(permit);
                });
            }
            Err(fatal) => complete(group_id, waiters, Err(Failure::Unknown(fatal.to_string()))),
        }
    }
}

fn complete(group: u64, waiters: Vec<Waiter>, result: Result<Vec<Option<OpOutcome>>, Failure>) {
    for w in waiters {
        // (answer, whether the actor's state can no longer be trusted)
        let (answer, poison) = match (&result, w.index) {
            (Err(Failure::NotLeader(leader)), _) => (
                Err(EngineError::NotLeader {
                    group,
                    leader: *leader,
                }),
                true,
            ),
            (Err(Failure::Unknown(reason)), _) => (
                Err(EngineError::OutcomeUnknown {
                    group,
                    reason: reason.clone(),
                }),
                true,
            ),
            (Ok(_), None) => (Ok(w.expected), false),
            (Ok(outcomes), Some(i)) => match outcomes.get(i).cloned().flatten() {
                Some(applied) if applied == w.expected => (Ok(applied), false),
                Some(applied) => {
                    tracing::error!(group, expected = ?w.expected, ?applied, "state machine disagreed with the tenant actor");
                    (Ok(applied), true)
                }
                None => (
                    Err(EngineError::Raft {
                        group,
                        message: "the state machine refused the operation".into(),
                    }),
                    true,
                ),
            },
        };
        if poison {
            w.sync.poisoned.store(true, Ordering::SeqCst);
        }
        w.sync.pending.fetch_sub(1, Ordering::SeqCst);
        if let Some(port) = w.reply {
            // The caller may have given up; nothing to do then.
            let _ = port.send(answer);
        }
    }
}
