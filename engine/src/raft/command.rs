use crate::audit::AuditLog;
use crate::audit::AuditMeta;
use crate::format::Since;
use crate::model::TenantId;
use crate::model::membership::{MembershipOp, MembershipReply};
use crate::quota::{OpOutcome, TenantOp, TenantState};
use crate::usage_history::UsageHistory;
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
    /// Nodes, placement, pins.
    Membership(MembershipOp),
    /// The sharing catalog: policies, requests, grants (format 6).
    Sharing(Since<6, Box<crate::sharing::SharingOp>>),
    /// A console session signed out before it expires (format 15).
    SignOut(Since<15, SignOut>),
    /// Set or remove a platform-wide feature flag (format 16).
    PlatformFlag(Since<16, crate::custom::PlatformFlagOp>),
    /// The operators' webhook endpoints, their deliveries, and tenants'
    /// alerts handed on to them (format 18).
    PlatformAlerts(Since<18, Box<crate::alerts::PlatformAlertOp>>),
}

/// See [`MetaOp::SignOut`] and [`crate::model::SignedOut`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOut {
    pub session: crate::model::SessionId,
    /// When the session would have expired.
    pub until_ms: i64,
    /// When the sign-out was proposed: sessions expired by then are
    /// forgotten, alike on every replica.
    pub at_ms: i64,
}

/// A tenant's whole state in transit to another group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedTenant {
    pub tenant: TenantId,
    pub to_group: u64,
    pub state: TenantState,
    pub audit: Option<AuditLog>,
    pub usage: Option<UsageHistory>,
}

/// The payload of one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A group commit: many tenant operations in one entry.
    Batch(Vec<StampedOp>),
    Meta(MetaOp),
    /// Hand a tenant over to `to_group`: its state leaves this group's
    /// tenants and is kept, as moved, until the move is complete.
    MoveOut {
        tenant: TenantId,
        to_group: u64,
    },
    /// Receive a moved tenant (no-op if it is already here).
    MoveIn(Box<MovedTenant>),
    /// The archive has taken these tenants' usage and audit as of the
    /// given change counts (see `ShardState::unarchived`).
    ArchiveSynced(Vec<(TenantId, u64)>),
    /// The tenant's move to `to_group` is complete (pinned there, and its
    /// state archived from there): drop the kept copy, remember only where
    /// it went. (Variants are appended: their index is their encoding.)
    MoveDone {
        tenant: TenantId,
        to_group: u64,
    },
    /// The archive has taken these tenants' usage and audit as they stood
    /// at a position (format 2; replaces `ArchiveSynced`, which a busy
    /// tenant never satisfied).
    ArchiveTaken(Since<2, Vec<ArchiveAck>>),
}

/// What one sync round copied of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveAck {
    pub tenant: TenantId,
    /// The tenant's change count when copied: if it has not moved, the
    /// tenant is wholly archived.
    pub changes: u64,
    /// The tenant's latest stamp when copied: everything stamped before it
    /// is archived, whatever happened since.
    pub upto_ms: i64,
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
    Membership(MembershipReply),
    MovedOut(Box<MovedTenant>),
    TenantNotHere,
    /// What a [`MetaOp::Sharing`] did (format 6).
    Sharing(Since<6, Box<crate::sharing::SharingReply>>),
}
