//! How far a group's stored snapshot reaches, shared by its state machine
//! (which stores snapshots) and its log store (which purges the log they
//! cover), so the log store never deletes an entry no stored snapshot
//! holds.
//!
//! openraft 0.9 purges a follower's log as soon as it decides to install a
//! snapshot from the leader, while its state machine is still storing that
//! snapshot. A kill -9 between the two left committed entries in neither
//! place, and the node could not start again ("Failed to get log entries").
//! So a purge waits until a stored snapshot covers what it deletes; a
//! snapshot a leader builds is stored before openraft asks for the purge,
//! so only an install ever waits, and only for its own write.
use std::time::Duration;
use tokio::sync::watch;

/// How long a purge waits for the snapshot that covers it to be stored.
/// Longer means the install that should store it failed (which stops the
/// group anyway).
pub const PURGE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct DurableSnapshot {
    /// One past the last log index the stored snapshot includes (0: none).
    covered: watch::Sender<u64>,
}

impl DurableSnapshot {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(DurableSnapshot {
            covered: watch::Sender::new(0),
        })
    }

    /// A snapshot including log index `last` is now stored (durably).
    pub fn stored(&self, last: Option<u64>) {
        let end = last.map_or(0, |l| l + 1);
        self.covered.send_if_modified(|c| {
            let grew = end > *c;
            *c = (*c).max(end);
            grew
        });
    }

    /// Wait, up to `wait` ([`PURGE_WAIT`]), until a stored snapshot
    /// includes log index `index`.
    pub async fn covering(&self, index: u64, wait: Duration) -> Result<(), String> {
        let mut covered = self.covered.subscribe();
        match tokio::time::timeout(wait, covered.wait_for(|c| *c > index)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "no stored snapshot includes log index {index} after {} ms; the log it would \
                 purge is kept",
                wait.as_millis()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_purge_waits_for_the_snapshot_that_covers_it() {
        let d = DurableSnapshot::new();
        d.stored(Some(10));
        d.covering(10, PURGE_WAIT).await.unwrap();
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move { d.covering(50, PURGE_WAIT).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "purged past the stored snapshot");
        // An older snapshot does not move it back, a newer one releases it.
        d.stored(Some(5));
        d.stored(Some(50));
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_snapshot_never_stored_fails_the_purge() {
        let d = DurableSnapshot::new();
        let err = d.covering(0, Duration::from_millis(10)).await.unwrap_err();
        assert!(err.contains("log index 0"), "{err}");
    }
}
