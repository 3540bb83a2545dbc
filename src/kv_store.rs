//! `KvStore`: the convenience type over `Store<KvState>` that the CLI and most users use.

use std::ops::Deref;
use std::path::Path;

use crate::error::Result;
use crate::kv::{CasMismatch, KvApplied, KvCommand, KvState, PreparedPut};
use crate::options::Options;
use crate::store::Store;

/// A durable ordered map of byte keys to byte values: a [`Store`] of [`KvState`] with
/// byte-oriented methods. It derefs to the store for everything else (snapshots,
/// checkpoints, [`Store::read`] for range scans without copying).
///
/// ```
/// use walstate::{KvStore, Options};
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("kv");
/// let store = KvStore::open(&dir, Options::default())?;
/// assert_eq!(store.put("user/1", "ada")?, None); // returns the previous value
/// store.put("user/2", "grace")?;
/// store.put("group/1", "admins")?;
/// assert_eq!(store.get(b"user/1")?.as_deref(), Some(&b"ada"[..]));
///
/// // Prefix scans come back in key order.
/// let users: Vec<Vec<u8>> = store.scan_prefix(b"user/")?.into_iter().map(|e| e.0).collect();
/// assert_eq!(users, [b"user/1".to_vec(), b"user/2".to_vec()]);
///
/// // Compare-and-set changes the key only if it holds what the caller expects; a
/// // mismatch changes nothing and says what is there.
/// assert!(store.cas("user/1", Some(b"ada"), Some(b"ada lovelace"))?.is_ok());
/// let mismatch = store.cas("user/1", Some(b"ada"), None)?.unwrap_err();
/// assert_eq!(mismatch.actual.as_deref(), Some(&b"ada lovelace"[..]));
///
/// assert_eq!(store.delete("group/1")?.as_deref(), Some(&b"admins"[..]));
/// assert_eq!(store.len()?, 2);
/// store.close()?;
///
/// let store = KvStore::open(&dir, Options::default())?;
/// assert_eq!(store.get(b"user/1")?.as_deref(), Some(&b"ada lovelace"[..]));
/// assert_eq!(store.get(b"group/1")?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct KvStore {
    store: Store<KvState>,
}

impl Deref for KvStore {
    type Target = Store<KvState>;
    fn deref(&self) -> &Store<KvState> {
        &self.store
    }
}

impl From<Store<KvState>> for KvStore {
    fn from(store: Store<KvState>) -> Self {
        KvStore { store }
    }
}

/// A key-value pair as returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

impl KvStore {
    /// Opens (or creates) a key-value store; see [`Store::open`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        Store::open(dir, options).map(KvStore::from)
    }

    /// Opens read-only; see [`Store::open_read_only`].
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        Store::open_read_only(dir, options).map(KvStore::from)
    }

    /// The underlying typed store.
    pub fn into_inner(self) -> Store<KvState> {
        self.store
    }

    /// Sets `key` to `value` durably; returns the previous value. Logs
    /// [`KvCommand::Put`], copying the bytes once into the state (no command is built).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let put = PreparedPut::new(key.as_ref(), value.as_ref());
        let payload = put.payload()?;
        let (_, applied) = self
            .store
            .apply_encoded(payload, move |state| put.apply(state))?;
        Ok(match applied {
            Ok(KvApplied::Put { previous }) => previous,
            _ => None,
        })
    }

    /// Sets each key to its value, all-or-nothing: one atomic group of records with one
    /// durable point, exactly what [`Store::apply_batch`] of the same [`KvCommand::Put`]s
    /// logs and does. Returns each put's previous value, in order (a key given twice
    /// sees its first value the second time). Like [`KvStore::put`], it copies each key
    /// and value once, into the state, and builds no command.
    pub fn put_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let puts: Vec<PreparedPut> = pairs
            .into_iter()
            .map(|(key, value)| PreparedPut::new(key.as_ref(), value.as_ref()))
            .collect();
        if puts.is_empty() {
            // Logs nothing, and still refuses on a read-only or poisoned store.
            return self.store.apply_batch(Vec::new()).map(|_| Vec::new());
        }
        let payloads = puts
            .iter()
            .map(PreparedPut::payload)
            .collect::<Result<Vec<_>>>()?;
        let (_, previous) = self.store.apply_batch_encoded(payloads, move |state| {
            puts.into_iter()
                .map(|put| match put.apply(state) {
                    Ok(KvApplied::Put { previous }) => previous,
                    _ => None,
                })
                .collect()
        })?;
        Ok(previous)
    }

    /// The value of `key`, if any, in the current state (as
    /// [`Store::read`](crate::Store::read) sees it): this process's commits, and other
    /// processes' up to its last commit or [`KvStore::refresh`]. It reads no file;
    /// `refresh` first to see what another process committed a moment ago.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.read(|state| state.get(key).map(<[u8]>::to_vec))
    }

    /// Deletes `key` durably; returns the previous value.
    pub fn delete(&self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let applied = self.store.apply(KvCommand::delete(key))?;
        Ok(match applied {
            Ok(KvApplied::Deleted { previous }) => previous,
            _ => None,
        })
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>> {
        self.store.read(|state| {
            state
                .scan_prefix(prefix)
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect()
        })
    }

    /// Compare-and-set: when `key` currently holds `expected` (`None`: is absent), sets it
    /// to `new` (`None`: deletes it). A mismatch changes nothing and is returned as the
    /// inner `Err`, not as a store failure.
    pub fn cas(
        &self,
        key: impl Into<Vec<u8>>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), CasMismatch>> {
        Ok(self
            .store
            .apply(KvCommand::cas(key, expected, new))?
            .map(|_| ()))
    }

    /// Catches up with what other processes committed (see [`Store::refresh`]).
    pub fn refresh(&self) -> Result<crate::Refreshed> {
        self.store.refresh()
    }

    /// Stops background work and makes everything acknowledged durable.
    pub fn close(self) -> Result<()> {
        self.store.close()
    }

    /// Number of keys.
    pub fn len(&self) -> Result<usize> {
        self.store.read(KvState::len)
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> Result<bool> {
        self.store.read(KvState::is_empty)
    }
}
