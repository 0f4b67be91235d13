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
//! all (up to `max_batch` operations and [`MAX_ENTRY_BYTES`]). The queue
//! is bounded (`Limits::commit_queue`): an actor takes a slot before it
//! decides a change, and refuses the request when there is none
//! (`crate::shed`). Entries are handed to Raft in queue order, so the log
//! keeps each tenant's operations in the order its actor decided them.
//!
//! Callers are answered with what the state machine applied, not with the
//! actor's prediction; the two must agree, and if they ever do not, the
//! actor is rebuilt from committed state.
use super::call::TenantAnswer;
use crate::error::EngineError;
use crate::quota::OpOutcome;
use crate::raft::{Command, CommandResponse, Group, NodeId, StampedOp};
use crate::trace::{Sent, Span};
use openraft::error::ClientWriteError;
use opentelemetry::trace::SpanKind;
use ractor::RpcReplyPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
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
    pub reply: Option<RpcReplyPort<Result<TenantAnswer, EngineError>>>,
    pub sync: Arc<TenantSync>,
    /// The traced request it is part of, if sampled: its commit is spanned.
    pub trace: Option<Box<Sent>>,
}

struct Waiter {
    index: Option<usize>,
    expected: OpOutcome,
    reply: Option<RpcReplyPort<Result<TenantAnswer, EngineError>>>,
    sync: Arc<TenantSync>,
    trace: Option<Box<Sent>>,
}

/// Entries in flight at once: one being made durable while the next fills.
const MAX_IN_FLIGHT: usize = 2;

/// Most bytes of operations (encoded) in one entry, unless its first
/// operation alone is larger. Every entry must reach the followers in one
/// message (at most 64 MiB, see `raft::network`): 4,096 operations of up to
/// a client request's size each (a tenant created with 64 KiB of settings,
/// say) could otherwise make an entry of hundreds of MiB that no follower
/// ever receives. An increment encodes to at most about 360 bytes (a
/// 64-byte quota name, a 256-byte idempotency key), so a full 4,096-op
/// batch of them is about 1.4 MiB; this bound cuts only such extremes.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// The operations of one entry and who waits for them.
struct Packed {
    ops: Vec<StampedOp>,
    waiters: Vec<Waiter>,
    /// Taken from the queue but over the entry's bound: it starts the next.
    carry: Option<PendingWrite>,
    /// Whether a waiter is part of a traced request.
    traced: bool,
}

/// Pack `first` and whatever is queued behind it into one entry: at most
/// `max_batch` writes and `max_bytes` of operations, but always `first`.
fn pack(
    first: PendingWrite,
    rx: &mut mpsc::Receiver<PendingWrite>,
    max_batch: usize,
    max_bytes: usize,
) -> Packed {
    let mut ops = Vec::with_capacity(64);
    let mut waiters = Vec::with_capacity(64);
    let mut bytes = 0usize;
    let mut traced = false;
    let mut next = Some(first);
    while let Some(w) = next {
        if let Some(op) = &w.op {
            let size = crate::format::encoded_len(op);
            if !ops.is_empty() && bytes.saturating_add(size) > max_bytes {
                return Packed {
                    ops,
                    waiters,
                    carry: Some(w),
                    traced,
                };
            }
            bytes = bytes.saturating_add(size);
        }
        let index = w.op.map(|op| {
            ops.push(op);
            ops.len() - 1
        });
        traced |= w.trace.is_some();
        waiters.push(Waiter {
            index,
            expected: w.expected,
            reply: w.reply,
            sync: w.sync,
            trace: w.trace,
        });
        next = if waiters.len() < max_batch {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    Packed {
        ops,
        waiters,
        carry: None,
        traced,
    }
}

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
    let mut carry = None;
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(w) => w,
            None => match rx.recv().await {
                Some(w) => w,
                None => return,
            },
        };
        let packed = pack(first, &mut rx, max_batch, MAX_ENTRY_BYTES);
        let (ops, waiters) = (packed.ops, packed.waiters);
        carry = packed.carry;
        let group_id = group.id;
        // A traced request's entry: when it was handed to Raft, and its
        // apply timed (see `trace::ApplyClock`).
        let traced = packed.traced.then(|| {
            group.applies.want();
            (SystemTime::now(), ops.len())
        });
        match group.raft.client_write_ff(Command::Batch(ops)).await {
            Ok(done) => {
                let serving = serving.clone();
                let group = group.clone();
                tokio::spawn(async move {
                    let mut index = None;
                    let result = match tokio::time::timeout(commit_timeout, done).await {
                        Ok(Ok(Ok(r))) => match r.data {
                            CommandResponse::Batch(outcomes) => {
                                index = Some(r.log_id.index);
                                Ok(outcomes)
                            }
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
                    if let Some((handed, ops)) = traced {
                        let applied = group.applies.take(index);
                        let entry = Entry {
                            group: group_id,
                            ops,
                            index,
                            handed,
                            applied,
                        };
                        trace_commits(&waiters, &entry, &result);
                    }
                    complete(group_id, waiters, result);
                    drop(permit);
                });
            }
            Err(fatal) => {
                if traced.is_some() {
                    group.applies.take(None);
                }
                complete(group_id, waiters, Err(Failure::Unknown(fatal.to_string())))
            }
        }
    }
}

/// What a traced request's commit span tells about its entry.
struct Entry {
    group: u64,
    ops: usize,
    index: Option<u64>,
    /// When it was handed to Raft (before: waiting in the batcher's queue).
    handed: SystemTime,
    /// When this node's state machine applied it.
    applied: Option<(SystemTime, SystemTime)>,
}

/// The commit span (and its apply's) of each traced waiter of an entry.
fn trace_commits(
    waiters: &[Waiter],
    entry: &Entry,
    result: &Result<Vec<Option<OpOutcome>>, Failure>,
) {
    let now = SystemTime::now();
    for sent in waiters.iter().filter_map(|w| w.trace.as_deref()) {
        let Some(mut span) = Span::start(
            "quotad.commit",
            SpanKind::Internal,
            Some(sent.parent),
            sent.at,
        ) else {
            return;
        };
        span.set("quotad.group", entry.group as i64);
        span.set("quotad.entry_ops", entry.ops as i64);
        if let Some(i) = entry.index {
            span.set("quotad.log_index", i as i64);
        }
        span.event_at("handed to raft", entry.handed);
        if let Err(f) = result {
            span.error(match f {
                Failure::NotLeader(_) => "not the leader any more".to_string(),
                Failure::Unknown(why) => why.clone(),
            });
        }
        if let Some((start, end)) = entry.applied
            && let Some(apply) = Span::start(
                "quotad.apply",
                SpanKind::Internal,
                Some(span.parent()),
                start,
            )
        {
            apply.end_at(end);
        }
        span.end_at(now);
    }
}

fn complete(group: u64, waiters: Vec<Waiter>, mut result: Result<Vec<Option<OpOutcome>>, Failure>) {
    for w in waiters {
        // (answer, whether the actor's state can no longer be trusted)
        let (answer, poison) = match (&mut result, w.index) {
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
            // Each operation has one waiter: its outcome is taken, not copied.
            (Ok(outcomes), Some(i)) => match outcomes.get_mut(i).and_then(Option::take) {
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
            let _ = port.send(answer.map(TenantAnswer::Outcome));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::TenantOp;

    /// A write whose operation encodes to about `bytes` bytes (an audit
    /// record with a long detail).
    fn write(bytes: usize) -> PendingWrite {
        PendingWrite {
            op: Some(StampedOp {
                tenant: uuid::Uuid::from_u128(1),
                at_ms: 0,
                op: TenantOp::Audit {
                    action: "a".into(),
                    target: "t".into(),
                    detail: "d".repeat(bytes),
                },
                audit: None,
            }),
            expected: OpOutcome::Tenant,
            reply: None,
            sync: Arc::default(),
            trace: None,
        }
    }

    fn queue(writes: Vec<PendingWrite>) -> mpsc::Receiver<PendingWrite> {
        let (tx, rx) = mpsc::channel(writes.len().max(1));
        for w in writes {
            tx.try_send(w).unwrap();
        }
        rx
    }

    fn entry_bytes(p: &Packed) -> usize {
        crate::format::encode(&Command::Batch(p.ops.clone()))
            .unwrap()
            .len()
    }

    #[test]
    fn an_entry_stops_at_its_byte_bound_and_the_next_write_starts_the_next_one() {
        // 64 writes of 64 KiB: 4 MiB queued, at most 1 MiB an entry.
        let mut rx = queue((0..63).map(|_| write(64 << 10)).collect());
        let mut first = Some(write(64 << 10));
        let mut sizes = Vec::new();
        let mut writes = 0;
        while let Some(f) = first.take().or_else(|| rx.try_recv().ok()) {
            let p = pack(f, &mut rx, 4096, MAX_ENTRY_BYTES);
            assert!(
                entry_bytes(&p) <= MAX_ENTRY_BYTES,
                "{} bytes",
                entry_bytes(&p)
            );
            writes += p.waiters.len();
            sizes.push(p.ops.len());
            first = p.carry;
        }
        assert_eq!(writes, 64, "every write is in an entry, once");
        assert!(sizes.len() >= 4, "{sizes:?}");
        let full = &sizes[..sizes.len() - 1];
        assert!(
            full.iter().all(|n| *n >= 14),
            "entries are filled: {sizes:?}"
        );
    }

    #[test]
    fn a_write_larger_than_the_bound_is_an_entry_of_its_own() {
        let mut rx = queue(vec![write(2 << 20), write(10)]);
        let p = pack(write(10), &mut rx, 4096, MAX_ENTRY_BYTES);
        assert_eq!(p.ops.len(), 1, "the small first write goes alone");
        let big = p.carry.expect("the large write starts the next entry");
        let p = pack(big, &mut rx, 4096, MAX_ENTRY_BYTES);
        assert_eq!(p.ops.len(), 1, "the large write goes alone");
        assert!(entry_bytes(&p) > MAX_ENTRY_BYTES);
        let p = pack(
            p.carry.expect("the next write waits"),
            &mut rx,
            4096,
            MAX_ENTRY_BYTES,
        );
        assert_eq!((p.ops.len(), p.carry.is_none()), (1, true));
    }

    #[test]
    fn the_operation_count_bound_still_holds() {
        let mut rx = queue((0..9).map(|_| write(10)).collect());
        let p = pack(write(10), &mut rx, 4, MAX_ENTRY_BYTES);
        assert_eq!((p.ops.len(), p.carry.is_none()), (4, true));
    }
}
