//! `AsyncKvStore` (feature `tokio`): [`crate::KvStore`]'s byte methods as futures, over an
//! [`AsyncStore`] of [`KvState`].

use std::future::Future;
use std::ops::Deref;
use std::path::Path;

use crate::error::Result;
use crate::kv::{CasMismatch, KvApplied, KvCommand, KvState};
use crate::options::Options;
use crate::store::AsyncStore;

/// A durable ordered byte map whose writes are futures: [`crate::KvStore`] over
/// [`AsyncStore`]. It derefs to the [`AsyncStore`] for everything else.
///
/// ```
/// use walstate::{AsyncKvStore, Options};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// # let tmp = tempfile::tempdir()?;
/// let store = AsyncKvStore::open(tmp.path().join("kv"), Options::default()).await?;
/// assert_eq!(store.put("user/1", "ada").await?, None);
/// assert_eq!(store.get(b"user/1")?.as_deref(), Some(&b"ada"[..]));
/// assert!(store.cas("user/1", Some(b"ada"), Some(b"grace")).await?.is_ok());
/// assert_eq!(store.delete("user/1").await?.as_deref(), Some(&b"grace"[..]));
/// store.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AsyncKvStore {
    store: AsyncStore<KvState>,
}

impl Deref for AsyncKvStore {
    type Target = AsyncStore<KvState>;
    fn deref(&self) -> &AsyncStore<KvState> {
        &self.store
    }
}

impl AsyncKvStore {
    /// Opens (or creates) the store in `dir`, on tokio's blocking pool.
    pub async fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        Ok(AsyncKvStore {
            store: AsyncStore::open(dir, options).await?,
        })
    }

    /// Sets `key` to `value` durably; resolves to the previous value.
    pub fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
        let applied = self.store.apply(KvCommand::put(key, value));
        async move {
            Ok(match applied.await? {
                Ok(KvApplied::Put { previous }) => previous,
                _ => None,
            })
        }
    }

    /// Deletes `key` durably; resolves to the previous value.
    pub fn delete(
        &self,
        key: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
        let applied = self.store.apply(KvCommand::delete(key));
        async move {
            Ok(match applied.await? {
                Ok(KvApplied::Deleted { previous }) => previous,
                _ => None,
            })
        }
    }

    /// Compare-and-set (see [`crate::KvStore::cas`]), durably.
    pub fn cas(
        &self,
        key: impl Into<Vec<u8>>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> impl Future<Output = Result<std::result::Result<(), CasMismatch>>> + Send + 'static {
        let applied = self.store.apply(KvCommand::cas(key, expected, new));
        async move { Ok(applied.await?.map(|_| ())) }
    }

    /// The value of `key` (a read: no I/O, so not a future).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.read(|state| state.get(key).map(<[u8]>::to_vec))
    }

    /// Closes the store (see [`AsyncStore::close`]).
    pub async fn close(self) -> Result<()> {
        self.store.close().await
    }
}
