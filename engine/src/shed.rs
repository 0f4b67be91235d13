//! Load shedding. Every queue a request can wait in on its way to a
//! decision is bounded; what does not fit is refused at once with
//! [`EngineError::Overloaded`] (gRPC `RESOURCE_EXHAUSTED`, HTTP 429 with
//! `Retry-After`) and counted in `quotad_requests_shed_total{reason}`,
//! instead of queueing until memory runs out.
//!
//! ```text
//!  request ─> node in-flight ─> tenant queue ─> tenant actor ─> commit queue ─> batcher ─> Raft
//!             (max_in_flight,   (tenant_queue,                  (commit_queue,
//!              per node)         per tenant)                     per group)
//! ```
//!
//! - **Node in-flight**: requests (Batch and Stream: items) this node is
//!   serving at once, its own and those forwarded to it. Bounds everything
//!   a request holds while it waits: its task, its actor message, its
//!   strict commit wait, a Batch's fan-out.
//! - **Tenant queue**: messages sent to one tenant's actor and not yet
//!   answered, so one hot tenant cannot take the whole node's budget.
//! - **Commit queue**: decided changes waiting for the group's next Raft
//!   entry. A change takes its slot *before* the actor decides it, so a
//!   fast-mode increment is refused rather than answered and then queued
//!   without bound; it also caps what a fast-mode leader crash can lose.
//!
//! A refusal is a [`Shed`] (the bound that refused); the error layer turns
//! it into `EngineError::Overloaded`.
//!
//! Each check is one atomic operation (a counter, or a bounded channel's
//! permit); nothing on the hot path takes a lock.
use crate::model::TenantId;
use metrics::Counter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long a shed caller should wait before retrying: about one commit
/// round, the time it takes the queues to drain a batch. Sent as gRPC
/// `grpc-retry-pushback-ms` and, rounded up to a second, HTTP `Retry-After`.
pub const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The bounds, set per node (`quotad serve --max-in-flight` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests (Batch and Stream items count one each) served at once.
    pub max_in_flight: usize,
    /// Messages waiting for or being handled by one tenant's actor.
    pub tenant_queue: usize,
    /// Decided changes waiting for a Raft entry, per shard group.
    pub commit_queue: usize,
}

impl Default for Limits {
    /// Sized from the load runs in BENCHMARKS.md: the busiest closed-loop
    /// loads there keep at most ~4,000 decisions in flight (2 x 2 Batches
    /// of 1,000; 2 streams x 256), so 16,384 leaves room for four times
    /// that and still bounds memory: a node held at these bounds by twelve
    /// times as much outstanding load peaked under 190 MiB RSS (debug
    /// build; `tests/overload.rs`). One tenant's 1,024 strict calls at a
    /// few ms per commit are far more than a node decides for one tenant.
    /// A group commits up to `max_batch` (4,096) operations per entry with
    /// two entries in flight: a commit queue of two more entries' worth
    /// keeps the pipeline full, and more would only add latency (and
    /// fast-mode exposure to a crash).
    fn default() -> Self {
        Limits {
            max_in_flight: 16_384,
            tenant_queue: 1_024,
            commit_queue: 8_192,
        }
    }
}

/// Which bound refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    NodeInFlight { limit: usize },
    TenantQueue { tenant: TenantId, limit: usize },
    CommitQueue { group: u64, limit: usize },
}

impl Shed {
    /// The `reason` label of `quotad_requests_shed_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Shed::NodeInFlight { .. } => "node_in_flight",
            Shed::TenantQueue { .. } => "tenant_queue",
            Shed::CommitQueue { .. } => "commit_queue",
        }
    }

    fn index(&self) -> usize {
        match self {
            Shed::NodeInFlight { .. } => 0,
            Shed::TenantQueue { .. } => 1,
            Shed::CommitQueue { .. } => 2,
        }
    }
}

impl std::fmt::Display for Shed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shed::NodeInFlight { limit } => {
                write!(f, "this node is serving its limit of {limit} requests")
            }
            Shed::TenantQueue { tenant, limit } => {
                write!(
                    f,
                    "tenant {tenant} has its limit of {limit} requests queued"
                )
            }
            Shed::CommitQueue { group, limit } => write!(
                f,
                "group {group} has its limit of {limit} changes waiting to be committed"
            ),
        }
    }
}

/// The node's admission state: the in-flight count and the shed counters.
pub(crate) struct Shedder {
    pub(crate) limits: Limits,
    in_flight: AtomicUsize,
    /// Registered once (at engine start, after the binary installed its
    /// recorder): counting a shed request is an atomic add.
    shed: [Counter; 3],
}

/// Requests admitted by [`Shedder::admit`]; released when dropped, so a
/// request abandoned half-way (its caller gone, a timeout) frees its place.
pub(crate) struct InFlight<'a> {
    shedder: &'a Shedder,
    n: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shedder.in_flight.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl Shedder {
    pub(crate) fn new(limits: Limits) -> Shedder {
        let counter = |reason: &'static str| metrics::counter!(crate::telemetry::REQUESTS_SHED, "reason" => reason);
        Shedder {
            limits,
            in_flight: AtomicUsize::new(0),
            shed: [
                counter("node_in_flight"),
                counter("tenant_queue"),
                counter("commit_queue"),
            ],
        }
    }

    /// Admit `n` requests, or refuse them all. A node with nothing in
    /// flight admits any `n`, so one Batch larger than the limit is served
    /// (alone) rather than never.
    pub(crate) fn admit(&self, n: usize) -> Result<InFlight<'_>, Shed> {
        let before = self.in_flight.fetch_add(n, Ordering::AcqRel);
        let admitted = InFlight { shedder: self, n };
        if before == 0 || before + n <= self.limits.max_in_flight {
            return Ok(admitted);
        }
        drop(admitted);
        Err(self.shed(
            Shed::NodeInFlight {
                limit: self.limits.max_in_flight,
            },
            n,
        ))
    }

    /// Count `n` requests refused for `why`.
    pub(crate) fn shed(&self, why: Shed, n: usize) -> Shed {
        self.shed[why.index()].increment(n as u64);
        why
    }

    /// Requests being served now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released_on_drop() {
        let s = Shedder::new(Limits {
            max_in_flight: 3,
            ..Limits::default()
        });
        let a = s.admit(2).unwrap();
        let b = s.admit(1).unwrap();
        let err = s.admit(1).err().expect("over the limit");
        assert_eq!(err, Shed::NodeInFlight { limit: 3 });
        let err = crate::error::EngineError::from(err);
        assert_eq!(err.code(), crate::error_code::ErrorCode::ResourceExhausted);
        // A refusal takes nothing.
        assert_eq!(s.in_flight(), 3);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        let c = s.admit(2).unwrap();
        drop((b, c));
        assert_eq!(s.in_flight(), 0);
        // Alone, a request larger than the limit is served.
        let big = s.admit(10).unwrap();
        assert!(s.admit(1).is_err());
        drop(big);
        assert_eq!(s.in_flight(), 0);
    }
}
