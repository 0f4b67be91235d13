//! The first failed write of the node's database, remembered so that later
//! errors can name it.
//!
//! After any write fails (a full disk, a failed fsync), redb answers every
//! later operation on the database with "Previous I/O error occurred",
//! which says nothing about what to fix. Whichever write happens to stop a
//! Raft group (often a log append, after a snapshot or a vote write met the
//! full disk first) then reports that. Every write of the store goes
//! through [`FirstFailure::check`], so the stop names the real cause.
use super::StorageError;
use std::sync::{Arc, OnceLock};

#[derive(Clone, Default)]
pub(crate) struct FirstFailure(Arc<OnceLock<String>>);

impl FirstFailure {
    /// `result`, with redb's "previous I/O error" replaced by the first
    /// failure this database had; any other I/O error is recorded as that
    /// first failure if it is the first.
    pub(crate) fn check<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        let error = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match &error {
            StorageError::Io(redb::Error::PreviousIo) => match self.0.get() {
                Some(first) => Err(StorageError::AfterFailure {
                    first: first.clone(),
                }),
                None => Err(error),
            },
            StorageError::Io(_) => {
                let _ = self.0.set(error.to_string());
                Err(error)
            }
            _ => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: redb::Error) -> Result<(), StorageError> {
        Err(StorageError::Io(e))
    }

    #[test]
    fn a_previous_io_error_names_the_first_failure() {
        let f = FirstFailure::default();
        let full = std::io::Error::from_raw_os_error(28);
        let first = f.check(io(redb::Error::Io(full))).unwrap_err().to_string();
        assert!(first.contains("No space left on device"), "{first}");
        let later = f.check(io(redb::Error::PreviousIo)).unwrap_err();
        assert!(matches!(later, StorageError::AfterFailure { .. }));
        assert!(
            later.to_string().contains("No space left on device"),
            "{later}"
        );
        assert!(!later.is_transient());
        // Only the first is kept.
        let other = std::io::Error::from_raw_os_error(5);
        let _ = f.check(io(redb::Error::Io(other)));
        let again = f
            .check(io(redb::Error::PreviousIo))
            .unwrap_err()
            .to_string();
        assert!(again.contains("No space left on device"), "{again}");
    }

    #[test]
    fn without_a_recorded_failure_the_error_is_unchanged() {
        let f = FirstFailure::default();
        let e = f.check(io(redb::Error::PreviousIo)).unwrap_err();
        assert!(matches!(e, StorageError::Io(redb::Error::PreviousIo)));
        assert!(f.check(Ok(3)).is_ok());
    }
}
