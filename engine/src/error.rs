use crate::error_code::ErrorCode;
use crate::quota::QuotaError;
use crate::raft::NodeId;
use crate::storage::StorageError;
use openraft::error::{ClientWriteError, RaftError};

/// Errors of the engine: the quota layer's, plus what replication and
/// storage add.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Quota(#[from] QuotaError),
    #[error("tenant slug {slug:?} is already taken")]
    SlugTaken { slug: String },
    #[error("domain {domain:?} is already registered by another tenant")]
    DomainTaken { domain: String },
    #[error("group {group} is not led by this node{}", leader.map(|l| format!(" (leader: node {l})")).unwrap_or_default())]
    NotLeader { group: u64, leader: Option<NodeId> },
    #[error("raft group {group}: {message}")]
    Raft { group: u64, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("tenant {tenant} is busy; retry")]
    Busy { tenant: crate::model::TenantId },
    #[error("tenant {tenant} is moving to another group; retry")]
    TenantMoving { tenant: crate::model::TenantId },
    #[error("group {group} has no reachable leader right now; retry")]
    NoLeader { group: u64 },
    /// The group's Raft stopped on this node on an error (a failed write
    /// of the data dir): this node neither decides nor knows who does.
    #[error(
        "group {group} stopped on this node ({reason}); it serves nothing for the group until \
         restarted: ask another node"
    )]
    GroupStopped { group: u64, reason: String },
    #[error(
        "group {group}: the outcome is unknown ({reason}); retry with the same idempotency key"
    )]
    OutcomeUnknown { group: u64, reason: String },
    /// An error answered by the node a request was forwarded to.
    #[error("{message}")]
    Remote {
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    #[error("cluster: {0}")]
    Cluster(String),
    /// Load shed: a bounded queue on the way to the decision is full.
    /// Nothing was decided or changed; retry after a short wait.
    #[error("overloaded: {why}; nothing was changed, retry in {} ms", crate::shed::RETRY_AFTER.as_millis())]
    Overloaded { why: crate::shed::Shed },
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
}

impl From<crate::shed::Shed> for EngineError {
    fn from(why: crate::shed::Shed) -> Self {
        EngineError::Overloaded { why }
    }
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Quota(q) => q.code(),
            EngineError::SlugTaken { .. } | EngineError::DomainTaken { .. } => {
                ErrorCode::AlreadyExists
            }
            EngineError::NotLeader { .. }
            | EngineError::ShuttingDown
            | EngineError::Busy { .. }
            | EngineError::NoLeader { .. }
            | EngineError::GroupStopped { .. }
            | EngineError::TenantMoving { .. }
            | EngineError::Cluster(_) => ErrorCode::Unavailable,
            EngineError::OutcomeUnknown { .. } => ErrorCode::OutcomeUnknown,
            EngineError::Overloaded { .. } => ErrorCode::ResourceExhausted,
            EngineError::Remote { code, .. } => *code,
            EngineError::Raft { .. } => ErrorCode::Unavailable,
            EngineError::Storage(s) if s.is_transient() => ErrorCode::Unavailable,
            EngineError::Storage(_) => ErrorCode::Internal,
            EngineError::Archive(a) if a.is_transient() => ErrorCode::Unavailable,
            EngineError::Archive(crate::archive::ArchiveError::Config { .. }) => {
                ErrorCode::InvalidArgument
            }
            EngineError::Archive(_) => ErrorCode::Internal,
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            EngineError::Quota(q) => q.field(),
            EngineError::Remote { field, .. } => field.as_deref(),
            EngineError::SlugTaken { .. } => Some("slug"),
            EngineError::DomainTaken { .. } => Some("domain"),
            EngineError::Archive(crate::archive::ArchiveError::Config { field, .. }) => Some(field),
            _ => None,
        }
    }

    /// How long the caller should wait before retrying, when the error
    /// is load shedding: here, or on the node the request was forwarded
    /// to (whose overload errors arrive as RESOURCE_EXHAUSTED naming no
    /// field; the other RESOURCE_EXHAUSTED, too many idempotency keys,
    /// names `idempotency_key`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            EngineError::Overloaded { .. } => Some(crate::shed::RETRY_AFTER),
            EngineError::Remote {
                code: ErrorCode::ResourceExhausted,
                field: None,
                ..
            } => Some(crate::shed::RETRY_AFTER),
            _ => None,
        }
    }

    pub(crate) fn from_write(
        group: u64,
        e: RaftError<NodeId, ClientWriteError<NodeId, openraft::BasicNode>>,
    ) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => EngineError::NotLeader {
                group,
                leader: f.leader_id,
            },
            other => EngineError::Raft {
                group,
                message: other.to_string(),
            },
        }
    }
}
