//! Whether the journal may still be used: poisoned by a failed fsync (or from outside),
//! or closed. Read without a lock on every append; set once.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

#[derive(Default)]
pub(super) struct Health {
    poisoned: AtomicBool,
    cause: Mutex<Option<String>>,
    closed: AtomicBool,
}

impl Health {
    /// An error if the journal is poisoned or closed.
    pub(super) fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned {
                cause: self.cause().unwrap_or_else(|| "unknown".into()),
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(super) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// The first poison cause, if poisoned.
    pub(super) fn cause(&self) -> Option<String> {
        self.cause.lock().clone()
    }

    /// Poisons: every later call errors until the store is reopened. The first cause
    /// is kept.
    pub(super) fn poison(&self, cause: String) {
        let mut slot = self.cause.lock();
        if slot.is_none() {
            tracing::error!(
                target: "walstate",
                cause = %cause,
                "journal poisoned: every call fails until the store is reopened"
            );
            *slot = Some(cause);
        }
        self.poisoned.store(true, Ordering::Release);
    }

    /// Poisons with `err` as the cause and returns the error appenders see.
    pub(super) fn poison_with(&self, err: Error) -> Error {
        let cause = err.to_string();
        self.poison(cause.clone());
        Error::Poisoned { cause }
    }

    /// Refuses every later call (called with the writer locked, after the final sync).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// Produces an equivalent error for each of several waiters (errors are not `Clone`).
pub(super) fn retell(err: &Error) -> Error {
    match err {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::DiskFull { path, offset, op } => Error::DiskFull {
            path: path.clone(),
            offset: *offset,
            op: *op,
        },
        Error::Poisoned { cause } => Error::Poisoned {
            cause: cause.clone(),
        },
        Error::InvalidArgument(msg) => Error::InvalidArgument(msg.clone()),
        Error::PermissionDenied { op, path } => Error::PermissionDenied {
            op,
            path: path.clone(),
        },
        Error::Locked { path, holder } => Error::Locked {
            path: path.clone(),
            holder: holder.clone(),
        },
        Error::Closed => Error::Closed,
        Error::StreamStopped => Error::StreamStopped,
        other => Error::Poisoned {
            cause: other.to_string(),
        },
    }
}
