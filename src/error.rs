//! The one error type of the crate. Every variant carries the context an operator needs
//! (path, offset, LSN) and its message says what to do next.

use std::io;
use std::path::PathBuf;

mod show;

pub use show::{ShowBytes, ShowValue};
// Used by the CLI (the `internals` feature).
#[cfg(feature = "internals")]
pub use show::{SHOW_BYTES_MAX, article, human_bytes, sized};

/// Result alias used throughout walstate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in walstate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. The store is unchanged unless the message says it was poisoned.
    #[error("{op} {path}: {source}")]
    Io {
        /// What walstate was doing ("write", "fdatasync", "rename", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The operating system refused access (file or directory permissions).
    #[error(
        "permission denied: {op} {path}; check the owner and mode of the store directory and its files"
    )]
    PermissionDenied {
        /// What walstate was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
    },

    /// The disk is full: the operation (`op`: a commit, a checkpoint, a snapshot, ...)
    /// was not done, nothing of it was left on disk, and the store keeps working once
    /// space is freed.
    #[error(
        "no space left writing {path} at offset {offset}: {}; free disk space and retry",
        op.not_done()
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// Where the failed write started.
        offset: u64,
        /// What the full disk stopped.
        op: DiskFullOp,
    },

    /// A previous fsync/fdatasync (or an unrecoverable write) failed. Data the OS reported
    /// as written may be gone, so the store refuses all further work until it is reopened,
    /// which re-reads what is really on disk.
    #[error(
        "store is poisoned since an earlier failure ({cause}); nothing more is acknowledged: close and reopen the store"
    )]
    Poisoned {
        /// The failure that poisoned the store.
        cause: String,
    },

    /// Damage that a crash cannot explain: open refuses to guess.
    #[error(
        "corruption in {path} at offset {offset} (expected LSN {lsn}): {detail}; run `walstate verify` on the directory, then `walstate repair --salvage` to keep the valid prefix (damaged files are moved to quarantine/, never deleted)"
    )]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage inside that file.
        offset: u64,
        /// The LSN the reader expected at that offset.
        lsn: u64,
        /// What exactly is wrong.
        detail: String,
    },

    /// A file was written by a different (newer or older) version of the on-disk format.
    #[error(
        "{path} has format version {found}, this build reads version {supported}: open it with a matching walstate version"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// The directory exists but holds no walstate store (and creation was not requested).
    #[error(
        "{path} is not a walstate store (no identity, segment, checkpoint or schema file); check the path, or open with `Options::create_if_missing(true)` to create a new store"
    )]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },

    /// Another process holds the writer lock.
    #[error("{path} is locked by another writer ({holder}); stop that process or open read-only")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as recorded in the lock file ("pid 1234").
        holder: String,
    },

    /// The writer lock file is not a regular file (a directory was put in its place), so
    /// no writer can lock the store.
    #[error(
        "{path} is not a regular file (it is a directory), so the store cannot be locked for writing; move it out of the store (or rename it) after checking nothing in it is needed, then retry: walstate creates a new lock file"
    )]
    LockNotAFile {
        /// The lock path.
        path: PathBuf,
    },

    /// A named snapshot exists but cannot be restored: its file is damaged (checksum,
    /// header) or does not decode as this store's state. The store itself is unchanged.
    #[error(
        "snapshot {name:?} ({path}) is damaged and cannot be restored: {detail}; the store itself is unchanged and opens as before; `walstate snapshot list` marks the damaged snapshots: restore another one, and move this file out of snapshots/ (or `walstate snapshot delete` it)"
    )]
    SnapshotDamaged {
        /// The snapshot name.
        name: String,
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// No state can be rebuilt: every checkpoint is unusable and the journal does not
    /// start at LSN 1. Salvage cannot help (a valid prefix of records is useless without
    /// a state to apply it to), so nothing is changed.
    #[error(
        "no state of {path} can be rebuilt: {detail}; `walstate repair --salvage` cannot help (the remaining records have no state to apply to) and nothing was changed; put back an intact copy of a checkpoint (from a backup), or start a new store from a snapshot or an export"
    )]
    NoStateBase {
        /// The store directory.
        path: PathBuf,
        /// Which checkpoints are unusable and where the journal starts.
        detail: String,
    },

    /// The store was written with other state or command types (or another codec) than
    /// those it is opened with. Nothing was decoded with the wrong types and nothing was
    /// changed: this is not damage, and salvage does not apply.
    #[error(
        "{path} was written with schema {stored}, but this application opens it as {wanted}: {}; nothing was changed: open the store with the types that wrote it, or give open a migration from them (`Store::open_migrating`, README \"Evolving your state\"); `walstate verify` shows the store's schema",
        changes.join("; ")
    )]
    SchemaMismatch {
        /// The file whose schema differs (a checkpoint, segment, restore file or snapshot).
        path: PathBuf,
        /// The schema the store holds, described.
        stored: String,
        /// The schema of the types it was opened with, described.
        wanted: String,
        /// What changed, most specific first (which field or variant).
        changes: Vec<String>,
    },

    /// The serde shape of a state machine's types cannot be traced and it declares no
    /// schema name and version, so nothing would tell its releases apart on disk.
    #[error(
        "the shape of {types} cannot be traced ({detail}); declare its schema in its StateMachine impl, `const SCHEMA: Option<SchemaName> = Some(SchemaName::new(\"my-state\", 1));`, and raise the version whenever the types change"
    )]
    SchemaUntraceable {
        /// The state and command types.
        types: String,
        /// Why tracing failed.
        detail: String,
    },

    /// A caller-supplied value broke a documented limit or precondition.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A command or state could not be encoded, or would not decode back to itself; or
    /// stored bytes do not decode. [`CodecError::failure`] says which.
    #[error("codec error: {0}")]
    Codec(CodecError),

    /// A named snapshot does not exist.
    #[error(
        "no snapshot named {name:?} in {path}; `walstate snapshot list` shows the existing ones"
    )]
    SnapshotNotFound {
        /// The snapshot name asked for.
        name: String,
        /// The snapshot directory.
        path: PathBuf,
    },

    /// A writing call on a store opened read-only.
    #[error(
        "the store is open read-only; open it with Store::open (taking the writer lock) to change it"
    )]
    ReadOnly,

    /// The store was closed.
    #[error("the store is closed")]
    Closed,

    /// A command of a stream ([`crate::Store::apply_stream`]) that was not written,
    /// because an earlier command of the same stream failed: a stream stops at its
    /// first failure, so nothing after it is applied.
    #[error(
        "not written: an earlier command of the same stream failed, and a stream stops at its first failure (nothing after it was applied)"
    )]
    StreamStopped,
}

/// What a full disk stopped ([`Error::DiskFull`]): its message says what was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiskFullOp {
    /// A commit (an append to the journal).
    Commit,
    /// Writing a checkpoint.
    Checkpoint,
    /// Creating a named snapshot.
    Snapshot,
    /// Restoring a named snapshot.
    Restore,
    /// `repair --salvage` (quarantining the damaged files).
    Salvage,
    /// Creating a new store.
    CreateStore,
    /// Writing a store file for some other operation (a schema or identity file, a
    /// format upgrade, a migration).
    WriteFile,
}

impl DiskFullOp {
    /// What was not done, and that the store is unchanged.
    pub fn not_done(self) -> &'static str {
        match self {
            DiskFullOp::Commit => "the commit was not made and the store is unchanged",
            DiskFullOp::Checkpoint => {
                "the checkpoint was not written and the store is unchanged (its journal still holds every commit)"
            }
            DiskFullOp::Snapshot => "the snapshot was not created and the store is unchanged",
            DiskFullOp::Restore => "the snapshot was not restored and the store's state is unchanged",
            DiskFullOp::Salvage => {
                "nothing was salvaged and the store is unchanged (no file was moved to quarantine/)"
            }
            DiskFullOp::CreateStore => {
                "the store was not created (what creation had written was removed)"
            }
            DiskFullOp::WriteFile => "the file was not written and the store is unchanged",
        }
    }
}

/// What kind of codec failure an [`Error::Codec`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecFailure {
    /// The value's `Serialize` failed, or writing the encoded bytes did.
    Encode,
    /// The type cannot be stored by the codec: it emits a sequence of unknown length,
    /// needs `deserialize_any`, or encodes but does not decode back to itself.
    Unstorable,
    /// The bytes do not decode as the type: malformed, truncated, or a length that
    /// claims more than the input can hold.
    Decode,
    /// A complete value was decoded but bytes follow it.
    TrailingBytes,
    /// The evolvable codec's bytes are well-formed but do not fit the type's structure
    /// (a renamed or added field without `alias`/`default`, a removed variant, a changed
    /// type).
    StructureMismatch,
    /// The bytes decode, but to a value that breaks the type's invariant (a state's
    /// keys not sorted, say).
    InvalidValue,
    /// A checkpoint read back from disk is not what was written.
    ReadBackMismatch,
    /// A journal record of a kind this build gives no meaning to.
    UnknownRecordKind,
}

/// A codec failure: its kind, and a message with the context (the type, the length,
/// the file) an operator needs. Displays as the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    failure: CodecFailure,
    message: String,
}

impl CodecError {
    /// A failure of kind `failure`, described by `message`.
    pub fn new(failure: CodecFailure, message: impl Into<String>) -> Self {
        CodecError {
            failure,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn failure(&self) -> CodecFailure {
        self.failure
    }

    /// The message, without the "codec error: " that [`Error`] puts before it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

impl Error {
    /// A codec failure of kind `failure`, described by `message`.
    pub fn codec(failure: CodecFailure, message: impl Into<String>) -> Self {
        Error::Codec(CodecError::new(failure, message))
    }

    /// The kind of codec failure, when this is an [`Error::Codec`].
    pub fn codec_failure(&self) -> Option<CodecFailure> {
        match self {
            Error::Codec(err) => Some(err.failure()),
            _ => None,
        }
    }

    /// Wraps an I/O error with the operation and path; permission errors become
    /// [`Error::PermissionDenied`]. (ENOSPC is mapped to [`Error::DiskFull`] by callers
    /// that know the offset.)
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::PermissionDenied {
            return Error::PermissionDenied {
                op,
                path: path.into(),
            };
        }
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Says which operation a full disk stopped: a [`Error::DiskFull`] gets `op`, other
    /// errors are returned unchanged.
    /// An I/O error that is ENOSPC (preallocating, creating a file) becomes a
    /// [`Error::DiskFull`] too.
    pub(crate) fn during(self, op: DiskFullOp) -> Self {
        match self {
            Error::DiskFull { path, offset, .. } => Error::DiskFull { path, offset, op },
            Error::Io { path, source, .. } if is_enospc(&source) => Error::DiskFull {
                path,
                offset: 0,
                op,
            },
            other => other,
        }
    }

    /// True when this error came from a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::DiskFull { .. } => true,
            Error::Io { source, .. } => is_enospc(source),
            _ => false,
        }
    }

    /// True when the store (or journal) is poisoned and must be reopened.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }

    /// True when the store was written with other types than those it was opened with.
    pub fn is_schema_mismatch(&self) -> bool {
        matches!(self, Error::SchemaMismatch { .. })
    }

    /// True when this error reports on-disk corruption (including corruption that left
    /// no state to rebuild).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. } | Error::NoStateBase { .. })
    }
}

/// True when `err` is "no space left on device" (or a quota error, which behaves the same).
pub(crate) fn is_enospc(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || err.kind() == io::ErrorKind::StorageFull
}
