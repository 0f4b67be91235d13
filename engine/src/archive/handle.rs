//! The node's connection to its archive, made (and the schema migrated) on
//! first use, so a node starts while its archive is away.
use super::{Archive, ArchiveChoice, EmbeddedArchive, ScyllaArchive};
use crate::clock::SharedClock;
use crate::error::EngineError;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ArchiveHandle {
    choice: ArchiveChoice,
    /// Where the embedded archive lives when `choice` says the data dir.
    data_dir: PathBuf,
    clock: SharedClock,
    opened: tokio::sync::OnceCell<Arc<dyn Archive>>,
}

impl ArchiveHandle {
    pub fn new(choice: ArchiveChoice, data_dir: PathBuf, clock: SharedClock) -> Self {
        ArchiveHandle {
            choice,
            data_dir,
            clock,
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// The archive, connected and its schema migrated on first use.
    pub async fn get(&self) -> Result<Arc<dyn Archive>, EngineError> {
        let archive = self
            .opened
            .get_or_try_init(|| async {
                let archive: Arc<dyn Archive> = match &self.choice {
                    ArchiveChoice::Embedded => {
                        EmbeddedArchive::open(&self.data_dir, self.clock.clone())?
                    }
                    ArchiveChoice::EmbeddedAt(dir) => {
                        EmbeddedArchive::open(dir, self.clock.clone())?
                    }
                    ArchiveChoice::Scylla(c) => {
                        ScyllaArchive::connect(c.clone(), self.clock.clone()).await?
                    }
                    ArchiveChoice::Opened(a) => a.clone(),
                };
                let version = archive.migrate().await?;
                tracing::info!(backend = archive.name(), version, "archive ready");
                Ok::<_, EngineError>(archive)
            })
            .await?;
        Ok(archive.clone())
    }
}
