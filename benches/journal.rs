//! Journal benchmarks, each next to a raw baseline on the same file system so the ratio to
//! the disk's limit is visible:
//! - append with `Always` at 1, 4 and 16 threads vs. a raw `write` + `fdatasync` loop;
//! - append with `Never` vs. a raw `write` loop;
//! - scan throughput vs. reading the same segment files.
//!
//! Run: `cargo bench --bench journal`. Set `WALSTATE_BENCH_DIR` to benchmark on another
//! file system (the default is the system temp directory).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use walstate::io::{VfsRef, real_fs};
use walstate::journal::{self, Journal, JournalOptions, ScanOptions, SyncPolicy};

const PAYLOAD_BYTES: usize = 116; // 16-byte key + 100-byte value, as in the peer comparison

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WALSTATE_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(PathBuf::from(base)).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn open_journal(dir: &std::path::Path, policy: SyncPolicy) -> Journal {
    let vfs: VfsRef = real_fs();
    let options = JournalOptions {
        sync_policy: policy,
        ..JournalOptions::default()
    };
    let outcome = journal::scan(
        vfs.as_ref(),
        dir,
        ScanOptions {
            from_lsn: 1,
            may_map: true,
        },
        |_, _| Ok(()),
    )
    .expect("scan");
    Journal::resume(vfs, dir, options, &outcome).expect("resume")
}

/// Runs `total` appends spread over `threads` threads and returns the elapsed time.
fn timed_appends(journal: &Arc<Journal>, threads: u64, total: u64) -> Duration {
    let per_thread = total.div_ceil(threads);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let journal = Arc::clone(journal);
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    journal
                        .append(1, vec![0x5A; PAYLOAD_BYTES])
                        .expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    start.elapsed() * (total as u32) / (per_thread * threads) as u32
}

fn raw_loop(total: u64, sync: bool) -> Duration {
    let dir = bench_dir();
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path().join("raw"))
        .expect("raw");
    let record = vec![0x5A; PAYLOAD_BYTES + walstate::format::RECORD_HEADER_LEN];
    let start = Instant::now();
    for i in 0..total {
        file.write_all_at(&record, i * record.len() as u64)
            .expect("write");
        if sync {
            file.sync_data().expect("fdatasync");
        }
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_write_fdatasync_1_thread", |b| {
        b.iter_custom(|iters| raw_loop(iters, true))
    });
    for threads in [1u64, 4, 16] {
        group.bench_function(format!("always_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let dir = bench_dir();
                let journal = Arc::new(open_journal(dir.path(), SyncPolicy::Always));
                timed_appends(&journal, threads, iters.max(threads))
            })
        });
    }
    group.bench_function("raw_write_no_sync", |b| {
        b.iter_custom(|iters| raw_loop(iters, false))
    });
    group.bench_function("never_1_thread", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let journal = Arc::new(open_journal(dir.path(), SyncPolicy::Never));
            timed_appends(&journal, 1, iters)
        })
    });
    group.finish();
}

fn scan(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let dir = bench_dir();
    {
        let journal = open_journal(dir.path(), SyncPolicy::Never);
        for _ in 0..RECORDS {
            journal
                .append(1, vec![0x5A; PAYLOAD_BYTES])
                .expect("append");
        }
        journal.close().expect("close");
    }
    let bytes: u64 = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    let mut group = c.benchmark_group("journal_scan");
    group.sample_size(10).throughput(Throughput::Bytes(bytes));
    let vfs = real_fs();
    group.bench_function("scan_200k_records", |b| {
        b.iter(|| {
            let mut count = 0u64;
            journal::scan(
                vfs.as_ref(),
                dir.path(),
                ScanOptions {
                    from_lsn: 1,
                    may_map: true,
                },
                |group, _| {
                    count += group.len() as u64;
                    Ok(())
                },
            )
            .expect("scan");
            assert_eq!(count, RECORDS);
        })
    });
    group.bench_function("raw_read_same_files", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for entry in std::fs::read_dir(dir.path()).expect("dir") {
                total += std::fs::read(entry.expect("entry").path())
                    .expect("read")
                    .len();
            }
            assert_eq!(total as u64, bytes);
        })
    });
    group.finish();
}

criterion_group!(benches, append, scan);
criterion_main!(benches);
