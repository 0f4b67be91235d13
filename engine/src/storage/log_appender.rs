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
use tokio::sync::{mpsc, oneshot};

/// Appends waiting for the writer thread, across groups.
const QUEUE: usize = 1_024;

/// One group's entries: (log index, encoded entry).
pub(crate) type Rows = Vec<(u64, Vec<u8>)>;

struct Job {
    group: u64,
    rows: Rows,
    done: oneshot::Sender<Result<(), StorageError>>,
}

pub(crate) struct LogAppender {
    jobs: mpsc::Sender<Job>,
}

impl LogAppender {
    /// Starts the writer thread; it ends when the appender is dropped.
    pub(crate) fn start(db: Arc<Database>, failure: FirstFailure) -> LogAppender {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
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
        LogAppender { jobs }
    }

    /// Durably append `rows` to `group`'s log: returns once they are on
    /// disk, together with whatever other groups appended meanwhile.
    pub(crate) async fn append(&self, group: u64, rows: Rows) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { group, rows, done })
            .await
            .map_err(|_| StorageError::LogWriterStopped)?;
        wait.await.map_err(|_| StorageError::LogWriterStopped)?
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
