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
//! all (up to `max_batch`). Entries are handed to Raft in queue order, so the
//! log keeps each tenant's operations in the order its actor decided them.
use crate::error::EngineError;
use crate::quota::OpOutcome;
use crate::raft::{Command, Group, StampedOp};
use ractor::RpcReplyPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Semaphore, mpsc};

/// Shared between a tenant actor and the batcher: how many of the actor's
/// operations are not yet applied, and whether one failed to commit.
#[derive(Debug, Default)]
pub struct TenantSync {
    pub pending: AtomicUsize,
    /// Set when a logged operation failed to commit: the actor's state is
    /// ahead of the log and must be rebuilt from the state machine.
    pub poisoned: AtomicBool,
}

/// What to do once the operation's entry is applied.
// Most writes are strict and carry `Reply`; boxing it would allocate on the
// common path to save bytes on the rare one.
#[allow(clippy::large_enum_variant)]
pub enum Completion {
    /// Strict: answer the caller now.
    Reply(RpcReplyPort<Result<OpOutcome, EngineError>>, OpOutcome),
    /// Fast: the caller already has its answer.
    None,
}

pub struct PendingWrite {
    pub op: StampedOp,
    pub completion: Completion,
    pub sync: Arc<TenantSync>,
}

/// Entries in flight at once: one being made durable while the next fills.
const MAX_IN_FLIGHT: usize = 2;

pub async fn run(group: Group, mut rx: mpsc::UnboundedReceiver<PendingWrite>, max_batch: usize) {
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
            ops.push(w.op);
            waiters.push((w.completion, w.sync));
            next = if ops.len() < max_batch {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let group_id = group.id;
        match group.raft.client_write_ff(Command::Batch(ops)).await {
            Ok(done) => {
                tokio::spawn(async move {
                    let result = match done.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("raft dropped the write".to_string()),
                    };
                    complete(group_id, waiters, result);
                    drop(permit);
                });
            }
            Err(fatal) => complete(group_id, waiters, Err(fatal.to_string())),
        }
    }
}

fn complete(group: u64, waiters: Vec<(Completion, Arc<TenantSync>)>, result: Result<(), String>) {
    for (completion, sync) in waiters {
        if result.is_err() {
            sync.poisoned.store(true, Ordering::SeqCst);
        }
        sync.pending.fetch_sub(1, Ordering::SeqCst);
        if let Completion::Reply(port, outcome) = completion {
            let answer = match &result {
                Ok(()) => Ok(outcome),
                Err(message) => Err(EngineError::Raft {
                    group,
                    message: format!("not committed: {message}"),
                }),
            };
            // The caller may have given up; nothing to do then.
            let _ = port.send(answer);
        }
    }
}
