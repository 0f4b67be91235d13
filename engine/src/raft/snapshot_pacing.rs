//! When a group builds a snapshot. A snapshot serializes the group's whole
//! state, so building one every fixed number of entries makes the total
//! snapshot work grow with the square of the data: creating a million
//! tenants rewrote the ever larger state every 5,000 entries. Here a
//! snapshot is due once at least `snapshot_every` entries *and* at least as
//! many log bytes as the last snapshot's size have been written since it.
//! Snapshot work then stays proportional to what is written (each log byte
//! pays for at most one snapshot byte), and a restart never replays more
//! log than about one snapshot's worth on top of loading the snapshot.
use super::type_config::TypeConfig;
use openraft::Raft;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often a group checks whether a snapshot is due.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Byte counts shared by a group's log store, state machine and trigger.
#[derive(Debug, Default)]
pub struct SnapshotPacing {
    /// Log bytes appended since the last snapshot.
    log_bytes: AtomicU64,
    /// Size of the last snapshot built or installed.
    snapshot_bytes: AtomicU64,
}

impl SnapshotPacing {
    pub fn new(log_bytes: u64, snapshot_bytes: u64) -> Arc<Self> {
        Arc::new(SnapshotPacing {
            log_bytes: AtomicU64::new(log_bytes),
            snapshot_bytes: AtomicU64::new(snapshot_bytes),
        })
    }

    pub fn appended(&self, bytes: u64) {
        self.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of `bytes` now covers the log written so far.
    pub fn snapshotted(&self, bytes: u64) {
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.log_bytes.store(0, Ordering::Relaxed);
    }

    /// Whether a snapshot is due, `entries` having been applied since the
    /// last one.
    pub fn due(&self, entries: u64, min_entries: u64) -> bool {
        entries >= min_entries
            && self.log_bytes.load(Ordering::Relaxed) >= self.snapshot_bytes.load(Ordering::Relaxed)
    }
}

/// Triggers the group's snapshots by [`SnapshotPacing::due`] until the
/// group shuts down. openraft ignores a trigger while a build is running.
pub async fn run(raft: Raft<TypeConfig>, pacing: Arc<SnapshotPacing>, min_entries: u64) {
    let mut metrics = raft.metrics();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            changed = metrics.changed() => if changed.is_err() { return },
        }
        let (applied, snapshot) = {
            let m = metrics.borrow_and_update();
            (
                m.last_applied.map_or(0, |l| l.index + 1),
                m.snapshot.map_or(0, |l| l.index + 1),
            )
        };
        if pacing.due(applied.saturating_sub(snapshot), min_entries)
            && raft.trigger().snapshot().await.is_err()
        {
            return;
        }
        // Metrics change on every apply; look again only after a pause.
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_needs_both_the_entries_and_a_snapshot_worth_of_log() {
        let p = SnapshotPacing::new(0, 1_000);
        p.appended(999);
        assert!(!p.due(10_000, 5_000), "log smaller than the snapshot");
        p.appended(1);
        assert!(p.due(5_000, 5_000));
        assert!(!p.due(4_999, 5_000), "too few entries");
        p.snapshotted(3_000);
        assert!(
            !p.due(5_000, 5_000),
            "the new snapshot resets the log count"
        );
        p.appended(3_000);
        assert!(p.due(5_000, 5_000));
    }

    #[test]
    fn total_snapshot_bytes_stay_proportional_to_log_bytes() {
        // A state that grows by every byte logged (tenants being created):
        // a fixed entry count would rewrite it O(n^2); pacing keeps the sum
        // of snapshot sizes within twice what was logged.
        let p = SnapshotPacing::new(0, 0);
        let (mut state, mut logged, mut snapshotted) = (0u64, 0u64, 0u64);
        for _ in 0..1_000_000 {
            p.appended(100);
            state += 100;
            logged += 100;
            if p.due(u64::MAX, 1) {
                p.snapshotted(state);
                snapshotted += state;
            }
        }
        assert!(snapshotted <= 2 * logged, "{snapshotted} vs {logged}");
    }
}
