//! Group commit across Raft groups. Every group of a node appends to the
//! same redb file, and redb runs one write transaction at a time, each
//! durable commit an fsync. Appended one transaction per group, a node with
//! several busy groups pays one fsync per group per round; here one thread
//! takes every append queued while the previous commit was on disk and
//! writes them all in one transaction, so the fsync rate stays one stream
//! however many groups are busy, and batches grow with the load.
//!
//! The queue is bounded ([`QUEUE`] jobs) and full means wait, not refuse:
//! an append must not be dropped, and a waiting group's Raft core slows
//! its batcher, whose own bounded queue then sheds requests. Each group's
//! log store awaits its append before the next, so there is at most one
//! job per group and the bound is reached only with more groups than that.
use super::StorageError;
use super::first_failure::FirstFailure;
use super::tables::LOGS;
use redb::Database;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Appends waiting for the writer thread, across groups.
const QUEUE: usize = 1_024;

/// One group's entries: (log index, encoded entry).
pub(crate) type Rows = Vec<(u64, Vec<u8>)>;

struct Job {
    group: u64,
    rows: Rows,
    /// Tenant operations (decisions and changes) in the rows.
    ops: u64,
    done: oneshot::Sender<Result<(), StorageError>>,
}

pub(crate) struct LogAppender {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// What the writer has made durable since the node started: each commit is
/// one fsync of the log, so `ops / commits` is how many operations an fsync
/// carries (the group commit's batch size) and the commit rate is the fsync
/// rate.
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    entries: AtomicU64,
    ops: AtomicU64,
}

/// A reading of [`LogAppender::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCommits {
    /// Durable commits (one fsync each).
    pub commits: u64,
    /// Raft log entries written.
    pub entries: u64,
    /// Tenant operations in those entries.
    pub ops: u64,
}

impl LogAppender {
    /// Starts the writer thread; it ends when the appender is dropped.
    pub(crate) fn start(db: Arc<Database>, failure: FirstFailure) -> LogAppender {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let commits = metrics::counter!(crate::telemetry::LOG_COMMITS);
        let entries = metrics::counter!(crate::telemetry::LOG_ENTRIES);
        let ops = metrics::counter!(crate::telemetry::LOG_OPS);
        std::thread::Builder::new()
            .name("quotad-log-append".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while let Ok(job) = rx.try_recv() {
                        batch.push(job);
                    }
                    // Shared by every job of the batch: the commit they
                    // were all part of failed, for the same reason.
                    let result = failure.check(commit(&db, &batch)).map_err(Arc::new);
                    if result.is_ok() {
                        let rows = batch.iter().map(|j| j.rows.len() as u64).sum();
                        let decided = batch.iter().map(|j| j.ops).sum();
                        counted.commits.fetch_add(1, Ordering::Relaxed);
                        counted.entries.fetch_add(rows, Ordering::Relaxed);
                        counted.ops.fetch_add(decided, Ordering::Relaxed);
                        commits.increment(1);
                        entries.increment(rows);
                        ops.increment(decided);
                    }
                    for job in batch {
                        // A dropped receiver is a caller that gave up
                        // (its group shutting down); the rows are written.
                        let _ = job.done.send(match &result {
                            Ok(()) => Ok(()),
                            Err(cause) => Err(StorageError::LogAppend(cause.clone())),
                        });
                    }
                }
            })
            .expect("spawning the log append thread");
        LogAppender { jobs, counts }
    }

    /// Durably append `rows` (holding `ops` tenant operations) to
    /// `group`'s log: returns once they are on disk, together with whatever
    /// other groups appended meanwhile.
    pub(crate) async fn append(
        &self,
        group: u64,
        rows: Rows,
        ops: u64,
    ) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job {
                group,
                rows,
                ops,
                done,
            })
            .await
            .map_err(|_| StorageError::LogWriterStopped)?;
        wait.await.map_err(|_| StorageError::LogWriterStopped)?
    }
}

impl LogAppender {
    /// Commits, entries and operations made durable so far.
    pub(crate) fn counts(&self) -> LogCommits {
        LogCommits {
            commits: self.counts.commits.load(Ordering::Relaxed),
            entries: self.counts.entries.load(Ordering::Relaxed),
            ops: self.counts.ops.load(Ordering::Relaxed),
        }
    }
}

fn commit(db: &Database, batch: &[Job]) -> Result<(), StorageError> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(LOGS)?;
        for job in batch {
            for (index, bytes) in &job.rows {
                t.insert((job.group, *index), bytes.as_slice())?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}
