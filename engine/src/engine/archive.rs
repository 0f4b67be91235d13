//! The archive: its connection, the periodic sync of every group this node
//! leads (the [`Syncer`] does the rounds), and backups on demand.
use super::Engine;
use crate::archive::sync::SyncRound;
use crate::archive::{Archive, SyncTarget};
use crate::error::EngineError;
use std::sync::{Arc, Weak};

/// What a group of this node has not archived yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveBacklog {
    pub group: u64,
    /// Tenants with usage or audit not yet in the archive.
    pub pending: usize,
    /// How long the oldest of it has waited (ms).
    pub lag_ms: i64,
}

impl Engine {
    /// What each group this node replicates has not archived yet, as its
    /// copy of the group records (the leader's sync rounds clear it).
    pub fn archive_backlog(&self) -> Vec<ArchiveBacklog> {
        let now = self.now_ms();
        self.router
            .shards()
            .iter()
            .filter_map(|shard| {
                let state = shard.group.state.read().ok()?;
                let oldest = state
                    .unarchived
                    .values()
                    .map(|u| u.since_ms)
                    .filter(|s| *s > i64::MIN)
                    .min();
                Some(ArchiveBacklog {
                    group: shard.group.id,
                    pending: state.unarchived.len(),
                    lag_ms: oldest.map_or(0, |o| now.saturating_sub(o).max(0)),
                })
            })
            .collect()
    }

    /// The archive, connected and its schema migrated on first use.
    pub async fn archive(&self) -> Result<Arc<dyn Archive>, EngineError> {
        self.syncer.archive.get().await
    }

    /// Snapshot every group this node leads now, then sync: the archive
    /// then holds the groups' whole state as of this moment (a backup before
    /// maintenance, or for a restore drill).
    pub async fn backup_to_archive(&self) -> Result<Vec<SyncRound>, EngineError> {
        let rounds = self.syncer.backup(self.sync_targets()).await?;
        self.archive_catalog().await?;
        Ok(rounds)
    }

    /// One sync round for every group this node leads: their unarchived
    /// usage and audit, and newer snapshots, go to the archive (a dedicated
    /// group's to its tenant's own schema). Runs every `sync_interval` on
    /// its own; callable at any time. A group that fails does not hold the
    /// others back; the first failure is returned after all were tried.
    pub async fn sync_archive(&self) -> Result<Vec<SyncRound>, EngineError> {
        let rounds = self.syncer.sync(self.sync_targets()).await;
        // The sharing catalog lives in the meta group: its leader archives it.
        let catalog = self.archive_catalog().await;
        let rounds = rounds?;
        catalog?;
        Ok(rounds)
    }

    /// Put the meta group's state (the sharing catalog is what a restore
    /// reads of it) in the archive as the meta group's snapshot, when this
    /// node leads the meta group and it changed since last archived.
    async fn archive_catalog(&self) -> Result<(), EngineError> {
        use crate::cluster::META_GROUP;
        if self.router.leader_of(META_GROUP) != Some(self.node_id()) {
            return Ok(());
        }
        let applied = self.router.meta.raft.metrics().borrow().last_applied;
        let Some(applied) = applied else {
            return Ok(());
        };
        let data = {
            let state = self
                .router
                .meta
                .state
                .read()
                .map_err(|_| EngineError::Raft {
                    group: META_GROUP,
                    message: "state lock poisoned".into(),
                })?;
            if state.sharing.policies.is_empty() && state.sharing.grants.is_empty() {
                return Ok(());
            }
            crate::format::encode(&*state).map_err(|e| EngineError::Raft {
                group: META_GROUP,
                message: format!("encoding the meta state: {e}"),
            })?
        };
        self.syncer
            .archive_state(META_GROUP, applied.index, applied.leader_id.term, data)
            .await
    }

    fn sync_targets(&self) -> Vec<SyncTarget> {
        self.router
            .served()
            .into_iter()
            .map(|shard| SyncTarget {
                dedicated_to: self.router.dedicated_tenant_of(shard.group.id),
                shard,
            })
            .collect()
    }
}

/// Runs [`Engine::sync_archive`] every `sync_interval` until the engine
/// closes. Failures are counted and logged; what was not taken stays
/// listed and goes in a later round.
pub(super) fn spawn_sync(engine: Weak<Engine>, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(interval).await;
            let Some(e) = engine.upgrade() else { return };
            if e.router.is_closing() {
                return;
            }
            match e.sync_archive().await {
                Ok(_) => {
                    if failing {
                        tracing::info!("archive sync caught up again");
                        failing = false;
                    }
                }
                Err(err) => {
                    metrics::counter!(crate::telemetry::ARCHIVE_SYNC_FAILURES).increment(1);
                    // Once per outage, not once per round.
                    if !failing {
                        tracing::warn!(error = %err, "archive sync failed; changes are kept and retried");
                        failing = true;
                    }
                }
            }
        }
    });
}
