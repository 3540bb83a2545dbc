//! Crash simulation of the adapter's raft log against a model.
//!
//! Each case drives a `LogStore` through openraft's own storage API (`blocking_append`,
//! whose flushed callback must mean durable, `truncate`, `purge`, `save_vote`,
//! `save_committed`) and walstate checkpoints of the log store, on the simulated file
//! system; crashes at a random I/O call; lets the simulated disk keep any allowed subset
//! or torn prefix of what was not synced; reopens; and checks:
//! - every acknowledged operation is there, and the recovered log is the model after the
//!   acknowledged operations, or after the one in flight too (never half of it);
//! - the recovered log is one openraft allows: consecutive entries above the last purged
//!   id, and a vote no older than the last acknowledged one;
//! - recovering never fails and never reports corruption for crash-only damage.
//!
//! `WALSTATE_RAFT_CRASH_CASES=N` sets the number of cases (default 200);
//! `WALSTATE_RAFT_CRASH_SEED=S` replays one (its seed is printed on failure).

mod common;

use std::collections::BTreeMap;

use common::{Log, Types};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};
use walstate::io::sim::CrashMode;
use walstate::io::{SimFs, VfsRef};
use walstate::{KvCommand, Options};

const DIR: &str = "/node/log";

/// splitmix64: a seed replays a case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What openraft would see of the log: entries by index (their log ids; the payload is
/// derived from the id), the last purged id, the vote and the committed id.
#[derive(Debug, Clone, PartialEq, Default)]
struct Model {
    entries: BTreeMap<u64, LogId<u64>>,
    purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.keys().next_back(), &self.purged) {
            (Some(last), _) => last + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 0,
        }
    }

    fn last_log_id(&self) -> Option<LogId<u64>> {
        self.entries.values().next_back().copied().or(self.purged)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<LogId<u64>>),
    Truncate(LogId<u64>),
    Purge(LogId<u64>),
    SaveVote(Vote<u64>),
    SaveCommitted(Option<LogId<u64>>),
    Checkpoint,
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// The entry of `id`: a put whose value size (up to 1.5 KiB) depends on the id, so
/// groups span segments.
fn entry(id: LogId<u64>) -> Entry<Types> {
    let size = ((id.index * 7919 + id.leader_id.term * 31) % 1500) as usize + 1;
    Entry {
        log_id: id,
        payload: EntryPayload::Normal(KvCommand::put(
            format!("k{}", id.index).into_bytes(),
            vec![b'a' + (id.index % 26) as u8; size],
        )),
    }
}

/// A random operation openraft could issue on `model`, and `model` after it.
fn random_op(rng: &mut Rng, model: &Model, term: &mut u64) -> (Op, Model) {
    let mut after = model.clone();
    let op = match rng.below(12) {
        0..=5 => {
            if rng.below(4) == 0 {
                *term += 1;
            }
            let start = after.next_index();
            let ids: Vec<_> = (start..start + 1 + rng.below(6))
                .map(|i| log_id(*term, i))
                .collect();
            for id in &ids {
                after.entries.insert(id.index, *id);
            }
            Op::Append(ids)
        }
        6 if !model.entries.is_empty() => {
            let first = *model.entries.keys().next().unwrap();
            let last = *model.entries.keys().next_back().unwrap();
            let since = first + rng.below(last - first + 2);
            after.entries.retain(|&index, _| index < since);
            Op::Truncate(log_id(*term, since))
        }
        7 if model.last_log_id().is_some() => {
            let last = model.last_log_id().unwrap();
            let from = model.purged.map_or(0, |p| p.index);
            let index = from + rng.below(last.index - from + 1);
            let id = model.entries.get(&index).copied().unwrap_or(last);
            after.entries.retain(|&i, _| i > id.index);
            after.purged = Some(id);
            Op::Purge(id)
        }
        8 => {
            *term += rng.below(2);
            let vote = Vote::new(*term, rng.below(3));
            after.vote = Some(vote);
            Op::SaveVote(vote)
        }
        9 => {
            let committed = model.entries.values().next_back().copied();
            after.committed = committed;
            Op::SaveCommitted(committed)
        }
        _ => Op::Checkpoint,
    };
    (op, after)
}

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None)
        .checkpoints_retained(2)
}

async fn run(log: &mut Log, op: &Op) -> Result<(), String> {
    let result = match op {
        Op::Append(ids) => log.blocking_append(ids.iter().copied().map(entry)).await,
        Op::Truncate(id) => log.truncate(*id).await,
        Op::Purge(id) => log.purge(*id).await,
        Op::SaveVote(vote) => log.save_vote(vote).await,
        Op::SaveCommitted(id) => log.save_committed(*id).await,
        Op::Checkpoint => {
            return log
                .walstate()
                .checkpoint()
                .map(drop)
                .map_err(|e| e.to_string());
        }
    };
    result.map_err(|e| e.to_string())
}

/// What the log store holds, read through openraft's API, checked to be a log openraft
/// allows.
async fn recovered(log: &mut Log, context: &str) -> Model {
    let state = log.get_log_state().await.expect("log state");
    let entries = log.try_get_log_entries(..).await.expect("entries");
    let mut model = Model {
        purged: state.last_purged_log_id,
        vote: log.read_vote().await.expect("vote"),
        committed: log.read_committed().await.expect("committed"),
        ..Model::default()
    };
    for (n, got) in entries.iter().enumerate() {
        assert_eq!(
            got.payload,
            entry(got.log_id).payload,
            "{context}: entry payload"
        );
        if let Some(purged) = model.purged {
            assert!(
                got.log_id.index > purged.index,
                "{context}: entry at or below the purge"
            );
        }
        if n > 0 {
            assert_eq!(
                got.log_id.index,
                entries[n - 1].log_id.index + 1,
                "{context}: a hole"
            );
        }
        model.entries.insert(got.log_id.index, got.log_id);
    }
    assert_eq!(
        state.last_log_id,
        model.last_log_id(),
        "{context}: last log id"
    );
    model
}

/// One randomized case: three rounds of work, crash, recovery. Returns the crash states
/// checked.
fn run_case(seed: u64) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut rng = Rng(seed);
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    let mut model = Model::default();
    let mut term = 1;
    let mut states = 0;
    for round in 0..3 {
        let crash_point = sim.mutating_calls() + rng.below(150);
        sim.crash_at_mutating_call(Some(crash_point));
        let mut acked = model.clone();
        let mut in_flight = None;
        if let Ok(mut log) = Log::open(DIR, options(&vfs)) {
            for _ in 0..5 + rng.below(25) {
                let (op, after) = random_op(&mut rng, &acked, &mut term);
                match runtime.block_on(run(&mut log, &op)) {
                    Ok(()) => acked = after,
                    Err(_) => {
                        in_flight = Some(after);
                        break;
                    }
                }
            }
        }
        let mode = match rng.below(4) {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::KeepAll,
            _ => CrashMode::Random(rng.next()),
        };
        sim.crash(mode.clone());
        states += 1;
        let context = format!("seed {seed} round {round} crash at call {crash_point} {mode:?}");

        let mut log = Log::open(DIR, options(&vfs))
            .unwrap_or_else(|err| panic!("{context}: reopen failed: {err}"));
        let report = log.walstate().recovery_report();
        assert!(
            report.salvaged.is_empty(),
            "{context}: crash damage salvaged as corruption"
        );
        let got = runtime.block_on(recovered(&mut log, &context));
        if got == acked {
            model = acked;
        } else if in_flight.as_ref() == Some(&got) {
            model = got;
        } else {
            panic!(
                "{context}: the recovered log is not the model after the acknowledged \
                 operations (or the one in flight)\nrecovered: {got:?}\nacknowledged: {acked:?}\n\
                 in flight: {in_flight:?}"
            );
        }
        drop(log);
    }
    states
}

#[test]
fn crashes_between_and_during_appends_truncates_and_purges_recover_to_an_allowed_log() {
    if let Ok(seed) = std::env::var("WALSTATE_RAFT_CRASH_SEED") {
        run_case(
            seed.parse()
                .expect("WALSTATE_RAFT_CRASH_SEED must be a number"),
        );
        return;
    }
    let cases: u64 = std::env::var("WALSTATE_RAFT_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut states = 0;
    for case in 0..cases {
        let seed = 0x5eed_0000 + case;
        let result = std::panic::catch_unwind(|| run_case(seed));
        match result {
            Ok(n) => states += n,
            Err(panic) => {
                eprintln!("failing seed: WALSTATE_RAFT_CRASH_SEED={seed}");
                std::panic::resume_unwind(panic);
            }
        }
    }
    assert!(states as u64 >= cases * 3, "every case crashed three times");
}

/// The flushed callback means durable: after `blocking_append` returns, a crash that
/// drops everything unsynced keeps the entries (and a saved vote).
#[test]
fn an_acknowledged_append_and_vote_survive_losing_everything_unsynced() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sim = SimFs::new(3);
    let vfs: VfsRef = sim.clone();
    let mut log = Log::open(DIR, options(&vfs)).unwrap();
    runtime.block_on(async {
        log.blocking_append((0..40).map(|i| entry(log_id(1, i))))
            .await
            .unwrap();
        log.save_vote(&Vote::new(2, 1)).await.unwrap();
    });
    drop(log);
    sim.crash(CrashMode::DropUnsynced);
    let mut log = Log::open(DIR, options(&vfs)).unwrap();
    let got = runtime.block_on(recovered(&mut log, "drop unsynced"));
    assert_eq!(got.entries.len(), 40);
    assert_eq!(got.vote, Some(Vote::new(2, 1)));
}
