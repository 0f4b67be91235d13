//! openraft's state machine for a group: its state (a [`ReplicatedState`]:
//! the meta group's or a shard's) in memory, snapshots
//! in the node's store. On start the latest snapshot is loaded and openraft
//! replays the log after it, so restart time is bounded by the snapshot
//! interval, not by the age of the data.
use super::command::CommandResponse;
use super::durable_snapshot::DurableSnapshot;
use super::group_state::{ReplicatedState, ShardState};
use super::snapshot_pacing::SnapshotPacing;
use super::type_config::{NodeId, TypeConfig};
use crate::storage::tables::SNAPSHOTS;
use crate::storage::{StorageError as StoreError, Store};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, RwLock};

type RaftStorageError = StorageError<NodeId>;
pub type SharedState<S = ShardState> = Arc<RwLock<S>>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

pub struct StateMachine<S: ReplicatedState = ShardState> {
    group: u64,
    store: Store,
    state: SharedState<S>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshots_built: u64,
    pacing: Arc<SnapshotPacing>,
    durable: Arc<DurableSnapshot>,
    /// Times applies while a traced request waits on one.
    applies: Arc<crate::trace::ApplyClock>,
}

fn sm_read_err(e: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn snap_write_err(e: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

fn corrupt(what: &'static str) -> impl Fn(postcard::Error) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

impl<S: ReplicatedState> StateMachine<S> {
    /// Open the group's state machine from its latest snapshot.
    pub fn open(
        group: u64,
        store: Store,
        pacing: Arc<SnapshotPacing>,
        durable: Arc<DurableSnapshot>,
    ) -> Result<Self, StoreError> {
        let mut sm = StateMachine {
            group,
            store,
            state: SharedState::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots_built: 0,
            pacing,
            durable,
            applies: Arc::default(),
        };
        if let Some(bytes) = sm.store.read_snapshot(group)? {
            let snap: StoredSnapshot =
                crate::format::decode(&bytes).map_err(corrupt("snapshot"))?;
            sm.pacing.snapshotted(snap.data.len() as u64);
            let mut state: S =
                crate::format::decode(&snap.data).map_err(corrupt("snapshot data"))?;
            state.loaded();
            *sm.state.write().expect("state lock") = state;
            sm.last_applied = snap.meta.last_log_id;
            sm.durable.stored(sm.last_applied.map(|l| l.index));
            sm.membership = snap.meta.last_membership;
        }
        // The log left in the store is what was written since the snapshot.
        sm.pacing.appended(sm.store.log_bytes(group)?);
        Ok(sm)
    }

    /// Record apply times in `applies` when asked (see `trace`).
    pub fn timing_applies(mut self, applies: Arc<crate::trace::ApplyClock>) -> Self {
        self.applies = applies;
        self
    }

    pub fn state(&self) -> SharedState<S> {
        self.state.clone()
    }

    fn save_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError> {
        let bytes = crate::format::encode(snap).map_err(corrupt("snapshot"))?;
        let group = self.group;
        self.store.write(true, |tx| {
            tx.open_table(SNAPSHOTS)?.insert(group, bytes.as_slice())?;
            Ok(())
        })
    }
}

/// The last log id a snapshot includes, and the serialized state.
pub(crate) type SnapshotData = (LogId<NodeId>, Vec<u8>);

/// The group's latest snapshot in the node's store.
pub(crate) fn stored_snapshot(
    store: &Store,
    group: u64,
) -> Result<Option<SnapshotData>, StoreError> {
    let Some(bytes) = store.read_snapshot(group)? else {
        return Ok(None);
    };
    let snap: StoredSnapshot = crate::format::decode(&bytes).map_err(corrupt("snapshot"))?;
    Ok(snap.meta.last_log_id.map(|id| (id, snap.data)))
}

/// Serializes the state as of one applied log id, then stores it.
pub struct SnapshotBuilder {
    group: u64,
    store: Store,
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Result<Vec<u8>, postcard::Error>,
    pacing: Arc<SnapshotPacing>,
    durable: Arc<DurableSnapshot>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let data = self.data.clone().map_err(snap_write_err)?;
        let snap = StoredSnapshot {
            meta: self.meta.clone(),
            data,
        };
        let bytes = crate::format::encode(&snap).map_err(snap_write_err)?;
        let (store, group) = (self.store.clone(), self.group);
        let last_log_index = snap.meta.last_log_id.map(|l| l.index);
        tracing::debug!(
            group,
            ?last_log_index,
            bytes = bytes.len(),
            "storing a snapshot"
        );
        tokio::task::spawn_blocking(move || {
            store.write(true, |tx| {
                tx.open_table(SNAPSHOTS)?.insert(group, bytes.as_slice())?;
                Ok(())
            })
        })
        .await
        .map_err(snap_write_err)?
        .map_err(snap_write_err)?;
        self.durable.stored(last_log_index);
        self.pacing.snapshotted(snap.data.len() as u64);
        tracing::debug!(group, ?last_log_index, "snapshot stored");
        Ok(Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.data)),
        })
    }
}

impl<S: ReplicatedState> RaftStateMachine<TypeConfig> for StateMachine<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), RaftStorageError>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut state = self.state.write().map_err(|_| {
            RaftStorageError::from(StorageIOError::write_state_machine(AnyError::error(
                "state lock poisoned",
            )))
        })?;
        let timed = self.applies.wanted();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let started = timed.then(std::time::SystemTime::now);
            out.push(match entry.payload {
                EntryPayload::Blank => CommandResponse::Applied,
                EntryPayload::Normal(cmd) => ReplicatedState::apply(&mut *state, &cmd),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::Applied
                }
            });
            if let Some(started) = started {
                let ended = std::time::SystemTime::now();
                self.applies.record(entry.log_id.index, started, ended);
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        let data = crate::format::encode(&*self.state.read().expect("state lock"));
        let snapshot_id = match self.last_applied {
            Some(l) => format!(
                "{}-{}-{}-{}",
                self.group, l.leader_id, l.index, self.snapshots_built
            ),
            None => format!("{}-none-{}", self.group, self.snapshots_built),
        };
        SnapshotBuilder {
            group: self.group,
            store: self.store.clone(),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data,
            pacing: self.pacing.clone(),
            durable: self.durable.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        // Rare and telling: this replica fell behind the leader's log.
        tracing::info!(group = self.group, "receiving a snapshot from the leader");
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let data = snapshot.into_inner();
        let mut state: S = crate::format::decode(&data).map_err(sm_read_err)?;
        state.loaded();
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.save_snapshot(&snap).map_err(snap_write_err)?;
        let last_log_index = meta.last_log_id.map(|l| l.index);
        // Only now may the log it replaces go (see `durable_snapshot`).
        self.durable.stored(last_log_index);
        tracing::info!(
            group = self.group,
            ?last_log_index,
            bytes = snap.data.len(),
            "snapshot from the leader stored"
        );
        self.pacing.snapshotted(snap.data.len() as u64);
        *self.state.write().expect("state lock") = state;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let Some(bytes) = self.store.read_snapshot(self.group).map_err(sm_read_err)? else {
            return Ok(None);
        };
        let snap: StoredSnapshot = crate::format::decode(&bytes).map_err(sm_read_err)?;
        Ok(Some(Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.data)),
        }))
    }
}
