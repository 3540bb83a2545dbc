//! walstate: a crash-safe, write-ahead-log backed state store.
//!
//! Commands are appended as checksummed records to a segmented journal, made durable
//! (group commit: many writers share one fdatasync), and only then applied, in log
//! order, to an in-memory state machine. The state is periodically compacted into a
//! checkpoint file; on open the store replays checkpoint + journal, truncates a torn
//! tail and refuses to guess past real corruption.
//!
//! ```
//! use walstate::{KvStore, Options};
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("my-store");
//! let store = KvStore::open(&dir, Options::default())?;
//! store.put("config/port", "8080")?;
//! assert_eq!(store.get(b"config/port")?.as_deref(), Some(&b"8080"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where to start
//!
//! - [`KvStore`]: a ready-made byte key-value store (put, get, delete, scan, compare
//!   and swap).
//! - [`Store`] with your own [`StateMachine`]: typed commands and outputs, your state.
//! - [`Options`] and [`SyncPolicy`]: what an acknowledged commit promises, and the limits.
//! - [`RecoveryReport`]: what opening a store found and did (torn tail, salvage).
//! - Snapshots ([`Store::snapshot`], [`Store::restore_snapshot`]) and offline tools
//!   ([`verify()`], [`repair()`], [`upgrade()`]), which the `walstate` CLI wraps.
//! - `AsyncStore` and `AsyncKvStore` (feature `tokio`): commits as futures, resolved
//!   by the journal's durable hook, with no thread waiting per commit.
//! - [`io::SimFs`]: a simulated file system that crashes, tears and fails I/O on
//!   command, for your own crash tests.
//!
//! # Public API and the `internals` feature
//!
//! The API is what the crate root re-exports plus the [`io`] module. The machinery under
//! it (journal, on-disk format, recovery, checkpoint files, codecs, schema tracing, and
//! the simulator's corruption helpers) is public only with the `internals` feature, which
//! the CLI, the tests, benches and fuzz targets enable. Internals carry no stability
//! promise.
//!
//! The byte-level format is specified in `wal-format.md`.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// Declares a module that is public with the `internals` feature and crate-private
/// without it. Visibility cannot be switched with `cfg_attr`, hence two declarations.
macro_rules! internal_mod {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        #[cfg(feature = "internals")]
        $(#[$attr])*
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        $(#[$attr])*
        pub(crate) mod $name;
    )*};
}

// The deliberate API is the re-export list below plus `io` (the file-system seam, with
// `SimFs` for users' own crash tests). Everything a public method takes or returns is
// nameable from here. The modules below are the machinery; with the `internals` feature
// (the CLI, the integration tests, benches and fuzz targets enable it) they are public,
// with no stability promise.
internal_mod! {
    checkpoint;
    codec;
    error;
    format;
    journal;
    kv;
    lock;
    migrate;
    recovery;
    repair;
    schema;
    state;
    upgrade;
    verify;
}
#[cfg(feature = "tokio")]
mod async_kv_store;
pub mod io;
mod kv_store;
mod options;
mod plan_fs;
mod store;
/// `WRITER-STATS`, the journal counters the last writer recorded (what `walstate stats`
/// shows). Internals: no stability promise.
#[cfg(feature = "internals")]
pub use store::writer_stats;

#[cfg(feature = "tokio")]
pub use async_kv_store::AsyncKvStore;
pub use checkpoint::SnapshotInfo;
pub use codec::Codec;
pub use error::{CodecError, CodecFailure, DiskFullOp, Error, Result};
pub use format::{SchemaId, StoreId};
pub use journal::{
    Defect, DefectKind, HISTOGRAM_BUCKETS, Histogram, JournalStats, SyncPolicy, TornTailTruncation,
};
pub use kv::{CasMismatch, Entries as KvEntries, KvApplied, KvCommand, KvOutput, KvState};
pub use kv_store::KvStore;
pub use migrate::{MigrationReport, Migrations, RollbackReport};
pub use options::{
    CHECKPOINT_AFTER_BYTES_DEFAULT, CHECKPOINT_WRITE_RATE_DEFAULT, CHECKPOINTS_RETAINED_MAX,
    Options, SHARED_LOCK_WAIT_DEFAULT, Writers,
};
pub use recovery::{CheckpointUsed, RecoveryReport, SalvageAction, SkippedCheckpoint};
pub use repair::{RepairOptions, RepairReport, repair};
pub use schema::SchemaName;
pub use state::StateMachine;
#[cfg(feature = "tokio")]
pub use store::AsyncStore;
pub use store::{
    CheckpointInfo, INSTALL_SOURCE_BYTES_MAX, Refreshed, RestoreInfo, STREAM_IN_FLIGHT_MAX, Store,
    StreamStopped, Streamed,
};
pub use upgrade::{UpgradeReport, upgrade};
pub use verify::{FileCheck, FileKind, FileStatus, Verdict, VerifyReport, verify};
