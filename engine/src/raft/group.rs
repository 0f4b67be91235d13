use super::command::{Command, CommandResponse};
use super::log_store::LogStore;
use super::network::{GroupNetwork, Peers};
use super::snapshot_pacing::{self, SnapshotPacing};
use super::state_machine::{SharedState, StateMachine};
use super::type_config::{NodeId, TypeConfig};
use crate::error::EngineError;
use crate::storage::Store;
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

/// A running Raft group: its handle and a read view of its state machine.
#[derive(Clone)]
pub struct Group {
    pub id: u64,
    pub raft: Raft<TypeConfig>,
    pub state: SharedState,
}

impl Group {
    /// Open group `id` from the node's store, talking to peers over
    /// `peers`. Membership is the caller's business (see [`Group::start`]).
    pub async fn open(
        node_id: NodeId,
        id: u64,
        store: Store,
        config: &GroupConfig,
        peers: Peers,
    ) -> Result<Group, EngineError> {
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
        let sm = StateMachine::open(id, store.clone(), pacing.clone())?;
        let state = sm.state();
        let log = LogStore::new(id, store, pacing.clone());
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
        tokio::spawn(snapshot_pacing::run(
            raft.clone(),
            pacing,
            config.snapshot_every,
        ));
        Ok(Group { id, raft, state })
    }

    /// Start group `id` from the node's store; on first start it is
    /// initialized with this node as its only voter. Returns once this node
    /// leads it.
    pub async fn start(
        node_id: NodeId,
        id: u64,
        store: Store,
        config: &GroupConfig,
    ) -> Result<Group, EngineError> {
        let Group { raft, state, .. } =
            Group::open(node_id, id, store, config, Peers::default()).await?;
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
        Ok(Group { id, raft, state })
    }

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

    /// Append `cmd`, wait until it is committed and applied.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, EngineError> {
        self.raft
            .client_write(cmd)
            .await
            .map(|r| r.data)
            .map_err(|e| EngineError::from_write(self.id, e))
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = self.id, error = %e, "raft shutdown");
        }
    }
}
