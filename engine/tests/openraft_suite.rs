//! openraft's own storage test suite (`openraft::testing::Suite`, 35
//! cases) against quotad's Raft log store and state machine, each case on
//! a fresh redb store in its own temp dir: log reads and ranges, purge and
//! truncate, vote and committed, membership and initial state as openraft
//! recovers them at start, snapshot build, and install on another replica.
//! The suite drives the stores directly, without a Raft core or network.
//!
//! The stores come from `quotad_engine::raft::storage_for_tests` (the
//! crate's `testing` feature), wired as a running group wires them.
//!
//! `Suite::test_all` makes its own tokio runtime per case (openraft
//! src/testing/suite.rs `run_fut`), so this is a plain `#[test]`: under
//! `#[tokio::test]` it would panic starting a runtime inside a runtime.
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use quotad_engine::raft::{NodeId, TypeConfig};
use quotad_engine::storage::Store;
use tempfile::TempDir;

/// The group the stores are opened for. Any id: each case has a store of
/// its own, so no other group's rows are there to be confused with.
const GROUP: u64 = 3;

/// Opens one group's log store and state machine over a store.
type Open<LS, SM> = fn(u64, Store) -> Result<(LS, SM), quotad_engine::storage::StorageError>;

/// Gives every suite case a new store in a new temp dir; the dir is the
/// guard openraft drops after the case, once the stores are dropped.
struct Builder<LS, SM> {
    open: Open<LS, SM>,
}

/// A setup failure (temp dir, opening the store), as the error the suite
/// reports: the case then fails with its cause instead of a panic here.
fn setup_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl<LS, SM> StoreBuilder<TypeConfig, LS, SM, TempDir> for Builder<LS, SM>
where
    LS: RaftLogStorage<TypeConfig>,
    SM: RaftStateMachine<TypeConfig>,
{
    async fn build(&self) -> Result<(TempDir, LS, SM), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(setup_err)?;
        let store = Store::open(dir.path()).map_err(setup_err)?;
        let (log, sm) = (self.open)(GROUP, store).map_err(setup_err)?;
        Ok((dir, log, sm))
    }
}

/// Every case of openraft 0.9's storage suite passes on our stores. The
/// suite stops at the first failing case (an `Err`, or an assert's panic
/// naming the case's step). It purges logs no snapshot covers, which a
/// running group never does; `storage_for_tests` therefore opens the
/// store's purge gate (`durable_snapshot`), which its own unit tests cover.
/// Takes about 10 s: eight cases sleep 1 s after a purge (openraft's
/// allowance for a store that purges in the background; ours does not).
#[test]
fn openraft_storage_suite_passes() {
    let result = Suite::<TypeConfig, _, _, _, TempDir>::test_all(Builder {
        open: quotad_engine::raft::storage_for_tests,
    });
    if let Err(e) = result {
        panic!("openraft's storage suite failed: {e}");
    }
}
