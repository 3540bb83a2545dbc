//! openraft's `RaftStateMachine` and `RaftSnapshotBuilder` for [`StateMachineStore`]:
//! each call runs the blocking store call on tokio's blocking pool.

use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StoredMembership,
};
use walstate::StateMachine;

use crate::blocking::blocking;
use crate::state_machine::{ConfigFor, StateMachineStore};

impl<C, S> RaftSnapshotBuilder<C> for StateMachineStore<C, S>
where
    S: StateMachine,
    C: ConfigFor<S>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let sm = self.clone();
        blocking(move || sm.build_snapshot_blocking())
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}

impl<C, S> RaftStateMachine<C> for StateMachineStore<C, S>
where
    S: StateMachine,
    C: ConfigFor<S>,
{
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        self.applied()
            .map_err(|err| err.into_storage(ErrorSubject::StateMachine, ErrorVerb::Read))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        let sm = self.clone();
        blocking(move || sm.apply_blocking(entries))
            .await
            .map_err(|err| err.into_storage(ErrorSubject::StateMachine, ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let (sm, owned_meta) = (self.clone(), meta.clone());
        let data = snapshot.into_inner();
        blocking(move || sm.install_snapshot_blocking(&owned_meta, &data))
            .await
            .map_err(|err| {
                err.into_storage(
                    ErrorSubject::Snapshot(Some(meta.signature())),
                    ErrorVerb::Write,
                )
            })
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let sm = self.clone();
        blocking(move || sm.current_snapshot_blocking())
            .await
            .map_err(|err| err.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}
