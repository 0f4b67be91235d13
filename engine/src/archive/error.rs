/// What can go wrong talking to an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The backend did not answer or refused for now (down, timeout,
    /// overloaded); the same call may succeed later.
    #[error("the {backend} archive is unavailable: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
    /// The backend answered with an error a retry will not fix.
    #[error("the {backend} archive failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    #[error("stored {what} in the archive is corrupt: {message}")]
    Corrupt { what: &'static str, message: String },
    #[error(
        "the archive's schema is version {found}, newer than this build's {supported}; upgrade quotad"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("invalid archive configuration: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
}

impl ArchiveError {
    /// Whether retrying later may succeed; the sync keeps what it has and
    /// tries again, rather than giving up.
    pub fn is_transient(&self) -> bool {
        matches!(self, ArchiveError::Unavailable { .. })
    }
}
