//! Driver errors as archive errors: transient ones (a node down, a
//! timeout, overload) are `Unavailable`, so the sync retries them.
use crate::archive::ArchiveError;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

pub(super) const BACKEND: &str = "scylla";

/// Whether a failed call may succeed later (node down, timeout, overload).
fn transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(a) => match a {
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => true,
            RequestAttemptError::DbError(d, _) => matches!(
                d,
                DbError::Overloaded
                    | DbError::Unavailable { .. }
                    | DbError::ReadTimeout { .. }
                    | DbError::WriteTimeout { .. }
                    | DbError::IsBootstrapping
                    | DbError::RateLimitReached { .. }
            ),
            _ => false,
        },
        _ => false,
    }
}

pub(super) fn exec_err(e: ExecutionError) -> ArchiveError {
    if transient(&e) {
        ArchiveError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
        }
    } else {
        ArchiveError::Backend {
            backend: BACKEND,
            message: e.to_string(),
        }
    }
}

pub(super) fn other(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}
