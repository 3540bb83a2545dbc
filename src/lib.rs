//! walstate: a crash-safe, write-ahead-log backed state store.
//!
//! Commands are appended as checksummed records to a segmented journal, made durable
//! (group commit: many writers share one fdatasync), and only then applied, in log
//! order, to an in-memory state machine. The state is periodically compacted into a
//! checkpoint file; on open the store replays checkpoint + journal, truncates a torn
//! tail and refuses to guess past real corruption.
//!
//! ```no_run
//! use walstate::{KvStore, Options};
//! let store = KvStore::open("./my-store", Options::default())?;
//! store.put("config/port", "8080")?;
//! assert_eq!(store.get(b"config/port")?.as_deref(), Some(&b"8080"[..]));
//! # Ok::<(), walstate::Error>(())
//! ```
//!
//! The byte-level format is specified in `wal-format.md`.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod codec;
pub mod error;
pub mod format;
pub mod io;
pub mod journal;
pub mod kv;
mod kv_store;
pub mod lock;
pub mod migrate;
mod options;
mod plan_fs;
pub mod recovery;
pub mod repair;
pub mod schema;
pub mod state;
mod store;
pub mod upgrade;
pub mod verify;

pub use codec::Codec;
pub use error::{Error, Result};
pub use journal::SyncPolicy;
pub use kv::{CasMismatch, KvApplied, KvCommand, KvOutput, KvState};
pub use kv_store::KvStore;
pub use migrate::Migrations;
pub use options::{CHECKPOINT_WRITE_RATE_DEFAULT, CHECKPOINTS_RETAINED_MAX, Options};
pub use recovery::RecoveryReport;
pub use schema::SchemaName;
pub use state::StateMachine;
pub use store::{CheckpointInfo, Refreshed, RestoreInfo, Store};
