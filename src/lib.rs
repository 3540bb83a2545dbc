//! walstate: a crash-safe, write-ahead-log backed state store.
//!
//! Commands are appended as checksummed records to a segmented journal, made durable
//! (group commit: many writers share one fdatasync), and only then applied, in log
//! order, to an in-memory state machine. The state is periodically compacted into a
//! checkpoint file; on open the store replays checkpoint + journal, truncates a torn
//! tail and refuses to guess past real corruption.
//!
//! The byte-level format is specified in `wal-format.md`.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod error;
pub mod format;
pub mod io;
pub mod journal;
pub mod state;

pub use error::{Error, Result};
pub use state::StateMachine;
