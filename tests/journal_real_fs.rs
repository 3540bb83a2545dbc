//! Journal behaviour on the real file system.

mod common;

use std::sync::Arc;

use common::{payload, read_all, reopen, small_options};
use walstate::io::{VfsRef, real_fs};
use walstate::journal::{DefectKind, JournalOptions, RecordToAppend, SyncPolicy};

fn fresh() -> (tempfile::TempDir, VfsRef) {
    (tempfile::tempdir().unwrap(), real_fs())
}

#[test]
fn appends_survive_reopen_with_consecutive_lsns_across_segments() {
    let (dir, vfs) = fresh();
    let (journal, outcome, records) = reopen(&vfs, dir.path(), small_options()).unwrap();
    assert!(records.is_empty() && outcome.defect.is_none());
    for n in 1..=300u64 {
        assert_eq!(journal.append(1, payload(n)).unwrap(), n);
    }
    journal.close().unwrap();
    drop(journal);
    let (outcome, records) = read_all(&vfs, dir.path());
    assert!(outcome.defect.is_none(), "{:?}", outcome.defect);
    assert!(outcome.segments.len() > 3, "rotation happened");
    assert_eq!(records.len(), 300);
    for (i, (lsn, kind, data)) in records.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
        assert_eq!(*kind, 1);
        assert_eq!(data, &payload(*lsn));
    }
    // Appending continues from the next LSN after reopen.
    let (journal, _, _) = reopen(&vfs, dir.path(), small_options()).unwrap();
    assert_eq!(journal.append(1, b"after".to_vec()).unwrap(), 301);
}

#[test]
fn atomic_group_gets_consecutive_lsns() {
    let (dir, vfs) = fresh();
    let (journal, _, _) = reopen(&vfs, dir.path(), small_options()).unwrap();
    journal.append(1, b"a".to_vec()).unwrap();
    let group: Vec<RecordToAppend> = (0..5)
        .map(|i| RecordToAppend {
            kind: 2,
            payload: vec![i; 10],
        })
        .collect();
    assert_eq!(journal.append_group(group).unwrap(), 2);
    assert_eq!(journal.append(1, b"b".to_vec()).unwrap(), 7);
    drop(journal);
    let (_, records) = read_all(&vfs, dir.path());
    let lsns: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (1..=7).collect::<Vec<_>>());
}

#[test]
fn group_commit_with_16_threads_shares_fdatasyncs() {
    let (dir, vfs) = fresh();
    let options = JournalOptions {
        sync_policy: SyncPolicy::Always,
        ..JournalOptions::default()
    };
    let (journal, _, _) = reopen(&vfs, dir.path(), options).unwrap();
    let journal = Arc::new(journal);
    let per_thread = 100u64;
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let body = format!("t{t}-{i}").into_bytes();
                        (journal.append(1, body.clone()).unwrap(), body)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acknowledged: Vec<(u64, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acknowledged.sort();
    let stats = journal.stats();
    drop(journal);
    let total = 16 * per_thread;
    assert_eq!(stats.records, total);
    assert!(
        stats.syncs < total / 2,
        "{} fdatasyncs for {total} records: group commit is not grouping",
        stats.syncs
    );
    let (outcome, records) = read_all(&vfs, dir.path());
    assert!(outcome.defect.is_none());
    let read: Vec<(u64, Vec<u8>)> = records.into_iter().map(|(l, _, p)| (l, p)).collect();
    assert_eq!(
        read, acknowledged,
        "every acknowledged record exactly once, in LSN order"
    );
}

#[test]
fn garbage_appended_to_the_tail_is_refused_as_damage_no_crash_leaves() {
    let (dir, vfs) = fresh();
    let (journal, _, _) = reopen(&vfs, dir.path(), small_options()).unwrap();
    for n in 1..=5 {
        journal.append(1, payload(n)).unwrap();
    }
    let paths = journal.segment_paths();
    drop(journal);
    let last = paths.last().unwrap();
    let clean_len = std::fs::metadata(last).unwrap().len();
    let clean = std::fs::read(last).unwrap();
    let mut bytes = clean.clone();
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(last, &bytes).unwrap();

    // A crash leaves lost sectors (zeros) or a short file, never non-zero garbage.
    let (outcome, _) = read_all(&vfs, dir.path());
    let defect = outcome.defect.expect("damage reported");
    assert_eq!(defect.kind, DefectKind::Corruption, "{}", defect.detail);
    assert_eq!(defect.offset, clean_len);
    assert_eq!(defect.expected_lsn, 6);
    assert!(defect.detail.contains("shape"), "{}", defect.detail);

    // The first 40 bytes of a real frame (its header whole, its payload cut by the end
    // of the file) are what a crash leaves: a torn tail, truncated and reported, with
    // the cut bytes copied to quarantine/.
    let mut frame = Vec::new();
    walstate::format::encode_record(&mut frame, 6, 1, 0, clean_len, &payload(6));
    let mut torn = clean;
    torn.extend_from_slice(&frame[..40]);
    std::fs::write(last, &torn).unwrap();
    let (journal, outcome, records) = reopen(&vfs, dir.path(), small_options()).unwrap();
    let defect = outcome.defect.expect("torn tail reported");
    assert_eq!(defect.kind, DefectKind::TornTail, "{}", defect.detail);
    assert_eq!(defect.offset, clean_len);
    assert_eq!(records.len(), 5);
    assert_eq!(
        std::fs::metadata(last).unwrap().len(),
        clean_len,
        "truncated"
    );
    let copy = dir.path().join("quarantine").join(format!(
        "{}.cut-{clean_len}",
        last.file_name().unwrap().to_string_lossy()
    ));
    assert_eq!(std::fs::read(copy).unwrap(), frame[..40].to_vec());
    assert_eq!(journal.append(1, b"x".to_vec()).unwrap(), 6);
}

#[test]
fn flipped_bit_far_from_the_end_is_corruption_naming_file_offset_and_lsn() {
    let (dir, vfs) = fresh();
    let options = JournalOptions {
        segment_size_bytes: 1 << 20,
        ..small_options()
    };
    let (journal, _, _) = reopen(&vfs, dir.path(), options.clone()).unwrap();
    let mut offsets = Vec::new();
    let mut offset = walstate::format::SEGMENT_HEADER_LEN as u64;
    for n in 1..=200 {
        offsets.push(offset);
        journal.append(1, payload(n)).unwrap();
        offset += (walstate::format::RECORD_HEADER_LEN + payload(n).len()) as u64;
    }
    let path = journal.segment_paths()[0].clone();
    drop(journal);
    let mut bytes = std::fs::read(&path).unwrap();
    let victim = 10usize; // LSN 11, thousands of bytes before the end (window is 4 KiB)
    bytes[offsets[victim] as usize + 25] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();

    let (outcome, records) = read_all(&vfs, dir.path());
    let defect = outcome.defect.clone().unwrap();
    assert_eq!(defect.kind, DefectKind::Corruption);
    assert_eq!(defect.offset, offsets[victim]);
    assert_eq!(defect.expected_lsn, 11);
    assert_eq!(
        records.len(),
        10,
        "the valid prefix is delivered, nothing after it"
    );
    let err = reopen(&vfs, dir.path(), options).unwrap_err();
    let message = err.to_string();
    assert!(err.is_corruption(), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("offset {}", offsets[victim])),
        "{message}"
    );
    assert!(message.contains("LSN 11"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "nothing was truncated"
    );
}

#[test]
fn preallocated_segments_read_back_cleanly() {
    let (dir, vfs) = fresh();
    let options = JournalOptions {
        preallocate: true,
        ..small_options()
    };
    let (journal, _, _) = reopen(&vfs, dir.path(), options.clone()).unwrap();
    for n in 1..=100 {
        journal.append(1, payload(n)).unwrap();
    }
    drop(journal);
    let (outcome, records) = read_all(&vfs, dir.path());
    assert!(outcome.defect.is_none(), "{:?}", outcome.defect);
    assert_eq!(records.len(), 100);
    let (journal, _, _) = reopen(&vfs, dir.path(), options).unwrap();
    assert_eq!(journal.append(1, b"z".to_vec()).unwrap(), 101);
}

#[test]
fn oversized_record_is_refused_before_anything_is_written() {
    let (dir, vfs) = fresh();
    let (journal, _, _) = reopen(&vfs, dir.path(), small_options()).unwrap();
    let err = journal.append(1, vec![0; 2000]).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(journal.append(1, b"ok".to_vec()).unwrap(), 1);
}

#[test]
fn deleting_covered_segments_keeps_a_contiguous_suffix() {
    let (dir, vfs) = fresh();
    let (journal, _, _) = reopen(&vfs, dir.path(), small_options()).unwrap();
    for n in 1..=300 {
        journal.append(1, payload(n)).unwrap();
    }
    let before = journal.segment_paths().len();
    let deleted = journal.delete_segments_through(150).unwrap();
    assert!(!deleted.is_empty());
    assert_eq!(journal.segment_paths().len(), before - deleted.len());
    drop(journal);
    let mut records = Vec::new();
    let outcome = walstate::journal::scan(
        vfs.as_ref(),
        dir.path(),
        walstate::journal::ScanOptions {
            from_lsn: 151,
            may_map: false,
        },
        |group, _| {
            records.extend(group.iter().map(|r| r.lsn));
            Ok(())
        },
    )
    .unwrap();
    assert!(outcome.defect.is_none(), "{:?}", outcome.defect);
    assert_eq!(records, (151..=300).collect::<Vec<_>>());
}
