//! `WRITER-STATS`: the journal counters of the last writer that recorded them (after a
//! checkpoint, and at close), so `walstate stats` can show an operator the fdatasync
//! latencies and group sizes a service saw. Informational: open, verify and repair
//! never read it, and a missing, damaged or foreign one changes nothing.
//!
//! A small text file, one `name value...` line each, led by its own version line:
//!
//! ```text
//! walstate writer-stats 1
//! store_id 39a569ebb872fc9b
//! pid 4242
//! written_unix_ms 1764806400000
//! records 120
//! bytes 15360
//! syncs 31
//! batches 31
//! fsync_micros 0 0 0 0 0 0 0 12 19 0 ...   (HISTOGRAM_BUCKETS counts)
//! records_per_group 20 6 5 0 0 ...        (HISTOGRAM_BUCKETS counts)
//! ```

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::checkpoint;
use crate::format::StoreId;
use crate::io::Vfs;
use crate::journal::{HISTOGRAM_BUCKETS, Histogram, JournalStats};

/// Name of the file in the store directory.
pub const WRITER_STATS_FILE_NAME: &str = "WRITER-STATS";

const VERSION_LINE: &str = "walstate writer-stats 1";

/// What a writer recorded: whose numbers, when, and its journal counters since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// The store the writer wrote (a file naming another store is not shown).
    pub store_id: StoreId,
    /// The writer's process id.
    pub pid: u32,
    /// When the file was written, in milliseconds since the Unix epoch.
    pub written_unix_ms: u64,
    /// The writer's counters since its open.
    pub journal: JournalStats,
}

impl WriterStats {
    /// The file's text.
    pub fn encode(&self) -> String {
        let buckets = |h: &Histogram| {
            h.buckets()
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let j = &self.journal;
        format!(
            "{VERSION_LINE}\nstore_id {}\npid {}\nwritten_unix_ms {}\nrecords {}\nbytes {}\n\
             syncs {}\nbatches {}\nfsync_micros {}\nrecords_per_group {}\n",
            self.store_id,
            self.pid,
            self.written_unix_ms,
            j.records,
            j.bytes,
            j.syncs,
            j.batches,
            buckets(&j.fsync_micros),
            buckets(&j.records_per_group),
        )
    }

    /// Parses the file's text; the error says what is wrong with it.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn decode(text: &str) -> Result<WriterStats, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(VERSION_LINE) => {}
            Some(other) => return Err(format!("first line is {other:?}, not {VERSION_LINE:?}")),
            None => return Err("the file is empty".into()),
        }
        let mut fields = std::collections::BTreeMap::new();
        for line in lines {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            fields.insert(name, value);
        }
        let field = |name: &str| fields.get(name).copied().ok_or(format!("no {name} line"));
        let number = |name: &str| {
            field(name)?
                .parse::<u64>()
                .map_err(|_| format!("{name} is not a number"))
        };
        let histogram = |name: &str| -> Result<Histogram, String> {
            let counts = field(name)?
                .split(' ')
                .map(str::parse::<u64>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("{name} holds something other than counts"))?;
            let buckets: [u64; HISTOGRAM_BUCKETS] =
                counts.try_into().map_err(|counts: Vec<_>| {
                    format!(
                        "{name} has {} counts, not {HISTOGRAM_BUCKETS}",
                        counts.len()
                    )
                })?;
            Ok(Histogram::from_buckets(buckets))
        };
        let store_id = u64::from_str_radix(field("store_id")?, 16)
            .ok()
            .and_then(StoreId::new)
            .ok_or("store_id is not a store id")?;
        Ok(WriterStats {
            store_id,
            pid: u32::try_from(number("pid")?).map_err(|_| "pid is out of range")?,
            written_unix_ms: number("written_unix_ms")?,
            journal: JournalStats {
                records: number("records")?,
                bytes: number("bytes")?,
                syncs: number("syncs")?,
                batches: number("batches")?,
                fsync_micros: histogram("fsync_micros")?,
                records_per_group: histogram("records_per_group")?,
            },
        })
    }
}

/// What `dir/WRITER-STATS` holds: `None` when there is none, the reason when it cannot
/// be read or names another store.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn read(
    vfs: &dyn Vfs,
    dir: &Path,
    store_id: Option<StoreId>,
) -> Option<Result<WriterStats, String>> {
    let path = dir.join(WRITER_STATS_FILE_NAME);
    let bytes = match vfs.read_file(&path, false) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => return Some(Err(format!("cannot be read: {err}"))),
    };
    let decoded = std::str::from_utf8(&bytes)
        .map_err(|_| "is not text".to_string())
        .and_then(WriterStats::decode);
    Some(decoded.and_then(|stats| match store_id {
        Some(id) if id != stats.store_id => Err(format!(
            "names store {}, not this store ({id}): copied from elsewhere",
            stats.store_id
        )),
        _ => Ok(stats),
    }))
}

/// Replaces `dir/WRITER-STATS` with this process's counters (atomically). Best effort:
/// the numbers are informational, so a failure is a `tracing` warning, never the
/// caller's error.
pub(super) fn record(vfs: &dyn Vfs, dir: &Path, store_id: StoreId, journal: JournalStats) {
    let stats = WriterStats {
        store_id,
        pid: std::process::id(),
        written_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        journal,
    };
    if let Err(failure) =
        checkpoint::write_atomically(vfs, dir, WRITER_STATS_FILE_NAME, stats.encode().as_bytes())
    {
        tracing::warn!(
            target: "walstate",
            dir = %dir.display(),
            error = %failure.error,
            "writer stats not recorded"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WriterStats {
        let mut fsync_micros = Histogram::default();
        for micros in [90, 130, 140, 5_000] {
            fsync_micros.record(micros);
        }
        let mut records_per_group = Histogram::default();
        records_per_group.record(1);
        records_per_group.record(16);
        WriterStats {
            store_id: StoreId::new(0x39a5_69eb_b872_fc9b).unwrap(),
            pid: 4242,
            written_unix_ms: 1_764_806_400_000,
            journal: JournalStats {
                records: 17,
                bytes: 2048,
                syncs: 4,
                batches: 2,
                fsync_micros,
                records_per_group,
            },
        }
    }

    #[test]
    fn round_trips() {
        let text = sample().encode();
        assert!(text.starts_with("walstate writer-stats 1\nstore_id 39a569ebb872fc9b\n"));
        assert_eq!(WriterStats::decode(&text), Ok(sample()));
    }

    #[test]
    fn refuses_another_version_a_missing_line_and_a_short_histogram() {
        let text = sample().encode();
        let other_version = text.replacen("writer-stats 1", "writer-stats 2", 1);
        assert!(
            WriterStats::decode(&other_version)
                .unwrap_err()
                .contains("first line")
        );
        let no_pid: String = text
            .lines()
            .filter(|l| !l.starts_with("pid "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(WriterStats::decode(&no_pid), Err("no pid line".into()));
        let short = text.replacen("records_per_group 1 0", "records_per_group 1", 1);
        assert!(
            WriterStats::decode(&short)
                .unwrap_err()
                .contains("39 counts, not 40")
        );
        assert!(WriterStats::decode("").is_err());
    }
}
