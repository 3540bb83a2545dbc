//! Inspection and corruption helpers for tests: tracing, reading and changing file
//! content and names directly (`corrupt`, `file_bytes`, `write_durable`,
//! `remove_durable`, `list_files`). None of them is an I/O call: they are not counted,
//! traced, faulted or refused after a crash point.
//!
//! Tracing is public: it shows which I/O calls a store makes, the numbers
//! [`SimFs::crash_at_mutating_call`] takes. The content helpers damage or read the image
//! behind the store's back; they are the `internals` feature's (and this crate's tests').

#[cfg(any(test, feature = "internals"))]
use std::path::Path;
use std::path::PathBuf;

use super::SimFs;
#[cfg(any(test, feature = "internals"))]
use super::namespace::{Entry, norm, split};

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

impl SimFs {
    /// Turns call tracing on or off (off keeps what was recorded).
    pub fn set_trace(&self, on: bool) {
        self.state.lock().tracing = on;
    }

    /// Returns and clears the recorded trace.
    pub fn take_trace(&self) -> Vec<TraceEntry> {
        std::mem::take(&mut self.state.lock().trace)
    }

    #[cfg(any(test, feature = "internals"))]
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

    #[cfg(any(test, feature = "internals"))]
    /// The current content of a file, or `None` if it does not exist. Not an I/O call.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let path = norm(path);
        let st = self.state.lock();
        match st.lookup(&path)? {
            Entry::File(ino) => st.inodes.get(&ino).map(|inode| inode.current.clone()),
            Entry::Dir => None,
        }
    }

    #[cfg(any(test, feature = "internals"))]
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

    #[cfg(any(test, feature = "internals"))]
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

    #[cfg(any(test, feature = "internals"))]
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
}
