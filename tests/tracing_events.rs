//! The `tracing` events an embedder sees (target "walstate"): open and recovery,
//! checkpoints, segment rotation, a failed write, poisoning by a failed fdatasync, and a
//! shared writer recovering again after another process's checkpoint. Captured by a
//! subscriber installed for the test's thread (the stores run no background thread).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use walstate::io::sim::{Fault, FaultKind, OpClass};
use walstate::io::{SimFs, VfsRef};
use walstate::{KvStore, Options};

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>, &'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            *self.1 = text;
        } else {
            self.0.insert(field.name().to_string(), text);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        let mut message = String::new();
        event.record(&mut Fields(&mut fields, &mut message));
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message,
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    /// The captured events whose message is `message`.
    fn named(&self, message: &str) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.message == message)
            .cloned()
            .collect()
    }
}

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None)
        .background_checkpoints(false)
}

const DIR: &str = "/srv/traced";

#[test]
fn open_checkpoint_and_rotation_are_reported_with_their_numbers() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let vfs: VfsRef = SimFs::new(1);
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        for i in 0..100 {
            store.put(format!("k{i:03}"), vec![b'v'; 100]).unwrap();
        }
        let info = store.checkpoint().unwrap();
        drop(store);
        let reopened = KvStore::open(DIR, options(&vfs)).unwrap();
        assert_eq!(reopened.len().unwrap(), 100);

        let recovered = capture.named("store recovered");
        assert_eq!(recovered.len(), 2, "one per open: {recovered:?}");
        let last = &recovered[1];
        assert_eq!(last.level, Level::INFO);
        assert_eq!(last.target, "walstate");
        assert_eq!(last.fields["dir"], DIR);
        assert_eq!(last.fields["checkpoint_lsn"], info.lsn.to_string());
        assert_eq!(last.fields["last_lsn"], "100");

        let checkpoints = capture.named("checkpoint written");
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].fields["lsn"], info.lsn.to_string());
        assert_eq!(checkpoints[0].fields["bytes"], info.bytes.to_string());
        assert_eq!(
            checkpoints[0].fields["segments_deleted"],
            info.segments_deleted.len().to_string()
        );

        let segments = capture.named("segment created");
        assert!(
            segments.len() >= 3,
            "100 puts of 100 bytes fill several 4 KiB segments: {segments:?}"
        );
        assert_eq!(segments[0].fields["seq"], "1");
        assert_eq!(segments[0].fields["first_lsn"], "1");
        assert_eq!(segments[0].level, Level::DEBUG);
    });
}

#[test]
fn a_failed_write_warns_and_a_failed_fdatasync_poisons_with_an_error_event() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let sim = SimFs::new(2);
        let vfs: VfsRef = sim.clone();
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        store.put("a", "1").unwrap();
        sim.inject(Fault::once(OpClass::Write, FaultKind::Enospc));
        assert!(store.put("b", "2").is_err());
        let warned = capture.named(
            "write failed: the commits of this round fail and nothing of them is left on disk",
        );
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0].level, Level::WARN);
        assert!(warned[0].fields["segment"].ends_with(".seg"));
        assert!(
            capture
                .named("journal poisoned: every call fails until the store is reopened")
                .is_empty()
        );

        sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
        assert!(store.put("c", "3").unwrap_err().is_poisoned());
        let poisoned =
            capture.named("journal poisoned: every call fails until the store is reopened");
        assert_eq!(
            poisoned.len(),
            1,
            "reported once, at the first cause: {poisoned:?}"
        );
        assert_eq!(poisoned[0].level, Level::ERROR);
        assert!(
            poisoned[0].fields["cause"].contains("fdatasync"),
            "{:?}",
            poisoned[0]
        );
        assert!(store.put("d", "4").is_err());
        assert_eq!(
            capture
                .named("journal poisoned: every call fails until the store is reopened")
                .len(),
            1
        );
    });
}

#[test]
fn a_shared_writer_behind_another_ones_checkpoint_says_why_it_recovers_again() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let vfs: VfsRef = SimFs::new(3);
        let early = KvStore::open(DIR, options(&vfs)).unwrap();
        early.put("first", "1").unwrap();
        let busy = KvStore::open(DIR, options(&vfs)).unwrap();
        for i in 0..400 {
            busy.put(format!("k{i:04}"), vec![b'v'; 64]).unwrap();
        }
        busy.checkpoint().unwrap();
        let refreshed = early.refresh().unwrap();
        let why = refreshed.reloaded.expect("a reload");
        let events = capture.named("shared writer recovers again");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].fields["reason"], why);
        assert_eq!(events[0].fields["dir"], DIR);
    });
}
