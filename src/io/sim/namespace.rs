//! The namespace: path normalization, the current and durable directory trees, and
//! the pending directory operations (create, mkdir, rename, remove) with how each is
//! made durable. Never touches file contents.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::State;
use super::errors::{not_found, os_error};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    File(u64),
    Dir,
}

/// Directory path (normalized, absolute) -> its entries. A directory's map exists in the
/// current namespace exactly when the directory exists.
pub(super) type Namespace = BTreeMap<PathBuf, BTreeMap<String, Entry>>;

/// A directory operation not yet made durable.
#[derive(Debug, Clone)]
pub(super) enum DirOp {
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
    pub(super) fn touches(&self, target: &Path) -> bool {
        match self {
            DirOp::Create { dir, .. } | DirOp::Remove { dir, .. } => dir == target,
            DirOp::Mkdir { parent, .. } => parent == target,
            DirOp::Rename {
                from_dir, to_dir, ..
            } => from_dir == target || to_dir == target,
        }
    }

    pub(super) fn inode(&self) -> Option<u64> {
        match self {
            DirOp::Create { ino, .. } | DirOp::Rename { ino, .. } | DirOp::Remove { ino, .. } => {
                Some(*ino)
            }
            DirOp::Mkdir { .. } => None,
        }
    }

    /// Applies the operation to a durable namespace, skipping it when it no longer
    /// applies (its name is taken, or its source no longer names the same inode).
    pub(super) fn apply(&self, ns: &mut Namespace) {
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

pub(super) fn root() -> PathBuf {
    PathBuf::from("/")
}

/// Normalizes a path to an absolute one built from its normal components.
pub(super) fn norm(path: &Path) -> PathBuf {
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
pub(super) fn split(path: &Path) -> Option<(PathBuf, String)> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let parent = path.parent()?.to_path_buf();
    Some((parent, name))
}

impl State {
    pub(super) fn lookup(&self, path: &Path) -> Option<Entry> {
        match split(path) {
            None => Some(Entry::Dir),
            Some((parent, name)) => self.cur_ns.get(&parent)?.get(&name).copied(),
        }
    }

    /// Checks that `dir` is an existing directory in which entries may be changed.
    pub(super) fn check_dir_writable(&self, dir: &Path) -> io::Result<()> {
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

    pub(super) fn link_delta(&mut self, ino: u64, add: bool) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links = if add {
                inode.links.saturating_add(1)
            } else {
                inode.links.saturating_sub(1)
            };
        }
    }

    /// Links a new empty inode at `dir/name` (current namespace + pending dir op).
    pub(super) fn create_file(&mut self, dir: PathBuf, name: String) -> u64 {
        let ino = self.new_inode(Vec::new());
        self.link_delta(ino, true);
        self.cur_ns
            .entry(dir.clone())
            .or_default()
            .insert(name.clone(), Entry::File(ino));
        self.pending_dir.push(DirOp::Create { dir, name, ino });
        ino
    }

    /// Makes sure every directory from the root to `dir` exists in both namespaces.
    /// Fails when a file is in the way. (For `write_durable`, an `internals` helper.)
    #[cfg(any(test, feature = "internals"))]
    pub(super) fn ensure_dirs_durably(&mut self, dir: &Path) -> bool {
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
