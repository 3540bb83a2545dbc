//! The fault model and call admission: [`Fault`], [`FaultKind`], [`OpClass`], the one
//! table of fault classes ([`FAULT_CLASSES`]) and [`State::begin`], which every I/O call passes (dead process, stale handle, crash
//! point, counters, trace, which injected fault fires). Decides only whether and how a
//! call fails; never changes file or directory contents.

use std::io;
use std::path::Path;

use super::State;
use super::errors::{crashed, fault_error, stale_handle};
use super::inspect::TraceEntry;
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
    /// `open` with [`OpenMode::CreateNew`](crate::io::OpenMode::CreateNew) and `create_dir_all`.
    Create,
    /// `read_at`, `read_file` and `read_dir`.
    Read,
    /// The writeback hints `start_writeback` and `wait_writeback` (read calls: they
    /// change nothing in the simulation, so they are not crash points).
    Writeback,
    /// Every mutating call (see [`SimFs::mutating_calls`](super::SimFs::mutating_calls)).
    Any,
}

impl OpClass {
    /// The class of the call named `op` (as [`TraceEntry::op`] names it), `None` for a
    /// call no fault applies to (`len`, `open` of an existing file, `entry_kind`,
    /// `try_lock`). [`OpClass::Any`] is never returned: it applies to every mutating call.
    pub fn of_call(op: &str) -> Option<OpClass> {
        Some(match op {
            "write_at" => OpClass::Write,
            "sync_data" | "sync_all" => OpClass::Sync,
            "set_len" | "allocate" => OpClass::SetLen,
            "rename" => OpClass::Rename,
            "remove_file" => OpClass::Remove,
            "sync_dir" => OpClass::SyncDir,
            "create_new" | "create_dir_all" => OpClass::Create,
            "read_at" | "read_file" | "read_dir" => OpClass::Read,
            "start_writeback" | "wait_writeback" => OpClass::Writeback,
            _ => return None,
        })
    }

    /// True when a fault of this class applies to the call named `op`, `mutating` telling
    /// whether that call changes anything (what [`OpClass::Any`] covers).
    pub fn covers(self, op: &str, mutating: bool) -> bool {
        match self {
            OpClass::Any => mutating,
            class => OpClass::of_call(op) == Some(class),
        }
    }
}

/// The fault classes: every way the simulated file system fails calls that a store must
/// survive, as the calls and how they fail. Whoever tests fault handling iterates this
/// table (`tests/crash_sim.rs` fails every I/O call site with each, once and
/// persistently), so a new fault class is one line here.
///
/// Crashes (losing unsynced writes, tearing them at sector boundaries, zero-filled
/// extents) are not faults of a call but of the crash image: see
/// [`CrashMode`](super::CrashMode) and [`UnitFate`](super::UnitFate).
pub const FAULT_CLASSES: &[(OpClass, FaultKind)] = &[
    // A full disk while appending or writing a checkpoint.
    (OpClass::Write, FaultKind::Enospc),
    // A write the device refuses.
    (OpClass::Write, FaultKind::Eio),
    // A write that lands only in part.
    (OpClass::Write, FaultKind::ShortWrite),
    // A failed fsync / fdatasync: what it covered may be gone.
    (OpClass::Sync, FaultKind::Eio),
    (OpClass::Rename, FaultKind::Eio),
    // A failed directory fsync: a new name may not survive a crash.
    (OpClass::SyncDir, FaultKind::Eio),
    // Truncation or preallocation failing.
    (OpClass::SetLen, FaultKind::Eio),
    // No space for a new file or directory.
    (OpClass::Create, FaultKind::Enospc),
    (OpClass::Remove, FaultKind::Eio),
    // Any mutating call at all.
    (OpClass::Any, FaultKind::Eio),
];

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

/// An injected failure. See [`SimFs::inject`](super::SimFs::inject).
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

#[derive(Debug)]
pub(super) struct ActiveFault {
    pub(super) fault: Fault,
    /// Calls of the fault's class seen since injection.
    pub(super) seen: u64,
}

impl State {
    /// Admits one I/O call: refuses it when the process is dead (or the handle stale),
    /// otherwise counts and traces it and returns the injected fault that fires, if any.
    pub(super) fn begin(
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
        debug_assert_eq!(
            class,
            OpClass::of_call(op),
            "{op} is listed in OpClass::of_call"
        );
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
    pub(super) fn admit(
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
}
