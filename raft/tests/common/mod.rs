//! What the adapter's tests share: raft types carrying walstate's key-value store.

#![allow(dead_code)]

use std::io::Cursor;

use walstate::{KvCommand, KvOutput, KvState};

openraft::declare_raft_types!(
    /// The raft types of a replicated `KvState`.
    pub Types: D = KvCommand, R = Option<KvOutput>
);

/// The log store of these tests.
pub type Log = walstate_raft::LogStore<Types>;
/// The state machine store of these tests.
pub type Sm = walstate_raft::StateMachineStore<Types, KvState>;
