//! The commit path's own cost: what a lone appender allocates. A binary of its own, since
//! it counts allocations with a global allocator (per thread, so other tests' threads
//! do not count).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use common::reopen;
use walstate::io::{SimFs, Vfs, VfsRef};
use walstate::journal::{JournalOptions, RecordToAppend, SyncPolicy};
use walstate::{KvApplied, KvCommand, KvState, KvStore, Options, Store};

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A lone appender leads a round of just its own request: it is not queued, its hook is
/// run directly (not boxed, its output not boxed) and no per-round vectors or result
/// map are built. Under `Buffered`, an append that does not fill the buffer allocates
/// nothing at all in the journal (the buffer and its write are amortized).
#[test]
fn a_lone_appender_allocates_nothing_per_append() {
    let sim = SimFs::new(61);
    sim.create_dir_all(Path::new("/store")).unwrap();
    let vfs: VfsRef = sim.clone();
    let options = JournalOptions {
        sync_policy: SyncPolicy::Buffered,
        write_buffer_bytes: 256 << 10,
        ..JournalOptions::default()
    };
    let (journal, _, _) = reopen(&vfs, Path::new("/store"), options).unwrap();
    let appends = 2000u64;
    let requests: Vec<Vec<RecordToAppend>> = (0..appends)
        .map(|n| {
            vec![RecordToAppend {
                kind: 1,
                payload: vec![n as u8; 100],
            }]
        })
        .collect();
    journal.append(1, vec![0; 100]).unwrap(); // creates the segment, sizes the buffer
    let mut counted = 0;
    for (n, records) in requests.into_iter().enumerate() {
        let before = allocations();
        let (_, echoed) = journal.append_with(records, move |lsn| (lsn, n)).unwrap();
        counted += allocations() - before;
        assert_eq!(echoed.1, n, "the appender got its own hook's output");
    }
    assert!(
        counted * 10 < appends,
        "{counted} allocations for {appends} lone appends"
    );
    journal.close().unwrap();
}

/// Puts of each store test below.
const PUTS: u64 = 2000;

/// A `Buffered` store without checkpoints on a simulated file system, with one put
/// made (it creates the segment and sizes the buffer).
fn buffered_store(seed: u64) -> Store<KvState> {
    let sim = SimFs::new(seed);
    sim.create_dir_all(Path::new("/store")).unwrap();
    let vfs: VfsRef = sim.clone();
    let options = Options::default()
        .vfs(vfs)
        .sync_policy(SyncPolicy::Buffered)
        .checkpoint_after_bytes(None);
    let store = Store::<KvState>::open("/store", options).unwrap();
    let applied = store.apply(KvCommand::put("first", "value")).unwrap();
    assert_eq!(applied, Ok(KvApplied::Put { previous: None }));
    store
}

/// [`PUTS`] distinct keys with 100-byte values.
fn numbered_pairs() -> Vec<(String, Vec<u8>)> {
    (0..PUTS)
        .map(|n| (format!("key-{n:08}"), vec![n as u8; 100]))
        .collect()
}

/// 3 allocations per put (payload, key, value) plus the map's amortized node splits.
fn assert_payload_and_entry_only(counted: u64) {
    assert!(
        counted * 10 <= PUTS * 32,
        "{counted} allocations for {PUTS} lone puts (at most 3.2 per put expected)"
    );
}

/// A lone `Store::apply` of a put allocates the encoded payload and the state's copies
/// of the key and value, and nothing for the journal request itself (no vector of one
/// record). Under `Buffered`, with no checkpoint, that is 3 allocations per put plus
/// the map's amortized node splits.
#[test]
fn a_lone_put_allocates_only_its_payload_and_its_entry() {
    let store = buffered_store(62);
    let commands: Vec<KvCommand> = numbered_pairs()
        .into_iter()
        .map(|(key, value)| KvCommand::put(key, value))
        .collect();
    let mut counted = 0;
    for command in commands {
        let before = allocations();
        let applied = store.apply(command).unwrap();
        counted += allocations() - before;
        assert_eq!(applied, Ok(KvApplied::Put { previous: None }));
    }
    assert_payload_and_entry_only(counted);
    assert_eq!(store.read(KvState::len).unwrap(), PUTS as usize + 1);
    store.close().unwrap();
}

/// `KvStore::put` of borrowed bytes makes the same 3 allocations as `Store::apply` of a
/// built command — the payload and the state's copies of key and value — and none for
/// a command's own key and value vectors.
#[test]
fn a_lone_kv_store_put_of_slices_allocates_only_its_payload_and_its_entry() {
    let store = KvStore::from(buffered_store(63));
    let pairs = numbered_pairs();
    let mut counted = 0;
    for (key, value) in &pairs {
        let before = allocations();
        let previous = store.put(key.as_str(), value.as_slice()).unwrap();
        counted += allocations() - before;
        assert_eq!(previous, None);
    }
    assert_payload_and_entry_only(counted);
    let (key, value) = &pairs[PUTS as usize / 2];
    assert_eq!(store.get(key.as_bytes()).unwrap().as_ref(), Some(value));
    assert_eq!(store.len().unwrap(), PUTS as usize + 1);
    store.close().unwrap();
}

/// `KvStore::put_batch` of borrowed bytes makes per record only the 3 allocations of a
/// lone put — the payload and the state's copies of key and value — plus a few per
/// batch (its lists of puts, payloads, records and previous values), and none for
/// commands' key and value vectors.
#[test]
fn a_kv_store_put_batch_of_slices_allocates_per_record_only_its_payload_and_its_entry() {
    const BATCH: usize = 100;
    const PER_BATCH_MAX: u64 = 8;
    let store = KvStore::from(buffered_store(64));
    let pairs = numbered_pairs();
    let mut counted = 0;
    for chunk in pairs.chunks(BATCH) {
        let batch = chunk.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        let before = allocations();
        let previous = store.put_batch(batch).unwrap();
        counted += allocations() - before;
        assert_eq!(previous, vec![None; chunk.len()]);
    }
    let batches = PUTS.div_ceil(BATCH as u64);
    assert!(
        counted * 10 <= PUTS * 32 + batches * PER_BATCH_MAX * 10,
        "{counted} allocations for {PUTS} puts in {batches} batches \
         (at most 3.2 per put and {PER_BATCH_MAX} per batch expected)"
    );
    let (key, value) = &pairs[PUTS as usize / 2];
    assert_eq!(store.get(key.as_bytes()).unwrap().as_ref(), Some(value));
    assert_eq!(store.len().unwrap(), PUTS as usize + 1);
    store.close().unwrap();
}
