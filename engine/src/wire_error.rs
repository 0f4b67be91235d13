//! An engine error as it crosses from one node to another (a forwarded
//! request's answer, one item of a Batch): its code, message and field,
//! and what a sender needs to re-route (the group's leader, a tenant on
//! the move).
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{NodeId, TenantId};
use serde::{Deserialize, Serialize};

/// An engine error as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Set when the receiving node does not lead the group: (group, leader).
    pub not_leader: Option<(u64, Option<NodeId>)>,
    /// Set when the tenant is moving to another group.
    #[serde(default)]
    pub moving: Option<TenantId>,
}

impl From<&EngineError> for WireError {
    fn from(e: &EngineError) -> Self {
        WireError {
            code: e.code(),
            message: e.to_string(),
            field: e.field().map(str::to_string),
            not_leader: match e {
                EngineError::NotLeader { group, leader } => Some((*group, *leader)),
                _ => None,
            },
            moving: match e {
                EngineError::TenantMoving { tenant } => Some(*tenant),
                _ => None,
            },
        }
    }
}

impl From<WireError> for EngineError {
    fn from(w: WireError) -> Self {
        if let Some(tenant) = w.moving {
            return EngineError::TenantMoving { tenant };
        }
        match (w.not_leader, w.code) {
            (Some((group, leader)), _) => EngineError::NotLeader { group, leader },
            (None, ErrorCode::OutcomeUnknown) => EngineError::OutcomeUnknown {
                group: 0,
                reason: w.message,
            },
            (None, code) => EngineError::Remote {
                code,
                message: w.message,
                field: w.field,
            },
        }
    }
}
