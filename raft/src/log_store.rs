//! [`LogStore`]: the raft log and vote in a walstate store of their own, with a blocking
//! API (each change durable when it returns). `log_storage.rs` puts openraft's async
//! `RaftLogStorage` on top of it.

use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::path::Path;

use openraft::{LogId, LogState, RaftLogId, RaftTypeConfig, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use walstate::{Options, Store, SyncPolicy};

use crate::encoding::{decode, encode};
use crate::error::Error;
use crate::log_state::{Encoded, LogCommand, Purged, RaftLog};

/// The raft log of one node (entries, vote, committed id, last purged id), kept as a
/// walstate store whose commands are append, truncate, purge, save vote and save
/// committed. Every change is durable (fdatasync'd) when its method returns.
///
/// Cloning is cheap and shares the store; one clone at a time should change the log
/// (openraft's storage task is the only one that does).
///
/// ```
/// use openraft::entry::RaftEntry;
/// use openraft::{Entry, LogId, CommittedLeaderId, Vote};
/// use walstate::Options;
/// # use std::io::Cursor;
/// # openraft::declare_raft_types!(pub Types: D = u64, R = Option<u64>);
/// use walstate_raft::LogStore;
///
/// # let tmp = tempfile::tempdir()?;
/// let log = LogStore::<Types>::open(tmp.path().join("log"), Options::default())?;
/// let id = |index| LogId::new(CommittedLeaderId::new(1, 0), index);
/// log.append_blocking(vec![Entry::<Types>::new_blank(id(1)), Entry::new_blank(id(2))])?;
/// log.save_vote_blocking(&Vote::new(1, 0))?;
/// log.truncate_blocking(2)?;
/// drop(log);
///
/// let log = LogStore::<Types>::open(tmp.path().join("log"), Options::default())?;
/// assert_eq!(log.log_state()?.last_log_id, Some(id(1)));
/// assert_eq!(log.vote()?, Some(Vote::new(1, 0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LogStore<C: RaftTypeConfig> {
    store: Store<RaftLog>,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            store: self.store.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> std::fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("store", &self.store)
            .finish()
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the log store in `dir`, recovering it. The sync policy is
    /// always [`SyncPolicy::Always`], whatever `options` say: openraft counts an entry
    /// or a vote as persisted once it is acknowledged.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        let store = Store::open(dir, options.sync_policy(SyncPolicy::Always))?;
        Ok(LogStore {
            store,
            _types: PhantomData,
        })
    }

    /// The walstate store underneath (for its recovery report, stats, checkpoints).
    pub fn walstate(&self) -> &Store<RaftLog> {
        &self.store
    }

    /// Appends `entries` as one atomic group, durable when this returns. Their indexes
    /// must be consecutive; otherwise nothing is written.
    ///
    /// Where they start is openraft's to decide and is not checked: its engine truncates
    /// a conflicting suffix before appending, and its storage suite appends below a purge
    /// on purpose. An entry at an index already present replaces it.
    pub fn append_blocking(&self, entries: Vec<C::Entry>) -> Result<(), Error> {
        let mut commands = Vec::with_capacity(entries.len());
        let mut expected = None;
        for entry in &entries {
            let index = entry.get_log_id().index;
            if let Some(expected) = expected
                && index != expected
            {
                return Err(Error::NotConsecutive {
                    expected,
                    got: index,
                });
            }
            expected = Some(index + 1);
            commands.push(LogCommand::Append {
                index,
                entry: encode(entry)?,
            });
        }
        if !commands.is_empty() {
            self.store.apply_batch(commands)?;
        }
        Ok(())
    }

    /// Removes every entry at index `since` or later, durably.
    pub fn truncate_blocking(&self, since: u64) -> Result<(), Error> {
        self.store.apply(LogCommand::Truncate { since })?;
        Ok(())
    }

    /// Removes every entry up to and including `upto`, durably, and records `upto` as
    /// the last purged id (an older one than already recorded changes nothing).
    pub fn purge_blocking(&self, upto: &LogId<C::NodeId>) -> Result<(), Error> {
        self.store.apply(LogCommand::Purge(Purged {
            index: upto.index,
            log_id: encode(upto)?,
        }))?;
        Ok(())
    }

    /// Saves `vote`, durably.
    pub fn save_vote_blocking(&self, vote: &Vote<C::NodeId>) -> Result<(), Error> {
        self.store.apply(LogCommand::SaveVote(encode(vote)?))?;
        Ok(())
    }

    /// Saves the committed log id, durably.
    pub fn save_committed_blocking(
        &self,
        committed: Option<&LogId<C::NodeId>>,
    ) -> Result<(), Error> {
        let committed = committed.map(encode).transpose()?;
        self.store.apply(LogCommand::SaveCommitted(committed))?;
        Ok(())
    }

    /// The last saved vote.
    pub fn vote(&self) -> Result<Option<Vote<C::NodeId>>, Error> {
        let vote = self.store.read(|log| log.vote.clone())?;
        vote.map(|bytes| decode("vote", &bytes)).transpose()
    }

    /// The last saved committed log id.
    pub fn committed(&self) -> Result<Option<LogId<C::NodeId>>, Error> {
        let committed = self.store.read(|log| log.committed.clone())?;
        committed
            .map(|bytes| decode("committed log id", &bytes))
            .transpose()
    }

    /// The last purged log id and the last log id (the last entry's, or the last purged
    /// one's when no entry is left).
    pub fn log_state(&self) -> Result<LogState<C>, Error> {
        let (purged, last) = self.store.read(|log| {
            let last = log.entries.get_max().map(|(_, entry)| entry.clone());
            (log.purged.as_ref().map(|p| p.log_id.clone()), last)
        })?;
        let last_purged_log_id: Option<LogId<C::NodeId>> = purged
            .map(|bytes| decode("last purged log id", &bytes))
            .transpose()?;
        let last_log_id = match last {
            Some(bytes) => Some(decode::<C::Entry>("entry", &bytes)?.get_log_id().clone()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    /// The entries present with an index in `range`, in order.
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<C::Entry>, Error> {
        let encoded: Vec<Encoded> = self.store.read(|log| {
            log.entries
                .range(range)
                .map(|(_, entry)| entry.clone())
                .collect()
        })?;
        encoded.iter().map(|bytes| decode("entry", bytes)).collect()
    }

    /// Closes the store (everything acknowledged is already durable).
    pub fn close(self) -> Result<(), Error> {
        self.store.close()?;
        Ok(())
    }
}
