//! openraft's `RaftLogReader` and `RaftLogStorage` for [`LogStore`]: each call runs the
//! blocking store call on tokio's blocking pool, so no runtime worker waits for an fsync.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::blocking::blocking;
use crate::log_store::LogStore;

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.entries(range)
            .map_err(|err| err.into_storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        self.log_state()
            .map_err(|err| err.into_storage(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let (log, vote) = (self.clone(), vote.clone());
        blocking(move || log.save_vote_blocking(&vote))
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.vote()
            .map_err(|err| err.into_storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let log = self.clone();
        blocking(move || log.save_committed_blocking(committed.as_ref()))
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.committed()
            .map_err(|err| err.into_storage(ErrorSubject::Store, ErrorVerb::Read))
    }

    /// Appends and waits until the entries are durable, then fires `callback`: the
    /// callback never reports entries that a crash could still lose.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let log = self.clone();
        let result = blocking(move || log.append_blocking(entries)).await;
        callback.log_io_completed(match &result {
            Ok(()) => Ok(()),
            Err(err) => Err(io::Error::other(err.to_string())),
        });
        result.map_err(|err| err.into_storage(ErrorSubject::Logs, ErrorVerb::Write))
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let log = self.clone();
        blocking(move || log.truncate_blocking(log_id.index))
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let log = self.clone();
        blocking(move || log.purge_blocking(&log_id))
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
