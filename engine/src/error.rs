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
    #[error(transparent)]
    Sharing(#[from] crate::sharing::SharingError),
    #[error("tenant slug {slug:?} is already taken")]
    SlugTaken { slug: String },
    #[error("domain {domain:?} is already registered by another tenant")]
    DomainTaken { domain: String },
    #[error("no feature flag {:?}", crate::excerpt::short(key))]
    FlagNotFound { key: String },
    #[error("the platform has no webhook endpoint {:?}", crate::excerpt::short(id))]
    PlatformWebhookNotFound { id: String },
    #[error(
        "the platform already has {limit} webhook endpoints, the most it keeps; remove one first"
    )]
    TooManyPlatformWebhooks { limit: u32 },
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
    /// Another node could not be reached, or did not answer in time.
    #[error("{peer}: {reason}")]
    PeerUnreachable { peer: String, reason: String },
    /// The seed asked to admit this node could not be reached or refused.
    #[error("cannot join the cluster through {seed}: {reason}")]
    JoinFailed { seed: String, reason: String },
    #[error("node {node} is not a member of the cluster")]
    UnknownNode { node: NodeId },
    #[error("node {node} is the last active node; nothing could take its replicas")]
    LastActiveNode { node: NodeId },
    /// No credential, or one that is not valid.
    #[error("{reason}")]
    Unauthenticated { reason: String },
    /// A valid credential that does not allow this.
    #[error("{reason}")]
    Forbidden { reason: String },
    #[error("group {group} is not open on this node")]
    GroupNotHere { group: u64 },
    #[error("group {group} does not exist")]
    UnknownGroup { group: u64 },
    #[error("node {node} is not a voter of group {group} (its voters: {voters:?})")]
    NotAVoter {
        group: u64,
        node: NodeId,
        voters: Vec<NodeId>,
    },
    #[error("node {to} did not take over group {group}: {reason}")]
    HandOverFailed {
        group: u64,
        to: NodeId,
        reason: String,
    },
    #[error("tenant {tenant} is already in group {group}")]
    AlreadyInGroup {
        tenant: crate::model::TenantId,
        group: u64,
    },
    /// An answer of the wrong kind: a bug, or nodes of different versions.
    #[error("unexpected answer {answer}")]
    Unexpected { answer: String },
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
            EngineError::Sharing(s) => s.code,
            EngineError::SlugTaken { .. } | EngineError::DomainTaken { .. } => {
                ErrorCode::AlreadyExists
            }
            EngineError::NotLeader { .. }
            | EngineError::ShuttingDown
            | EngineError::Busy { .. }
            | EngineError::NoLeader { .. }
            | EngineError::GroupStopped { .. }
            | EngineError::TenantMoving { .. }
            | EngineError::PeerUnreachable { .. }
            | EngineError::JoinFailed { .. }
            | EngineError::HandOverFailed { .. } => ErrorCode::Unavailable,
            EngineError::UnknownNode { .. }
            | EngineError::UnknownGroup { .. }
            | EngineError::FlagNotFound { .. }
            | EngineError::PlatformWebhookNotFound { .. } => ErrorCode::NotFound,
            EngineError::TooManyPlatformWebhooks { .. } => ErrorCode::FailedPrecondition,
            EngineError::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            EngineError::Forbidden { .. } => ErrorCode::PermissionDenied,
            EngineError::LastActiveNode { .. }
            | EngineError::GroupNotHere { .. }
            | EngineError::NotAVoter { .. }
            | EngineError::AlreadyInGroup { .. } => ErrorCode::FailedPrecondition,
            EngineError::Unexpected { .. } => ErrorCode::Internal,
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
            EngineError::Sharing(s) => s.field.as_deref(),
            EngineError::Remote { field, .. } => field.as_deref(),
            EngineError::SlugTaken { .. } => Some("slug"),
            EngineError::DomainTaken { .. } => Some("domain"),
            EngineError::FlagNotFound { .. } => Some("key"),
            EngineError::PlatformWebhookNotFound { .. } => Some("webhookId"),
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

    /// An answer of the wrong kind.
    pub fn unexpected(answer: impl std::fmt::Debug) -> Self {
        EngineError::Unexpected {
            answer: format!("{answer:?}"),
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

/// The one mapping of engine errors to gRPC statuses: the code, the
/// message, the field at fault (`quotad-field` metadata) and, for shed
/// requests, when to retry (`grpc-retry-pushback-ms`, which gRPC's retry
/// policy reads; gRFC A6).
impl From<EngineError> for tonic::Status {
    fn from(e: EngineError) -> Self {
        let mut s = tonic::Status::new(e.code().grpc(), e.to_string());
        if let Some(field) = e.field()
            && let Ok(v) = field.parse()
        {
            s.metadata_mut().insert("quotad-field", v);
        }
        if let Some(after) = e.retry_after()
            && let Ok(v) = after.as_millis().to_string().parse()
        {
            s.metadata_mut().insert("grpc-retry-pushback-ms", v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_say_what_is_wrong_with_the_right_code() {
        let cases = [
            (EngineError::UnknownNode { node: 7 }, tonic::Code::NotFound),
            (
                EngineError::LastActiveNode { node: 1 },
                tonic::Code::FailedPrecondition,
            ),
            (
                EngineError::GroupNotHere { group: 9 },
                tonic::Code::FailedPrecondition,
            ),
            (
                EngineError::PeerUnreachable {
                    peer: "the leader at 127.0.0.1:1".into(),
                    reason: "connection refused".into(),
                },
                tonic::Code::Unavailable,
            ),
            (EngineError::unexpected(42), tonic::Code::Internal),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let s = tonic::Status::from(e);
            assert_eq!(s.code(), code, "{message}");
            assert_eq!(s.message(), message);
        }
        assert_eq!(
            EngineError::UnknownNode { node: 7 }.to_string(),
            "node 7 is not a member of the cluster"
        );
    }

    #[test]
    fn every_status_names_the_field_at_fault() {
        let e: EngineError = QuotaError::invalid("domain", "no rules").into();
        let s = tonic::Status::from(e);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            s.metadata()
                .get("quotad-field")
                .map(|v| v.to_str().unwrap()),
            Some("domain")
        );
    }
}
