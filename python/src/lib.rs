//! `walstate._walstate`: the native part of the Python package.
//!
//! A thin layer over [`walstate::KvStore`]: bytes in, bytes out. The Pythonic API
//! (`walstate.KvStore`, `walstate.JsonStore`, batches, the mapping protocol) is written
//! in Python on top of it (`python/walstate/__init__.py`). Every call that can wait for
//! the disk or for another process's writer lock runs with the GIL released
//! (`Python::detach`), so several Python threads share the core's group commit. Errors
//! are raised as the exception classes of `walstate._errors` (defined in Python so that
//! one of them can also be a builtin `PermissionError`), with the core's message, which
//! says what to do next.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList};
use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{VfsRef, real_fs};
use walstate::{Error, KvCommand, Options, SyncPolicy, Writers};

// ------------------------------------------------------------------------------------
// Errors

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The Python exception class `name` of `walstate._errors`.
fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = ERRORS.get_or_try_init(py, || py.import("walstate._errors").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// The attributes a Python exception carries besides its message.
enum Extra {
    None,
    Path(PathBuf),
    Locked {
        path: PathBuf,
        holder: String,
    },
    Corruption {
        path: PathBuf,
        offset: Option<u64>,
        lsn: Option<u64>,
    },
}

/// The Python exception for a core error: its class, and the core's message.
fn to_py_err(err: Error) -> PyErr {
    Python::attach(|py| match build_py_err(py, &err) {
        Ok(exc) => exc,
        Err(lookup_failed) => lookup_failed,
    })
}

fn build_py_err(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let (class, errno, extra) = match err {
        Error::Locked { path, holder } => (
            "LockedError",
            None,
            Extra::Locked {
                path: path.clone(),
                holder: holder.clone(),
            },
        ),
        // Not a lock someone holds (waiting would not help): the operator must act.
        Error::LockNotAFile { path } => ("Error", None, Extra::Path(path.clone())),
        Error::DiskFull { path, .. } => (
            "DiskFullError",
            Some(libc_enospc()),
            Extra::Path(path.clone()),
        ),
        Error::Io { path, source, .. } if err.is_disk_full() => (
            "DiskFullError",
            source.raw_os_error(),
            Extra::Path(path.clone()),
        ),
        Error::PermissionDenied { path, .. } => (
            "WalstatePermissionError",
            Some(13),
            Extra::Path(path.clone()),
        ),
        Error::Io { path, source, .. } => {
            ("Error", source.raw_os_error(), Extra::Path(path.clone()))
        }
        Error::Corruption {
            path, offset, lsn, ..
        } => (
            "CorruptionError",
            None,
            Extra::Corruption {
                path: path.clone(),
                offset: Some(*offset),
                lsn: Some(*lsn),
            },
        ),
        Error::NoStateBase { path, .. } => (
            "CorruptionError",
            None,
            Extra::Corruption {
                path: path.clone(),
                offset: None,
                lsn: None,
            },
        ),
        Error::SnapshotDamaged { path, .. } => {
            ("SnapshotDamagedError", None, Extra::Path(path.clone()))
        }
        Error::Poisoned { .. } => ("PoisonedError", None, Extra::None),
        Error::SchemaMismatch { path, .. } => ("SchemaError", None, Extra::Path(path.clone())),
        Error::SchemaUntraceable { .. } => ("SchemaError", None, Extra::None),
        Error::UnsupportedVersion { path, .. } => {
            ("UnsupportedVersionError", None, Extra::Path(path.clone()))
        }
        Error::NotAStore { path } => ("NotAStoreError", None, Extra::Path(path.clone())),
        Error::SnapshotNotFound { path, .. } => {
            ("SnapshotNotFoundError", None, Extra::Path(path.clone()))
        }
        Error::InvalidArgument(_) => ("InvalidArgumentError", None, Extra::None),
        Error::ReadOnly => ("ReadOnlyError", None, Extra::None),
        Error::Closed => ("ClosedError", None, Extra::None),
        // Codec failures, a stopped stream, and variants added later.
        _ => ("Error", None, Extra::None),
    };
    let exc = error_class(py, class)?.call1((err.to_string(),))?;
    if let Some(errno) = errno {
        exc.setattr("errno", errno)?;
    }
    // Paths as str (like OSError.filename, which is set too), not pathlib objects.
    let set_path = |path: &PathBuf| -> PyResult<()> {
        exc.setattr("path", path.as_os_str())?;
        exc.setattr("filename", path.as_os_str())
    };
    match &extra {
        Extra::None => {}
        Extra::Path(path) => set_path(path)?,
        Extra::Locked { path, holder } => {
            set_path(path)?;
            exc.setattr("holder", holder)?;
        }
        Extra::Corruption { path, offset, lsn } => {
            set_path(path)?;
            exc.setattr("offset", offset)?;
            exc.setattr("lsn", lsn)?;
        }
    }
    Ok(PyErr::from_value(exc))
}

fn libc_enospc() -> i32 {
    28
}

fn closed_err() -> PyErr {
    to_py_err(Error::Closed)
}

trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for walstate::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}

/// A serde-serializable core report as a JSON string (`walstate` turns it into a dict).
fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|err| PyRuntimeError::new_err(err.to_string()))
}

// ------------------------------------------------------------------------------------
// The store

/// An open store: the native half of `walstate.KvStore` and `walstate.JsonStore`.
///
/// Shared by any number of Python threads: the core `KvStore` is `Send + Sync` and is
/// cloned (an `Arc`) out of the mutex for each call, which then runs without the GIL.
#[pyclass(module = "walstate._walstate", name = "NativeStore", frozen)]
struct NativeStore {
    store: Mutex<Option<walstate::KvStore>>,
    path: PathBuf,
    read_only: bool,
}

impl NativeStore {
    fn get_store(&self) -> PyResult<walstate::KvStore> {
        self.store
            .lock()
            .map_err(|_| PyRuntimeError::new_err("walstate: a thread panicked holding the store"))?
            .clone()
            .ok_or_else(closed_err)
    }
}

fn sync_policy(sync: &str, interval: f64) -> PyResult<SyncPolicy> {
    Ok(match sync {
        "always" => SyncPolicy::Always,
        "never" => SyncPolicy::Never,
        "buffered" => SyncPolicy::Buffered,
        "interval" => {
            if !(interval.is_finite() && interval > 0.0) {
                return Err(PyValueError::new_err(
                    "sync_interval must be a positive number of seconds",
                ));
            }
            SyncPolicy::Interval(Duration::from_secs_f64(interval))
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "sync={other:?}: use \"always\" (durable when the call returns), \"interval\", \"never\" or \"buffered\""
            )));
        }
    })
}

/// One operation of a batch: `(key, value)` puts, `(key, None)` deletes.
type BatchOp<'py> = (Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>);

#[pymethods]
impl NativeStore {
    /// Opens (or creates) a store. See `walstate.KvStore` for the arguments.
    #[staticmethod]
    #[pyo3(signature = (
        path, *, sync="always", sync_interval=0.01, create=true, lock_timeout=None,
        exclusive=false, checkpoint_after_bytes=Some(32 << 20), salvage=false,
        read_only=false, sim=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        sync: &str,
        sync_interval: f64,
        create: bool,
        lock_timeout: Option<f64>,
        exclusive: bool,
        checkpoint_after_bytes: Option<u64>,
        salvage: bool,
        read_only: bool,
        sim: Option<PyRef<'_, SimFs>>,
    ) -> PyResult<NativeStore> {
        let lock_timeout = match lock_timeout {
            None => None,
            Some(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
            Some(_) => {
                return Err(PyValueError::new_err(
                    "lock_timeout must be a non-negative number of seconds, or None",
                ));
            }
        };
        let vfs: VfsRef = match &sim {
            Some(sim) => sim.sim.clone(),
            None => real_fs(),
        };
        let options = Options::default()
            .sync_policy(sync_policy(sync, sync_interval)?)
            .create_if_missing(create)
            .lock_timeout(lock_timeout)
            .writers(if exclusive {
                Writers::Exclusive
            } else {
                Writers::Shared
            })
            .checkpoint_after_bytes(checkpoint_after_bytes)
            .salvage(salvage)
            .vfs(vfs);
        let dir = path.clone();
        let store = py
            .detach(move || {
                if read_only {
                    walstate::KvStore::open_read_only(&dir, options)
                } else {
                    walstate::KvStore::open(&dir, options)
                }
            })
            .py_err()?;
        Ok(NativeStore {
            store: Mutex::new(Some(store)),
            path,
            read_only,
        })
    }

    /// The store directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// True when opened read-only.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.get_store().is_err()
    }

    /// The LSN of the last command applied (0 for an empty store).
    #[getter]
    fn last_lsn(&self) -> PyResult<u64> {
        Ok(self.get_store()?.last_lsn())
    }

    /// Sets `key` to `value` durably; returns the previous value.
    fn put<'py>(
        &self,
        py: Python<'py>,
        key: &[u8],
        value: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = self.get_store()?;
        let previous = py.detach(|| store.put(key, value)).py_err()?;
        Ok(previous.map(|v| PyBytes::new(py, &v)))
    }

    /// The value of `key`, or None. Reads memory only (no I/O).
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = self.get_store()?;
        // One copy, straight from the state into the Python bytes object.
        store
            .read(|state| state.get(key).map(|v| PyBytes::new(py, v)))
            .py_err()
    }

    /// True when `key` is present. Reads memory only.
    fn contains(&self, key: &[u8]) -> PyResult<bool> {
        let store = self.get_store()?;
        store.read(|state| state.get(key).is_some()).py_err()
    }

    /// Deletes `key` durably; returns the previous value (None: it was absent).
    fn delete<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = self.get_store()?;
        let previous = py.detach(|| store.delete(key)).py_err()?;
        Ok(previous.map(|v| PyBytes::new(py, &v)))
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix<'py>(&self, py: Python<'py>, prefix: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let store = self.get_store()?;
        let items = store
            .read(|state| {
                state
                    .scan_prefix(prefix)
                    .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v)))
                    .collect::<Vec<_>>()
            })
            .py_err()?;
        PyList::new(py, items)
    }

    /// Every key starting with `prefix`, in key order.
    fn keys<'py>(&self, py: Python<'py>, prefix: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let store = self.get_store()?;
        let keys = store
            .read(|state| {
                state
                    .scan_prefix(prefix)
                    .map(|(k, _)| PyBytes::new(py, k))
                    .collect::<Vec<_>>()
            })
            .py_err()?;
        PyList::new(py, keys)
    }

    /// Number of keys.
    fn len(&self) -> PyResult<usize> {
        self.get_store()?.len().py_err()
    }

    /// Compare-and-set: when `key` holds `expected` (None: absent), sets it to `new`
    /// (None: deletes it) and returns True; otherwise changes nothing, returns False.
    #[pyo3(signature = (key, expected, new))]
    fn cas(
        &self,
        py: Python<'_>,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> PyResult<bool> {
        let store = self.get_store()?;
        let outcome = py.detach(|| store.cas(key, expected, new)).py_err()?;
        Ok(outcome.is_ok())
    }

    /// Applies `ops` — `(key, value)` puts and `(key, None)` deletes, in order — as one
    /// atomic group of records with one durable point: after a crash all are there or
    /// none. Returns the LSN of the first (0 for an empty batch, which logs nothing).
    fn apply_batch<'py>(&self, py: Python<'py>, ops: Vec<BatchOp<'py>>) -> PyResult<u64> {
        let store = self.get_store()?;
        let commands: Vec<KvCommand> = ops
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => KvCommand::put(key.as_bytes(), value.as_bytes()),
                None => KvCommand::delete(key.as_bytes()),
            })
            .collect();
        py.detach(move || store.apply_batch_with_lsn(commands))
            .py_err()
            .map(|(lsn, _)| lsn)
    }

    /// Makes everything acknowledged durable (needed only under sync != "always").
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.get_store()?;
        py.detach(|| store.sync()).py_err()
    }

    /// Writes a checkpoint now; returns what was written (JSON).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.get_store()?;
        let info = py.detach(|| store.checkpoint()).py_err()?;
        to_json(&info)
    }

    /// Catches up with what other processes committed; returns what it did (JSON).
    fn refresh(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.get_store()?;
        let refreshed = py.detach(|| store.refresh()).py_err()?;
        to_json(&refreshed)
    }

    /// Saves the current state as snapshot `name` (JSON of the snapshot's info).
    fn snapshot(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let store = self.get_store()?;
        let info = py.detach(|| store.snapshot(name)).py_err()?;
        to_json(&info)
    }

    /// Restores snapshot `name` atomically (JSON of what was done).
    fn restore_snapshot(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let store = self.get_store()?;
        let info = py.detach(|| store.restore_snapshot(name)).py_err()?;
        to_json(&info)
    }

    /// The snapshots (JSON list).
    fn list_snapshots(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.get_store()?;
        let list = py.detach(|| store.list_snapshots()).py_err()?;
        to_json(&list)
    }

    /// Deletes snapshot `name`.
    fn delete_snapshot(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let store = self.get_store()?;
        py.detach(|| store.delete_snapshot(name)).py_err()
    }

    /// Journal counters as a dict (`records`, `bytes`, `syncs`, `batches`), or None for
    /// a read-only store.
    fn journal_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(stats) = self.get_store()?.journal_stats() else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        dict.set_item("records", stats.records)?;
        dict.set_item("bytes", stats.bytes)?;
        dict.set_item("syncs", stats.syncs)?;
        dict.set_item("batches", stats.batches)?;
        Ok(Some(dict))
    }

    /// What the last open (or a refresh that recovered again) found and did (JSON).
    fn recovery_report(&self) -> PyResult<String> {
        to_json(&self.get_store()?.recovery_report())
    }

    /// Stops background work and makes everything acknowledged durable. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .store
            .lock()
            .map_err(|_| PyRuntimeError::new_err("walstate: a thread panicked holding the store"))?
            .take();
        match taken {
            Some(store) => py.detach(move || store.close()).py_err(),
            None => Ok(()),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "NativeStore({:?}{}{})",
            self.path,
            if self.read_only { ", read_only" } else { "" },
            if self.closed() { ", closed" } else { "" }
        )
    }
}

/// Checks every file of the store in `path` without changing anything (JSON report).
#[pyfunction]
#[pyo3(signature = (path, *, sim=None))]
fn verify(py: Python<'_>, path: PathBuf, sim: Option<PyRef<'_, SimFs>>) -> PyResult<String> {
    let vfs: VfsRef = match &sim {
        Some(sim) => sim.sim.clone(),
        None => real_fs(),
    };
    let report = py
        .detach(move || walstate::verify(vfs.as_ref(), &path))
        .py_err()?;
    to_json(&report)
}

// ------------------------------------------------------------------------------------
// walstate._testing: the simulated file system, for tests only

/// FOR TESTS ONLY: walstate's simulated, fault-injecting in-memory file system.
///
/// Open a store on it with `walstate.KvStore("/db", _sim=sim)` (paths are inside the
/// simulation). Inject faults (`inject("write", "enospc")`), limit space, make a
/// directory read-only, crash it (`crash("drop_unsynced")`) and reopen.
#[pyclass(module = "walstate._walstate._testing", name = "SimFs", frozen)]
struct SimFs {
    sim: Arc<walstate::io::SimFs>,
}

fn op_class(name: &str) -> PyResult<OpClass> {
    Ok(match name {
        "write" => OpClass::Write,
        "sync" => OpClass::Sync,
        "set_len" => OpClass::SetLen,
        "rename" => OpClass::Rename,
        "remove" => OpClass::Remove,
        "sync_dir" => OpClass::SyncDir,
        "create" => OpClass::Create,
        "read" => OpClass::Read,
        "writeback" => OpClass::Writeback,
        "any" => OpClass::Any,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown fault class {other:?}: write, sync, set_len, rename, remove, sync_dir, create, read, writeback or any"
            )));
        }
    })
}

fn fault_kind(name: &str) -> PyResult<FaultKind> {
    Ok(match name {
        "eio" => FaultKind::Eio,
        "enospc" => FaultKind::Enospc,
        "short_write" => FaultKind::ShortWrite,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown fault kind {other:?}: eio, enospc or short_write"
            )));
        }
    })
}

#[pymethods]
impl SimFs {
    /// A new, empty simulated file system; `seed` makes every run the same.
    #[new]
    #[pyo3(signature = (seed=0))]
    fn new(seed: u64) -> SimFs {
        SimFs {
            sim: walstate::io::SimFs::new(seed),
        }
    }

    /// Makes call `nth` (0-based, counted from now) of class `op` fail as `kind`; with
    /// `persistent`, that call and every later one of the class.
    #[pyo3(signature = (op, kind="eio", *, nth=0, persistent=false))]
    fn inject(&self, op: &str, kind: &str, nth: u64, persistent: bool) -> PyResult<()> {
        self.sim.inject(Fault {
            op: op_class(op)?,
            nth,
            kind: fault_kind(kind)?,
            persistent,
        });
        Ok(())
    }

    /// Removes every injected fault.
    fn clear_faults(&self) {
        self.sim.clear_faults();
    }

    /// Caps the bytes all files may hold (None: no limit); writes past it fail ENOSPC.
    #[pyo3(signature = (limit))]
    fn set_space_limit(&self, limit: Option<u64>) {
        self.sim.set_space_limit(limit);
    }

    /// Makes `path` (a directory) refuse changes with EACCES, or allows them again.
    #[pyo3(signature = (path, read_only=true))]
    fn set_read_only_dir(&self, path: PathBuf, read_only: bool) {
        self.sim.set_read_only_dir(&path, read_only);
    }

    /// Crashes: the file system becomes a post-crash image. `mode`: "drop_unsynced"
    /// (lose everything not synced), "keep_all", or "random" (seeded by `seed`). Stores
    /// open on it are dead afterwards (drop them without closing) and must be reopened.
    #[pyo3(signature = (mode="drop_unsynced", seed=0))]
    fn crash(&self, py: Python<'_>, mode: &str, seed: u64) -> PyResult<()> {
        let mode = match mode {
            "drop_unsynced" => CrashMode::DropUnsynced,
            "keep_all" => CrashMode::KeepAll,
            "random" => CrashMode::Random(seed),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown crash mode {other:?}: drop_unsynced, keep_all or random"
                )));
            }
        };
        let sim = self.sim.clone();
        py.detach(move || sim.crash(mode));
        Ok(())
    }

    /// Makes every file sync take `seconds` (None: instant), as a real flush does.
    #[pyo3(signature = (seconds))]
    fn set_sync_latency(&self, seconds: Option<f64>) -> PyResult<()> {
        let latency = match seconds {
            None => None,
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(_) => return Err(PyValueError::new_err("seconds must be >= 0, or None")),
        };
        self.sim.set_sync_latency(latency);
        Ok(())
    }

    /// Bytes the files hold now.
    fn used_bytes(&self) -> u64 {
        self.sim.used_bytes()
    }
}

// ------------------------------------------------------------------------------------

/// The native part of walstate. Use the `walstate` package, not this module.
#[pymodule]
fn _walstate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<NativeStore>()?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let testing = PyModule::new(py, "_testing")?;
    testing.add(
        "__doc__",
        "FOR TESTS ONLY: the simulated file system (SimFs) that walstate's own tests use.",
    )?;
    testing.add_class::<SimFs>()?;
    m.add_submodule(&testing)?;
    Ok(())
}
