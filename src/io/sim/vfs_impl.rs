//! The [`Vfs`] and [`VfsFile`] implementations: open handles ([`SimFile`]), locks
//! ([`SimLock`]) and every trait call, each admitted through [`State::begin`] and then
//! applied to the current namespace and contents.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::errors::{fault_error, not_found, os_error, read_only_handle, to_usize};
use super::faults::{FaultKind, OpClass};
use super::files::{MAX_FILE_LEN, PendingOp, write_into};
use super::namespace::{DirOp, Entry, norm, root, split};
use super::{SimFs, State};
use crate::io::{EntryKind, FileBytes, LockAttempt, LockGuard, OpenMode, Vfs, VfsFile};
#[derive(Debug)]
pub(super) struct HeldLock {
    pub(super) holder: String,
    pub(super) id: u64,
}

impl SimFs {
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
    /// No: every operation of a simulation happens in the test's own order.
    fn allows_background_work(&self) -> bool {
        false
    }

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
