//! A copy-on-write view of a directory tree for `repair --dry-run`: reads come from the
//! underlying file system, every change (create, write, truncate, rename, remove) stays
//! in memory. The dry run runs the real repair against it, so the plan it prints is, by
//! construction, what the real run does. Never writes to the underlying file system.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::io::{EntryKind, FileBytes, LockAttempt, LockGuard, OpenMode, Vfs, VfsFile};

/// The bytes of a file in the view: still those of the underlying file (up to `len`,
/// which a truncation lowers), or a private copy once written.
enum Content {
    Base { file: Box<dyn VfsFile>, len: u64 },
    Mem(Vec<u8>),
}

impl Content {
    /// Turns `Base` into a private copy (before a write or an extension).
    fn materialize(&mut self) -> io::Result<&mut Vec<u8>> {
        if let Content::Base { file, len } = self {
            let size = usize::try_from(*len)
                .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large"))?;
            let mut bytes = vec![0; size];
            file.read_exact_at(&mut bytes, 0)?;
            *self = Content::Mem(bytes);
        }
        match self {
            Content::Mem(bytes) => Ok(bytes),
            Content::Base { .. } => Err(io::Error::other("copy-on-write failed")),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Content::Base { len, .. } => *len,
            Content::Mem(bytes) => bytes.len() as u64,
        }
    }
}

#[derive(Clone)]
enum Node {
    File(Arc<Mutex<Content>>),
    Dir,
    Gone,
}

/// The view (see the module doc).
pub(crate) struct PlanFs<'a> {
    base: &'a dyn Vfs,
    nodes: Mutex<BTreeMap<PathBuf, Node>>,
}

impl fmt::Debug for PlanFs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanFs")
            .field("changed_paths", &self.nodes.lock().len())
            .finish()
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl<'a> PlanFs<'a> {
    /// A view of `base` with no changes yet.
    pub(crate) fn new(base: &'a dyn Vfs) -> Self {
        PlanFs {
            base,
            nodes: Mutex::new(BTreeMap::new()),
        }
    }

    /// The node at `path`, bringing an underlying file into the view.
    fn lookup(&self, path: &Path) -> io::Result<Option<Node>> {
        if let Some(node) = self.nodes.lock().get(path) {
            return Ok(match node {
                Node::Gone => None,
                other => Some(other.clone()),
            });
        }
        match self.base.entry_kind(path)? {
            None => Ok(None),
            Some(EntryKind::Dir) => Ok(Some(Node::Dir)),
            Some(EntryKind::File) => {
                let file = self.base.open(path, OpenMode::Read)?;
                let len = file.len()?;
                let node = Node::File(Arc::new(Mutex::new(Content::Base { file, len })));
                self.nodes.lock().insert(path.to_path_buf(), node.clone());
                Ok(Some(node))
            }
        }
    }

    fn file(&self, path: &Path) -> io::Result<Arc<Mutex<Content>>> {
        match self.lookup(path)? {
            Some(Node::File(content)) => Ok(content),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }
}

struct PlanFile(Arc<Mutex<Content>>);

impl VfsFile for PlanFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let content = self.0.lock();
        let len = content.len();
        if offset >= len {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(len - offset).unwrap_or(usize::MAX));
        match &*content {
            Content::Base { file, .. } => file.read_at(&mut buf[..want], offset),
            Content::Mem(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                buf[..want].copy_from_slice(&bytes[start..start + want]);
                Ok(want)
            }
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut content = self.0.lock();
        let bytes = content.materialize()?;
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        if bytes.len() < start + buf.len() {
            bytes.resize(start + buf.len(), 0);
        }
        bytes[start..start + buf.len()].copy_from_slice(buf);
        Ok(buf.len())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().len())
    }

    fn set_len(&self, new_len: u64) -> io::Result<()> {
        let mut content = self.0.lock();
        if let Content::Base { len, .. } = &mut *content
            && new_len <= *len
        {
            *len = new_len;
            return Ok(());
        }
        let size = usize::try_from(new_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        content.materialize()?.resize(size, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        if len > self.len()? {
            self.set_len(len)?;
        }
        Ok(())
    }
}

struct PlanLock;
impl LockGuard for PlanLock {}

impl Vfs for PlanFs<'_> {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        if mode == OpenMode::CreateNew {
            if self.lookup(path)?.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            let content = Arc::new(Mutex::new(Content::Mem(Vec::new())));
            self.nodes
                .lock()
                .insert(path.to_path_buf(), Node::File(Arc::clone(&content)));
            return Ok(Box::new(PlanFile(content)));
        }
        Ok(Box::new(PlanFile(self.file(path)?)))
    }

    fn read_file(&self, path: &Path, _may_map: bool) -> io::Result<FileBytes> {
        let content = self.file(path)?;
        let file = PlanFile(content);
        let size = usize::try_from(file.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large"))?;
        let mut bytes = vec![0; size];
        file.read_exact_at(&mut bytes, 0)?;
        Ok(FileBytes::Owned(bytes))
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        match self.lookup(dir)? {
            Some(Node::Dir) => {}
            Some(_) => return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a dir")),
            None => return Err(not_found(dir)),
        }
        let mut names: BTreeSet<String> = match self.base.entry_kind(dir)? {
            Some(EntryKind::Dir) => self.base.read_dir(dir)?.into_iter().collect(),
            _ => BTreeSet::new(),
        };
        for (path, node) in self.nodes.lock().iter() {
            if path.parent() != Some(dir) {
                continue;
            }
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            match node {
                Node::Gone => names.remove(&name),
                _ => names.insert(name),
            };
        }
        Ok(names.into_iter().collect())
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        if let Some(node) = self.nodes.lock().get(path) {
            return Ok(match node {
                Node::File(_) => Some(EntryKind::File),
                Node::Dir => Some(EntryKind::Dir),
                Node::Gone => None,
            });
        }
        self.base.entry_kind(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut cursor = Some(dir);
        while let Some(path) = cursor.filter(|p| !p.as_os_str().is_empty()) {
            match self.entry_kind(path)? {
                Some(EntryKind::Dir) => break,
                Some(EntryKind::File) => {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file"));
                }
                None => missing.push(path.to_path_buf()),
            }
            cursor = path.parent();
        }
        let mut nodes = self.nodes.lock();
        for path in missing {
            nodes.insert(path, Node::Dir);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let content = self.file(from)?;
        let mut nodes = self.nodes.lock();
        nodes.insert(to.to_path_buf(), Node::File(content));
        nodes.insert(from.to_path_buf(), Node::Gone);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.file(path)?;
        self.nodes.lock().insert(path.to_path_buf(), Node::Gone);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.entry_kind(dir)? {
            Some(EntryKind::Dir) => Ok(()),
            _ => Err(not_found(dir)),
        }
    }

    /// Takes no lock: the view is private. `lock_store` has already refused a `LOCK`
    /// that is not a regular file, as it does in the real run.
    fn try_lock(&self, path: &Path, _holder: &str) -> io::Result<LockAttempt> {
        if self.lookup(path)?.is_none() {
            self.open(path, OpenMode::CreateNew)?;
        }
        Ok(LockAttempt::Acquired(Box::new(PlanLock)))
    }
}
