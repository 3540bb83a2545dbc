//! [`SimFs`]: an in-memory, deterministic file system that loses, tears and fails I/O on
//! command, so tests and fuzz targets can crash the store at any I/O call.
//!
//! # Durability model
//!
//! Every file is an inode with three views: `current` (what reads see now), `durable`
//! (what survives a crash for sure) and the list of *pending* operations made since its
//! last successful sync (`write_at`, `set_len`, `allocate`, in order). A successful
//! `sync_data`/`sync_all` replays the pending operations onto `durable`; a *failed* one
//! (injected fault) throws them away: reads still show the data, a crash loses it, and
//! later syncs only persist operations made after the failure.
//!
//! Directories map names to inodes, again as a current and a durable namespace.
//! Creating a file, each directory made by `create_dir_all`, `rename`, `remove_file` and
//! the lock-file creation of `try_lock` change the current namespace at once and are
//! appended to one ordered list of pending directory operations. `sync_dir(dir)` makes
//! durable, in order, every pending directory operation that touches `dir` (a rename
//! touches both of its directories; a mkdir touches the parent only). File syncs never
//! persist a directory entry. A file survives a crash only if a durable name reaches it
//! from the root through durable directory entries.
//!
//! # Crashes
//!
//! [`SimFs::crash`] replaces the whole file system by a post-crash image. Every pending
//! operation is cut into *units* and each unit gets a [`UnitFate`]. Units are numbered in
//! this order:
//!
//! 1. files by inode number ascending (inode numbers grow with creation order), only
//!    files that are or may become durably named (named in the durable namespace or by a
//!    pending directory operation); for each file its pending operations in order; a
//!    write is split at 512-byte-aligned *file offsets* into chunks, one unit each,
//!    lowest offset first; a `set_len` or `allocate` is one unit;
//! 2. then every pending directory operation, in the order they were made.
//!
//! A sector reaches the disk as the page held it: when a write's chunk is kept, the
//! bytes that earlier pending writes (since the file's last `set_len`) put in the same
//! sector land with it, so a later write never lands without the earlier ones to that
//! sector.
//!
//! [`SimFs::pending_units`] tells how many units a crash would see now.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::{EntryKind, FileBytes, LockAttempt, LockGuard, OpenMode, Vfs, VfsFile};

/// Writes are torn at multiples of this file offset.
const SECTOR: u64 = 512;
/// Largest file the simulation accepts (larger ones fail with `EFBIG`).
const MAX_FILE_LEN: u64 = 1 << 32;

/// How [`SimFs::crash`] treats the operations that were not made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashMode {
    /// Every pending unit is lost: only synced data and synced directory entries remain.
    DropUnsynced,
    /// Every pending unit is kept, as if the kernel flushed everything before dying.
    KeepAll,
    /// Each unit independently gets Keep (45%), Drop (45%) or Zero (10%), drawn from a
    /// splitmix64 generator seeded with the value: same seed and same pending state give
    /// the same image.
    Random(u64),
    /// Unit `i` gets `fates[i]`; units past the end of the list are dropped.
    Fates(Vec<UnitFate>),
}

/// What happens to one pending unit at a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitFate {
    /// The unit reaches the disk.
    Keep,
    /// The unit is lost.
    Drop,
    /// A write chunk lands as zeros where it extends the file (a size or extent that
    /// reached the disk before the data); over existing bytes it is lost like `Drop`,
    /// since an in-place overwrite leaves each sector old or new. For other units: Keep.
    Zero,
}

/// Which calls a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// `write_at`.
    Write,
    /// `sync_data` and `sync_all`.
    Sync,
    /// `set_len` and `allocate`.
    SetLen,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `open` with [`OpenMode::CreateNew`] and `create_dir_all`.
    Create,
    /// `read_at`, `read_file` and `read_dir`.
    Read,
    /// The writeback hints `start_writeback` and `wait_writeback` (read calls: they
    /// change nothing in the simulation, so they are not crash points).
    Writeback,
    /// Every mutating call (see [`SimFs::mutating_calls`]).
    Any,
}

/// How a faulted call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Fails with the raw OS error `ENOSPC`.
    Enospc,
    /// Fails with the raw OS error `EIO`.
    Eio,
    /// `write_at` writes only the first half of the buffer and returns `Ok(half)`
    /// (a buffer of 0 or 1 byte fails with `EIO` instead); other calls fail with `EIO`.
    ShortWrite,
}

/// An injected failure. See [`SimFs::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The calls the fault applies to.
    pub op: OpClass,
    /// Which call fails: 0-based among the calls of class `op` made after injection.
    pub nth: u64,
    /// How it fails.
    pub kind: FaultKind,
    /// When true, call `nth` and every later call of the class fail; otherwise only `nth`.
    pub persistent: bool,
}

impl Fault {
    /// The next call of class `op` fails once, as `kind`.
    pub fn once(op: OpClass, kind: FaultKind) -> Fault {
        Fault {
            op,
            nth: 0,
            kind,
            persistent: false,
        }
    }
}

/// One traced I/O call (see [`SimFs::set_trace`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceEntry {
    /// The call's index among mutating calls, or `u64::MAX` for a read call.
    pub call: u64,
    /// The call: "open", "create_new", "read_at", "write_at", "len", "set_len",
    /// "sync_data", "sync_all", "allocate", "start_writeback", "wait_writeback",
    /// "read_file", "read_dir", "entry_kind", "create_dir_all", "rename", "remove_file",
    /// "sync_dir" or "try_lock".
    pub op: &'static str,
    /// The path involved (the path a handle was opened with; a rename's target).
    pub path: PathBuf,
}

/// An operation on a file not yet made durable.
#[derive(Debug, Clone)]
enum PendingOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// Grow-only extension with zeros.
    Allocate(u64),
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<PendingOp>,
    /// Pending operations made durable (or dropped by a failed sync) so far: numbers the
    /// operations, so a sync that started earlier applies only those before its start.
    drained: u64,
    /// Names in the current namespace.
    links: u32,
    /// Open handles of the current generation.
    handles: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

/// Directory path (normalized, absolute) -> its entries. A directory's map exists in the
/// current namespace exactly when the directory exists.
type Namespace = BTreeMap<PathBuf, BTreeMap<String, Entry>>;

/// A directory operation not yet made durable.
#[derive(Debug, Clone)]
enum DirOp {
    Create {
        dir: PathBuf,
        name: String,
        ino: u64,
    },
    Mkdir {
        parent: PathBuf,
        name: String,
    },
    Rename {
        from_dir: PathBuf,
        from_name: String,
        to_dir: PathBuf,
        to_name: String,
        ino: u64,
    },
    Remove {
        dir: PathBuf,
        name: String,
        ino: u64,
    },
}

impl DirOp {
    fn touches(&self, target: &Path) -> bool {
        match self {
            DirOp::Create { dir, .. } | DirOp::Remove { dir, .. } => dir == target,
            DirOp::Mkdir { parent, .. } => parent == target,
            DirOp::Rename {
                from_dir, to_dir, ..
            } => from_dir == target || to_dir == target,
        }
    }

    fn inode(&self) -> Option<u64> {
        match self {
            DirOp::Create { ino, .. } | DirOp::Rename { ino, .. } | DirOp::Remove { ino, .. } => {
                Some(*ino)
            }
            DirOp::Mkdir { .. } => None,
        }
    }

    /// Applies the operation to a durable namespace, skipping it when it no longer
    /// applies (its name is taken, or its source no longer names the same inode).
    fn apply(&self, ns: &mut Namespace) {
        match self {
            DirOp::Create { dir, name, ino } => {
                ns.entry(dir.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_insert(Entry::File(*ino));
            }
            DirOp::Mkdir { parent, name } => {
                let entry = *ns
                    .entry(parent.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_insert(Entry::Dir);
                if entry == Entry::Dir {
                    ns.entry(parent.join(name)).or_default();
                }
            }
            DirOp::Rename {
                from_dir,
                from_name,
                to_dir,
                to_name,
                ino,
            } => {
                let source_ok = ns
                    .get(from_dir)
                    .and_then(|entries| entries.get(from_name))
                    .is_some_and(|entry| *entry == Entry::File(*ino));
                let target_ok = ns
                    .get(to_dir)
                    .and_then(|entries| entries.get(to_name))
                    .is_none_or(|entry| *entry != Entry::Dir);
                if source_ok && target_ok {
                    if let Some(entries) = ns.get_mut(from_dir) {
                        entries.remove(from_name);
                    }
                    ns.entry(to_dir.clone())
                        .or_default()
                        .insert(to_name.clone(), Entry::File(*ino));
                }
            }
            DirOp::Remove { dir, name, ino } => {
                if let Some(entries) = ns.get_mut(dir)
                    && entries.get(name) == Some(&Entry::File(*ino))
                {
                    entries.remove(name);
                }
            }
        }
    }
}

#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    /// Calls of the fault's class seen since injection.
    seen: u64,
}

#[derive(Debug)]
struct HeldLock {
    holder: String,
    id: u64,
}

struct State {
    seed: u64,
    rng: u64,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    cur_ns: Namespace,
    dur_ns: Namespace,
    pending_dir: Vec<DirOp>,
    locks: HashMap<PathBuf, HeldLock>,
    next_lock_id: u64,
    generation: u64,
    mutating: u64,
    reads: u64,
    syncs: u64,
    crash_at: Option<u64>,
    dead: bool,
    faults: Vec<ActiveFault>,
    space_limit: Option<u64>,
    tracing: bool,
    trace: Vec<TraceEntry>,
    read_only: BTreeSet<PathBuf>,
    sync_latency: Option<std::time::Duration>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn root() -> PathBuf {
    PathBuf::from("/")
}

/// Normalizes a path to an absolute one built from its normal components.
fn norm(path: &Path) -> PathBuf {
    let mut out = root();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Splits a normalized path into parent and name; `None` for the root.
fn split(path: &Path) -> Option<(PathBuf, String)> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let parent = path.parent()?.to_path_buf();
    Some((parent, name))
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

fn stale_handle() -> io::Error {
    io::Error::other("file handle opened before a simulated crash")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (simulated)", path.display()),
    )
}

fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Enospc => os_error(libc::ENOSPC),
        FaultKind::Eio | FaultKind::ShortWrite => os_error(libc::EIO),
    }
}

fn to_usize(value: u64) -> io::Result<usize> {
    usize::try_from(value).map_err(|_| os_error(libc::EFBIG))
}

/// Writes `data` at `offset`, zero-filling any gap past the end.
fn write_into(buf: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset.saturating_add(data.len());
    if buf.len() < end {
        buf.resize(end, 0);
    }
    if let Some(dst) = buf.get_mut(offset..end) {
        dst.copy_from_slice(data);
    }
}

/// Writes the part of the write `data` at `offset` that falls in the sector starting at
/// `sector_start`.
fn write_sector_part(buf: &mut Vec<u8>, sector_start: u64, offset: u64, data: &[u8]) {
    let sector_end = sector_start.saturating_add(SECTOR);
    let data_end = offset.saturating_add(data.len() as u64);
    let (lo, hi) = (offset.max(sector_start), data_end.min(sector_end));
    if lo >= hi {
        return;
    }
    let (Ok(at), Ok(from), Ok(to)) = (
        usize::try_from(lo),
        usize::try_from(lo - offset),
        usize::try_from(hi - offset),
    ) else {
        return;
    };
    if let Some(part) = data.get(from..to) {
        write_into(buf, at, part);
    }
}

fn apply_op(buf: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => {
            if let Ok(offset) = usize::try_from(*offset) {
                write_into(buf, offset, data);
            }
        }
        PendingOp::SetLen(len) => {
            if let Ok(len) = usize::try_from(*len) {
                buf.resize(len, 0);
            }
        }
        PendingOp::Allocate(len) => {
            if let Ok(len) = usize::try_from(*len)
                && buf.len() < len
            {
                buf.resize(len, 0);
            }
        }
    }
}

/// The 512-byte-aligned chunks `[start, end)` (file offsets) of a write.
fn chunks(offset: u64, len: usize) -> Vec<(u64, u64)> {
    let end = offset.saturating_add(len as u64);
    let mut out = Vec::new();
    let mut start = offset;
    while start < end {
        let next = ((start / SECTOR).saturating_add(1))
            .saturating_mul(SECTOR)
            .min(end);
        out.push((start, next));
        start = next;
    }
    out
}

fn op_units(op: &PendingOp) -> usize {
    match op {
        PendingOp::Write { offset, data } => chunks(*offset, data.len()).len(),
        PendingOp::SetLen(_) | PendingOp::Allocate(_) => 1,
    }
}

/// Hands out fates in unit order.
enum FateSource {
    All(UnitFate),
    Random(u64),
    List(Vec<UnitFate>, usize),
}

impl FateSource {
    fn next(&mut self) -> UnitFate {
        match self {
            FateSource::All(fate) => *fate,
            FateSource::Random(state) => match splitmix64(state) % 100 {
                0..45 => UnitFate::Keep,
                45..90 => UnitFate::Drop,
                _ => UnitFate::Zero,
            },
            FateSource::List(list, index) => {
                let fate = list.get(*index).copied().unwrap_or(UnitFate::Drop);
                *index = index.saturating_add(1);
                fate
            }
        }
    }
}

impl State {
    fn new(seed: u64) -> State {
        let mut ns = Namespace::new();
        ns.insert(root(), BTreeMap::new());
        State {
            seed,
            rng: seed,
            inodes: BTreeMap::new(),
            next_ino: 1,
            cur_ns: ns.clone(),
            dur_ns: ns,
            pending_dir: Vec::new(),
            locks: HashMap::new(),
            next_lock_id: 1,
            generation: 0,
            mutating: 0,
            reads: 0,
            syncs: 0,
            crash_at: None,
            dead: false,
            faults: Vec::new(),
            space_limit: None,
            tracing: false,
            trace: Vec::new(),
            read_only: BTreeSet::new(),
            sync_latency: None,
        }
    }

    /// Admits one I/O call: refuses it when the process is dead (or the handle stale),
    /// otherwise counts and traces it and returns the injected fault that fires, if any.
    fn begin(
        &mut self,
        op: &'static str,
        path: &Path,
        class: Option<OpClass>,
        mutating: bool,
        generation: Option<u64>,
    ) -> io::Result<Option<FaultKind>> {
        if self.dead {
            return Err(crashed());
        }
        if generation.is_some_and(|g| g != self.generation) {
            return Err(stale_handle());
        }
        let call = if mutating {
            if self.crash_at.is_some_and(|n| self.mutating >= n) {
                self.dead = true;
                return Err(crashed());
            }
            let index = self.mutating;
            self.mutating = self.mutating.saturating_add(1);
            index
        } else {
            self.reads = self.reads.saturating_add(1);
            u64::MAX
        };
        if self.tracing {
            self.trace.push(TraceEntry {
                call,
                op,
                path: path.to_path_buf(),
            });
        }
        let mut fired = None;
        for active in &mut self.faults {
            let applies = match active.fault.op {
                OpClass::Any => mutating,
                op_class => Some(op_class) == class,
            };
            if !applies {
                continue;
            }
            let fires = if active.fault.persistent {
                active.seen >= active.fault.nth
            } else {
                active.seen == active.fault.nth
            };
            active.seen = active.seen.saturating_add(1);
            if fires && fired.is_none() {
                fired = Some(active.fault.kind);
            }
        }
        Ok(fired)
    }

    /// [`State::begin`] for calls where every fault is a plain error.
    fn admit(
        &mut self,
        op: &'static str,
        path: &Path,
        class: Option<OpClass>,
        mutating: bool,
        generation: Option<u64>,
    ) -> io::Result<()> {
        match self.begin(op, path, class, mutating, generation)? {
            Some(kind) => Err(fault_error(kind)),
            None => Ok(()),
        }
    }

    fn lookup(&self, path: &Path) -> Option<Entry> {
        match split(path) {
            None => Some(Entry::Dir),
            Some((parent, name)) => self.cur_ns.get(&parent)?.get(&name).copied(),
        }
    }

    /// Checks that `dir` is an existing directory in which entries may be changed.
    fn check_dir_writable(&self, dir: &Path) -> io::Result<()> {
        match self.lookup(dir) {
            Some(Entry::Dir) => {}
            Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
            None => return Err(not_found(dir)),
        }
        if self.read_only.contains(dir) {
            return Err(os_error(libc::EACCES));
        }
        Ok(())
    }

    fn inode_mut(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::other("simulated inode vanished"))
    }

    fn new_inode(&mut self, content: Vec<u8>) -> u64 {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.saturating_add(1);
        self.inodes.insert(
            ino,
            Inode {
                current: content.clone(),
                durable: content,
                ..Inode::default()
            },
        );
        ino
    }

    fn link_delta(&mut self, ino: u64, add: bool) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links = if add {
                inode.links.saturating_add(1)
            } else {
                inode.links.saturating_sub(1)
            };
        }
    }

    /// Links a new empty inode at `dir/name` (current namespace + pending dir op).
    fn create_file(&mut self, dir: PathBuf, name: String) -> u64 {
        let ino = self.new_inode(Vec::new());
        self.link_delta(ino, true);
        self.cur_ns
            .entry(dir.clone())
            .or_default()
            .insert(name.clone(), Entry::File(ino));
        self.pending_dir.push(DirOp::Create { dir, name, ino });
        ino
    }

    fn used_bytes(&self) -> u64 {
        self.inodes
            .values()
            .filter(|inode| inode.links > 0 || inode.handles > 0)
            .map(|inode| inode.current.len() as u64)
            .sum()
    }

    /// How far a file currently `cur_len` long may grow under the space limit.
    fn max_len(&self, cur_len: u64) -> u64 {
        match self.space_limit {
            None => MAX_FILE_LEN,
            Some(limit) => cur_len
                .saturating_add(limit.saturating_sub(self.used_bytes()))
                .min(MAX_FILE_LEN),
        }
    }

    /// Inodes whose pending ops matter at a crash: those a durable name or a pending
    /// directory operation refers to.
    fn relevant_inodes(&self) -> BTreeSet<u64> {
        let mut set: BTreeSet<u64> = self
            .dur_ns
            .values()
            .flat_map(|entries| entries.values())
            .filter_map(|entry| match entry {
                Entry::File(ino) => Some(*ino),
                Entry::Dir => None,
            })
            .collect();
        set.extend(self.pending_dir.iter().filter_map(DirOp::inode));
        set
    }

    fn pending_units(&self) -> usize {
        let file_units: usize = self
            .relevant_inodes()
            .iter()
            .filter_map(|ino| self.inodes.get(ino))
            .flat_map(|inode| inode.pending.iter())
            .map(op_units)
            .sum();
        file_units.saturating_add(self.pending_dir.len())
    }

    fn crash(&mut self, mode: CrashMode) {
        let mut fates = match mode {
            CrashMode::DropUnsynced => FateSource::All(UnitFate::Drop),
            CrashMode::KeepAll => FateSource::All(UnitFate::Keep),
            CrashMode::Random(seed) => FateSource::Random(seed),
            CrashMode::Fates(list) => FateSource::List(list, 0),
        };

        // 1. File contents, in unit order.
        let mut images: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for ino in self.relevant_inodes() {
            let Some(inode) = self.inodes.get(&ino) else {
                continue;
            };
            let mut image = inode.durable.clone();
            // Writes since the last size change: a sector that reaches the disk carries
            // the page as it was then, so with a later write's piece of a sector come
            // the earlier writes' bytes in that sector (a later write never lands
            // without the earlier ones to the same sector).
            let mut earlier: Vec<(u64, &[u8])> = Vec::new();
            for op in &inode.pending {
                match op {
                    PendingOp::Write { offset, data } => {
                        for (start, end) in chunks(*offset, data.len()) {
                            let fate = fates.next();
                            let (Ok(at), Ok(lo), Ok(hi)) = (
                                usize::try_from(start),
                                usize::try_from(start.saturating_sub(*offset)),
                                usize::try_from(end.saturating_sub(*offset)),
                            ) else {
                                continue;
                            };
                            let Some(piece) = data.get(lo..hi) else {
                                continue;
                            };
                            match fate {
                                UnitFate::Keep => {
                                    let sector_start = start / SECTOR * SECTOR;
                                    for &(prev_offset, prev) in &earlier {
                                        write_sector_part(
                                            &mut image,
                                            sector_start,
                                            prev_offset,
                                            prev,
                                        );
                                    }
                                    write_into(&mut image, at, piece);
                                }
                                UnitFate::Zero => {
                                    // Zeros model a size or extent that reached the disk
                                    // before its data: only where the write extends the
                                    // file. An overwrite of existing bytes that does not
                                    // land keeps them (sectors are atomic).
                                    let existing = image.len().saturating_sub(at).min(piece.len());
                                    write_into(
                                        &mut image,
                                        at + existing,
                                        &vec![0; piece.len() - existing],
                                    );
                                }
                                UnitFate::Drop => {}
                            }
                        }
                        earlier.push((*offset, data.as_slice()));
                    }
                    PendingOp::SetLen(_) | PendingOp::Allocate(_) => {
                        // A cut may have removed earlier writes from the page.
                        if matches!(op, PendingOp::SetLen(_)) {
                            earlier.clear();
                        }
                        if fates.next() != UnitFate::Drop {
                            apply_op(&mut image, op);
                        }
                    }
                }
            }
            images.insert(ino, image);
        }

        // 2. Directory operations, in order.
        let mut ns = std::mem::take(&mut self.dur_ns);
        for op in &self.pending_dir {
            if fates.next() != UnitFate::Drop {
                op.apply(&mut ns);
            }
        }

        // 3. Keep what the root reaches.
        let mut reached = Namespace::new();
        let mut inodes = BTreeMap::new();
        let mut stack = vec![root()];
        while let Some(dir) = stack.pop() {
            let mut entries = ns.remove(&dir).unwrap_or_default();
            entries.retain(|name, entry| match entry {
                Entry::Dir => {
                    stack.push(dir.join(name));
                    true
                }
                Entry::File(ino) => match images.remove(ino) {
                    Some(image) => {
                        inodes.insert(
                            *ino,
                            Inode {
                                current: image.clone(),
                                durable: image,
                                links: 1,
                                ..Inode::default()
                            },
                        );
                        true
                    }
                    // A second name of an inode already placed (not produced by the
                    // operations SimFs offers, but keep it consistent).
                    None => match inodes.get_mut(ino) {
                        Some(inode) => {
                            inode.links = inode.links.saturating_add(1);
                            true
                        }
                        None => false,
                    },
                },
            });
            reached.insert(dir, entries);
        }

        self.inodes = inodes;
        self.cur_ns = reached.clone();
        self.dur_ns = reached;
        self.pending_dir.clear();
        self.locks.clear();
        self.generation = self.generation.wrapping_add(1);
        self.dead = false;
        self.crash_at = None;
        self.faults.clear();
    }

    /// Makes the pending operations of `ino` durable: all of them, or with `upto` only
    /// those numbered below it (the ones issued before a slow sync started).
    fn sync_file(
        &mut self,
        ino: u64,
        fault: Option<FaultKind>,
        upto: Option<u64>,
    ) -> io::Result<()> {
        let inode = self.inode_mut(ino)?;
        let count = match upto {
            Some(upto) => to_usize(upto.saturating_sub(inode.drained))?.min(inode.pending.len()),
            None => inode.pending.len(),
        };
        let pending: Vec<PendingOp> = inode.pending.drain(..count).collect();
        inode.drained = inode.drained.saturating_add(count as u64);
        if let Some(kind) = fault {
            // The kernel marked the pages clean: the data is gone for the disk.
            return Err(fault_error(kind));
        }
        for op in &pending {
            apply_op(&mut inode.durable, op);
        }
        self.syncs = self.syncs.saturating_add(1);
        Ok(())
    }

    /// Makes sure every directory from the root to `dir` exists in both namespaces.
    /// Fails when a file is in the way.
    fn ensure_dirs_durably(&mut self, dir: &Path) -> bool {
        let mut at = root();
        for component in dir.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            let name = name.to_string_lossy().into_owned();
            let child = at.join(&name);
            for ns in [&mut self.cur_ns, &mut self.dur_ns] {
                let entry = *ns
                    .entry(at.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_insert(Entry::Dir);
                if entry != Entry::Dir {
                    return false;
                }
                ns.entry(child.clone()).or_default();
            }
            at = child;
        }
        true
    }
}

/// The simulated file system. See the [module documentation](self) for the durability
/// model. All state sits behind one mutex; every method is deterministic.
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("SimFs")
            .field("seed", &st.seed)
            .field("inodes", &st.inodes.len())
            .field("mutating_calls", &st.mutating)
            .field("dead", &st.dead)
            .finish()
    }
}

impl SimFs {
    /// A new, empty file system (only the root directory exists). `seed` drives
    /// [`SimFs::crash_random`].
    pub fn new(seed: u64) -> Arc<SimFs> {
        Arc::new(SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
        })
    }

    /// Replaces the file system, in place, by a post-crash image (see the module docs):
    /// afterwards current = durable = the image, nothing is pending, all locks are
    /// released, handles opened before are dead, the process is alive again, and the
    /// crash point ([`SimFs::crash_at_mutating_call`]) and all injected faults are cleared.
    /// Counters, the space limit, read-only dirs and tracing are kept.
    pub fn crash(&self, mode: CrashMode) {
        self.state.lock().crash(mode);
    }

    /// [`SimFs::crash`] with [`CrashMode::Random`], its seed drawn from this file
    /// system's own generator (seeded by [`SimFs::new`]).
    pub fn crash_random(&self) {
        let mut st = self.state.lock();
        let seed = splitmix64(&mut st.rng);
        st.crash(CrashMode::Random(seed));
    }

    /// How many units a crash now would assign fates to (see the module docs for their
    /// order).
    pub fn pending_units(&self) -> usize {
        self.state.lock().pending_units()
    }

    /// Mutating calls admitted so far: `write_at`, `set_len`, `sync_data`, `sync_all`,
    /// `allocate`, `open` with `CreateNew`, `create_dir_all`, `rename`, `remove_file`,
    /// `sync_dir`, `try_lock`. Failed calls count; calls refused because the process is
    /// dead (including the one that hit the crash point) do not.
    pub fn mutating_calls(&self) -> u64 {
        self.state.lock().mutating
    }

    /// Read calls admitted so far (every other trait call).
    pub fn read_calls(&self) -> u64 {
        self.state.lock().reads
    }

    /// Successful `sync_data`/`sync_all` calls so far.
    pub fn sync_calls(&self) -> u64 {
        self.state.lock().syncs
    }

    /// With `Some(n)`, the mutating call numbered `n` (0-based, counted since creation)
    /// and every later call of any kind fail with "simulated crash" and have no effect,
    /// until [`SimFs::crash`] is called. If `n` has already passed, the next mutating
    /// call dies. `None` disarms it.
    pub fn crash_at_mutating_call(&self, n: Option<u64>) {
        self.state.lock().crash_at = n;
    }

    /// Whether the simulated process is dead (the crash point was hit).
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// Adds a fault; several may be active (the first one that fires wins).
    pub fn inject(&self, fault: Fault) {
        self.state
            .lock()
            .faults
            .push(ActiveFault { fault, seen: 0 });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Limits the total current length of all files (named or still open). A write
    /// that does not fit writes what fits and returns the short count, or fails with
    /// `ENOSPC` when nothing fits; `set_len`/`allocate` growth that does not fit fails
    /// whole with `ENOSPC`. Shrinking is always allowed.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state.lock().space_limit = bytes;
    }

    /// Makes every file sync take this long (outside the file system's lock), as a real
    /// flush does: lets concurrency tests see group commit form.
    pub fn set_sync_latency(&self, latency: Option<std::time::Duration>) {
        self.state.lock().sync_latency = latency;
    }

    /// Bytes of writes not yet made durable by a sync, over every file: what a power
    /// loss could take away now.
    pub fn unsynced_write_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.inodes
            .values()
            .flat_map(|inode| inode.pending.iter())
            .map(|op| match op {
                PendingOp::Write { data, .. } => data.len() as u64,
                PendingOp::SetLen(_) | PendingOp::Allocate(_) => 0,
            })
            .sum()
    }

    /// Bytes counted against the space limit: current lengths of all files that have a
    /// name or an open handle.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes()
    }

    /// Turns call tracing on or off (off keeps what was recorded).
    pub fn set_trace(&self, on: bool) {
        self.state.lock().tracing = on;
    }

    /// Returns and clears the recorded trace.
    pub fn take_trace(&self) -> Vec<TraceEntry> {
        std::mem::take(&mut self.state.lock().trace)
    }

    /// Makes creating, renaming into or out of, removing entries in, and making
    /// directories in `dir` fail with `EACCES` (`PermissionDenied`).
    pub fn set_read_only_dir(&self, dir: &Path, read_only: bool) {
        let dir = norm(dir);
        let mut st = self.state.lock();
        if read_only {
            st.read_only.insert(dir);
        } else {
            st.read_only.remove(&dir);
        }
    }

    /// XORs the byte at `offset` with `xor` in both the current and the durable content
    /// (pending ops are untouched). Returns whether any byte was changed (false when the
    /// file is missing or too short). Not an I/O call; works while dead.
    pub fn corrupt(&self, path: &Path, offset: u64, xor: u8) -> bool {
        let path = norm(path);
        let mut st = self.state.lock();
        let Some(Entry::File(ino)) = st.lookup(&path) else {
            return false;
        };
        let (Ok(offset), Some(inode)) = (usize::try_from(offset), st.inodes.get_mut(&ino)) else {
            return false;
        };
        let mut changed = false;
        for bytes in [&mut inode.current, &mut inode.durable] {
            if let Some(byte) = bytes.get_mut(offset) {
                *byte ^= xor;
                changed = true;
            }
        }
        changed
    }

    /// The current content of a file, or `None` if it does not exist. Not an I/O call.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let path = norm(path);
        let st = self.state.lock();
        match st.lookup(&path)? {
            Entry::File(ino) => st.inodes.get(&ino).map(|inode| inode.current.clone()),
            Entry::Dir => None,
        }
    }

    /// Creates or replaces a file so that both its name (and its parent directories)
    /// and its content `bytes` are durable, as if written and synced long ago. Handles
    /// on a replaced file keep the old inode. Does nothing when a file is in the way of
    /// a parent directory or `path` is a directory. Not an I/O call.
    pub fn write_durable(&self, path: &Path, bytes: &[u8]) {
        let path = norm(path);
        let Some((parent, name)) = split(&path) else {
            return;
        };
        let mut st = self.state.lock();
        if st.lookup(&path) == Some(Entry::Dir) || !st.ensure_dirs_durably(&parent) {
            return;
        }
        let ino = st.new_inode(bytes.to_vec());
        st.link_delta(ino, true);
        let old = st
            .cur_ns
            .entry(parent.clone())
            .or_default()
            .insert(name.clone(), Entry::File(ino));
        if let Some(Entry::File(old)) = old {
            st.link_delta(old, false);
        }
        st.dur_ns
            .entry(parent)
            .or_default()
            .insert(name, Entry::File(ino));
    }

    /// Removes a file's name from both the current and the durable namespace. Returns
    /// whether a file was there. Not an I/O call.
    pub fn remove_durable(&self, path: &Path) -> bool {
        let path = norm(path);
        let Some((parent, name)) = split(&path) else {
            return false;
        };
        let mut st = self.state.lock();
        let mut found = false;
        if let Some(Entry::File(ino)) = st.lookup(&path) {
            if let Some(entries) = st.cur_ns.get_mut(&parent) {
                entries.remove(&name);
            }
            st.link_delta(ino, false);
            found = true;
        }
        if let Some(entries) = st.dur_ns.get_mut(&parent)
            && let Some(Entry::File(_)) = entries.get(&name)
        {
            entries.remove(&name);
            found = true;
        }
        found
    }

    /// Every file in the current namespace (normalized absolute paths), sorted.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let st = self.state.lock();
        let mut files: Vec<PathBuf> = st
            .cur_ns
            .iter()
            .flat_map(|(dir, entries)| {
                entries.iter().filter_map(move |(name, entry)| match entry {
                    Entry::File(_) => Some(dir.join(name)),
                    Entry::Dir => None,
                })
            })
            .collect();
        files.sort();
        files
    }

    fn handle(&self, st: &mut State, ino: u64, writable: bool, path: PathBuf) -> SimFile {
        if let Some(inode) = st.inodes.get_mut(&ino) {
            inode.handles = inode.handles.saturating_add(1);
        }
        SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
            writable,
            path,
        }
    }
}

/// An open simulated file: refers to its inode, so it survives renames and unlinks, but
/// not a crash.
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
    writable: bool,
    path: PathBuf,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.generation == self.generation
            && let Some(inode) = st.inodes.get_mut(&self.ino)
        {
            inode.handles = inode.handles.saturating_sub(1);
        }
    }
}

fn read_only_handle() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "file handle opened read-only (simulated)",
    )
}

impl SimFile {
    /// `set_len` (any size) or `allocate` (`grow_only`) to `len`.
    fn resize(&self, op: &'static str, len: u64, grow_only: bool) -> io::Result<()> {
        let mut st = self.state.lock();
        st.admit(
            op,
            &self.path,
            Some(OpClass::SetLen),
            true,
            Some(self.generation),
        )?;
        if !self.writable {
            return Err(read_only_handle());
        }
        if len > MAX_FILE_LEN {
            return Err(os_error(libc::EFBIG));
        }
        let new_len = to_usize(len)?;
        let cur_len = st.inode_mut(self.ino)?.current.len();
        if new_len == cur_len || (grow_only && new_len < cur_len) {
            return Ok(());
        }
        if new_len > cur_len && len > st.max_len(cur_len as u64) {
            return Err(os_error(libc::ENOSPC));
        }
        let inode = st.inode_mut(self.ino)?;
        inode.current.resize(new_len, 0);
        inode.pending.push(if grow_only {
            PendingOp::Allocate(len)
        } else {
            PendingOp::SetLen(len)
        });
        Ok(())
    }

    /// A writeback hint: only traced and counted (as a read call), and failed on command.
    /// It never makes anything durable: the durability model is untouched.
    fn writeback_hint(&self, op: &'static str) -> io::Result<()> {
        let mut st = self.state.lock();
        st.admit(
            op,
            &self.path,
            Some(OpClass::Writeback),
            false,
            Some(self.generation),
        )?;
        if !self.writable {
            return Err(read_only_handle());
        }
        Ok(())
    }

    fn sync(&self, op: &'static str) -> io::Result<()> {
        let (latency, upto) = {
            let mut st = self.state.lock();
            let upto = st
                .inode_mut(self.ino)
                .map(|inode| inode.drained.saturating_add(inode.pending.len() as u64))
                .ok();
            (st.sync_latency, upto)
        };
        let mut upto_if_slow = None;
        if let Some(latency) = latency {
            // Like a disk flush: takes time, without holding the file system's lock, and
            // covers what was written before it started (later writes may stay pending).
            std::thread::sleep(latency);
            upto_if_slow = upto;
        }
        let mut st = self.state.lock();
        let fault = st.begin(
            op,
            &self.path,
            Some(OpClass::Sync),
            true,
            Some(self.generation),
        )?;
        st.sync_file(self.ino, fault, upto_if_slow)
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.state.lock();
        st.admit(
            "read_at",
            &self.path,
            Some(OpClass::Read),
            false,
            Some(self.generation),
        )?;
        let inode = st.inode_mut(self.ino)?;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(available) = inode.current.get(start..) else {
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut st = self.state.lock();
        let fault = st.begin(
            "write_at",
            &self.path,
            Some(OpClass::Write),
            true,
            Some(self.generation),
        )?;
        let mut len = buf.len();
        match fault {
            None => {}
            Some(FaultKind::ShortWrite) if len > 1 => len /= 2,
            Some(kind) => return Err(fault_error(kind)),
        }
        if !self.writable {
            return Err(read_only_handle());
        }
        if len == 0 {
            return Ok(0);
        }
        let end = offset
            .checked_add(len as u64)
            .filter(|end| *end <= MAX_FILE_LEN)
            .ok_or_else(|| os_error(libc::EFBIG))?;
        let cur_len = st.inode_mut(self.ino)?.current.len() as u64;
        let max_end = st.max_len(cur_len);
        if end > max_end {
            let fits = max_end.saturating_sub(offset);
            if fits == 0 {
                return Err(os_error(libc::ENOSPC));
            }
            len = to_usize(fits)?;
        }
        let at = to_usize(offset)?;
        let data = buf.get(..len).unwrap_or(buf).to_vec();
        let inode = st.inode_mut(self.ino)?;
        write_into(&mut inode.current, at, &data);
        inode.pending.push(PendingOp::Write { offset, data });
        Ok(len)
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.admit("len", &self.path, None, false, Some(self.generation))?;
        Ok(st.inode_mut(self.ino)?.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.resize("set_len", len, false)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync("sync_data")
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync("sync_all")
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.resize("allocate", len, true)
    }

    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        self.writeback_hint("start_writeback")
    }

    fn wait_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        self.writeback_hint("wait_writeback")
    }
}

/// A lock taken with [`Vfs::try_lock`] on a [`SimFs`].
struct SimLock {
    state: Weak<Mutex<State>>,
    path: PathBuf,
    id: u64,
    generation: u64,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut st = state.lock();
        if st.generation == self.generation
            && st
                .locks
                .get(&self.path)
                .is_some_and(|held| held.id == self.id)
        {
            st.locks.remove(&self.path);
        }
    }
}

impl Vfs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let path = norm(path);
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if mode == OpenMode::CreateNew {
            st.admit("create_new", &path, Some(OpClass::Create), true, None)?;
            let (parent, name) = split(&path).ok_or_else(|| os_error(libc::EISDIR))?;
            match st.lookup(&parent) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
                None => return Err(not_found(&parent)),
            }
            if st.lookup(&path).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: file exists (simulated)", path.display()),
                ));
            }
            st.check_dir_writable(&parent)?;
            let ino = st.create_file(parent, name);
            return Ok(Box::new(self.handle(st, ino, true, path)));
        }
        st.admit("open", &path, None, false, None)?;
        match st.lookup(&path) {
            Some(Entry::File(ino)) => {
                let writable = mode == OpenMode::ReadWrite;
                Ok(Box::new(self.handle(st, ino, writable, path)))
            }
            Some(Entry::Dir) => Err(os_error(libc::EISDIR)),
            None => Err(not_found(&path)),
        }
    }

    fn read_file(&self, path: &Path, _may_map: bool) -> io::Result<FileBytes> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.admit("read_file", &path, Some(OpClass::Read), false, None)?;
        match st.lookup(&path) {
            Some(Entry::File(ino)) => Ok(FileBytes::Owned(st.inode_mut(ino)?.current.clone())),
            Some(Entry::Dir) => Err(os_error(libc::EISDIR)),
            None => Err(not_found(&path)),
        }
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = norm(dir);
        let mut st = self.state.lock();
        st.admit("read_dir", &dir, Some(OpClass::Read), false, None)?;
        match st.lookup(&dir) {
            Some(Entry::Dir) => Ok(st
                .cur_ns
                .get(&dir)
                .map(|entries| entries.keys().cloned().collect())
                .unwrap_or_default()),
            Some(Entry::File(_)) => Err(os_error(libc::ENOTDIR)),
            None => Err(not_found(&dir)),
        }
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.admit("entry_kind", &path, None, false, None)?;
        Ok(st.lookup(&path).map(|entry| match entry {
            Entry::File(_) => EntryKind::File,
            Entry::Dir => EntryKind::Dir,
        }))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let mut st = self.state.lock();
        st.admit("create_dir_all", &dir, Some(OpClass::Create), true, None)?;
        // Check everything first: the call either creates all missing dirs or nothing.
        let mut missing = Vec::new();
        let mut at = root();
        for component in dir.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            let child = at.join(name);
            match st.lookup(&child) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(os_error(libc::EEXIST)),
                None => {
                    if st.read_only.contains(&at) {
                        return Err(os_error(libc::EACCES));
                    }
                    missing.push((at.clone(), name.to_string_lossy().into_owned()));
                }
            }
            at = child;
        }
        for (parent, name) in missing {
            st.cur_ns
                .entry(parent.clone())
                .or_default()
                .insert(name.clone(), Entry::Dir);
            st.cur_ns.entry(parent.join(&name)).or_default();
            st.pending_dir.push(DirOp::Mkdir { parent, name });
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from = norm(from);
        let to = norm(to);
        let mut st = self.state.lock();
        st.admit("rename", &to, Some(OpClass::Rename), true, None)?;
        let ino = match st.lookup(&from) {
            Some(Entry::File(ino)) => ino,
            Some(Entry::Dir) => {
                return Err(io::Error::other(
                    "renaming directories is not supported by SimFs",
                ));
            }
            None => return Err(not_found(&from)),
        };
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) = (split(&from), split(&to))
        else {
            return Err(os_error(libc::EBUSY));
        };
        let replaced = match st.lookup(&to) {
            Some(Entry::Dir) => return Err(os_error(libc::EISDIR)),
            Some(Entry::File(old)) => Some(old),
            None => None,
        };
        st.check_dir_writable(&from_dir)?;
        st.check_dir_writable(&to_dir)?;
        if from == to {
            return Ok(());
        }
        if let Some(entries) = st.cur_ns.get_mut(&from_dir) {
            entries.remove(&from_name);
        }
        st.cur_ns
            .entry(to_dir.clone())
            .or_default()
            .insert(to_name.clone(), Entry::File(ino));
        if let Some(old) = replaced {
            st.link_delta(old, false);
        }
        st.pending_dir.push(DirOp::Rename {
            from_dir,
            from_name,
            to_dir,
            to_name,
            ino,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.admit("remove_file", &path, Some(OpClass::Remove), true, None)?;
        let ino = match st.lookup(&path) {
            Some(Entry::File(ino)) => ino,
            Some(Entry::Dir) => return Err(os_error(libc::EISDIR)),
            None => return Err(not_found(&path)),
        };
        let Some((dir, name)) = split(&path) else {
            return Err(os_error(libc::EISDIR));
        };
        st.check_dir_writable(&dir)?;
        if let Some(entries) = st.cur_ns.get_mut(&dir) {
            entries.remove(&name);
        }
        st.link_delta(ino, false);
        st.pending_dir.push(DirOp::Remove { dir, name, ino });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.admit("sync_dir", &dir, Some(OpClass::SyncDir), true, None)?;
        match st.lookup(&dir) {
            Some(Entry::Dir) => {}
            Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
            None => return Err(not_found(&dir)),
        }
        let mut rest = Vec::new();
        for op in std::mem::take(&mut st.pending_dir) {
            if op.touches(&dir) {
                op.apply(&mut st.dur_ns);
            } else {
                rest.push(op);
            }
        }
        st.pending_dir = rest;
        Ok(())
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockAttempt> {
        let path = norm(path);
        let mut st = self.state.lock();
        st.admit("try_lock", &path, None, true, None)?;
        match st.lookup(&path) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(os_error(libc::EISDIR)),
            None => {
                let (dir, name) = split(&path).ok_or_else(|| os_error(libc::EISDIR))?;
                st.check_dir_writable(&dir)?;
                st.create_file(dir, name);
            }
        }
        if let Some(held) = st.locks.get(&path) {
            return Ok(LockAttempt::Held(held.holder.clone()));
        }
        let id = st.next_lock_id;
        st.next_lock_id = st.next_lock_id.saturating_add(1);
        st.locks.insert(
            path.clone(),
            HeldLock {
                holder: holder.to_owned(),
                id,
            },
        );
        Ok(LockAttempt::Acquired(Box::new(SimLock {
            state: Arc::downgrade(&self.state),
            path,
            id,
            generation: st.generation,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A SimFs with a durable directory `/db`.
    fn fs_with_db() -> Arc<SimFs> {
        let fs = SimFs::new(1);
        fs.create_dir_all(&p("/db")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs
    }

    /// Creates `/db/<name>` and makes its name durable.
    fn durable_file(fs: &SimFs, name: &str) -> Box<dyn VfsFile> {
        let path = p("/db").join(name);
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        file
    }

    fn is_errno(err: &io::Error, errno: i32) -> bool {
        err.raw_os_error() == Some(errno)
    }

    fn is_crashed(err: &io::Error) -> bool {
        err.to_string() == "simulated crash"
    }

    #[test]
    fn unsynced_write_lost_on_drop_unsynced() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(b"hello", 0).unwrap();
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"hello");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
    }

    #[test]
    fn synced_write_kept() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(b"hello", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"world", 5).unwrap();
        assert_eq!(fs.sync_calls(), 1);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"hello");
        assert_eq!(fs.pending_units(), 0);
    }

    #[test]
    fn set_len_and_allocate_are_pending_until_synced() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(b"0123456789", 0).unwrap();
        file.sync_all().unwrap();
        file.set_len(4).unwrap();
        file.allocate(8).unwrap();
        file.allocate(2).unwrap(); // never shrinks, no op recorded
        assert_eq!(file.len().unwrap(), 8);
        assert_eq!(fs.pending_units(), 2);
        fs.crash(CrashMode::Fates(vec![UnitFate::Keep, UnitFate::Drop]));
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"0123");
    }

    #[test]
    fn created_file_needs_sync_dir() {
        for (mode, survives) in [(CrashMode::DropUnsynced, false), (CrashMode::KeepAll, true)] {
            let fs = fs_with_db();
            let file = fs.open(&p("/db/new"), OpenMode::CreateNew).unwrap();
            file.write_all_at(b"data", 0).unwrap();
            file.sync_data().unwrap();
            fs.crash(mode);
            if survives {
                assert_eq!(fs.file_bytes(&p("/db/new")).unwrap(), b"data");
            } else {
                assert_eq!(fs.file_bytes(&p("/db/new")), None);
                assert!(fs.list_files().is_empty());
            }
        }
    }

    #[test]
    fn mkdir_is_pending_on_the_parent() {
        let fs = SimFs::new(3);
        fs.create_dir_all(&p("/a/b")).unwrap();
        let file = fs.open(&p("/a/b/f"), OpenMode::CreateNew).unwrap();
        file.sync_all().unwrap();
        fs.sync_dir(&p("/a/b")).unwrap();
        fs.sync_dir(&p("/a")).unwrap();
        drop(file);
        fs.crash(CrashMode::DropUnsynced);
        // "/a" itself was never made durable in "/".
        assert_eq!(fs.entry_kind(&p("/a")).unwrap(), None);
        assert!(fs.list_files().is_empty());

        fs.create_dir_all(&p("/a/b")).unwrap();
        fs.open(&p("/a/b/f"), OpenMode::CreateNew).unwrap();
        for dir in ["/a/b", "/a", "/"] {
            fs.sync_dir(&p(dir)).unwrap();
        }
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.list_files(), vec![p("/a/b/f")]);
        assert_eq!(fs.read_dir(&p("/a")).unwrap(), vec!["b".to_owned()]);
    }

    #[test]
    fn rename_without_sync_dir_may_revert() {
        for (mode, synced_dir) in [
            (CrashMode::DropUnsynced, false),
            (CrashMode::KeepAll, false),
            (CrashMode::DropUnsynced, true),
        ] {
            let fs = fs_with_db();
            fs.write_durable(&p("/db/cur"), b"old");
            let tmp = durable_file(&fs, "tmp");
            tmp.write_all_at(b"new", 0).unwrap();
            tmp.sync_all().unwrap();
            fs.rename(&p("/db/tmp"), &p("/db/cur")).unwrap();
            if synced_dir {
                fs.sync_dir(&p("/db")).unwrap();
            }
            // The handle follows the inode.
            let mut buf = [0; 3];
            tmp.read_exact_at(&mut buf, 0).unwrap();
            assert_eq!(&buf, b"new");
            assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"new");
            let expect_new = synced_dir || mode == CrashMode::KeepAll;
            fs.crash(mode);
            if expect_new {
                assert_eq!(fs.list_files(), vec![p("/db/cur")]);
                assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"new");
            } else {
                assert_eq!(fs.list_files(), vec![p("/db/cur"), p("/db/tmp")]);
                assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"old");
                assert_eq!(fs.file_bytes(&p("/db/tmp")).unwrap(), b"new");
            }
        }
    }

    #[test]
    fn remove_without_sync_dir_may_revert() {
        let fs = fs_with_db();
        fs.write_durable(&p("/db/x"), b"x");
        fs.remove_file(&p("/db/x")).unwrap();
        assert_eq!(fs.entry_kind(&p("/db/x")).unwrap(), None);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/db/x")).unwrap(), b"x");
        fs.remove_file(&p("/db/x")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/db/x")), None);
    }

    #[test]
    fn failed_fsync_loses_data_even_after_later_successful_fsync() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(b"AAAA", 0).unwrap();
        fs.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
        let err = file.sync_data().unwrap_err();
        assert!(is_errno(&err, libc::EIO));
        let mut buf = [0; 4];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"AAAA", "reads still show the lost data");
        file.write_all_at(b"BBBB", 4).unwrap();
        file.sync_data().unwrap();
        assert_eq!(fs.sync_calls(), 1);
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"AAAABBBB");
        fs.crash(CrashMode::KeepAll);
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"\0\0\0\0BBBB");
    }

    #[test]
    fn a_later_write_to_a_sector_never_lands_without_the_earlier_ones() {
        // Two unsynced writes to one sector: whatever reaches the disk is the page as it
        // was after one of them, never the second write's bytes without the first's.
        let fs = fs_with_db();
        let file = durable_file(&fs, "/db/f");
        file.write_at(b"first", 0).unwrap();
        file.write_at(b"second", 5).unwrap();
        fs.crash(CrashMode::Fates(vec![UnitFate::Drop, UnitFate::Keep]));
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"firstsecond".to_vec());
    }

    #[test]
    fn fates_cover_torn_sector_prefixes() {
        let data: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8 + 1).collect();
        let setup = || {
            let fs = fs_with_db();
            let file = durable_file(&fs, "f");
            file.write_all_at(&data, 100).unwrap();
            assert_eq!(fs.pending_units(), 4);
            fs
        };
        let bounds = [
            (100usize, 512usize),
            (512, 1024),
            (1024, 1536),
            (1536, 1600),
        ];
        let fate_of = |code: usize| match code {
            0 => UnitFate::Keep,
            1 => UnitFate::Drop,
            _ => UnitFate::Zero,
        };
        let mut seen = BTreeSet::new();
        for combo in 0..81usize {
            let fates: Vec<UnitFate> = (0..4).map(|i| fate_of(combo / 3usize.pow(i) % 3)).collect();
            let mut expected = Vec::new();
            for (fate, (lo, hi)) in fates.iter().zip(bounds) {
                match fate {
                    UnitFate::Keep => write_into(&mut expected, lo, &data[lo - 100..hi - 100]),
                    UnitFate::Zero => write_into(&mut expected, lo, &vec![0; hi - lo]),
                    UnitFate::Drop => {}
                }
            }
            let fs = setup();
            fs.crash(CrashMode::Fates(fates.clone()));
            let got = fs.file_bytes(&p("/db/f")).unwrap();
            assert_eq!(got, expected, "fates {fates:?}");
            seen.insert(got);
        }
        // Torn prefixes explicitly.
        for keep in 0..=4 {
            let fs = setup();
            fs.crash(CrashMode::Fates(vec![UnitFate::Keep; keep]));
            let got = fs.file_bytes(&p("/db/f")).unwrap();
            let len = if keep == 0 { 0 } else { bounds[keep - 1].1 };
            assert_eq!(got.len(), len);
            if keep > 0 {
                assert_eq!(&got[100..], &data[..len - 100]);
            }
        }
        // Dropped and zeroed chunks read alike below a surviving one: 16+8+4+2+1 images.
        assert_eq!(seen.len(), 31);
    }

    #[test]
    fn dir_units_follow_file_units() {
        let fs = fs_with_db();
        let file = fs.open(&p("/db/f"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"abc", 0).unwrap();
        assert_eq!(fs.pending_units(), 2);
        // Keep the write, drop the create: the file is unreachable.
        fs.crash(CrashMode::Fates(vec![UnitFate::Keep, UnitFate::Drop]));
        assert!(fs.list_files().is_empty());
        let file = fs.open(&p("/db/f"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"abc", 0).unwrap();
        fs.crash(CrashMode::Fates(vec![UnitFate::Drop, UnitFate::Keep]));
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
    }

    #[test]
    fn space_limit_short_write_then_enospc_then_freed() {
        let fs = fs_with_db();
        fs.set_space_limit(Some(1000));
        let a = durable_file(&fs, "a");
        let b = durable_file(&fs, "b");
        assert_eq!(a.write_at(&[1; 600], 0).unwrap(), 600);
        assert_eq!(b.write_at(&[2; 600], 0).unwrap(), 400);
        let err = b.write_at(&[2; 10], 400).unwrap_err();
        assert!(is_errno(&err, libc::ENOSPC));
        assert!(is_errno(&b.set_len(401).unwrap_err(), libc::ENOSPC));
        assert!(is_errno(&b.allocate(401).unwrap_err(), libc::ENOSPC));
        assert_eq!(fs.used_bytes(), 1000);
        // An open handle keeps the space of a removed file.
        fs.remove_file(&p("/db/a")).unwrap();
        assert!(is_errno(
            &b.write_at(&[2; 10], 400).unwrap_err(),
            libc::ENOSPC
        ));
        drop(a);
        assert_eq!(fs.used_bytes(), 400);
        assert_eq!(b.write_at(&[2; 10], 400).unwrap(), 10);
        // Raising the limit works too.
        b.write_all_at(&[3; 590], 410).unwrap();
        assert!(is_errno(
            &b.write_at(&[4; 1], 1000).unwrap_err(),
            libc::ENOSPC
        ));
        fs.set_space_limit(Some(2000));
        assert_eq!(b.write_at(&[4; 1], 1000).unwrap(), 1);
        fs.set_space_limit(None);
        b.write_all_at(&[5; 5000], 0).unwrap();
    }

    #[test]
    fn crash_at_mutating_call_kills_that_call_and_all_later() {
        let fs = fs_with_db(); // calls 0 (mkdir) and 1 (sync_dir)
        let file = durable_file(&fs, "f"); // 2, 3
        assert_eq!(fs.mutating_calls(), 4);
        fs.crash_at_mutating_call(Some(5));
        file.write_all_at(b"one", 0).unwrap(); // 4
        assert!(!fs.is_dead());
        let err = file.sync_data().unwrap_err(); // would be 5
        assert!(is_crashed(&err));
        assert!(fs.is_dead());
        assert!(is_crashed(&file.read_at(&mut [0; 3], 0).unwrap_err()));
        assert!(is_crashed(&fs.read_dir(&p("/db")).unwrap_err()));
        assert!(is_crashed(
            &fs.open(&p("/db/g"), OpenMode::CreateNew).err().unwrap()
        ));
        assert!(is_crashed(&fs.remove_file(&p("/db/f")).unwrap_err()));
        assert_eq!(fs.mutating_calls(), 5);
        assert_eq!(fs.sync_calls(), 0);
        assert_eq!(fs.list_files(), vec![p("/db/f")]);
        fs.crash(CrashMode::DropUnsynced);
        assert!(!fs.is_dead());
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
        let file = fs.open(&p("/db/f"), OpenMode::ReadWrite).unwrap();
        file.write_all_at(b"two", 0).unwrap();
        assert_eq!(fs.mutating_calls(), 6);
    }

    #[test]
    fn crash_at_zero_fails_first_call() {
        let fs = SimFs::new(0);
        fs.crash_at_mutating_call(Some(0));
        assert!(is_crashed(&fs.create_dir_all(&p("/x")).unwrap_err()));
        fs.crash(CrashMode::KeepAll);
        assert_eq!(fs.entry_kind(&p("/x")).unwrap(), None);
    }

    #[test]
    fn old_handles_dead_after_crash() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(b"abc", 0).unwrap();
        file.sync_data().unwrap();
        fs.crash(CrashMode::KeepAll);
        assert!(file.read_at(&mut [0; 3], 0).is_err());
        assert!(file.write_at(b"x", 0).is_err());
        assert!(file.len().is_err());
        assert!(file.sync_data().is_err());
        let fresh = fs.open(&p("/db/f"), OpenMode::Read).unwrap();
        drop(file);
        assert_eq!(fresh.len().unwrap(), 3);
        assert!(fresh.write_at(b"x", 0).is_err(), "read-only handle");
    }

    #[test]
    fn lock_held_and_released() {
        let fs = fs_with_db();
        let lock = p("/db/LOCK");
        let LockAttempt::Acquired(guard) = fs.try_lock(&lock, "pid 1").unwrap() else {
            panic!("first lock must succeed");
        };
        assert_eq!(fs.entry_kind(&lock).unwrap(), Some(EntryKind::File));
        match fs.try_lock(&lock, "pid 2").unwrap() {
            LockAttempt::Held(holder) => assert_eq!(holder, "pid 1"),
            LockAttempt::Acquired(_) => panic!("lock taken twice"),
        }
        drop(guard);
        let LockAttempt::Acquired(old_guard) = fs.try_lock(&lock, "pid 3").unwrap() else {
            panic!("released lock must be free");
        };
        // The lock file's creation was never synced.
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.entry_kind(&lock).unwrap(), None);
        let LockAttempt::Acquired(_new_guard) = fs.try_lock(&lock, "pid 4").unwrap() else {
            panic!("a crash releases locks");
        };
        drop(old_guard); // must not release pid 4's lock
        assert!(matches!(
            fs.try_lock(&lock, "pid 5").unwrap(),
            LockAttempt::Held(holder) if holder == "pid 4"
        ));
    }

    #[test]
    fn one_shot_and_persistent_faults() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        fs.inject(Fault {
            op: OpClass::Write,
            nth: 1,
            kind: FaultKind::Eio,
            persistent: false,
        });
        assert!(file.write_at(b"a", 0).is_ok());
        assert!(is_errno(&file.write_at(b"b", 1).unwrap_err(), libc::EIO));
        assert!(file.write_at(b"c", 1).is_ok());
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"ac");
        fs.clear_faults();

        fs.inject(Fault {
            op: OpClass::Write,
            nth: 1,
            kind: FaultKind::Enospc,
            persistent: true,
        });
        assert!(file.write_at(b"d", 2).is_ok());
        for _ in 0..3 {
            assert!(is_errno(&file.write_at(b"e", 3).unwrap_err(), libc::ENOSPC));
        }
        assert!(file.sync_data().is_ok(), "other classes unaffected");
        fs.clear_faults();
        assert!(file.write_at(b"e", 3).is_ok());

        fs.inject(Fault::once(OpClass::Write, FaultKind::ShortWrite));
        assert_eq!(file.write_at(b"12345", 4).unwrap(), 2);
        assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"acde12");

        fs.inject(Fault {
            op: OpClass::Any,
            nth: 0,
            kind: FaultKind::Eio,
            persistent: true,
        });
        assert!(fs.rename(&p("/db/f"), &p("/db/g")).is_err());
        assert!(fs.create_dir_all(&p("/db/sub")).is_err());
        assert_eq!(fs.list_files(), vec![p("/db/f")]);
        assert!(fs.read_dir(&p("/db")).is_ok(), "reads are not mutating");
        fs.clear_faults();

        fs.inject(Fault::once(OpClass::Read, FaultKind::Eio));
        assert!(fs.read_file(&p("/db/f"), true).is_err());
        assert_eq!(&*fs.read_file(&p("/db/f"), true).unwrap(), b"acde12");
    }

    #[test]
    fn read_only_dir_refuses_entry_changes() {
        let fs = fs_with_db();
        fs.write_durable(&p("/db/x"), b"x");
        fs.set_read_only_dir(&p("/db"), true);
        let err = fs.open(&p("/db/new"), OpenMode::CreateNew).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(is_errno(&err, libc::EACCES));
        assert!(fs.remove_file(&p("/db/x")).is_err());
        assert!(fs.rename(&p("/db/x"), &p("/db/y")).is_err());
        assert!(fs.try_lock(&p("/db/LOCK"), "me").is_err());
        assert!(fs.create_dir_all(&p("/db/sub")).is_err());
        assert!(fs.open(&p("/db/x"), OpenMode::ReadWrite).is_ok());
        fs.set_read_only_dir(&p("/db"), false);
        assert!(fs.open(&p("/db/new"), OpenMode::CreateNew).is_ok());
    }

    #[test]
    fn trait_errors() {
        let fs = fs_with_db();
        durable_file(&fs, "f");
        let kind = |r: io::Result<Box<dyn VfsFile>>| r.err().map(|e| e.kind());
        assert_eq!(
            kind(fs.open(&p("/db/f"), OpenMode::CreateNew)),
            Some(io::ErrorKind::AlreadyExists)
        );
        assert_eq!(
            kind(fs.open(&p("/nodir/f"), OpenMode::CreateNew)),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(
            kind(fs.open(&p("/db/g"), OpenMode::Read)),
            Some(io::ErrorKind::NotFound)
        );
        assert!(fs.open(&p("/db"), OpenMode::Read).is_err());
        assert_eq!(
            fs.read_dir(&p("/missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(fs.read_dir(&p("/")).unwrap(), vec!["db".to_owned()]);
        assert_eq!(fs.entry_kind(&p("/")).unwrap(), Some(EntryKind::Dir));
        let file = fs.open(&p("/db/f"), OpenMode::ReadWrite).unwrap();
        assert_eq!(file.read_at(&mut [0; 4], 100).unwrap(), 0);
        file.write_all_at(b"xy", 0).unwrap();
        let mut buf = [0; 4];
        assert_eq!(file.read_at(&mut buf, 1).unwrap(), 1);
        // Removed file: handle still works on the orphan inode.
        fs.remove_file(&p("/db/f")).unwrap();
        file.write_all_at(b"z", 2).unwrap();
        assert_eq!(file.len().unwrap(), 3);
        assert!(fs.rename(&p("/db/f"), &p("/db/g")).is_err());
        assert!(fs.remove_file(&p("/db")).is_err());
    }

    #[test]
    fn writeback_hints_are_traced_fail_on_command_and_make_nothing_durable() {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        fs.set_trace(true);
        file.write_all_at(b"data", 0).unwrap();
        let mutating = fs.mutating_calls();
        file.start_writeback(0, 4).unwrap();
        file.wait_writeback(0, 4).unwrap();
        assert_eq!(fs.mutating_calls(), mutating, "hints are not crash points");
        let ops: Vec<&str> = fs.take_trace().iter().map(|t| t.op).collect();
        assert_eq!(ops, ["write_at", "start_writeback", "wait_writeback"]);
        fs.inject(Fault {
            op: OpClass::Writeback,
            nth: 1,
            kind: FaultKind::Eio,
            persistent: false,
        });
        file.start_writeback(0, 4).unwrap();
        assert!(is_errno(&file.wait_writeback(0, 4).unwrap_err(), libc::EIO));
        file.start_writeback(0, 4).unwrap();
        // A hint is not a sync: the write is still pending and a crash loses it.
        assert!(fs.pending_units() > 0);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/db/f")), Some(Vec::new()));
        let read_only = fs_with_db();
        read_only.write_durable(&p("/db/r"), b"x");
        let handle = read_only.open(&p("/db/r"), OpenMode::Read).unwrap();
        assert!(handle.start_writeback(0, 1).is_err());
    }

    #[test]
    fn counters_and_trace() {
        let fs = SimFs::new(9);
        fs.set_trace(true);
        fs.create_dir_all(&p("/d")).unwrap();
        let file = fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"x", 0).unwrap();
        file.sync_data().unwrap();
        file.read_at(&mut [0; 1], 0).unwrap();
        fs.entry_kind(&p("/d/f")).unwrap();
        fs.rename(&p("/d/f"), &p("/d/g")).unwrap();
        assert_eq!(fs.mutating_calls(), 5);
        assert_eq!(fs.read_calls(), 2);
        let trace = fs.take_trace();
        let ops: Vec<(&str, u64)> = trace.iter().map(|t| (t.op, t.call)).collect();
        assert_eq!(
            ops,
            vec![
                ("create_dir_all", 0),
                ("create_new", 1),
                ("write_at", 2),
                ("sync_data", 3),
                ("read_at", u64::MAX),
                ("entry_kind", u64::MAX),
                ("rename", 4),
            ]
        );
        assert_eq!(trace[2].path, p("/d/f"));
        assert_eq!(trace[6].path, p("/d/g"));
        assert!(fs.take_trace().is_empty());
    }

    #[test]
    fn corrupt_and_durable_helpers() {
        let fs = SimFs::new(2);
        fs.write_durable(&p("/a/b/c"), b"abc");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.file_bytes(&p("/a/b/c")).unwrap(), b"abc");
        assert!(fs.corrupt(&p("/a/b/c"), 1, 0xff));
        assert!(!fs.corrupt(&p("/a/b/c"), 3, 0xff));
        assert!(!fs.corrupt(&p("/a/b/missing"), 0, 0xff));
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(
            fs.file_bytes(&p("/a/b/c")).unwrap(),
            vec![b'a', !b'b', b'c']
        );
        assert!(fs.remove_durable(&p("/a/b/c")));
        fs.crash(CrashMode::KeepAll);
        assert!(fs.list_files().is_empty());
        assert_eq!(fs.entry_kind(&p("/a/b")).unwrap(), Some(EntryKind::Dir));
    }

    /// A workload leaving many kinds of pending units behind.
    fn workload(fs: &SimFs) {
        fs.create_dir_all(&p("/db")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs.write_durable(&p("/db/base"), &[7; 700]);
        for i in 0..4u8 {
            let name = p(&format!("/db/seg{i}"));
            let file = fs.open(&name, OpenMode::CreateNew).unwrap();
            file.write_all_at(&vec![i + 1; 1300], 0).unwrap();
            if i % 2 == 0 {
                file.sync_data().unwrap();
            }
            file.write_all_at(&vec![i + 10; 900], 1000).unwrap();
        }
        fs.rename(&p("/db/seg1"), &p("/db/base")).unwrap();
        fs.remove_file(&p("/db/seg2")).unwrap();
    }

    fn image(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
        fs.list_files()
            .into_iter()
            .map(|path| {
                let bytes = fs.file_bytes(&path).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn random_crash_is_deterministic() {
        let mut images = BTreeSet::new();
        for seed in 0..20 {
            let one = SimFs::new(5);
            let two = SimFs::new(5);
            workload(&one);
            workload(&two);
            assert_eq!(one.pending_units(), two.pending_units());
            one.crash(CrashMode::Random(seed));
            two.crash(CrashMode::Random(seed));
            assert_eq!(image(&one), image(&two));
            images.insert(image(&one));
        }
        assert!(images.len() > 10, "random fates barely vary");

        let one = SimFs::new(42);
        let two = SimFs::new(42);
        workload(&one);
        workload(&two);
        one.crash_random();
        two.crash_random();
        assert_eq!(image(&one), image(&two));
    }

    #[test]
    fn keep_all_equals_current_view() {
        let fs = SimFs::new(8);
        workload(&fs);
        let before = image(&fs);
        fs.crash(CrashMode::KeepAll);
        assert_eq!(image(&fs), before);
        let units = fs.pending_units();
        assert_eq!(units, 0);
    }
}
