//! Deterministic crash simulation of the whole store against a model.
//!
//! Every case drives the real `KvStore` on the simulated file system through a random
//! workload (single commits, batches, checkpoints, rotation, snapshots and restores),
//! crashes at a random I/O call, lets the simulated disk keep any allowed subset or torn
//! prefix of the unsynced writes, reopens, and checks the invariants of
//! `shared/fault-model.md`:
//! - I1 every acknowledged command is present;
//! - I2 the recovered state is the model after some prefix of the submitted commands that
//!   contains every acknowledged one (a batch is one step: all or nothing);
//! - I3 open never panics; I4 crash-only damage is never reported as corruption;
//! - I5 crashing during recovery and recovering again gives the same state.
//!
//! `WALSTATE_CRASH_STATES=N` sets how many crash states to check (default 10,000);
//! `WALSTATE_CRASH_SEED=S` replays one failing case (its seed is printed on failure).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Rng, kv_model};

use walstate::io::sim::{CrashMode, FAULT_CLASSES, Fault};
use walstate::io::{SimFs, VfsRef};
use walstate::{KvCommand, KvStore, Options};

const DIR: &str = "/data/store";

type Model = kv_model::Map;

/// One step of a workload, as the model sees it.
#[derive(Debug, Clone)]
enum Step {
    Commands(Vec<KvCommand>),
    Checkpoint,
    Snapshot(String),
    Restore(String),
}

fn random_command(rng: &mut Rng) -> KvCommand {
    let key = format!("k{}", rng.below(12)).into_bytes();
    let value = vec![b'a' + rng.below(26) as u8; rng.below(300) as usize + 1];
    match rng.below(10) {
        0..=5 => KvCommand::Put { key, value },
        6 => KvCommand::Delete { key },
        7 => KvCommand::DeletePrefix {
            prefix: format!("k{}", rng.below(3)).into_bytes(),
        },
        _ => {
            let expected = if rng.below(2) == 0 {
                None
            } else {
                Some(value.clone())
            };
            KvCommand::CompareAndSet {
                key,
                expected,
                new: Some(value),
            }
        }
    }
}

fn random_workload(rng: &mut Rng) -> Vec<Step> {
    let len = 5 + rng.below(30);
    let mut steps = Vec::new();
    let mut snapshots: Vec<String> = Vec::new();
    for i in 0..len {
        let step = match rng.below(20) {
            0 => Step::Checkpoint,
            1 => {
                let name = format!("s{i}");
                snapshots.push(name.clone());
                Step::Snapshot(name)
            }
            2 if !snapshots.is_empty() => {
                Step::Restore(snapshots[rng.below(snapshots.len() as u64) as usize].clone())
            }
            3..=5 => Step::Commands((0..2 + rng.below(5)).map(|_| random_command(rng)).collect()),
            _ => Step::Commands(vec![random_command(rng)]),
        };
        steps.push(step);
    }
    steps
}

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None)
        .checkpoints_retained(2)
}

/// The model states the store may legally be in after running `steps` where the first
/// `acked` steps were acknowledged: the state after `acked` steps, or after `acked + 1`
/// when the step in flight may have become durable.
struct Expectation {
    after_acked: Model,
    after_in_flight: Option<Model>,
}

/// Runs `steps` on `store`, stopping at the first error. Returns the expectation.
fn run_steps(
    store: &KvStore,
    steps: &[Step],
    model: &mut Model,
    snapshots: &mut BTreeMap<String, Model>,
) -> Expectation {
    for step in steps {
        let before = model.clone();
        let mut after = model.clone();
        let result = match step {
            Step::Commands(commands) => {
                // A rejected compare-and-set is an output, not a failure: the model's
                // output is not checked here (tests/kv_model.rs does), only its state.
                for command in commands {
                    let _ = kv_model::apply(&mut after, command);
                }
                if commands.len() == 1 {
                    store.apply(commands[0].clone()).map(|_| ())
                } else {
                    store.apply_batch(commands.clone()).map(|_| ())
                }
            }
            Step::Checkpoint => store.checkpoint().map(|_| ()),
            Step::Snapshot(name) => store.snapshot(name).map(|_| {
                snapshots.insert(name.clone(), before.clone());
            }),
            Step::Restore(name) => match snapshots.get(name) {
                Some(saved) => {
                    after = saved.clone();
                    store.restore_snapshot(name).map(|_| ())
                }
                None => continue,
            },
        };
        match result {
            Ok(()) => *model = after,
            Err(_) => {
                return Expectation {
                    after_acked: before,
                    after_in_flight: Some(after),
                };
            }
        }
    }
    Expectation {
        after_acked: model.clone(),
        after_in_flight: None,
    }
}

fn contents(store: &KvStore) -> Model {
    store.read(kv_model::state_map).expect("read")
}

/// One randomized case; returns how many crash states it checked.
fn run_case(seed: u64) -> usize {
    let mut rng = Rng(seed);
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    let mut model = Model::new();
    let mut snapshots = BTreeMap::new();
    let mut states = 0;
    for round in 0..3 {
        let steps = random_workload(&mut rng);
        // Count calls of this round by dry-running nothing: pick a crash point at random
        // within a generous bound; a point past the end means no crash this round.
        let crash_point = sim.mutating_calls() + rng.below(200);
        sim.crash_at_mutating_call(Some(crash_point));
        let expectation = match KvStore::open(DIR, options(&vfs)) {
            Ok(store) => run_steps(&store, &steps, &mut model, &mut snapshots),
            Err(_) => Expectation {
                after_acked: model.clone(),
                after_in_flight: None,
            },
        };
        let mode = match rng.below(4) {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::KeepAll,
            _ => CrashMode::Random(rng.next()),
        };
        sim.crash(mode.clone());
        states += 1;
        let context = format!("seed {seed} round {round} crash at call {crash_point} {mode:?}");

        // What one clean recovery of this image gives (read-only: changes nothing).
        let clean = KvStore::open_read_only(DIR, options(&vfs).create_if_missing(false))
            .map(|store| contents(&store))
            .ok();
        // I5: crash during recovery itself, then recover again.
        if rng.below(3) == 0 {
            sim.crash_at_mutating_call(Some(sim.mutating_calls() + rng.below(6)));
            let _ = KvStore::open(DIR, options(&vfs));
            sim.crash(CrashMode::Random(rng.next()));
            states += 1;
        }

        let store = KvStore::open(DIR, options(&vfs))
            .unwrap_or_else(|err| panic!("{context}: reopen failed (I3/I4): {err}"));
        let recovered = contents(&store);
        if let Some(clean) = &clean {
            assert_eq!(
                &recovered, clean,
                "{context}: recovery after a crash during recovery differs from one clean recovery (I5)"
            );
        }
        if recovered == expectation.after_acked {
            model = expectation.after_acked;
        } else if expectation.after_in_flight.as_ref() == Some(&recovered) {
            model = recovered.clone();
        } else {
            panic!(
                "{context}: recovered state is not the model after a prefix (I1/I2)\nrecovered: {}\nexpected:  {}",
                show(&recovered),
                show(&expectation.after_acked)
            );
        }
        // Snapshots whose creation was not acknowledged may or may not exist: forget
        // the ones the store does not list.
        let listed: Vec<String> = store
            .list_snapshots()
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect();
        snapshots.retain(|name, _| listed.contains(name));
        drop(store);
    }
    states
}

fn show(model: &Model) -> String {
    model
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}x{}",
                String::from_utf8_lossy(k),
                v.first().map_or('-', |&b| b as char),
                v.len()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn random_crash_states_recover_to_a_model_prefix() {
    if let Ok(seed) = std::env::var("WALSTATE_CRASH_SEED") {
        let seed: u64 = seed.parse().expect("WALSTATE_CRASH_SEED must be a number");
        run_case(seed);
        return;
    }
    let target: usize = std::env::var("WALSTATE_CRASH_STATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let threads = 2u64;
    let checked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let checked = Arc::clone(&checked);
            std::thread::spawn(move || {
                let mut seed = t;
                while checked.load(std::sync::atomic::Ordering::Relaxed) < target {
                    let result = std::panic::catch_unwind(|| run_case(seed));
                    match result {
                        Ok(states) => {
                            checked.fetch_add(states, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(panic) => {
                            eprintln!("crash case failed; replay with WALSTATE_CRASH_SEED={seed}");
                            std::panic::resume_unwind(panic);
                        }
                    }
                    seed += threads;
                }
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .expect("a crash case failed (its seed is printed above)");
    }
    assert!(checked.load(std::sync::atomic::Ordering::Relaxed) >= target);
}

/// Exhaustive small workload: a crash after every mutating call and, at each, every
/// combination of kept and dropped unsynced units (plus each unit zero-filled alone).
#[test]
fn exhaustive_crash_states_of_a_small_workload() {
    let steps = vec![
        Step::Commands(vec![KvCommand::put("a", "1")]),
        Step::Commands(vec![
            KvCommand::put("b", vec![b'x'; 700]),
            KvCommand::put("c", "3"),
        ]),
        Step::Snapshot("snap".into()),
        Step::Checkpoint,
        Step::Commands(vec![KvCommand::put("a", vec![b'y'; 3000])]),
        Step::Commands(vec![KvCommand::put("d", vec![b'z'; 1500])]),
        Step::Restore("snap".into()),
        Step::Commands(vec![KvCommand::delete("b")]),
    ];
    let small = |vfs: &VfsRef| {
        options(vfs)
            .segment_size_bytes(4096)
            .unsynced_bytes_max(4096)
            .record_payload_max(3500)
    };
    let mut point = 0u64;
    let mut combinations = 0usize;
    loop {
        let sim = SimFs::new(point);
        let vfs: VfsRef = sim.clone();
        sim.crash_at_mutating_call(Some(point));
        let mut model = Model::new();
        let mut snapshots = BTreeMap::new();
        let expectation = match KvStore::open(DIR, small(&vfs)) {
            Ok(store) => run_steps(&store, &steps, &mut model, &mut snapshots),
            Err(_) => Expectation {
                after_acked: Model::new(),
                after_in_flight: None,
            },
        };
        let finished = !sim.is_dead();
        let units = sim.pending_units();
        let mut fate_sets: Vec<Vec<walstate::io::sim::UnitFate>> = Vec::new();
        use walstate::io::sim::UnitFate::{Drop, Keep, Zero};
        if units <= 12 {
            for mask in 0..(1u32 << units) {
                fate_sets.push(
                    (0..units)
                        .map(|i| if mask >> i & 1 == 1 { Keep } else { Drop })
                        .collect(),
                );
            }
        } else {
            // Too many for all subsets: every prefix kept (in-order persistence) and
            // every single unit dropped (one lost page among kept ones).
            for keep in 0..=units {
                fate_sets.push(
                    (0..units)
                        .map(|i| if i < keep { Keep } else { Drop })
                        .collect(),
                );
            }
            for lost in 0..units {
                fate_sets.push(
                    (0..units)
                        .map(|i| if i == lost { Drop } else { Keep })
                        .collect(),
                );
            }
        }
        for zero in 0..units {
            fate_sets.push(
                (0..units)
                    .map(|i| if i == zero { Zero } else { Keep })
                    .collect(),
            );
        }
        // Each fate set needs the same pre-crash image: rebuild it each time.
        for fates in fate_sets {
            let sim = SimFs::new(point);
            let vfs: VfsRef = sim.clone();
            sim.crash_at_mutating_call(Some(point));
            let mut scratch_model = Model::new();
            let mut scratch_snapshots = BTreeMap::new();
            if let Ok(store) = KvStore::open(DIR, small(&vfs)) {
                run_steps(&store, &steps, &mut scratch_model, &mut scratch_snapshots);
            }
            assert_eq!(sim.pending_units(), units, "the workload is deterministic");
            sim.crash(CrashMode::Fates(fates.clone()));
            combinations += 1;
            let context = format!("crash at call {point} with fates {fates:?}");
            let store = KvStore::open(DIR, small(&vfs))
                .unwrap_or_else(|err| panic!("{context}: reopen failed: {err}"));
            let recovered = contents(&store);
            assert!(
                recovered == expectation.after_acked
                    || expectation.after_in_flight.as_ref() == Some(&recovered),
                "{context}: recovered {} but acknowledged {}",
                show(&recovered),
                show(&expectation.after_acked)
            );
        }
        if finished {
            break;
        }
        point += 1;
        assert!(point < 2000, "workload did not finish");
    }
    assert!(
        combinations > 1000,
        "only {combinations} crash states were checked"
    );
}

/// SQLite-style error loop: fail the Nth call of each class, once and persistently,
/// until the workload completes without the fault firing. Each time: the caller gets an
/// error, the in-memory state equals what a reopen finds on disk, nothing is
/// acknowledged after an fsync error, and over the whole loop every I/O call site of the
/// workload is hit.
#[test]
fn error_loop_fails_every_io_call_once_and_persistently() {
    let steps = vec![
        Step::Commands(vec![KvCommand::put("a", "1")]),
        Step::Commands(vec![
            KvCommand::put("b", vec![b'x'; 2000]),
            KvCommand::put("c", "3"),
        ]),
        Step::Snapshot("snap".into()),
        Step::Checkpoint,
        Step::Commands(vec![KvCommand::put("a", vec![b'y'; 3000])]),
        Step::Restore("snap".into()),
        Step::Commands(vec![KvCommand::delete("b")]),
        Step::Checkpoint,
    ];
    // The I/O call sites (operation + kind of file) the workload makes; each must be
    // failed at least once by the loop so a new call site cannot hide from it.
    let mut sites_hit: BTreeMap<String, bool> = BTreeMap::new();
    {
        let sim = SimFs::new(0);
        let vfs: VfsRef = sim.clone();
        sim.set_trace(true);
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        run_steps(&store, &steps, &mut Model::new(), &mut BTreeMap::new());
        for entry in sim.take_trace() {
            if entry.call != u64::MAX {
                sites_hit.insert(call_site(entry.op, &entry.path), false);
            }
        }
    }
    for &(op, kind) in FAULT_CLASSES {
        for persistent in [false, true] {
            let mut nth = 0;
            loop {
                let sim = SimFs::new(nth);
                let vfs: VfsRef = sim.clone();
                sim.set_trace(true);
                sim.inject(Fault {
                    op,
                    nth,
                    kind,
                    persistent,
                });
                let context = format!("{op:?} {kind:?} #{nth} persistent={persistent}");
                let opened = KvStore::open(DIR, options(&vfs));
                let mut model = Model::new();
                let expectation = match &opened {
                    Ok(store) => run_steps(store, &steps, &mut model, &mut BTreeMap::new()),
                    // Open failed cleanly: nothing was acknowledged.
                    Err(_) => Expectation {
                        after_acked: Model::new(),
                        after_in_flight: Some(Model::new()),
                    },
                };
                let trace = sim.take_trace();
                // Which call site did the fault hit? The nth call of its class.
                let hit = trace
                    .iter()
                    .filter(|e| e.call != u64::MAX && op.covers(e.op, true))
                    .nth(nth as usize);
                let Some(in_flight) = expectation.after_in_flight.clone() else {
                    // The workload completed: the fault never fired (or was absorbed,
                    // like a one-shot short write that was simply continued).
                    break;
                };
                if let Some(entry) = hit {
                    sites_hit.insert(call_site(entry.op, &entry.path), true);
                }
                let Ok(store) = opened else {
                    sim.clear_faults();
                    sim.crash(CrashMode::DropUnsynced);
                    let store = KvStore::open(DIR, options(&vfs))
                        .unwrap_or_else(|err| panic!("{context}: reopen failed: {err}"));
                    assert!(contents(&store).is_empty(), "{context}");
                    nth += 1;
                    continue;
                };
                // In memory: the state is the acknowledged one unless the store is
                // poisoned (then every call errors, I6).
                let poisoned = store
                    .put("probe", "x")
                    .map_err(|e| e.is_poisoned())
                    .err()
                    .unwrap_or(false);
                if poisoned {
                    assert!(store.get(b"a").unwrap_err().is_poisoned(), "{context}");
                } else {
                    let live = contents(&store);
                    let mut with_probe = expectation.after_acked.clone();
                    with_probe.insert(b"probe".to_vec(), b"x".to_vec());
                    let mut in_flight_probe = in_flight.clone();
                    in_flight_probe.insert(b"probe".to_vec(), b"x".to_vec());
                    assert!(
                        live == with_probe
                            || live == in_flight_probe
                            || (persistent
                                && (live == expectation.after_acked || live == in_flight)),
                        "{context}: in-memory state is neither acknowledged nor in-flight: {}",
                        show(&live)
                    );
                }
                drop(store);
                sim.clear_faults();
                sim.crash(CrashMode::DropUnsynced);
                let store = KvStore::open(DIR, options(&vfs))
                    .unwrap_or_else(|err| panic!("{context}: reopen failed: {err}"));
                let mut recovered = contents(&store);
                recovered.remove(b"probe".as_slice());
                assert!(
                    recovered == expectation.after_acked || recovered == in_flight,
                    "{context}: durable state {} is not acknowledged {}",
                    show(&recovered),
                    show(&expectation.after_acked)
                );
                nth += 1;
                assert!(nth < 500, "{context}: workload never completed");
            }
        }
    }
    let missed: Vec<&String> = sites_hit
        .iter()
        .filter(|(_, hit)| !**hit)
        .map(|(site, _)| site)
        .collect();
    assert!(
        missed.is_empty(),
        "I/O call sites never failed by the loop: {missed:?}"
    );
}

/// A call site: the operation and the kind of file it touches.
fn call_site(op: &str, path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if name.ends_with(".tmp") {
        "temp"
    } else if name.starts_with("wal-") {
        "segment"
    } else if name.starts_with("checkpoint-") {
        "checkpoint"
    } else if name.starts_with("restore-") {
        "restore"
    } else if path.parent().is_some_and(|p| p.ends_with("snapshots")) {
        "snapshot"
    } else if name == "LOCK" {
        "lock"
    } else {
        "directory"
    };
    format!("{op} {kind}")
}
