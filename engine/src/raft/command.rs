use crate::audit::AuditMeta;
use crate::model::TenantId;
use crate::quota::{OpOutcome, TenantOp};
use serde::{Deserialize, Serialize};

/// A tenant operation with the time the leader decided it at. Replicas apply
/// it at that time, never at their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampedOp {
    pub tenant: TenantId,
    pub at_ms: i64,
    pub op: TenantOp,
    /// Set for audited (control-plane) operations: who, and which request.
    pub audit: Option<AuditMeta>,
}

/// Operations of the meta group: global uniqueness indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOp {
    /// Claim `slug` for `tenant`. `replacing` names an orphaned claim
    /// (its tenant does not exist) that may be taken over once old enough.
    ClaimSlug {
        slug: String,
        tenant: TenantId,
        at_ms: i64,
        replacing: Option<TenantId>,
    },
    /// Claim a custom domain for `tenant` (global uniqueness).
    /// `replacing` names a claim whose tenant does not list the domain (a
    /// registration that died half-way), taken over once old enough.
    ClaimDomain {
        domain: String,
        tenant: TenantId,
        at_ms: i64,
        replacing: Option<TenantId>,
    },
    ReleaseDomain {
        domain: String,
        tenant: TenantId,
    },
    ReleaseSlug {
        slug: String,
        tenant: TenantId,
    },
}

/// The payload of one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A group commit: many tenant operations in one entry.
    Batch(Vec<StampedOp>),
    Meta(MetaOp),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    Applied,
    /// What each operation of a batch did on the state machine, in order
    /// (`None`: the operation failed there and changed nothing).
    Batch(Vec<Option<OpOutcome>>),
    SlugClaimed,
    SlugTaken {
        owner: TenantId,
    },
    DomainClaimed,
    DomainTaken {
        owner: TenantId,
    },
}
