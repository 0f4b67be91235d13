//! Why a sharing operation was refused. Decided inside the meta group's
//! deterministic apply and carried back in its reply (so it is data, with
//! its code), then mapped once to gRPC and HTTP like every engine error.
use crate::error_code::ErrorCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}")]
pub struct SharingError {
    pub code: ErrorCode,
    /// The request field it is about, as the REST body spells it.
    pub field: Option<String>,
    pub reason: String,
}

impl SharingError {
    fn new(code: ErrorCode, field: Option<&str>, reason: impl Into<String>) -> Self {
        SharingError {
            code,
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }

    /// The thing does not exist, or the caller may not know that it does
    /// (a private policy answers this, never "forbidden": it leaks nothing).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, None, what)
    }

    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, Some(field), reason)
    }

    /// A condition of the policy refuses this consumer.
    pub fn forbidden(field: &str, reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, Some(field), reason)
    }

    /// The state of things refuses it (a pending request, a full policy).
    pub fn conflict(field: Option<&str>, reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, field, reason)
    }
}
