//! Crashes: [`CrashMode`] and [`UnitFate`], cutting pending operations into units in
//! the documented order, handing each its fate, and building the post-crash image.
//! Runs only from `SimFs::crash`, `crash_random` and `pending_units`, never on an I/O call.

use std::collections::{BTreeMap, BTreeSet};

use super::State;
use super::files::{
    Inode, PendingOp, SECTOR, apply_op, chunks, op_units, write_into, write_sector_part,
};
use super::namespace::{DirOp, Entry, Namespace, root};
/// How [`SimFs::crash`](super::SimFs::crash) treats the operations that were not made durable.
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

pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

    pub(super) fn pending_units(&self) -> usize {
        let file_units: usize = self
            .relevant_inodes()
            .iter()
            .filter_map(|ino| self.inodes.get(ino))
            .flat_map(|inode| inode.pending.iter())
            .map(op_units)
            .sum();
        file_units.saturating_add(self.pending_dir.len())
    }

    pub(super) fn crash(&mut self, mode: CrashMode) {
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
}
