//! Opening a store written by an earlier release's types: the application keeps the old
//! types (say `mod v1`) with their `StateMachine` impls, and says how each release's
//! state becomes the next one's (`From`). [`Store::open_migrating`] replays the store
//! with the old types, converts the state through the chain of steps, and commits the
//! migration by writing a checkpoint of the new schema at the same LSN.
//!
//! Crash safety: before that checkpoint, nothing of the store changed but a new
//! snapshot (`pre-migration-<old schema>-<lsn>`, the old state, for rollback) and
//! schema files; a crash anywhere leaves the old store, and the next open migrates
//! again. Once the checkpoint is renamed into place the store is of the new schema; its
//! old segments hold only records the checkpoint covers, and new records go to a new
//! segment of the new schema.

use std::any::Any;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::path::Path;

use serde::Serialize;

use crate::checkpoint::{self, FileIds, Pacing};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::{self, SchemaId, StoreId};
use crate::io::Vfs;
use crate::options::Options;
use crate::recovery::{self, Mode};
use crate::schema::{self, Schema};
use crate::state::StateMachine;
use crate::store::Store;

/// The steps from earlier releases' types to `S`, for [`Store::open_migrating`].
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use walstate::migrate::Migrations;
/// use walstate::{Options, StateMachine, Store};
///
/// mod v1 {
///     use serde::{Deserialize, Serialize};
///     use walstate::StateMachine;
///     #[derive(Default, Clone, Serialize, Deserialize)]
///     pub struct Config { pub workers: u16 }
///     #[derive(Serialize, Deserialize)]
///     pub enum Command { SetWorkers(u16) }
///     impl StateMachine for Config {
///         type Command = Command;
///         type Output = ();
///         fn apply(&mut self, Command::SetWorkers(n): &Command) { self.workers = *n; }
///     }
/// }
///
/// #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// pub struct Config { pub workers: u16, pub timeout_secs: u16 }
/// #[derive(Serialize, Deserialize)]
/// pub enum Command { SetWorkers(u16), SetTimeoutSecs(u16) }
/// impl StateMachine for Config {
///     type Command = Command;
///     type Output = ();
///     fn apply(&mut self, command: &Command) {
///         match command {
///             Command::SetWorkers(n) => self.workers = *n,
///             Command::SetTimeoutSecs(s) => self.timeout_secs = *s,
///         }
///     }
/// }
/// impl From<v1::Config> for Config {
///     fn from(old: v1::Config) -> Self { Config { workers: old.workers, timeout_secs: 30 } }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let old = Store::<v1::Config>::open(dir.path(), Options::default())?;
/// old.apply(v1::Command::SetWorkers(8))?;
/// old.close()?;
///
/// // Release 2: a plain open refuses the old store; a migrating open converts it.
/// assert!(Store::<Config>::open(dir.path(), Options::default()).is_err());
/// let migrations = Migrations::<Config>::new().step::<v1::Config, Config>();
/// let store = Store::open_migrating(dir.path(), Options::default(), &migrations)?;
/// assert_eq!(store.read(|c| c.clone())?, Config { workers: 8, timeout_secs: 30 });
/// let done = store.recovery_report().migration.unwrap(); // ok: this open migrated
/// assert!(done.snapshot.starts_with("pre-migration-"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Migrations<S: StateMachine> {
    steps: Vec<Box<dyn Step>>,
    /// The types and reason of the first step whose types have no schema
    /// ([`Error::SchemaUntraceable`]).
    untraceable: Option<(String, String)>,
    _to: PhantomData<fn() -> S>,
}

impl<S: StateMachine> Default for Migrations<S> {
    fn default() -> Self {
        Migrations {
            steps: Vec::new(),
            untraceable: None,
            _to: PhantomData,
        }
    }
}

impl<S: StateMachine> std::fmt::Debug for Migrations<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|step| format!("{} -> {}", step.from().describe(), step.to().describe()))
            .collect();
        f.debug_struct("Migrations").field("steps", &steps).finish()
    }
}

impl<S: StateMachine> Migrations<S> {
    /// No steps yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the step from release `Old`'s types to `New`'s: a store of `Old`'s schema is
    /// replayed with `Old` and its state converted with `New::from`. Steps chain by
    /// schema (v1 → v2, v2 → v3), in any order; the last must end at `S`.
    pub fn step<Old: StateMachine, New: StateMachine + From<Old>>(mut self) -> Self {
        match (Schema::of::<Old>(), Schema::of::<New>()) {
            (Ok(from), Ok(to)) => self.steps.push(Box::new(TypedStep::<Old, New> {
                from,
                to,
                _types: PhantomData,
            })),
            // Reported by `open_migrating`: a builder has nowhere to put it.
            (Err(err), _) | (_, Err(err)) => {
                if let (None, Error::SchemaUntraceable { types, detail }) = (&self.untraceable, err)
                {
                    self.untraceable = Some((types, detail));
                }
            }
        }
        self
    }

    /// The steps from the store's schema `held` to `S`'s, in order, if they chain. A
    /// step may start from a schema that opens `held`'s files without a migration (an
    /// evolvable schema of the same name and an earlier version), and the last may end
    /// at one whose files `S` opens that way: evolvable releases between migrations
    /// need no steps of their own.
    fn path_from(&self, held: &Held, target: &Schema) -> Option<Vec<&dyn Step>> {
        let mut path: Vec<&dyn Step> = Vec::new();
        let starts = |step: &dyn Step| match held {
            Held::Known(schema) => opens_without_migration(schema, step.from()),
            Held::Id(id) => step.from().id() == *id,
            Held::Unrecorded => false,
        };
        let first = match held {
            // Files written before schemas were recorded: taken to be of the types of
            // the first step given.
            Held::Unrecorded => self.steps.first()?,
            _ => self.steps.iter().find(|step| starts(step.as_ref()))?,
        };
        path.push(first.as_ref());
        while !opens_without_migration(path.last()?.to(), target) {
            let at = path.last()?.to();
            let next = self
                .steps
                .iter()
                .find(|step| opens_without_migration(at, step.from()))?;
            if path.len() > self.steps.len() {
                return None;
            }
            path.push(next.as_ref());
        }
        Some(path)
    }
}

/// What the store holds, as far as a migration needs to know.
enum Held {
    /// A schema whose file could be read.
    Known(Schema),
    /// A schema whose file is missing or damaged: only its id is known.
    Id(SchemaId),
    /// No schema recorded.
    Unrecorded,
}

/// Whether files of schema `stored` open with types of schema `wanted` as they are.
fn opens_without_migration(stored: &Schema, wanted: &Schema) -> bool {
    stored.id() == wanted.id()
        || (stored.codec() == Codec::Evolvable
            && wanted.codec() == Codec::Evolvable
            && schema::gate::compatible_release(stored, wanted))
}

/// What a migrating open did (in [`crate::RecoveryReport::migration`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// The schema the store held, described.
    pub from: String,
    /// The schema it holds now, described.
    pub to: String,
    /// Every step taken, `from -> to`.
    pub steps: Vec<String>,
    /// The LSN of the migrated state (the checkpoint that committed the migration).
    pub lsn: u64,
    /// The snapshot holding the state as it was before, in the old schema: the old
    /// release rolls back to it with [`Store::open_rolling_back`].
    pub snapshot: String,
}

/// One step, with its types erased so steps of different types share a list.
trait Step: Send + Sync {
    fn from(&self) -> &Schema;
    fn to(&self) -> &Schema;
    /// Recovers the store with the step's old types: (state, LSN).
    fn recover(&self, vfs: &dyn Vfs, dir: &Path, salvage: bool) -> Result<(Box<dyn Any>, u64)>;
    /// Writes `state` (of the old types) as snapshot `name` in the old schema.
    fn write_snapshot(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        store_id: StoreId,
        name: &str,
        state: &dyn Any,
        lsn: u64,
    ) -> Result<()>;
    /// Converts a state of the old types into one of the new.
    fn convert(&self, state: Box<dyn Any>) -> Result<Box<dyn Any>>;
    /// Commits a migration ending at this step: writes `state` (of the new types) as
    /// the checkpoint at `lsn`, in the new schema.
    fn write_migrated(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        store_id: StoreId,
        state: Box<dyn Any>,
        lsn: u64,
    ) -> Result<()>;
}

struct TypedStep<Old, New> {
    from: Schema,
    to: Schema,
    _types: PhantomData<fn(Old) -> New>,
}

impl<Old: StateMachine, New: StateMachine + From<Old>> Step for TypedStep<Old, New> {
    fn from(&self) -> &Schema {
        &self.from
    }
    fn to(&self) -> &Schema {
        &self.to
    }
    fn recover(&self, vfs: &dyn Vfs, dir: &Path, salvage: bool) -> Result<(Box<dyn Any>, u64)> {
        let recovered = recovery::recover::<Old>(vfs, dir, Mode::Writer { salvage })?;
        Ok((Box::new(recovered.state), recovered.lsn))
    }
    fn write_snapshot(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        store_id: StoreId,
        name: &str,
        state: &dyn Any,
        lsn: u64,
    ) -> Result<()> {
        let state = state.downcast_ref::<Old>().ok_or_else(erased_type_error)?;
        schema::files::ensure(vfs, dir, store_id, &self.from)?;
        let snapshot_dir =
            checkpoint::prepare_snapshot_dir(vfs, dir).map_err(|failure| failure.error)?;
        let ids = FileIds {
            store: store_id,
            schema: self.from.id(),
        };
        let name = checkpoint::snapshot_file_name(name);
        checkpoint::write_state_file(
            vfs,
            &snapshot_dir,
            &name,
            lsn,
            ids,
            Cow::Borrowed(state),
            unpaced(),
        )
        .map(drop)
        .map_err(|failure| failure.error)
    }
    fn convert(&self, state: Box<dyn Any>) -> Result<Box<dyn Any>> {
        let old = state.downcast::<Old>().map_err(|_| erased_type_error())?;
        Ok(Box::new(New::from(*old)))
    }
    fn write_migrated(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        store_id: StoreId,
        state: Box<dyn Any>,
        lsn: u64,
    ) -> Result<()> {
        let state = state.downcast::<New>().map_err(|_| erased_type_error())?;
        schema::files::ensure(vfs, dir, store_id, &self.to)?;
        let ids = FileIds {
            store: store_id,
            schema: self.to.id(),
        };
        checkpoint::write_state_file::<New>(
            vfs,
            dir,
            &format::checkpoint_file_name(lsn),
            lsn,
            ids,
            Cow::Owned(*state),
            unpaced(),
        )
        .map(drop)
        .map_err(|failure| failure.error)
    }
}

fn erased_type_error() -> Error {
    Error::InvalidArgument("a migration step was handed a state of another type".into())
}

fn unpaced() -> Pacing<'static> {
    Pacing {
        bytes_per_second: None,
        hurry: None,
    }
}

impl<S: StateMachine> Store<S> {
    /// Opens the store in `dir` like [`Store::open`], migrating it first when it was
    /// written by the types of an earlier release that `migrations` starts from. A store
    /// already of `S`'s schema opens as with `open`; a store of a schema no step starts
    /// from fails with [`Error::SchemaMismatch`], as `open` does.
    ///
    /// The migration replays the store with the old types, keeps that state as snapshot
    /// `pre-migration-<old schema id>-<lsn>` (in the old schema, for rollback with the
    /// old release), converts it step by step, and commits by writing a checkpoint of
    /// `S`'s schema at the same LSN. A crash at any point leaves either the old store
    /// (the next open migrates again) or the migrated one. What was done is in
    /// [`Store::recovery_report`]`().migration`.
    pub fn open_migrating(
        dir: impl AsRef<Path>,
        options: Options,
        migrations: &Migrations<S>,
    ) -> Result<Self> {
        if let Some((types, detail)) = &migrations.untraceable {
            return Err(Error::SchemaUntraceable {
                types: types.clone(),
                detail: detail.clone(),
            });
        }
        let target = Schema::of::<S>()?;
        let (dir, vfs, created, lock) = Self::lock_for_writing(dir.as_ref(), &options)?;
        let mode = Mode::Writer {
            salvage: options.salvage,
        };
        let mismatch = match recovery::recover::<S>(vfs.as_ref(), &dir, mode) {
            Ok(recovered) => {
                return Self::open_locked(dir, options, vfs, created, lock, recovered, target);
            }
            Err(err @ Error::SchemaMismatch { .. }) => err,
            Err(err) => return Err(err),
        };
        let held = held_schema(vfs.as_ref(), &dir)?;
        let Some(path) = migrations.path_from(&held, &target) else {
            return Err(no_path(mismatch, &held, migrations));
        };
        let report = migrate(vfs.as_ref(), &dir, options.salvage, &path)?;
        let mut recovered = recovery::recover::<S>(vfs.as_ref(), &dir, mode)?;
        recovered.report.migration = Some(report);
        Self::open_locked(dir, options, vfs, created, lock, recovered, target)
    }
}

/// Runs the steps of `path` on the store in `dir` (holding its writer lock).
fn migrate(
    vfs: &dyn Vfs,
    dir: &Path,
    salvage: bool,
    path: &[&dyn Step],
) -> Result<MigrationReport> {
    let (first, last) = match (path.first(), path.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => return Err(Error::InvalidArgument("an empty migration path".into())),
    };
    let (state, lsn) = first.recover(vfs, dir, salvage)?;
    let store_id = crate::journal::identity::read(vfs, dir)?
        .valid()
        .map(|identity| identity.store_id)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no identity file after recovery as a writer",
                dir.display()
            ))
        })?;
    let snapshot = format!("pre-migration-{}-{lsn}", first.from().id());
    first.write_snapshot(vfs, dir, store_id, &snapshot, state.as_ref(), lsn)?;
    let mut state = state;
    for step in path {
        state = step.convert(state)?;
    }
    last.write_migrated(vfs, dir, store_id, state, lsn)?;
    Ok(MigrationReport {
        from: first.from().describe(),
        to: last.to().describe(),
        steps: path
            .iter()
            .map(|step| format!("{} -> {}", step.from().describe(), step.to().describe()))
            .collect(),
        lsn,
        snapshot,
    })
}

/// The schema the store is written with now (its last segment's, or its newest
/// checkpoint's), with its schema file when readable.
fn held_schema(vfs: &dyn Vfs, dir: &Path) -> Result<Held> {
    let Some(id) = schema::files::current_schema_id(vfs, dir)? else {
        return Ok(Held::Unrecorded);
    };
    let store_id = crate::journal::identity::read(vfs, dir)?
        .valid()
        .map(|identity| identity.store_id);
    Ok(match schema::files::read(vfs, dir, id, store_id)? {
        schema::files::SchemaFile::Valid(schema) => Held::Known(schema),
        _ => Held::Id(id),
    })
}

/// The mismatch `open` reported, with why no migration applies.
fn no_path<S: StateMachine>(mismatch: Error, held: &Held, migrations: &Migrations<S>) -> Error {
    let Error::SchemaMismatch {
        path,
        stored,
        wanted,
        mut changes,
    } = mismatch
    else {
        return mismatch;
    };
    let starts: Vec<String> = migrations
        .steps
        .iter()
        .map(|step| step.from().describe())
        .collect();
    let starts = if starts.is_empty() {
        "none".into()
    } else {
        starts.join(", ")
    };
    changes.push(match held {
        Held::Known(schema) => format!(
            "no chain of migration steps leads from the store's schema {} to these types (steps start from: {starts})",
            schema.describe()
        ),
        Held::Id(id) => format!(
            "no chain of migration steps leads from the store's schema {id} to these types (steps start from: {starts})"
        ),
        Held::Unrecorded => format!(
            "the store records no schema, and no chain of migration steps leads from the first step's types to these (steps start from: {starts})"
        ),
    });
    Error::SchemaMismatch {
        path,
        stored,
        wanted,
        changes,
    }
}

/// What a rolling-back open did (in [`crate::RecoveryReport::rollback`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackReport {
    /// The snapshot whose state the store holds now.
    pub snapshot: String,
    /// The LSN the rolled-back state is at (the store's last LSN).
    pub lsn: u64,
    /// The snapshot that keeps the replaced state, in its schema (the newer release's).
    pub previous_state_snapshot: String,
    /// The schema the replaced state was in, described.
    pub previous_schema: String,
}

impl<S: StateMachine> Store<S> {
    /// Opens the store in `dir` with the state of snapshot `name`, which must be of
    /// `S`'s schema, even when the store has moved on to another schema since: going
    /// back to a release after its successor migrated the store (the migration keeps
    /// the old state as snapshot `pre-migration-…`). A store already of `S`'s schema is
    /// opened and restored as with [`Store::restore_snapshot`].
    ///
    /// The replaced state is kept whole first, as snapshot `pre-rollback-<lsn>` in its
    /// own schema; so the store's newest checkpoint must hold its whole state (no
    /// records after it): otherwise this fails, asking for a checkpoint by the release
    /// that wrote it. The rollback commits by replacing that checkpoint with one of the
    /// snapshot's state in `S`'s schema, atomically: a crash leaves the store as it was
    /// or rolled back. What was done is in [`Store::recovery_report`]`().rollback`.
    pub fn open_rolling_back(dir: impl AsRef<Path>, options: Options, name: &str) -> Result<Self> {
        checkpoint::validate_snapshot_name(name)?;
        let schema = Schema::of::<S>()?;
        let (dir, vfs, created, lock) = Self::lock_for_writing(dir.as_ref(), &options)?;
        let mode = Mode::Writer {
            salvage: options.salvage,
        };
        match recovery::recover::<S>(vfs.as_ref(), &dir, mode) {
            Ok(recovered) => {
                let store = Self::open_locked(dir, options, vfs, created, lock, recovered, schema)?;
                store.restore_snapshot(name)?;
                return Ok(store);
            }
            Err(Error::SchemaMismatch { .. }) => {}
            Err(err) => return Err(err),
        }
        let report = roll_back::<S>(vfs.as_ref(), &dir, &schema, name)?;
        let mut recovered = recovery::recover::<S>(vfs.as_ref(), &dir, mode)?;
        recovered.report.rollback = Some(report);
        Self::open_locked(dir, options, vfs, created, lock, recovered, schema)
    }
}

/// Replaces the state of the store in `dir` (holding its lock; of another schema than
/// `schema`) by snapshot `name` of `schema`.
fn roll_back<S: StateMachine>(
    vfs: &dyn Vfs,
    dir: &Path,
    schema: &Schema,
    name: &str,
) -> Result<RollbackReport> {
    let recovered =
        recovery::recover_with::<recovery::Untyped>(vfs, dir, Mode::Writer { salvage: false })?;
    let last_lsn = recovered.lsn;
    let newest = checkpoint::list_checkpoints(vfs, dir)?.pop();
    let whole = match &newest {
        Some(file) if file.lsn == last_lsn => file.path.clone(),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{} has records after its newest checkpoint (up to LSN {last_lsn}), so the state a rollback replaces could not be kept whole: open the store with the release that wrote it and write a checkpoint (`Store::checkpoint`), then roll back",
                dir.display()
            )));
        }
    };
    let current = vfs
        .read_file(&whole, false)
        .map_err(|err| Error::io("read checkpoint", &whole, err))?;
    let (header, _) = format::decode_checkpoint(&current).map_err(|err| Error::Corruption {
        path: whole.clone(),
        offset: 0,
        lsn: last_lsn,
        detail: err.describe(),
    })?;
    let store_id = crate::journal::identity::read(vfs, dir)?
        .valid()
        .map(|identity| identity.store_id)
        .ok_or_else(|| Error::InvalidArgument(format!("{} has no identity file", dir.display())))?;
    let previous_schema = match SchemaId::new(header.schema_id) {
        Some(id) => match schema::files::read(vfs, dir, id, Some(store_id))? {
            schema::files::SchemaFile::Valid(held) => held.describe(),
            _ => format!("schema {id}"),
        },
        None => "no recorded schema".to_owned(),
    };

    // The snapshot to go back to, checked with the caller's types.
    let snapshot_path = dir
        .join(checkpoint::SNAPSHOT_DIR_NAME)
        .join(checkpoint::snapshot_file_name(name));
    if vfs
        .entry_kind(&snapshot_path)
        .map_err(|err| Error::io("stat", &snapshot_path, err))?
        .is_none()
    {
        return Err(Error::SnapshotNotFound {
            name: name.to_owned(),
            path: dir.join(checkpoint::SNAPSHOT_DIR_NAME),
        });
    }
    let gate = schema::gate::SchemaGate::new(schema.clone(), dir, Some(store_id));
    let (_, recovery::Typed(state), _) = recovery::load_checkpoint_with::<recovery::Typed<S>>(
        vfs,
        &snapshot_path,
        false,
        Some(crate::format::Identity { store_id, flags: 0 }),
        Some(&gate),
    )?
    .map_err(|unusable| Error::SnapshotDamaged {
        name: name.to_owned(),
        path: snapshot_path.clone(),
        detail: unusable.to_string(),
    })?;

    // Keep the state being replaced, byte for byte (a retry after a crash finds it).
    let previous = format!("pre-rollback-{last_lsn}");
    let snapshot_dir =
        checkpoint::prepare_snapshot_dir(vfs, dir).map_err(|failure| failure.error)?;
    let kept = snapshot_dir.join(checkpoint::snapshot_file_name(&previous));
    let already_kept = vfs
        .read_file(&kept, false)
        .is_ok_and(|bytes| bytes[..] == current[..]);
    if !already_kept {
        checkpoint::write_atomically(
            vfs,
            &snapshot_dir,
            &checkpoint::snapshot_file_name(&previous),
            &current,
        )
        .map_err(|failure| failure.error)?;
    }

    // Commit: the newest checkpoint, replaced by the snapshot's state in this schema.
    schema::files::ensure(vfs, dir, store_id, schema)?;
    let ids = FileIds {
        store: store_id,
        schema: schema.id(),
    };
    checkpoint::write_state_file::<S>(
        vfs,
        dir,
        &format::checkpoint_file_name(last_lsn),
        last_lsn,
        ids,
        Cow::Owned(state),
        unpaced(),
    )
    .map_err(|failure| failure.error)?;
    Ok(RollbackReport {
        snapshot: name.to_owned(),
        lsn: last_lsn,
        previous_state_snapshot: previous,
        previous_schema,
    })
}
