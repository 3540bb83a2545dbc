//! [`StateMachineStore`]: the application's state machine, applied by openraft, in a
//! walstate store of its own, with a blocking API. Snapshots are walstate named
//! snapshots (`raft-<seq>`); installing one is [`walstate::Store::install_state`].
//! `raft_state_machine.rs` puts openraft's async `RaftStateMachine` on top of it.

use std::io::Cursor;
use std::marker::PhantomData;
use std::path::Path;

use openraft::{
    Entry, EntryPayload, LogId, RaftTypeConfig, Snapshot, SnapshotMeta, StoredMembership,
};
use walstate::{Options, StateMachine, Store};

use crate::encoding::{decode, encode};
use crate::error::Error;
use crate::log_state::Encoded;
use crate::replicated::{AppliedEntry, Payload, Replicated};

/// Entries applied per atomic group: a catch-up applies thousands of entries at once,
/// and one group must stay within the journal's unsynced-bytes bound.
const APPLY_GROUP_ENTRIES_MAX: usize = 256;

/// The last applied log id and the last applied membership of a state machine.
pub type AppliedState<C> = (
    Option<LogId<<C as RaftTypeConfig>::NodeId>>,
    StoredMembership<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>,
);

/// The prefix of the named snapshots this store keeps for openraft.
const SNAPSHOT_PREFIX: &str = "raft-";

/// The application's state machine `S` as openraft applies it, kept in a walstate
/// store: each applied entry is a logged command, so the state, its last applied log id
/// and its membership survive a crash together.
///
/// The raft type config `C` must carry `S`'s commands and outputs:
/// `D = S::Command`, `R = Option<S::Output>` (`None` for blank and membership entries),
/// `Entry = openraft::Entry<C>`, `SnapshotData = Cursor<Vec<u8>>`.
///
/// ```
/// use std::io::Cursor;
/// use openraft::{CommittedLeaderId, Entry, LogId};
/// use serde::{Deserialize, Serialize};
/// use walstate::{Options, StateMachine};
/// use walstate_raft::StateMachineStore;
///
/// #[derive(Default, Clone, Serialize, Deserialize)]
/// struct Sum(u64);
/// impl StateMachine for Sum {
///     type Command = u64;
///     type Output = u64;
///     fn apply(&mut self, n: &u64) -> u64 { self.0 += n; self.0 }
/// }
/// openraft::declare_raft_types!(pub Types: D = u64, R = Option<u64>);
///
/// # let tmp = tempfile::tempdir()?;
/// let sm = StateMachineStore::<Types, Sum>::open(tmp.path().join("sm"), Options::default())?;
/// let id = LogId::new(CommittedLeaderId::new(1, 0), 1);
/// let outputs = sm.apply_blocking(vec![Entry { log_id: id, payload: openraft::EntryPayload::Normal(5) }])?;
/// assert_eq!(outputs, vec![Some(5)]);
/// assert_eq!(sm.applied()?.0, Some(id));
/// let snapshot = sm.build_snapshot_blocking()?;
/// assert_eq!(snapshot.meta.last_log_id, Some(id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StateMachineStore<C: RaftTypeConfig, S: StateMachine> {
    store: Store<Replicated<S>>,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig, S: StateMachine> Clone for StateMachineStore<C, S> {
    fn clone(&self) -> Self {
        StateMachineStore {
            store: self.store.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig, S: StateMachine> std::fmt::Debug for StateMachineStore<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("store", &self.store)
            .finish()
    }
}

/// The openraft type configurations a [`StateMachineStore`] of `S` serves: commands are
/// `S`'s, responses its outputs (`None` for a blank or membership entry), entries
/// openraft's own, snapshots held in memory. Every such configuration has it.
pub trait ConfigFor<S: StateMachine>:
    RaftTypeConfig<
        D = S::Command,
        R = Option<S::Output>,
        Entry = Entry<Self>,
        SnapshotData = Cursor<Vec<u8>>,
    >
{
}

impl<S, C> ConfigFor<S> for C
where
    S: StateMachine,
    C: RaftTypeConfig<
            D = S::Command,
            R = Option<S::Output>,
            Entry = Entry<C>,
            SnapshotData = Cursor<Vec<u8>>,
        >,
{
}

impl<C, S> StateMachineStore<C, S>
where
    S: StateMachine,
    C: ConfigFor<S>,
{
    /// Opens (or creates) the state machine store in `dir`, recovering it.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        Ok(StateMachineStore {
            store: Store::open(dir, options)?,
            _types: PhantomData,
        })
    }

    /// The walstate store underneath (for its recovery report, stats, checkpoints).
    pub fn walstate(&self) -> &Store<Replicated<S>> {
        &self.store
    }

    /// Runs `f` on the application's state (everything applied so far).
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> Result<R, Error> {
        Ok(self.store.read(|replicated| f(&replicated.state))?)
    }

    /// The last applied log id and the last applied membership.
    pub fn applied(&self) -> Result<AppliedState<C>, Error> {
        let (applied, membership) = self.store.read(|replicated| {
            (
                replicated.last_applied.clone(),
                replicated.last_membership.clone(),
            )
        })?;
        meta_parts::<C>(applied.as_ref(), membership.as_ref())
    }

    /// Applies `entries` in order, durably, and returns one output per entry.
    pub fn apply_blocking(&self, entries: Vec<Entry<C>>) -> Result<Vec<Option<S::Output>>, Error> {
        let mut outputs = Vec::with_capacity(entries.len());
        let mut group = Vec::with_capacity(entries.len().min(APPLY_GROUP_ENTRIES_MAX));
        for entry in entries {
            group.push(applied_entry(entry)?);
            if group.len() == APPLY_GROUP_ENTRIES_MAX {
                outputs.extend(self.store.apply_batch(std::mem::take(&mut group))?);
            }
        }
        if !group.is_empty() {
            outputs.extend(self.store.apply_batch(group)?);
        }
        Ok(outputs)
    }

    /// Takes a durable snapshot of the state now (a walstate named snapshot) and returns
    /// it, read back from its file; it becomes the current snapshot, and older ones are
    /// deleted.
    pub fn build_snapshot_blocking(&self) -> Result<Snapshot<C>, Error> {
        let seq = self.snapshot_seqs()?.last().map_or(1, |seq| seq + 1);
        let name = format!("{SNAPSHOT_PREFIX}{seq}");
        self.store.snapshot(&name)?;
        for older in self.snapshot_seqs()?.into_iter().filter(|s| *s < seq) {
            self.store
                .delete_snapshot(&format!("{SNAPSHOT_PREFIX}{older}"))?;
        }
        self.read_snapshot(&name)
    }

    /// The snapshot last built or installed, read back from its file.
    pub fn current_snapshot_blocking(&self) -> Result<Option<Snapshot<C>>, Error> {
        match self.snapshot_seqs()?.last() {
            Some(seq) => self
                .read_snapshot(&format!("{SNAPSHOT_PREFIX}{seq}"))
                .map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the state by the snapshot `data` (as [`build_snapshot_blocking`]
    /// encodes it), atomically and durably, after checking it matches `meta`; it then
    /// becomes the current snapshot.
    ///
    /// [`build_snapshot_blocking`]: Self::build_snapshot_blocking
    pub fn install_snapshot_blocking(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), Error> {
        let state: Replicated<S> = <Replicated<S> as StateMachine>::CODEC
            .decode(data)
            .map_err(|err| Error::BadSnapshot {
                detail: format!("its data does not decode as this state machine: {err}"),
            })?;
        let (applied, membership) =
            meta_parts::<C>(state.last_applied.as_ref(), state.last_membership.as_ref())?;
        if applied != meta.last_log_id || membership != meta.last_membership {
            return Err(Error::BadSnapshot {
                detail: format!(
                    "its data holds last log id {applied:?} and membership {membership:?}, its \
                     metadata says {meta}"
                ),
            });
        }
        // The current snapshot must never be older than the state once the state has
        // moved past it (openraft would send it to a follower that then needs entries
        // this node may have purged): the old ones go first, so a crash in between
        // leaves none, and openraft builds one on the next start.
        for seq in self.snapshot_seqs()? {
            self.store
                .delete_snapshot(&format!("{SNAPSHOT_PREFIX}{seq}"))?;
        }
        let mut source = format!("raft snapshot {}", meta.snapshot_id);
        source.truncate(walstate::INSTALL_SOURCE_BYTES_MAX);
        self.store.install_state(&source, state)?;
        self.build_snapshot_blocking().map(drop)
    }

    /// Closes the store.
    pub fn close(self) -> Result<(), Error> {
        self.store.close()?;
        Ok(())
    }

    /// The sequence numbers of this store's `raft-<seq>` snapshots, ascending.
    fn snapshot_seqs(&self) -> Result<Vec<u64>, Error> {
        let mut seqs: Vec<u64> = self
            .store
            .list_snapshots()?
            .into_iter()
            .filter_map(|info| info.name.strip_prefix(SNAPSHOT_PREFIX)?.parse().ok())
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn read_snapshot(&self, name: &str) -> Result<Snapshot<C>, Error> {
        let (_, state) = self.store.read_snapshot(name)?;
        let (last_log_id, last_membership) =
            meta_parts::<C>(state.last_applied.as_ref(), state.last_membership.as_ref())?;
        let data = <Replicated<S> as StateMachine>::CODEC.encode(&state)?;
        Ok(Snapshot {
            meta: SnapshotMeta {
                snapshot_id: snapshot_id(last_log_id.as_ref()),
                last_log_id,
                last_membership,
            },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// The id of a snapshot whose last entry is `last_log_id`. States are deterministic, so
/// two snapshots at one log id hold one state: the log id names it, on every node.
fn snapshot_id<NID: openraft::NodeId>(last_log_id: Option<&LogId<NID>>) -> String {
    match last_log_id {
        Some(id) => format!("{id}"),
        None => "empty".to_owned(),
    }
}

/// The decoded last applied log id and membership of a [`Replicated`] state.
fn meta_parts<C: RaftTypeConfig>(
    applied: Option<&Encoded>,
    membership: Option<&Encoded>,
) -> Result<AppliedState<C>, Error> {
    let applied = applied
        .map(|bytes| decode("last applied log id", bytes))
        .transpose()?;
    let membership = membership
        .map(|bytes| decode("membership", bytes))
        .transpose()?
        .unwrap_or_default();
    Ok((applied, membership))
}

/// The command that applies `entry`.
fn applied_entry<C, Cmd>(entry: Entry<C>) -> Result<AppliedEntry<Cmd>, Error>
where
    C: RaftTypeConfig<D = Cmd, Entry = Entry<C>>,
{
    let payload = match entry.payload {
        EntryPayload::Blank => Payload::Blank,
        EntryPayload::Normal(command) => Payload::Command(command),
        EntryPayload::Membership(membership) => {
            Payload::Membership(encode(&StoredMembership::<C::NodeId, C::Node>::new(
                Some(entry.log_id.clone()),
                membership,
            ))?)
        }
    };
    Ok(AppliedEntry {
        log_id: encode(&entry.log_id)?,
        payload,
    })
}
