//! File contents: inodes with their current and durable bytes and pending operations,
//! how an operation lands on a buffer (whole or one sector's part), write chunking at
//! sector boundaries, the space limit, and making a file's pending operations durable
//! on sync. Never touches the namespace.

use std::io;

use super::State;
use super::errors::{fault_error, to_usize};
use super::faults::FaultKind;
/// Writes are torn at multiples of this file offset.
pub(super) const SECTOR: u64 = 512;
/// Largest file the simulation accepts (larger ones fail with `EFBIG`).
pub(super) const MAX_FILE_LEN: u64 = 1 << 32;

/// An operation on a file not yet made durable.
#[derive(Debug, Clone)]
pub(super) enum PendingOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// Grow-only extension with zeros.
    Allocate(u64),
}

#[derive(Debug, Default)]
pub(super) struct Inode {
    pub(super) current: Vec<u8>,
    pub(super) durable: Vec<u8>,
    pub(super) pending: Vec<PendingOp>,
    /// Pending operations made durable (or dropped by a failed sync) so far: numbers the
    /// operations, so a sync that started earlier applies only those before its start.
    pub(super) drained: u64,
    /// Names in the current namespace.
    pub(super) links: u32,
    /// Open handles of the current generation.
    pub(super) handles: u32,
}

/// Writes `data` at `offset`, zero-filling any gap past the end.
pub(super) fn write_into(buf: &mut Vec<u8>, offset: usize, data: &[u8]) {
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
pub(super) fn write_sector_part(buf: &mut Vec<u8>, sector_start: u64, offset: u64, data: &[u8]) {
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

pub(super) fn apply_op(buf: &mut Vec<u8>, op: &PendingOp) {
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
pub(super) fn chunks(offset: u64, len: usize) -> Vec<(u64, u64)> {
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

pub(super) fn op_units(op: &PendingOp) -> usize {
    match op {
        PendingOp::Write { offset, data } => chunks(*offset, data.len()).len(),
        PendingOp::SetLen(_) | PendingOp::Allocate(_) => 1,
    }
}

impl State {
    pub(super) fn inode_mut(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::other("simulated inode vanished"))
    }

    pub(super) fn new_inode(&mut self, content: Vec<u8>) -> u64 {
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

    pub(super) fn used_bytes(&self) -> u64 {
        self.inodes
            .values()
            .filter(|inode| inode.links > 0 || inode.handles > 0)
            .map(|inode| inode.current.len() as u64)
            .sum()
    }

    /// How far a file currently `cur_len` long may grow under the space limit.
    pub(super) fn max_len(&self, cur_len: u64) -> u64 {
        match self.space_limit {
            None => MAX_FILE_LEN,
            Some(limit) => cur_len
                .saturating_add(limit.saturating_sub(self.used_bytes()))
                .min(MAX_FILE_LEN),
        }
    }

    /// Makes the pending operations of `ino` durable: all of them, or with `upto` only
    /// those numbered below it (the ones issued before a slow sync started).
    pub(super) fn sync_file(
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
}
