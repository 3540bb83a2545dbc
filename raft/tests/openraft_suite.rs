//! openraft's own storage conformance suite (`openraft::testing::Suite::test_all`), run
//! against the adapter: every case gets a fresh node directory on the real file system.

mod common;

use common::{Log, Sm, Types};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;
use walstate::Options;

/// Builds a node's storage in a new temporary directory, removed when the case ends.
struct OnDisk;

impl StoreBuilder<Types, Log, Sm, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, Log, Sm), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|err| {
            StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, err)
        })?;
        let (log, sm) = walstate_raft::open(dir.path(), Options::default()).map_err(|err| {
            StorageError::from_io_error(
                ErrorSubject::Store,
                ErrorVerb::Write,
                std::io::Error::other(err.to_string()),
            )
        })?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_a_real_directory() {
    if let Err(err) = Suite::test_all(OnDisk) {
        panic!("openraft's storage suite failed: {err}");
    }
}
