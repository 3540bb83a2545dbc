//! What changes a [`KvState`]: the commands ([`KvCommand`]), what applying one returns
//! ([`KvOutput`], [`KvApplied`], [`CasMismatch`]), and the apply logic itself, including
//! [`PreparedPut`], the borrowed-bytes put that `KvStore::put` logs and applies.
//!
//! Owns the meaning of every command; the bytes they are logged as belong to
//! `encoding` (the serde attributes here only name its helpers).

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::KvState;
use super::encoding::{PutRef, bytes, opt_bytes};
use super::keys::{Entry, KeyProbe, probe};
use super::queries::prefix_end;
use crate::error::{ShowBytes, ShowValue};

/// A mutation of a [`KvState`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
    },
    /// Removes `key` (a no-op when absent).
    Delete {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
    },
    /// Removes every key in `[start, end)`; nothing when `start >= end`.
    DeleteRange {
        /// First key removed (inclusive).
        #[serde(with = "bytes")]
        start: Vec<u8>,
        /// First key kept (exclusive).
        #[serde(with = "bytes")]
        end: Vec<u8>,
    },
    /// Removes every key starting with `prefix`; the empty prefix removes everything.
    DeletePrefix {
        /// The prefix.
        #[serde(with = "bytes")]
        prefix: Vec<u8>,
    },
    /// Sets `key` to `new` only if its current value equals `expected`.
    CompareAndSet {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// Required current value; `None` means the key must be absent.
        #[serde(with = "opt_bytes")]
        expected: Option<Vec<u8>>,
        /// Value to store; `None` deletes the key.
        #[serde(with = "opt_bytes")]
        new: Option<Vec<u8>>,
    },
}

impl KvCommand {
    /// `Put { key, value }`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        KvCommand::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        KvCommand::Delete { key: key.into() }
    }

    /// `DeleteRange { start, end }`: removes keys in `[start, end)`.
    pub fn delete_range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KvCommand::DeleteRange {
            start: start.into(),
            end: end.into(),
        }
    }

    /// `DeletePrefix { prefix }`.
    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Self {
        KvCommand::DeletePrefix {
            prefix: prefix.into(),
        }
    }

    /// `CompareAndSet`: `expected = None` requires the key to be absent, `new = None`
    /// deletes it. Slices so that a bare `None` needs no type annotation:
    /// `KvCommand::cas("k", None, Some(b"v"))`.
    pub fn cas(key: impl Into<Vec<u8>>, expected: Option<&[u8]>, new: Option<&[u8]>) -> Self {
        KvCommand::CompareAndSet {
            key: key.into(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.map(<[u8]>::to_vec),
        }
    }
}

/// What applying a [`KvCommand`] returns: the effect, or a compare-and-set rejection.
pub type KvOutput = Result<KvApplied, CasMismatch>;

/// The effect of a successfully applied [`KvCommand`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvApplied {
    /// A `Put` stored its value.
    Put {
        /// The value it replaced, if any.
        previous: Option<Vec<u8>>,
    },
    /// A `Delete` ran.
    Deleted {
        /// The value it removed; `None` when the key was absent.
        previous: Option<Vec<u8>>,
    },
    /// A `DeleteRange` or `DeletePrefix` ran.
    DeletedRange {
        /// Number of keys removed.
        removed: u64,
    },
    /// A `CompareAndSet` matched and stored (or deleted) the new value.
    Swapped,
}

/// A `CompareAndSet` found a value other than the expected one; the state is unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "compare-and-set on key {} failed: expected {}, found {}",
    ShowBytes::quoted(key),
    ShowValue(expected.as_deref()),
    ShowValue(actual.as_deref())
)]
pub struct CasMismatch {
    /// The key.
    pub key: Vec<u8>,
    /// The value the command required (`None`: absent).
    pub expected: Option<Vec<u8>>,
    /// The value actually present (`None`: absent).
    pub actual: Option<Vec<u8>>,
}

impl KvState {
    /// [`StateMachine::apply`](crate::StateMachine::apply) of `command`.
    pub(super) fn apply_command(&mut self, command: &KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => self.put(Entry::new(key, value)),
            KvCommand::CompareAndSet { key, expected, new } => self
                .compare_and_set(key, expected.as_deref(), new.as_deref())
                .map(|()| KvApplied::Swapped)
                .map_err(|actual| CasMismatch {
                    key: key.clone(),
                    expected: expected.clone(),
                    actual,
                }),
            KvCommand::Delete { key } => Ok(KvApplied::Deleted {
                previous: self.remove(key).map(|entry| entry.value().to_vec()),
            }),
            KvCommand::DeleteRange { start, end } => Ok(KvApplied::DeletedRange {
                removed: self.remove_range(Bound::Included(start), Bound::Excluded(end)),
            }),
            KvCommand::DeletePrefix { prefix } => {
                let removed = if prefix.is_empty() {
                    let n = self.map.len() as u64;
                    *self = KvState::default();
                    n
                } else {
                    let end = prefix_end(prefix);
                    let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                    self.remove_range(Bound::Included(prefix), end)
                };
                Ok(KvApplied::DeletedRange { removed })
            }
        }
    }

    /// [`StateMachine::apply_owned`](crate::StateMachine::apply_owned) of `command`.
    pub(super) fn apply_command_owned(&mut self, command: KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => self.put(Entry::new(&key, &value)),
            KvCommand::CompareAndSet { key, expected, new } => {
                match self.compare_and_set(&key, expected.as_deref(), new.as_deref()) {
                    Ok(()) => Ok(KvApplied::Swapped),
                    Err(actual) => Err(CasMismatch {
                        key,
                        expected,
                        actual,
                    }),
                }
            }
            other => self.apply_command(&other),
        }
    }

    /// Stores `entry`, replacing the entry of its key; returns the one replaced.
    pub(super) fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let added = entry.key().len() + entry.value().len();
        let previous = self.map.insert(entry, ()).map(|(previous, ())| previous);
        // Lengths of live allocations: neither sum can overflow nor underflow, because
        // `bytes` is always the exact sum over the entries.
        self.bytes += added;
        if let Some(prev) = &previous {
            self.bytes -= prev.key().len() + prev.value().len();
        }
        previous
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let previous = self
            .map
            .remove(probe(&KeyProbe::new(key)))
            .map(|(entry, ())| entry);
        if let Some(prev) = &previous {
            self.bytes -= prev.key().len() + prev.value().len();
        }
        previous
    }

    fn remove_range(&mut self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> u64 {
        let entries: Vec<Entry> = match self.range_bounds(start, end).inner {
            Some(range) => range.map(|(entry, ())| entry.clone()).collect(),
            None => Vec::new(),
        };
        for entry in &entries {
            if let Some((prev, ())) = self.map.remove(entry) {
                self.bytes -= prev.key().len() + prev.value().len();
            }
        }
        entries.len() as u64
    }

    /// `Put`: stores `entry`, returns the previous value of its key.
    fn put(&mut self, entry: Entry) -> KvOutput {
        let previous = self.insert(entry);
        Ok(KvApplied::Put {
            previous: previous.map(|prev| prev.value().to_vec()),
        })
    }

    /// `CompareAndSet` without building the rejection: `Err(actual)` on a mismatch.
    fn compare_and_set(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<(), Option<Vec<u8>>> {
        let actual = self.get(key);
        if actual != expected {
            return Err(actual.map(<[u8]>::to_vec));
        }
        match new {
            Some(value) => {
                self.insert(Entry::new(key, value));
            }
            None => {
                self.remove(key);
            }
        }
        Ok(())
    }
}

/// A `Put` built from borrowed bytes, for [`crate::KvStore::put`]: the state's copy
/// of the key and value (one entry) is made once, the logged payload is encoded from them, and
/// applying it is exactly what replay does with the decoded [`KvCommand::Put`].
pub(crate) struct PreparedPut {
    entry: Entry,
}

impl PreparedPut {
    pub(crate) fn new(key: &[u8], value: &[u8]) -> Self {
        PreparedPut {
            entry: Entry::new(key, value),
        }
    }

    /// The bytes [`KvCommand::Put`] of the same key and value encodes to.
    pub(crate) fn payload(&self) -> crate::Result<Vec<u8>> {
        crate::codec::encode(&PutRef {
            key: self.entry.key(),
            value: self.entry.value(),
        })
    }

    /// Applies the put, as `apply_owned(KvCommand::Put { .. })` does.
    pub(crate) fn apply(self, state: &mut KvState) -> KvOutput {
        state.put(self.entry)
    }
}
