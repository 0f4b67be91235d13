//! The archive syncer: what of each led group's state has gone to the
//! archive, and the rounds that send the rest (see `sync` for one round).
//! It owns its bookkeeping: the snapshot last archived per group, and the
//! dedicated tenants whose copy in the shared schema is to be purged.
use super::Archive;
use super::handle::ArchiveHandle;
use super::sync::SyncRound;
use crate::clock::SharedClock;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::shard::Shard;
use crate::storage::Store;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A group to sync: one this node leads, and the tenant it is dedicated
/// to, if it is a dedicated group (its rounds go to that tenant's schema).
pub struct SyncTarget {
    pub shard: Arc<Shard>,
    pub dedicated_to: Option<TenantId>,
}

pub struct Syncer {
    pub(crate) archive: Arc<ArchiveHandle>,
    store: Store,
    clock: SharedClock,
    /// Per group, the log index of the snapshot last archived from here.
    archived_snapshots: Mutex<BTreeMap<u64, u64>>,
    /// Dedicated tenants whose copy in the shared archive schema is to be
    /// deleted (their own schema has it all), with their quota names.
    purges_due: Mutex<BTreeMap<TenantId, Vec<String>>>,
    /// Dedicated tenants whose shared copy this process has purged.
    purged_from_shared: Mutex<HashSet<TenantId>>,
}

impl Syncer {
    pub fn new(archive: Arc<ArchiveHandle>, store: Store, clock: SharedClock) -> Self {
        Syncer {
            archive,
            store,
            clock,
            archived_snapshots: Mutex::new(BTreeMap::new()),
            purges_due: Mutex::default(),
            purged_from_shared: Mutex::default(),
        }
    }

    /// Snapshot every group this node leads now, then sync: the archive
    /// then holds the groups' whole state as of this moment (a backup before
    /// maintenance, or for a restore drill).
    pub async fn backup(&self, groups: Vec<SyncTarget>) -> Result<Vec<SyncRound>, EngineError> {
        for SyncTarget { shard, .. } in &groups {
            let raft = &shard.group.raft;
            let group = shard.group.id;
            let fail = |e: String| EngineError::Raft {
                group,
                message: format!("snapshot for the archive: {e}"),
            };
            let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| fail(e.to_string()))?;
            raft.wait(Some(Duration::from_secs(120)))
                .metrics(
                    |m| m.snapshot.map(|s| s.index) >= applied,
                    "snapshot covers everything applied",
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        self.sync(groups).await
    }

    /// Archive `data`, a group's state as of log index `index`, as its
    /// snapshot, unless that index is archived already.
    pub async fn archive_state(
        &self,
        group: u64,
        index: u64,
        term: u64,
        data: Vec<u8>,
    ) -> Result<(), EngineError> {
        let done = self
            .archived_snapshots
            .lock()
            .map(|m| m.get(&group) == Some(&index))
            .unwrap_or(false);
        if done {
            return Ok(());
        }
        let archive = self.archive.get().await?;
        archive
            .put_snapshot(&super::SnapshotRecord {
                group,
                last_index: index,
                last_term: term,
                taken_at_ms: self.clock.now_ms(),
                data,
            })
            .await?;
        if let Ok(mut m) = self.archived_snapshots.lock() {
            m.insert(group, index);
        }
        Ok(())
    }

    /// One sync round for every group this node leads: their unarchived
    /// usage and audit, and newer snapshots, go to the archive (a dedicated
    /// group's to its tenant's own schema). Runs every `sync_interval` on
    /// its own; callable at any time. A group that fails does not hold the
    /// others back; the first failure is returned after all were tried.
    pub async fn sync(&self, groups: Vec<SyncTarget>) -> Result<Vec<SyncRound>, EngineError> {
        let shared = self.archive.get().await?;
        let mut first_error = self.purge_due(shared.as_ref()).await.err();
        let mut rounds = Vec::new();
        for target in groups {
            let group = target.shard.group.id;
            match self.sync_one(&shared, target).await {
                Ok(round) => {
                    super::sync::report(&round);
                    rounds.push(round);
                }
                Err(e) => {
                    tracing::debug!(group, error = %e, "archive sync of a group failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(rounds),
        }
    }

    async fn sync_one(
        &self,
        shared: &Arc<dyn Archive>,
        SyncTarget {
            shard,
            dedicated_to,
        }: SyncTarget,
    ) -> Result<SyncRound, EngineError> {
        let group = shard.group.id;
        let archive = match dedicated_to {
            Some(tenant) => shared.dedicated(tenant).await?,
            None => shared.clone(),
        };
        let mut archived = self
            .archived_snapshots
            .lock()
            .map(|m| m.get(&group).copied())
            .unwrap_or(None);
        let round = super::sync::sync_group(
            archive.as_ref(),
            &shard,
            &self.store,
            &mut archived,
            self.clock.now_ms(),
        )
        .await;
        if let (Some(index), Ok(mut m)) = (archived, self.archived_snapshots.lock()) {
            m.insert(group, index);
        }
        let round = round?;
        if let Some(tenant) = dedicated_to {
            self.after_dedicated_round(&shard, tenant, &round).await?;
        }
        Ok(round)
    }

    async fn after_dedicated_round(
        &self,
        shard: &Shard,
        tenant: TenantId,
        round: &SyncRound,
    ) -> Result<(), EngineError> {
        if round.whole.contains(&tenant) {
            // Just arrived: its group's state goes to its own schema next
            // round, so the source group may drop its copy (`finish_moves`)
            // and a restore finds the tenant there.
            let raft = &shard.group.raft;
            let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
            let built = async {
                raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
                raft.wait(Some(Duration::from_secs(30)))
                    .metrics(
                        |m| m.snapshot.map(|s| s.index) >= applied,
                        "the new dedicated group's snapshot",
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = built.await {
                tracing::info!(group = shard.group.id, error = %e, "cannot snapshot a new dedicated group");
            }
        }
        // Its whole history reached its own schema (it arrived listed from
        // the beginning of time, and that is acknowledged, here or by an
        // earlier leader): the shared copy may go. Checked once a process.
        let whole_archived = shard.group.state.read().is_ok_and(|s| {
            s.tenants.contains_key(&tenant)
                && s.unarchived
                    .get(&tenant)
                    .is_none_or(|u| u.since_ms != i64::MIN)
        });
        let checked = self
            .purged_from_shared
            .lock()
            .is_ok_and(|p| p.contains(&tenant));
        if whole_archived && !checked {
            let quotas = super::sync::quota_names(shard, tenant)?;
            if let Ok(mut due) = self.purges_due.lock() {
                due.insert(tenant, quotas);
            }
        }
        Ok(())
    }

    /// Delete dedicated tenants' copies from the shared schema, a round
    /// after their own schema was seen to hold everything: by then a shard
    /// group's round on this node that took the tenant just before it
    /// moved has long written. Kept and retried until done.
    async fn purge_due(&self, shared: &dyn Archive) -> Result<(), EngineError> {
        let due: Vec<(TenantId, Vec<String>)> = self
            .purges_due
            .lock()
            .map(|d| d.iter().map(|(t, q)| (*t, q.clone())).collect())
            .unwrap_or_default();
        for (tenant, quotas) in due {
            shared.purge_tenant(tenant, &quotas).await?;
            tracing::info!(%tenant, "dedicated tenant's archive purged from the shared schema");
            if let Ok(mut d) = self.purges_due.lock() {
                d.remove(&tenant);
            }
            if let Ok(mut p) = self.purged_from_shared.lock() {
                p.insert(tenant);
            }
        }
        Ok(())
    }
}
