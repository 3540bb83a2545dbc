//! The adapter's errors, and their conversion into openraft's `StorageError`.

use anyerror::AnyError;
use openraft::{ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};

/// What can go wrong in the adapter's own (blocking) API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The walstate store failed (I/O, a poisoned store, a damaged file, ...); its
    /// message says what to do.
    #[error(transparent)]
    Store(#[from] walstate::Error),
    /// A stored value (an entry, a vote, a log id, a membership) does not decode as the
    /// application's raft types.
    #[error(
        "the stored {what} does not decode as this application's raft types ({source}); the \
         store was written by a build with other raft types: open it with that build"
    )]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// The codec's error.
        source: walstate::Error,
    },
    /// An append whose entries are not consecutive: it would leave a hole in the log.
    #[error(
        "an append was refused and nothing was written: entry index {got} follows {}, not \
         {expected}; the entries of one append must be consecutive", expected - 1
    )]
    NotConsecutive {
        /// The index the entry had to have.
        expected: u64,
        /// The index it had.
        got: u64,
    },
    /// A snapshot's data does not match its metadata, or does not decode.
    #[error("the snapshot was refused and the state is unchanged: {detail}")]
    BadSnapshot {
        /// What does not match.
        detail: String,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("a storage task on the blocking pool did not finish ({0}); reopen the store")]
    Task(String),
}

impl Error {
    /// This error as openraft's `StorageError`, about `subject` during `verb`.
    pub(crate) fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}
