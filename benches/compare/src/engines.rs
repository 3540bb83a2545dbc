//! The engines under comparison, behind one small interface.
//!
//! Every engine stores 16-byte keys and 100-byte values. `Writer::put` is a durable
//! commit of one put (the engine's strongest ordinary guarantee, see each type);
//! `Writer::batch` is one durable atomic batch; `Engine::bulk_unsynced` is W3: every put
//! without a sync, then one durable flush. `reopen_ready` is W4: open an existing store
//! and be ready to serve the full state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use walstate::SyncPolicy;

pub const KEY_LEN: usize = 16;
pub const VALUE_LEN: usize = 100;
pub type Item = ([u8; KEY_LEN], [u8; VALUE_LEN]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Walstate,
    /// walstate's W3 under `SyncPolicy::Never` (every put written to the OS before it
    /// returns) next to the `Buffered` default row: W3 and W4 only.
    WalstateNever,
    Redb,
    Fjall,
    Okaywal,
    Sqlite,
    Sled,
    RawAppend,
    RawGroup,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Walstate,
        Kind::WalstateNever,
        Kind::Redb,
        Kind::Fjall,
        Kind::Okaywal,
        Kind::Sqlite,
        Kind::Sled,
        Kind::RawAppend,
        Kind::RawGroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Walstate => "walstate",
            Kind::WalstateNever => "walstate-never",
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::Okaywal => "okaywal",
            Kind::Sqlite => "sqlite",
            Kind::Sled => "sled",
            Kind::RawAppend => "raw-append",
            Kind::RawGroup => "raw-group",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The other engines (not walstate, not a raw reference).
    pub fn is_peer(self) -> bool {
        !matches!(
            self,
            Kind::Walstate | Kind::WalstateNever | Kind::RawAppend | Kind::RawGroup
        )
    }

    /// Rows that only run the unsynced bulk load (W3) and its reopen (W4).
    pub fn bulk_only(self) -> bool {
        matches!(self, Kind::WalstateNever)
    }

    /// Peers whose durable commit is an fsync/fdatasync (sled's flush is weaker).
    pub fn same_guarantee_peer(self) -> bool {
        matches!(
            self,
            Kind::Redb | Kind::Fjall | Kind::Okaywal | Kind::Sqlite
        )
    }
}

/// What a store is opened for: decides presizing and sync settings.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Durable commits; about `records` records will be written.
    Commits { records: u64 },
    /// W3: unsynced puts of `records` records, then one flush.
    Bulk { records: u64 },
}

impl Purpose {
    fn records(self) -> u64 {
        match self {
            Purpose::Commits { records } | Purpose::Bulk { records } => records,
        }
    }
}

pub trait Engine: Send + Sync {
    /// A per-thread handle (SQLite connections are per thread).
    fn writer(&self) -> Box<dyn Writer + '_>;
    /// W3: puts without syncing, then one durable flush of all of them.
    fn bulk_unsynced(&self, items: &[Item]);
    /// Clean close.
    fn close(self: Box<Self>);
    /// fdatasync calls so far, where the engine counts them.
    fn syncs(&self) -> Option<u64> {
        None
    }
}

pub trait Writer {
    /// One durable commit of one put.
    fn put(&mut self, item: &Item);
    /// One durable, atomic batch.
    fn batch(&mut self, items: &[Item]);
}

pub fn open(kind: Kind, dir: &Path, purpose: Purpose) -> Box<dyn Engine> {
    std::fs::create_dir_all(dir).expect("create engine dir");
    match kind {
        Kind::Walstate => Box::new(WalstateEngine::open(dir, purpose, SyncPolicy::Buffered)),
        Kind::WalstateNever => Box::new(WalstateEngine::open(dir, purpose, SyncPolicy::Never)),
        Kind::Redb => Box::new(RedbEngine::open(dir)),
        Kind::Fjall => Box::new(FjallEngine::open(dir)),
        Kind::Okaywal => Box::new(OkaywalEngine::open(dir, purpose)),
        Kind::Sqlite => Box::new(SqliteEngine::open(dir)),
        Kind::Sled => Box::new(SledEngine::open(dir)),
        Kind::RawAppend => Box::new(RawEngine::open(dir, None)),
        Kind::RawGroup => Box::new(RawEngine::open(dir, Some(purpose.records()))),
    }
}

/// W4: opens the store in `dir` and makes it ready to serve the full state; checks that
/// `last` (the last item written) is there and, where the state is in memory, that it
/// holds `records` keys. Returns the time to ready.
pub fn reopen_ready(kind: Kind, dir: &Path, records: u64, last: &Item) -> Duration {
    let start = std::time::Instant::now();
    let check_map = |map: &BTreeMap<Vec<u8>, Vec<u8>>| {
        assert_eq!(
            map.len() as u64,
            records,
            "{}: keys after replay",
            kind.name()
        );
        assert_eq!(map.get(&last.0[..]).map(Vec::as_slice), Some(&last.1[..]));
    };
    match kind {
        Kind::Walstate | Kind::WalstateNever => {
            let store = walstate::KvStore::open(
                dir,
                walstate::Options::default().checkpoint_after_bytes(None),
            )
            .expect("walstate reopen");
            let elapsed = start.elapsed();
            assert_eq!(store.len().expect("len") as u64, records);
            assert_eq!(
                store.get(&last.0).expect("get").as_deref(),
                Some(&last.1[..])
            );
            store.close().expect("close");
            elapsed
        }
        Kind::Redb => {
            use redb::ReadableDatabase;
            let db = redb::Database::open(dir.join("db.redb")).expect("redb open");
            let tx = db.begin_read().expect("begin_read");
            let table = tx.open_table(REDB_TABLE).expect("open_table");
            let value = table.get(&last.0[..]).expect("get").expect("last key");
            let elapsed = start.elapsed();
            assert_eq!(value.value(), &last.1[..]);
            elapsed
        }
        Kind::Fjall => {
            let db = fjall::Database::builder(dir).open().expect("fjall open");
            let ks = db
                .keyspace("kv", fjall::KeyspaceCreateOptions::default)
                .expect("keyspace");
            let value = ks.get(last.0).expect("get").expect("last key");
            let elapsed = start.elapsed();
            assert_eq!(&value[..], &last.1[..]);
            elapsed
        }
        Kind::Okaywal => {
            let map = Arc::new(Mutex::new(BTreeMap::new()));
            let wal = okaywal_config(dir, Purpose::Bulk { records })
                .open(ReplayManager {
                    map: Arc::clone(&map),
                })
                .expect("okaywal open");
            let elapsed = start.elapsed();
            check_map(&map.lock());
            drop(wal);
            elapsed
        }
        Kind::Sqlite => {
            let conn = sqlite_connection(dir);
            let value: Vec<u8> = conn
                .query_row("SELECT v FROM kv WHERE k = ?1", [&last.0[..]], |row| {
                    row.get(0)
                })
                .expect("last key");
            let elapsed = start.elapsed();
            assert_eq!(value, last.1);
            elapsed
        }
        Kind::Sled => {
            let db = sled::open(dir.join("sled")).expect("sled open");
            let value = db.get(last.0).expect("get").expect("last key");
            let elapsed = start.elapsed();
            assert_eq!(&value[..], &last.1[..]);
            elapsed
        }
        Kind::RawAppend | Kind::RawGroup => {
            let bytes = std::fs::read(dir.join("raw.log")).expect("read raw log");
            let map = raw_replay(&bytes);
            let elapsed = start.elapsed();
            check_map(&map);
            elapsed
        }
    }
}

// ---------------------------------------------------------------------------------------
// walstate

struct WalstateEngine {
    store: walstate::KvStore,
}

impl WalstateEngine {
    /// `bulk_policy` is the sync policy of the unsynced bulk load (W3); durable
    /// commits use the defaults (`Always`).
    fn open(dir: &Path, purpose: Purpose, bulk_policy: SyncPolicy) -> Self {
        let options = match purpose {
            Purpose::Commits { .. } => walstate::Options::default(),
            // No checkpoint: W4 then measures replay of exactly these records.
            Purpose::Bulk { .. } => walstate::Options::default()
                .sync_policy(bulk_policy)
                .checkpoint_after_bytes(None),
        };
        WalstateEngine {
            store: walstate::KvStore::open(dir, options).expect("walstate open"),
        }
    }
}

impl Engine for WalstateEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(WalstateWriter(&self.store))
    }
    fn bulk_unsynced(&self, items: &[Item]) {
        for (key, value) in items {
            self.store.put(key, value).expect("put");
        }
        self.store.sync().expect("sync");
    }
    fn close(self: Box<Self>) {
        self.store.close().expect("close");
    }
    fn syncs(&self) -> Option<u64> {
        self.store.journal_stats().map(|s| s.syncs)
    }
}

struct WalstateWriter<'a>(&'a walstate::KvStore);

impl Writer for WalstateWriter<'_> {
    fn put(&mut self, (key, value): &Item) {
        self.0.put(key, value).expect("put");
    }
    fn batch(&mut self, items: &[Item]) {
        self.0
            .put_batch(items.iter().map(|(k, v)| (k, v)))
            .expect("put_batch");
    }
}

// ---------------------------------------------------------------------------------------
// redb: Durability::Immediate per commit.

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

struct RedbEngine {
    db: redb::Database,
}

impl RedbEngine {
    fn open(dir: &Path) -> Self {
        let db = redb::Database::create(dir.join("db.redb")).expect("redb create");
        RedbEngine { db }
    }

    fn commit(&self, items: &[Item], durability: redb::Durability) {
        let mut tx = self.db.begin_write().expect("begin_write");
        tx.set_durability(durability).expect("durability");
        {
            let mut table = tx.open_table(REDB_TABLE).expect("open_table");
            for (k, v) in items {
                table.insert(&k[..], &v[..]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

impl Engine for RedbEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(RedbWriter(self))
    }
    fn bulk_unsynced(&self, items: &[Item]) {
        let (last, rest) = items.split_last().expect("items");
        for item in rest {
            self.commit(std::slice::from_ref(item), redb::Durability::None);
        }
        // The last commit is durable and makes every earlier one durable.
        self.commit(std::slice::from_ref(last), redb::Durability::Immediate);
    }
    fn close(self: Box<Self>) {}
}

struct RedbWriter<'a>(&'a RedbEngine);

impl Writer for RedbWriter<'_> {
    fn put(&mut self, item: &Item) {
        self.0
            .commit(std::slice::from_ref(item), redb::Durability::Immediate);
    }
    fn batch(&mut self, items: &[Item]) {
        self.0.commit(items, redb::Durability::Immediate);
    }
}

// ---------------------------------------------------------------------------------------
// fjall: insert, then persist(PersistMode::SyncData).

struct FjallEngine {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl FjallEngine {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir).open().expect("fjall open");
        let ks = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        FjallEngine { db, ks }
    }
}

impl Engine for FjallEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(FjallWriter(self))
    }
    fn bulk_unsynced(&self, items: &[Item]) {
        for (k, v) in items {
            self.ks.insert(&k[..], &v[..]).expect("insert");
        }
        self.db
            .persist(fjall::PersistMode::SyncData)
            .expect("persist");
    }
    fn close(self: Box<Self>) {
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .expect("persist");
    }
}

struct FjallWriter<'a>(&'a FjallEngine);

impl Writer for FjallWriter<'_> {
    fn put(&mut self, (k, v): &Item) {
        self.0.ks.insert(&k[..], &v[..]).expect("insert");
        self.0
            .db
            .persist(fjall::PersistMode::SyncData)
            .expect("persist");
    }
    fn batch(&mut self, items: &[Item]) {
        let mut batch = self
            .0
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for (k, v) in items {
            batch.insert(&self.0.ks, &k[..], &v[..]);
        }
        batch.commit().expect("batch commit");
    }
}

// ---------------------------------------------------------------------------------------
// okaywal: one entry (one chunk per put) and a commit per durable write.

#[derive(Debug)]
struct NoopManager;

impl okaywal::LogManager for NoopManager {
    fn recover(&mut self, _entry: &mut okaywal::Entry<'_>) -> io::Result<()> {
        Ok(())
    }
    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: okaywal::EntryId,
        _checkpointed_entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// Replays every entry into an ordered map: the full key-value state.
#[derive(Debug)]
struct ReplayManager {
    map: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl okaywal::LogManager for ReplayManager {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> io::Result<()> {
        if let Some(chunks) = entry.read_all_chunks()? {
            let mut map = self.map.lock();
            for chunk in chunks {
                map.insert(chunk[..KEY_LEN].to_vec(), chunk[KEY_LEN..].to_vec());
            }
        }
        Ok(())
    }
    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: okaywal::EntryId,
        _checkpointed_entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

fn okaywal_config(dir: &Path, purpose: Purpose) -> okaywal::Configuration {
    let config = okaywal::Configuration::default_for(dir.join("wal"));
    match purpose {
        // Defaults (1 MiB zero-filled segments, checkpoint after 768 KiB).
        Purpose::Commits { .. } => config,
        // Keep every record in the log so W4 replays all of them.
        Purpose::Bulk { .. } => config.checkpoint_after_bytes(u64::MAX),
    }
}

struct OkaywalEngine {
    wal: okaywal::WriteAheadLog,
}

impl OkaywalEngine {
    fn open(dir: &Path, purpose: Purpose) -> Self {
        let wal = okaywal_config(dir, purpose)
            .open(NoopManager)
            .expect("okaywal open");
        OkaywalEngine { wal }
    }

    fn commit(&self, items: &[Item]) {
        let mut entry = self.wal.begin_entry().expect("begin_entry");
        let mut buf = [0u8; KEY_LEN + VALUE_LEN];
        for (k, v) in items {
            buf[..KEY_LEN].copy_from_slice(k);
            buf[KEY_LEN..].copy_from_slice(v);
            entry.write_chunk(&buf).expect("write_chunk");
        }
        entry.commit().expect("commit");
    }
}

impl Engine for OkaywalEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(OkaywalWriter(self))
    }
    /// okaywal has no unsynced commit: one entry with a chunk per put, one commit.
    fn bulk_unsynced(&self, items: &[Item]) {
        self.commit(items);
    }
    fn close(self: Box<Self>) {
        self.wal.shutdown().expect("shutdown");
    }
}

struct OkaywalWriter<'a>(&'a OkaywalEngine);

impl Writer for OkaywalWriter<'_> {
    fn put(&mut self, item: &Item) {
        self.0.commit(std::slice::from_ref(item));
    }
    fn batch(&mut self, items: &[Item]) {
        self.0.commit(items);
    }
}

// ---------------------------------------------------------------------------------------
// SQLite (bundled): WAL mode, synchronous=FULL, one connection per thread.

pub fn sqlite_connection(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("db.sqlite")).expect("sqlite open");
    conn.busy_timeout(Duration::from_secs(120))
        .expect("busy_timeout");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    conn
}

struct SqliteEngine {
    dir: PathBuf,
    /// Keeps the database open between writers (so the WAL is not checkpointed away).
    keeper: Mutex<rusqlite::Connection>,
}

impl SqliteEngine {
    fn open(dir: &Path) -> Self {
        let conn = sqlite_connection(dir);
        conn.execute_batch(SQLITE_CREATE_TABLE)
            .expect("create table");
        SqliteEngine {
            dir: dir.to_path_buf(),
            keeper: Mutex::new(conn),
        }
    }
}

pub const SQLITE_CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID";
pub const SQLITE_PUT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

fn sqlite_transaction(conn: &rusqlite::Connection, items: &[Item]) {
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    {
        let mut stmt = conn.prepare_cached(SQLITE_PUT).expect("prepare");
        for (k, v) in items {
            stmt.execute((&k[..], &v[..])).expect("insert");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
}

impl Engine for SqliteEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(SqliteWriter(sqlite_connection(&self.dir)))
    }
    /// The unsynced analogue: one transaction of all puts, one durable COMMIT.
    fn bulk_unsynced(&self, items: &[Item]) {
        sqlite_transaction(&self.keeper.lock(), items);
    }
    fn close(self: Box<Self>) {
        let conn = self.keeper.into_inner();
        conn.close().map_err(|(_, err)| err).expect("close");
    }
}

struct SqliteWriter(rusqlite::Connection);

impl Writer for SqliteWriter {
    fn put(&mut self, (k, v): &Item) {
        let mut stmt = self.0.prepare_cached(SQLITE_PUT).expect("prepare");
        stmt.execute((&k[..], &v[..])).expect("insert");
    }
    fn batch(&mut self, items: &[Item]) {
        sqlite_transaction(&self.0, items);
    }
}

// ---------------------------------------------------------------------------------------
// sled 0.34: insert, then flush (sync_file_range: weaker than fdatasync).

struct SledEngine {
    db: sled::Db,
}

impl SledEngine {
    fn open(dir: &Path) -> Self {
        SledEngine {
            db: sled::open(dir.join("sled")).expect("sled open"),
        }
    }
}

impl Engine for SledEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(SledWriter(&self.db))
    }
    fn bulk_unsynced(&self, items: &[Item]) {
        for (k, v) in items {
            self.db.insert(&k[..], &v[..]).expect("insert");
        }
        self.db.flush().expect("flush");
    }
    fn close(self: Box<Self>) {
        self.db.flush().expect("flush");
    }
}

struct SledWriter<'a>(&'a sled::Db);

impl Writer for SledWriter<'_> {
    fn put(&mut self, (k, v): &Item) {
        self.0.insert(&k[..], &v[..]).expect("insert");
        self.0.flush().expect("flush");
    }
    fn batch(&mut self, items: &[Item]) {
        let mut batch = sled::Batch::default();
        for (k, v) in items {
            batch.insert(&k[..], &v[..]);
        }
        self.0.apply_batch(batch).expect("apply_batch");
        self.0.flush().expect("flush");
    }
}

// ---------------------------------------------------------------------------------------
// Raw references: a frame is [len u32][crc32 u32][key][value].
//
// raw-append: write at the end of a growing file + fdatasync per commit, one at a time.
// raw-group:  a pre-sized (zero-filled, fsynced) file with group commit: writers queue
//             their frames; whoever finds no leader writes everything pending with one
//             pwrite and one fdatasync and wakes the writers it covered.

pub const RAW_FRAME_LEN: usize = 8 + KEY_LEN + VALUE_LEN;

fn encode_frame(buf: &mut Vec<u8>, (k, v): &Item) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(k);
    crc.update(v);
    buf.extend_from_slice(&((KEY_LEN + VALUE_LEN) as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(k);
    buf.extend_from_slice(v);
}

fn raw_replay(bytes: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut map = BTreeMap::new();
    let mut pos = 0;
    while pos + RAW_FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4")) as usize;
        if len != KEY_LEN + VALUE_LEN {
            break; // zero fill or torn
        }
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4"));
        let body = &bytes[pos + 8..pos + RAW_FRAME_LEN];
        if crc32fast::hash(body) != crc {
            break;
        }
        map.insert(body[..KEY_LEN].to_vec(), body[KEY_LEN..].to_vec());
        pos += RAW_FRAME_LEN;
    }
    map
}

struct GroupState {
    pending: Vec<u8>,
    /// Frames queued so far (sequence number of the last one).
    queued: u64,
    /// Frames durable so far.
    durable: u64,
    leader: bool,
    offset: u64,
    syncs: u64,
}

struct RawEngine {
    file: File,
    group: Mutex<GroupState>,
    cv: Condvar,
    /// raw-group: leader-based group commit; raw-append: one commit at a time.
    grouped: bool,
}

impl RawEngine {
    fn open(dir: &Path, presize_records: Option<u64>) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("raw.log"))
            .expect("raw open");
        if let Some(records) = presize_records {
            let bytes = records * RAW_FRAME_LEN as u64 + (1 << 20);
            let zeros = vec![0u8; 1 << 20];
            let mut offset = 0;
            while offset < bytes {
                file.write_all_at(&zeros, offset).expect("zero fill");
                offset += zeros.len() as u64;
            }
            file.sync_all().expect("fsync");
        }
        RawEngine {
            file,
            group: Mutex::new(GroupState {
                pending: Vec::new(),
                queued: 0,
                durable: 0,
                leader: false,
                offset: 0,
                syncs: 0,
            }),
            cv: Condvar::new(),
            grouped: presize_records.is_some(),
        }
    }

    fn commit(&self, frames: &[u8], count: u64) {
        if !self.grouped {
            let mut state = self.group.lock();
            self.file.write_all_at(frames, state.offset).expect("write");
            self.file.sync_data().expect("fdatasync");
            state.offset += frames.len() as u64;
            state.syncs += 1;
            return;
        }
        let mut state = self.group.lock();
        state.pending.extend_from_slice(frames);
        state.queued += count;
        let mine = state.queued;
        let mut spare = Vec::new();
        loop {
            if state.durable >= mine {
                return;
            }
            if !state.leader {
                state.leader = true;
                std::mem::swap(&mut spare, &mut state.pending);
                let upto = state.queued;
                let offset = state.offset;
                state.offset += spare.len() as u64;
                drop(state);
                self.file.write_all_at(&spare, offset).expect("write");
                self.file.sync_data().expect("fdatasync");
                spare.clear();
                state = self.group.lock();
                state.durable = upto;
                state.leader = false;
                state.syncs += 1;
                self.cv.notify_all();
                continue;
            }
            self.cv.wait(&mut state);
        }
    }
}

impl Engine for RawEngine {
    fn writer(&self) -> Box<dyn Writer + '_> {
        Box::new(RawWriter {
            engine: self,
            buf: Vec::with_capacity(RAW_FRAME_LEN * 100),
        })
    }
    fn bulk_unsynced(&self, items: &[Item]) {
        let mut state = self.group.lock();
        let mut buf = Vec::with_capacity(RAW_FRAME_LEN);
        for item in items {
            buf.clear();
            encode_frame(&mut buf, item);
            self.file.write_all_at(&buf, state.offset).expect("write");
            state.offset += buf.len() as u64;
        }
        self.file.sync_data().expect("fdatasync");
    }
    fn close(self: Box<Self>) {
        self.file.sync_all().expect("fsync");
    }
    fn syncs(&self) -> Option<u64> {
        Some(self.group.lock().syncs)
    }
}

struct RawWriter<'a> {
    engine: &'a RawEngine,
    buf: Vec<u8>,
}

impl Writer for RawWriter<'_> {
    fn put(&mut self, item: &Item) {
        self.buf.clear();
        encode_frame(&mut self.buf, item);
        self.engine.commit(&self.buf, 1);
    }
    fn batch(&mut self, items: &[Item]) {
        self.buf.clear();
        for item in items {
            encode_frame(&mut self.buf, item);
        }
        self.engine.commit(&self.buf, items.len() as u64);
    }
}
