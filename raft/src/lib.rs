//! walstate-raft: openraft's storage (`RaftLogStorage`, `RaftStateMachine`) over
//! walstate, for any [`walstate::StateMachine`], on the stable openraft line (0.9).
//!
//! ```
//! use openraft::testing::log_id;
//! use openraft::storage::{RaftLogStorage, RaftStateMachine};
//! use openraft::{Entry, EntryPayload, RaftLogReader};
//! use serde::{Deserialize, Serialize};
//! use walstate::{Options, StateMachine};
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Counter(u64);
//! impl StateMachine for Counter {
//!     type Command = u64;
//!     type Output = u64;
//!     fn apply(&mut self, n: &u64) -> u64 { self.0 += n; self.0 }
//! }
//! // The raft types carry the state machine's commands and outputs.
//! use std::io::Cursor;
//! openraft::declare_raft_types!(pub Types: D = u64, R = Option<u64>);
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! # let tmp = tempfile::tempdir()?;
//! let (mut log, mut sm) = walstate_raft::open::<Types, Counter>(tmp.path(), Options::default())?;
//! // What openraft does: save a vote, append entries (durable before the callback
//! // fires), apply the committed ones.
//! log.save_vote(&openraft::Vote::new(1, 0)).await?;
//! let entry = Entry::<Types> { log_id: log_id(1, 0, 1), payload: EntryPayload::Normal(7) };
//! log.append_blocking(vec![entry.clone()])?;
//! assert_eq!(sm.apply([entry]).await?, vec![Some(7)]);
//! assert_eq!(log.try_get_log_entries(1..).await?.len(), 1);
//! assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 0, 1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design: two walstate stores per node
//!
//! A node's storage is two walstate stores in one directory: `log/`, a [`LogStore`]
//! holding the raft log and the vote, and `state/`, a [`StateMachineStore`] holding
//! the application's state machine as openraft applies it. Each is an ordinary walstate
//! store, so each inherits its recovery, checksums, consecutive LSNs, store identity,
//! poisoning on a failed fsync and checkpoints, with no new on-disk format:
//!
//! - **The log is a state machine** ([`RaftLog`]) whose commands are append (one command
//!   per entry, one atomic group per call), truncate of a suffix, purge of a prefix,
//!   save vote and save committed. Replay of the log store's journal reproduces exactly
//!   the log openraft last saw acknowledged; a crash keeps a prefix of those commands,
//!   and each command leaves a log openraft allows (consecutive entries after the last
//!   purged id). Truncation and purge are logged commands, so they are durable and
//!   ordered with appends, and purge is independent of walstate's checkpoints: the
//!   log store's own checkpoints compact its journal to the live entries.
//! - **Durability**: the log store always runs under [`walstate::SyncPolicy::Always`], and
//!   `append` fires openraft's flushed callback only after the group is fdatasync'd;
//!   votes are durable before `save_vote` returns. Blocking calls run on tokio's
//!   blocking pool, never on a runtime worker.
//! - **Memory**: the live entries (from the last purge on) are in memory, as encoded
//!   bytes in a persistent map whose clone is O(1) (checkpoints snapshot it under a
//!   short lock). openraft purges after each snapshot (a snapshot every 5,000 entries
//!   and 1,000 kept behind it by default), which bounds them to about 6,000 entries.
//! - **The state machine** is [`Replicated<S>`]: `S` plus the last applied log id and
//!   membership, changed together by each applied entry, so they never disagree after a
//!   crash. A snapshot is a walstate named snapshot of it (`raft-<seq>`, the newest is
//!   the current one, read back from its checked file); installing a leader's snapshot
//!   is [`walstate::Store::install_state`], atomic and durable, after the older
//!   snapshots are deleted (so a crash never leaves a current snapshot older than a
//!   state that moved past it; with none, openraft builds one at start). Snapshot data
//!   is the codec encoding of `Replicated<S>` in memory (`Cursor<Vec<u8>>`), and a
//!   snapshot's id is its last log id (states are deterministic, so that names one
//!   state).
//! - **Not pipelined**: `append` returns once its group is durable, so openraft's
//!   storage task waits for each fdatasync in turn (its flushed callback could let it go
//!   on meanwhile); group commit still batches what openraft hands over in one call.
//!
//! The other layout, the raft log in the application store's own journal (entry index =
//! LSN), would save one copy of each command, but needs suffix truncation of a journal
//! whose records are already applied, and a purge that cuts the journal below the
//! application's checkpoint: both change the core's recovery invariants. Two stores need
//! neither, at the cost of two fdatasyncs per replicated command (log, then state).
//!
//! `examples/cluster/` runs three nodes as processes on loopback (HTTP between them),
//! SIGKILLs the leader between two rounds of writes and checks that no acknowledged
//! write is lost; `cluster bench` measures replicated commits on disk and in memory.
//!
//! # Types
//!
//! The raft type config `C` carries `S`'s commands and outputs: `D = S::Command`,
//! `R = Option<S::Output>` (`None` for blank and membership entries), and openraft's
//! defaults `Entry = openraft::Entry<C>` and `SnapshotData = Cursor<Vec<u8>>`. Entries,
//! votes and log ids are stored with walstate's compact codec; openraft's `serde`
//! feature provides their encodings.

#![warn(missing_docs)]

mod blocking;
mod encoding;
mod error;
mod log_state;
mod log_storage;
mod log_store;
mod raft_state_machine;
mod replicated;
mod state_machine;

use std::path::Path;

pub use error::Error;
pub use log_state::{Encoded, LogCommand, Purged, RaftLog};
pub use log_store::LogStore;
pub use replicated::{AppliedEntry, Payload, Replicated};
pub use state_machine::{AppliedState, ConfigFor, StateMachineStore};

/// The subdirectory of a node's directory holding its [`LogStore`].
pub const LOG_DIR_NAME: &str = "log";
/// The subdirectory of a node's directory holding its [`StateMachineStore`].
pub const STATE_DIR_NAME: &str = "state";

/// Opens (or creates) a node's storage in `dir`: its log store in `dir/log` (always
/// under `SyncPolicy::Always`) and its state machine store in `dir/state` (under
/// `options`), ready to hand to `openraft::Raft::new`.
#[allow(clippy::type_complexity)]
pub fn open<C, S>(
    dir: impl AsRef<Path>,
    options: walstate::Options,
) -> Result<(LogStore<C>, StateMachineStore<C, S>), Error>
where
    S: walstate::StateMachine,
    C: ConfigFor<S>,
{
    let dir = dir.as_ref();
    let log = LogStore::open(dir.join(LOG_DIR_NAME), options.clone())?;
    let state = StateMachineStore::open(dir.join(STATE_DIR_NAME), options)?;
    Ok((log, state))
}
