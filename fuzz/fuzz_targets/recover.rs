//! Recovery of arbitrary directory contents: `verify`, read-only open and open must
//! never panic, must agree with each other, and a successful open must leave a store
//! that opens again to the same state and keeps what is written next.
//!
//! The input is a small program that builds files on a `SimFs` with `write_durable`:
//! segments (a valid header and valid records by default, so recovery gets past the
//! framing, then optionally damaged), checkpoints, restore files, snapshots, temp files,
//! files with odd names, and raw bytes under store file names. See `fuzz/README.md`.
//!
//! Asserts (besides "no panic"):
//! - `verify` says `NeedsRepair` exactly when open (no salvage) refuses the directory,
//!   for read-only and writer open alike. An open refused only because a CRC-valid
//!   payload or state does not decode as `KvCommand`/`KvState` is a state-type mismatch,
//!   not a disagreement.
//! - A directory that is not a store is refused as `NotAStore` by all three.
//! - Read-only open and writer open recover the same state and last LSN.
//! - After a successful writer open: opening again gives the same state and finds no torn
//!   tail or temp file; `verify` no longer says `NeedsRepair`; a put, a power loss and a
//!   reopen give the state plus that put.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use walstate::format::{
    self, FLAG_GROUP_CONTINUES, Identity, RECORD_KIND_COMMAND, RECORD_KIND_RESTORE,
    RECORD_PAYLOAD_MAX_HARD, RestoreMarker, SEGMENT_FLAG_PREALLOCATED, SegmentHeader, StoreId, v1,
};
use walstate::io::sim::CrashMode;
use walstate::io::{SimFs, VfsRef};
use walstate::journal::JournalOptions;
use walstate::verify::{self, Verdict};
use walstate::{Error, KvCommand, KvState, KvStore, Options, StateMachine, codec};
use walstate_fuzz::{Input, Map, command, env_flag, hex, key, state_map, value};

const DIR: &str = "/db";
/// Files a program may create.
const FILES_MAX: usize = 12;

fuzz_target!(|data: &[u8]| {
    let files = build(data);
    check(&files);
});

/// Relative path -> content. Later writes to the same path replace earlier ones, as
/// `write_durable` does.
type Files = BTreeMap<String, Vec<u8>>;

struct Builder<'a> {
    input: Input<'a>,
    /// Sequence number the next "coherent" segment gets.
    next_seq: u64,
    /// LSN the next "coherent" record gets.
    next_lsn: u64,
    files: Files,
}

/// The id of the store programs build (its `IDENTITY` file, usually present).
const STORE_ID: u64 = 0x5747_a11e_d0c0_ffee;
/// Another store's id, for foreign files.
const FOREIGN_ID: u64 = 0x0f0e_0d0c_0b0a_0908;

fn build(data: &[u8]) -> Files {
    let mut b = Builder {
        input: Input::new(data),
        next_seq: 1,
        next_lsn: 1,
        files: Files::new(),
    };
    // Usually an identity file (as every version-2 store has); sometimes a damaged one
    // or none (a version-1 store, or a deleted identity).
    match b.input.below(20) {
        0 => {}
        1 => {
            let mut bytes = identity(0).to_vec();
            b.mutate(&mut bytes);
            b.files.insert(format::IDENTITY_FILE_NAME.into(), bytes);
        }
        2 => {
            let bytes = identity(format::IDENTITY_FLAG_LEGACY_V1).to_vec();
            b.files.insert(format::IDENTITY_FILE_NAME.into(), bytes);
        }
        _ => {
            b.files
                .insert(format::IDENTITY_FILE_NAME.into(), identity(0).to_vec());
        }
    }
    let mut count = 0;
    while !b.input.is_empty() && count < FILES_MAX {
        count += 1;
        match b.input.below(16) {
            0..=5 => b.segment(),
            6 => b.raw_file(Kind::Segment),
            7..=9 => b.checkpoint(Kind::Checkpoint),
            10 => b.checkpoint(Kind::Restore),
            11 => b.raw_file(Kind::Checkpoint),
            12 => b.raw_file(Kind::Restore),
            13 => b.temp_file(),
            14 => b.checkpoint(Kind::Snapshot),
            _ => b.odd_file(),
        }
    }
    b.files
}

fn identity(flags: u32) -> [u8; format::IDENTITY_LEN] {
    Identity {
        store_id: StoreId::new(STORE_ID).expect("non-zero"),
        flags,
    }
    .encode()
}

#[derive(Clone, Copy)]
enum Kind {
    Segment,
    Checkpoint,
    Restore,
    Snapshot,
}

/// The last LSN a store accepts (`format::LSN_MAX`, 2^62).
const LSN_END: u64 = 1 << 62;

impl Builder<'_> {
    fn number_near(&mut self, usual: u64) -> u64 {
        self.input.number_near(usual)
    }

    fn seq(&mut self) -> u64 {
        let seq = self.number_near(self.next_seq);
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    fn name(&mut self, kind: Kind, number: u64) -> String {
        match kind {
            Kind::Segment => format::segment_file_name(number),
            Kind::Checkpoint => format::checkpoint_file_name(number),
            Kind::Restore => format::restore_file_name(number),
            Kind::Snapshot => {
                let names = ["s", "nightly", "pre-restore-3", ".hidden", "a b"];
                format!("snapshots/{}.ckpt", names[self.input.below(names.len())])
            }
        }
    }

    /// A segment with a header and records that continue the journal built so far,
    /// unless the input says otherwise; then optional damage.
    fn segment(&mut self) {
        let seq = self.seq();
        let defaults = JournalOptions::default();
        let record_payload_max = match self.input.below(10) {
            0 => 1 + u32::from(self.input.u16()),
            1 => RECORD_PAYLOAD_MAX_HARD,
            2 => self.input.u32(),
            _ => defaults.record_payload_max,
        };
        let frame_max = u64::from(record_payload_max) + format::RECORD_HEADER_LEN as u64;
        let torn_window_bytes = match self.input.below(10) {
            0 => frame_max,
            1 => self.input.u64(),
            2 => u64::from(self.input.u16()),
            _ if record_payload_max == defaults.record_payload_max => defaults.torn_window_bytes(),
            _ => frame_max.max(1 << 20),
        };
        let mut flags = 0;
        if self.input.chance(20) {
            flags |= SEGMENT_FLAG_PREALLOCATED;
        }
        if self.input.chance(3) {
            flags |= self.input.u32();
        }
        let store_id = self.store_id();
        let version_1 = self.input.chance(10);
        let header = SegmentHeader {
            version: if version_1 { 1 } else { format::FORMAT_VERSION },
            segment_seq: if self.input.chance(95) {
                seq
            } else {
                self.number_near(seq)
            },
            first_lsn: self.number_near(self.next_lsn),
            torn_window_bytes: if version_1 { torn_window_bytes } else { 0 },
            record_payload_max,
            flags,
            store_id: if version_1 { 0 } else { store_id.get() },
            schema_id: if version_1 { 0 } else { self.schema_id() },
        };
        let mut bytes = if version_1 {
            v1::encode_segment_header(&header).to_vec()
        } else {
            header.encode().to_vec()
        };
        let mut lsn = header.first_lsn;
        let records = self.input.below(9);
        let mut written = 0;
        while written < records {
            // A single command, or an atomic group of 2..=4 records.
            let group = if self.input.chance(15) {
                2 + self.input.below(3)
            } else {
                1
            };
            for index in 0..group {
                let (kind, payload) = self.record_payload(lsn);
                let mut flags = if index + 1 < group {
                    FLAG_GROUP_CONTINUES
                } else {
                    0
                };
                if self.input.chance(3) {
                    flags ^= FLAG_GROUP_CONTINUES;
                }
                let record_lsn = if self.input.chance(95) {
                    lsn
                } else {
                    self.number_near(lsn)
                };
                let start = bytes.len();
                if version_1 {
                    v1::encode_record(&mut bytes, record_lsn, kind, flags, &payload);
                } else {
                    // The frontier: usually the frame's own offset (everything before it
                    // synced, as under Always), sometimes less, rarely nonsense.
                    let synced_end = match self.input.below(10) {
                        0 => self.number_near(start as u64),
                        1 => format::SEGMENT_HEADER_LEN as u64,
                        _ => start as u64,
                    };
                    format::encode_record(
                        &mut bytes, record_lsn, kind, flags, synced_end, &payload,
                    );
                    if self.input.chance(10) {
                        // A seal after the frame (as a clean close writes).
                        let at = bytes.len() as u64;
                        let next = record_lsn.wrapping_add(1);
                        format::encode_record(
                            &mut bytes,
                            next,
                            format::RECORD_KIND_SEAL,
                            0,
                            at,
                            b"",
                        );
                    }
                }
                if self.input.chance(2) && !version_1 {
                    self.bad_header_field(&mut bytes[start..]);
                }
                lsn = record_lsn.wrapping_add(1);
            }
            written += group;
        }
        self.next_lsn = lsn;
        if flags & SEGMENT_FLAG_PREALLOCATED != 0 || self.input.chance(5) {
            let zeros = self.input.below(5) * 512;
            bytes.resize(bytes.len() + zeros, 0);
        }
        self.mutate(&mut bytes);
        let name = self.name(Kind::Segment, seq);
        self.files.insert(name, bytes);
    }

    /// Payload of the record at `lsn`: usually an encoded `KvCommand`, sometimes a
    /// restore marker (with its restore file), sometimes raw bytes or an unknown kind.
    fn record_payload(&mut self, lsn: u64) -> (u8, Vec<u8>) {
        match self.input.below(20) {
            0..=14 => {
                let cmd = command(&mut self.input);
                (RECORD_KIND_COMMAND, codec::encode(&cmd).expect("encode"))
            }
            15 | 16 => {
                let marker = RestoreMarker {
                    snapshot: "s".into(),
                    snapshot_lsn: u64::from(self.input.u8()),
                };
                if self.input.chance(85) {
                    let state = self.kv_state_bytes();
                    let file_lsn = self.number_near(lsn);
                    let store_id = self.store_id();
                    let schema_id = self.schema_id();
                    let image = format::encode_checkpoint(file_lsn, store_id, schema_id, &state);
                    let name = self.name(Kind::Restore, lsn);
                    self.files.insert(name, image);
                }
                (RECORD_KIND_RESTORE, codec::encode(&marker).expect("encode"))
            }
            17 | 18 => (RECORD_KIND_COMMAND, self.input.short_bytes(24).to_vec()),
            _ => (
                1 + self.input.u8() % 255,
                self.input.short_bytes(24).to_vec(),
            ),
        }
    }

    /// The schema id a file gets: usually none recorded or the key-value state's (what
    /// the typed open accepts), sometimes one this store has no schema file for.
    fn schema_id(&mut self) -> u64 {
        match self.input.below(10) {
            0..=3 => 0,
            4..=8 => walstate::schema::Schema::of::<KvState>()
                .expect("KvState declares its schema")
                .id()
                .get(),
            _ => 0x5c4e_3a00_0000_0001,
        }
    }

    /// The store id a file gets: usually this store's, sometimes another's.
    fn store_id(&mut self) -> StoreId {
        let raw = if self.input.chance(5) {
            FOREIGN_ID
        } else {
            STORE_ID
        };
        StoreId::new(raw).expect("non-zero")
    }

    /// Gives a just-encoded version-2 frame a kind of 0, unknown flags or a wrong mark,
    /// with a header checksum that matches.
    fn bad_header_field(&mut self, frame: &mut [u8]) {
        match self.input.below(3) {
            0 => frame[1] = 0,
            1 => frame[2] |= 0b10,
            _ => frame[if self.input.chance(50) { 0 } else { 31 }] ^= 1 + self.input.u8() % 255,
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&frame[0..27]);
        hasher.update(&frame[31..32]);
        frame[27..31].copy_from_slice(&hasher.finalize().to_le_bytes());
    }

    /// An encoded `KvState` (usually) or raw bytes.
    fn kv_state_bytes(&mut self) -> Vec<u8> {
        if self.input.chance(8) {
            return self.input.short_bytes(32).to_vec();
        }
        let mut state = KvState::default();
        for _ in 0..self.input.below(5) {
            let (k, v) = (key(&mut self.input), value(&mut self.input));
            let _ = state.apply(&KvCommand::Put { key: k, value: v });
        }
        codec::encode(&state).expect("encode")
    }

    /// A checkpoint-format file (checkpoint, restore file or snapshot).
    fn checkpoint(&mut self, kind: Kind) {
        let lsn = self.number_near(self.next_lsn.wrapping_sub(1));
        let header_lsn = if self.input.chance(90) {
            lsn
        } else {
            self.number_near(lsn)
        };
        let state = self.kv_state_bytes();
        let mut bytes = if self.input.chance(8) {
            v1::encode_checkpoint(header_lsn, &state)
        } else {
            let store_id = self.store_id();
            let schema_id = self.schema_id();
            format::encode_checkpoint(header_lsn, store_id, schema_id, &state)
        };
        self.mutate(&mut bytes);
        let name = self.name(kind, lsn);
        self.files.insert(name, bytes);
    }

    /// Raw bytes under a store file name.
    fn raw_file(&mut self, kind: Kind) {
        let number = match kind {
            Kind::Segment => self.seq(),
            _ => self.number_near(self.next_lsn.wrapping_sub(1)),
        };
        let len = usize::from(self.input.u16() % 512);
        let bytes = self.input.bytes(len).to_vec();
        let name = self.name(kind, number);
        self.files.insert(name, bytes);
    }

    /// A leftover temp file.
    fn temp_file(&mut self) {
        let number = self.number_near(self.next_seq);
        let name = match self.input.below(4) {
            0 => format!("{}.tmp", format::segment_file_name(number)),
            1 => format!("{}.tmp", format::checkpoint_file_name(number)),
            2 => format!("{}.tmp", format::restore_file_name(number)),
            _ => "snapshots/s.ckpt.tmp".into(),
        };
        let bytes = self.input.short_bytes(64).to_vec();
        self.files.insert(name, bytes);
    }

    /// A file that is not part of the store, or a directory under a store file name.
    fn odd_file(&mut self) {
        let number = self.number_near(self.next_seq);
        let name = match self.input.below(8) {
            0 => "LOCK".to_string(),
            1 => "notes.txt".to_string(),
            2 => "wal-1.seg".to_string(),
            3 => format!("quarantine/{}", format::segment_file_name(number)),
            4 => format!("{}/x", format::segment_file_name(number)),
            5 => format!("{}/x", format::checkpoint_file_name(number)),
            6 => "snapshots".to_string(),
            _ => format!("{}/x", format::restore_file_name(number)),
        };
        let bytes = self.input.short_bytes(64).to_vec();
        self.files.insert(name, bytes);
    }

    /// Damage: truncation, bit flips, garbage or zeros appended, bytes overwritten.
    fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..self.input.below(4) {
            let at = if bytes.is_empty() {
                0
            } else {
                usize::from(self.input.u16()) % bytes.len()
            };
            match self.input.below(6) {
                0 => bytes.truncate(at),
                1 => {
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= 1 << self.input.below(8);
                    }
                }
                2 => {
                    let garbage = self.input.short_bytes(64);
                    bytes.extend_from_slice(garbage);
                }
                3 => {
                    let end = at.saturating_add(self.input.below(64)).min(bytes.len());
                    bytes[at..end].fill(0);
                }
                4 => {
                    let zeros = self.input.below(3) * 512 + self.input.below(64);
                    bytes.resize(bytes.len() + zeros, 0);
                }
                _ => {
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte = self.input.u8();
                    }
                }
            }
        }
    }
}

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .create_if_missing(false)
        .checkpoint_after_bytes(None)
}

/// True when a CRC-valid checkpoint or restore file holds a state that is not a
/// `KvState`: the typed open may then legitimately disagree with the untyped verify.
fn state_type_mismatch(files: &Files) -> bool {
    files.iter().any(|(name, bytes)| {
        let numbered = format::parse_checkpoint_file_name(name).is_some()
            || format::parse_restore_file_name(name).is_some();
        numbered
            && format::decode_checkpoint(bytes)
                .is_ok_and(|(_, state)| codec::decode::<KvState>(state).is_err())
    })
}

/// A CRC-valid file or record that the typed open cannot decode, or one of another
/// schema: the untyped verify may legitimately call the store fine.
fn replay_mismatch(err: &Error) -> bool {
    matches!(err, Error::SchemaMismatch { .. })
        || matches!(err, Error::Corruption { detail, .. } if detail.contains("cannot be replayed"))
}

fn describe(files: &Files) -> String {
    let mut out = String::new();
    for (name, bytes) in files {
        let shown = &bytes[..bytes.len().min(96)];
        let _ = writeln!(out, "  {name}: {} bytes {}", bytes.len(), hex(shown));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: Map,
    lsn: u64,
}

fn seen(store: &KvStore) -> Seen {
    Seen {
        state: store.read(state_map).expect("read a freshly opened store"),
        lsn: store.last_lsn(),
    }
}

fn check(files: &Files) {
    let sim = SimFs::new(0);
    for (name, bytes) in files {
        sim.write_durable(&Path::new(DIR).join(name), bytes);
    }
    let vfs: VfsRef = sim.clone();
    let dir = Path::new(DIR);
    let mismatch = state_type_mismatch(files);

    let verified = verify::verify(sim.as_ref(), dir);
    let read_only = KvStore::open_read_only(dir, options(&vfs));
    let writer = KvStore::open(dir, options(&vfs));
    let summary = format!(
        "files:\n{}verify: {:?}\nread-only open: {:?}\nopen: {:?}",
        describe(files),
        verified.as_ref().map(|r| (r.verdict, &r.problems)),
        read_only.as_ref().map(seen),
        writer.as_ref().map(seen),
    );
    let context = || summary.as_str();
    if env_flag("DUMP") {
        eprintln!("{summary}");
    }

    match &verified {
        Err(Error::NotAStore { .. }) => {
            assert!(
                matches!(writer, Err(Error::NotAStore { .. }))
                    && matches!(read_only, Err(Error::NotAStore { .. })),
                "verify says not a store, open disagrees\n{}",
                context()
            );
            return;
        }
        Err(_) => {
            // A version or I/O error: open must not accept what verify could not read.
            assert!(
                mismatch || (writer.is_err() && read_only.is_err()),
                "verify failed, open succeeded\n{}",
                context()
            );
            return;
        }
        Ok(report) if report.verdict == Verdict::NeedsRepair => {
            assert!(
                mismatch || (writer.is_err() && read_only.is_err()),
                "verify says NeedsRepair, open succeeded\n{}",
                context()
            );
            return;
        }
        // Damage neither open nor salvage fixes (a LOCK that is a directory, no usable
        // state base, a damaged snapshot): open may refuse it with its own error.
        Ok(report)
            if report.verdict == Verdict::NeedsAttention
                && (writer.is_err() || read_only.is_err()) =>
        {
            for result in [&writer, &read_only] {
                if let Err(err) = result {
                    // An I/O error (a directory under a store file name) is no verdict.
                    let io = matches!(err, Error::Io { .. } | Error::PermissionDenied { .. });
                    assert!(
                        io || matches!(err, Error::LockNotAFile { .. } | Error::NoStateBase { .. })
                            || mismatch
                            || replay_mismatch(err),
                        "verify says NeedsAttention, open failed with {err}\n{}",
                        context()
                    );
                }
            }
            return;
        }
        Ok(_) => {
            for (what, result) in [("open", &writer), ("read-only open", &read_only)] {
                if let Err(err) = result {
                    // An I/O error (e.g. a directory under a store file name) is not a
                    // verdict; anything else is.
                    let io = matches!(err, Error::Io { .. } | Error::PermissionDenied { .. });
                    assert!(
                        io || mismatch || replay_mismatch(err),
                        "verify says the store opens, {what} failed: {err}\n{}",
                        context()
                    );
                }
            }
        }
    }
    let (Ok(read_only), Ok(writer)) = (read_only, writer) else {
        return;
    };
    let first = seen(&writer);
    assert_eq!(
        seen(&read_only),
        first,
        "read-only and writer open recovered different states\n{}",
        context()
    );
    if let Ok(report) = &verified
        && let Some(recovery) = &report.recovery
        && !mismatch
    {
        assert_eq!(
            recovery.last_lsn,
            first.lsn,
            "verify and open recovered different last LSNs\n{}",
            context()
        );
    }
    // "Clean" means open has nothing to repair.
    let repaired = writer.recovery_report();
    if let Ok(report) = &verified
        && report.verdict == Verdict::Clean
        && !mismatch
    {
        let store_temp_removed = repaired
            .temp_files_removed
            .iter()
            .any(|path| path.parent() == Some(dir));
        assert!(
            repaired.torn_tail.is_none()
                && repaired.checkpoints_skipped.is_empty()
                && !store_temp_removed,
            "verify says Clean, open repaired: {repaired:?}\n{}",
            context()
        );
    }
    drop(read_only);
    drop(writer);

    // Recovery is idempotent: a second open changes nothing and finds nothing to repair.
    let again = KvStore::open(dir, options(&vfs))
        .unwrap_or_else(|err| panic!("second open failed: {err}\n{}", context()));
    assert_eq!(seen(&again), first, "second open differs\n{}", context());
    let report = again.recovery_report();
    assert!(
        report.torn_tail.is_none() && report.temp_files_removed.is_empty(),
        "second open repaired again: {report:?}\n{}",
        context()
    );
    let after = verify::verify(sim.as_ref(), dir)
        .unwrap_or_else(|err| panic!("verify after open failed: {err}\n{}", context()));
    assert_ne!(
        after.verdict,
        Verdict::NeedsRepair,
        "verify after a successful open says NeedsRepair: {:?}\n{}",
        after.problems,
        context()
    );

    // The store keeps working: a put survives a power loss.
    let probe_key = b"\x01probe".to_vec();
    match again.put(probe_key.clone(), b"p") {
        Ok(_) => {}
        // LSNs end at 2^62 (`format::LSN_MAX`): a store that far along refuses appends.
        // Segment numbers end at 2^62 too: rotating past the last one is refused.
        Err(Error::InvalidArgument(msg)) if msg.contains("segment numbers") => return,
        Err(Error::InvalidArgument(msg))
            if msg.contains("LSN space") && first.lsn >= LSN_END - 1 =>
        {
            return;
        }
        Err(err) => panic!("put after open failed: {err}\n{}", context()),
    }
    drop(again);
    sim.crash(CrashMode::DropUnsynced);
    let reopened = KvStore::open(dir, options(&vfs)).unwrap_or_else(|err| {
        panic!(
            "open after put + power loss failed: {err}\n{}\nfiles now: {:?}",
            context(),
            sim.list_files()
        )
    });
    let mut expected = first.clone();
    expected.state.insert(probe_key, b"p".to_vec());
    expected.lsn += 1;
    assert_eq!(
        seen(&reopened),
        expected,
        "put after open lost or state changed by a power loss\n{}",
        context()
    );
}
