//! The one vocabulary of a tenant's requests, from the gRPC and REST
//! layers through forwarding (it crosses the wire as is) to the tenant's
//! actor: a [`TenantCall`] asked, a [`TenantAnswer`] answered.
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::Consistency;
use crate::quota::{Decision, OpOutcome, TenantOp, TenantState};
use crate::wire_error::WireError;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

/// What a tenant's actor is asked.
// `Apply` is the common case; boxing it would allocate on every request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantCall {
    Apply {
        op: TenantOp,
        audit: Option<AuditMeta>,
        consistency: Consistency,
    },
    Read,
    Check {
        quota: String,
        amount: i64,
    },
    /// Checks and increments of one Batch request for this tenant, decided
    /// in order by one actor message.
    Batch(Vec<BatchItem>),
    /// A check through a sharing grant (format 7).
    SharedCheck(Since<7, SharedCheck>),
    /// A check that names a scope value (format 19).
    ScopedCheck(Since<19, ScopedCheck>),
    /// Scope values of a quota with their usage (format 19): a tenant's
    /// view leaves them out.
    Scopes(Since<19, crate::quota::ScopesQuery>),
}

/// A check of a spend in a scope: the scope's limit and the tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedCheck {
    pub quota: String,
    pub amount: i64,
    pub scope: String,
}

/// A check of a use through a sharing grant: the grant's permission and
/// cap, and the consumer's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCheck {
    pub quota: String,
    pub amount: i64,
    pub policy: uuid::Uuid,
    pub permission: crate::sharing::Permission,
}

impl TenantCall {
    /// Its kind, as traces name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TenantCall::Apply { op, .. } => op.kind(),
            TenantCall::Read => "read",
            TenantCall::Check { .. } => "check",
            TenantCall::Batch(_) => "batch",
            TenantCall::SharedCheck(_) => "shared_check",
            TenantCall::ScopedCheck(_) => "scoped_check",
            TenantCall::Scopes(_) => "scopes",
        }
    }

    /// How many requests it counts for against the node's in-flight
    /// bound: a Batch, one per item (it holds that many decisions).
    pub fn weight(&self) -> usize {
        match self {
            TenantCall::Batch(items) => items.len().max(1),
            _ => 1,
        }
    }

    /// Whether sending it twice is harmless: reads, and changes a retry
    /// would replay rather than repeat.
    pub fn retry_safe(&self) -> bool {
        match self {
            TenantCall::Read
            | TenantCall::Check { .. }
            | TenantCall::SharedCheck(_)
            | TenantCall::ScopedCheck(_)
            | TenantCall::Scopes(_) => true,
            TenantCall::Batch(items) => items.iter().all(|i| match i {
                BatchItem::Check { .. } | BatchItem::SharedCheck(_) | BatchItem::ScopedCheck(_) => {
                    true
                }
                BatchItem::Apply { op, .. } => op.retry_safe(),
            }),
            TenantCall::Apply { op, .. } => op.retry_safe(),
        }
    }

    /// Whether serving it may change state; else a lost one is merely
    /// unanswered, never of unknown outcome.
    pub fn changes_state(&self) -> bool {
        match self {
            TenantCall::Read
            | TenantCall::Check { .. }
            | TenantCall::SharedCheck(_)
            | TenantCall::ScopedCheck(_)
            | TenantCall::Scopes(_) => false,
            TenantCall::Batch(items) => items.iter().any(|i| matches!(i, BatchItem::Apply { .. })),
            TenantCall::Apply { .. } => true,
        }
    }
}

/// What a tenant's actor answers, one kind per [`TenantCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantAnswer {
    Outcome(OpOutcome),
    State(Box<TenantState>),
    Decision(Decision),
    Batch(Vec<Result<Decision, WireError>>),
    Scopes(Since<19, crate::quota::ScopesPage>),
}

/// One item of a [`TenantCall::Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchItem {
    Check {
        quota: String,
        amount: i64,
    },
    Apply {
        op: TenantOp,
        consistency: Consistency,
    },
    /// A check through a sharing grant (format 7).
    SharedCheck(Since<7, SharedCheck>),
    /// A check that names a scope value (format 19).
    ScopedCheck(Since<19, ScopedCheck>),
}

/// A message to a tenant's actor.
// `Call` is the common message; boxing it would allocate on every request
// to shrink the rare `IdleCheck`.
#[allow(clippy::large_enum_variant)]
pub enum TenantMsg {
    /// A call, answered on `reply` (a strict change once it is durable).
    Call {
        call: TenantCall,
        reply: RpcReplyPort<Result<TenantAnswer, EngineError>>,
        /// The traced request it is part of, if sampled (see `crate::trace`).
        trace: Option<Box<crate::trace::Sent>>,
    },
    /// Stop if idle long enough.
    IdleCheck,
}
