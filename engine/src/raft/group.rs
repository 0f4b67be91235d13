use super::command::{Command, CommandResponse};
use super::durable_snapshot::DurableSnapshot;
use super::group_state::{ReplicatedState, ShardState};
use super::log_store::LogStore;
use super::network::{GroupNetwork, Peers};
use super::snapshot_pacing::{self, SnapshotPacing};
use super::state_machine::{SharedState, StateMachine};
use super::type_config::{NodeId, TypeConfig};
use crate::error::EngineError;
use crate::storage::Store;
use openraft::error::Fatal;
use openraft::{BasicNode, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Raft tuning shared by every group of a node.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Build a snapshot (and purge the log before it) after at least this
    /// many entries, once the log since the last one is as large as it
    /// (see `snapshot_pacing`).
    pub snapshot_every: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// Snapshots travel to a replica in chunks of at most this many bytes.
    pub snapshot_chunk_bytes: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            snapshot_every: 5_000,
            heartbeat_ms: 100,
            election_timeout_ms: (300, 600),
            snapshot_chunk_bytes: 3 << 20,
        }
    }
}

/// A running Raft group, whatever its state: what leadership, membership
/// and health need.
#[derive(Clone)]
pub struct GroupHandle {
    pub id: u64,
    pub raft: Raft<TypeConfig>,
    /// Apply times of entries traced requests wait on.
    pub applies: Arc<crate::trace::ApplyClock>,
}

/// A running Raft group: its handle and a read view of its state machine.
pub struct Group<S: ReplicatedState = ShardState> {
    handle: GroupHandle,
    pub state: SharedState<S>,
}

impl<S: ReplicatedState> Clone for Group<S> {
    fn clone(&self) -> Self {
        Group {
            handle: self.handle.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: ReplicatedState> std::ops::Deref for Group<S> {
    type Target = GroupHandle;
    fn deref(&self) -> &GroupHandle {
        &self.handle
    }
}

impl<S: ReplicatedState> Group<S> {
    pub fn handle(&self) -> &GroupHandle {
        &self.handle
    }

    /// Open group `id` from the node's store, talking to peers over
    /// `peers`. Membership is the caller's business (see [`Group::start`]).
    pub async fn open(
        node_id: NodeId,
        id: u64,
        store: Store,
        config: &GroupConfig,
        peers: Peers,
    ) -> Result<Group<S>, EngineError> {
        let raft_config = Config {
            cluster_name: format!("quotad-group-{id}"),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms.0,
            election_timeout_max: config.election_timeout_ms.1,
            // Snapshots are triggered by `snapshot_pacing`.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            snapshot_max_chunk_size: config.snapshot_chunk_bytes,
            ..Default::default()
        }
        .validate()
        .map_err(|e| EngineError::Raft {
            group: id,
            message: format!("invalid raft config: {e}"),
        })?;
        let pacing = SnapshotPacing::new(0, 0);
        let durable = DurableSnapshot::new();
        let applies = Arc::new(crate::trace::ApplyClock::default());
        let sm = StateMachine::<S>::open(id, store.clone(), pacing.clone(), durable.clone())?
            .timing_applies(applies.clone());
        let state = sm.state();
        let data_dir = store.dir().to_path_buf();
        let log = LogStore::new(id, store, pacing.clone(), durable);
        let snapshot_every = config.snapshot_every;
        // The group's core and everything it spawns run on the Raft runtime
        // (see `runtime`).
        let raft = super::runtime::on_raft_runtime(async move {
            let raft = Raft::new(
                node_id,
                Arc::new(raft_config),
                GroupNetwork {
                    group: id,
                    me: node_id,
                    peers,
                },
                log,
                sm,
            )
            .await
            .map_err(|e| EngineError::Raft {
                group: id,
                message: e.to_string(),
            })?;
            tokio::spawn(snapshot_pacing::run(raft.clone(), pacing, snapshot_every));
            tokio::spawn(report_failure(raft.metrics(), id, data_dir));
            Ok::<_, EngineError>(raft)
        })
        .await?;
        Ok(Group {
            handle: GroupHandle { id, raft, applies },
            state,
        })
    }

    /// Start group `id` from the node's store; on first start it is
    /// initialized with this node as its only voter. Returns once this node
    /// leads it.
    pub async fn start(
        node_id: NodeId,
        id: u64,
        store: Store,
        config: &GroupConfig,
    ) -> Result<Group<S>, EngineError> {
        let Group { handle, state } =
            Group::<S>::open(node_id, id, store, config, Peers::default()).await?;
        let (raft, applies) = (handle.raft, handle.applies);
        let fatal = |e: openraft::error::Fatal<NodeId>| EngineError::Raft {
            group: id,
            message: e.to_string(),
        };
        if !raft.is_initialized().await.map_err(fatal)? {
            let members = BTreeMap::from([(node_id, BasicNode::default())]);
            raft.initialize(members)
                .await
                .map_err(|e| EngineError::Raft {
                    group: id,
                    message: e.to_string(),
                })?;
        }
        raft.wait(Some(Duration::from_secs(30)))
            .state(ServerState::Leader, "single-node group becomes leader")
            .await
            .map_err(|e| EngineError::Raft {
                group: id,
                message: format!("did not become leader: {e}"),
            })?;
        Ok(Group {
            handle: GroupHandle { id, raft, applies },
            state,
        })
    }

    /// Append `cmd`, wait until it is committed and applied. A command of
    /// the other kind of group is refused before it is logged.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, EngineError> {
        if !S::accepts(&cmd) {
            return Err(EngineError::Unexpected {
                answer: format!(
                    "a command for the other kind of group, sent to group {}",
                    self.id
                ),
            });
        }
        self.raft
            .client_write(cmd)
            .await
            .map(|r| r.data)
            .map_err(|e| EngineError::from_write(self.id, e))
    }
}

impl GroupHandle {
    /// Make this a new group whose voters are `members`; a no-op if it
    /// already has state (a restart).
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<(), EngineError> {
        let err = |message: String| EngineError::Raft {
            group: self.id,
            message,
        };
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| err(e.to_string()))?
        {
            return Ok(());
        }
        self.raft
            .initialize(members)
            .await
            .map_err(|e| err(e.to_string()))
    }

    /// The only voter, if the group has exactly one.
    pub fn sole_voter(&self) -> Option<NodeId> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let mut voters = m.membership().voter_ids();
        match (voters.next(), voters.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }

    /// Wait until this node leads the group.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<(), EngineError> {
        self.raft
            .wait(Some(timeout))
            .state(ServerState::Leader, "group becomes leader")
            .await
            .map(|_| ())
            .map_err(|e| EngineError::Raft {
                group: self.id,
                message: format!("did not become leader: {e}"),
            })
    }

    /// Why the group stopped, if it stopped on an error rather than being
    /// shut down: a failed write or fsync of the data dir, or a panic in
    /// its Raft core. Such a group never runs again in this process.
    pub fn failure(&self) -> Option<String> {
        failure_of(&self.raft.metrics().borrow())
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = self.id, error = %e, "raft shutdown");
        }
    }
}

fn failure_of(m: &RaftMetrics<NodeId, BasicNode>) -> Option<String> {
    match &m.running_state {
        Ok(()) | Err(Fatal::Stopped) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Says once, in the node's log, that a group stopped on an error, and what
/// to do. openraft stops a group whose log or state machine storage
/// returned an error (nothing is retried: an fsync that failed may have
/// dropped the pages it was flushing), and redb refuses every operation on
/// a database after a failed write until it is reopened. So the node
/// acknowledges nothing more for the group (fail-stop, `/readyz` and
/// `/healthz` answer 503) until it is restarted, and then it continues
/// from what reached the disk.
async fn report_failure(
    mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    group: u64,
    data_dir: PathBuf,
) {
    let error = loop {
        if let Some(e) = failure_of(&metrics.borrow_and_update()) {
            break e;
        }
        if metrics.changed().await.is_err() {
            // The core has ended; its last report says whether on an error.
            match failure_of(&metrics.borrow()) {
                Some(e) => break e,
                None => return,
            }
        }
    };
    tracing::error!(
        group,
        data_dir = %data_dir.display(),
        %error,
        "raft group stopped on an error; this node acknowledges no writes for it until it is \
         restarted. If the data dir's disk is full or failing, free space or repair it, then \
         restart the node"
    );
}
