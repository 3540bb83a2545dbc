//! A daemon and a CLI that both change one config store, each in its own process.
//!
//! The daemon keeps the store open for as long as it runs (and writes to it: a
//! heartbeat); "CLI" processes — this example started again with `cli KEY VALUE` —
//! open the same store, write one key and exit, while the daemon is running. No mode to
//! choose: several processes may write one store ([`walstate::Writers::Shared`], the
//! default), each taking the writer lock only while it commits. The daemon sees each
//! CLI write at its next `refresh()` (or its next commit), reading only the records
//! appended since its last look.
//!
//! `cargo run --example daemon_and_cli [-- DIR]` runs the daemon with three CLI writes
//! and checks that every acknowledged write, its own and theirs, is in the store (exit
//! 1 if one is not). Default store: `walstate-examples/daemon-store` under the system's
//! temp directory. With the `walstate` binary installed, `--serve SECONDS` keeps the
//! daemon running so you can write from another terminal:
//! `walstate put DIR config/workers 16`.

use std::process::Command;
use std::time::{Duration, Instant};

use walstate::{KvStore, Options};

fn default_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("walstate-examples").join(name)
}

/// The CLI side: open, write one key, close. Prints the LSN it was acknowledged at.
fn cli(dir: &str, key: &str, value: &str) -> walstate::Result<()> {
    let store = KvStore::open(dir, Options::default())?.into_inner();
    let (lsn, _) = store.apply_with_lsn(walstate::KvCommand::put(key, value))?;
    println!(
        "  cli (pid {}): put {key} = {value}, durable at LSN {lsn}",
        std::process::id()
    );
    store.close()
}

/// The daemon side: writes a heartbeat, refreshes, and reports every change of the
/// `config/` keys it did not make itself.
struct Daemon {
    store: KvStore,
    seen: Vec<(Vec<u8>, Vec<u8>)>,
    beats: u64,
}

impl Daemon {
    fn tick(&mut self) -> walstate::Result<()> {
        self.beats += 1;
        self.store.put("daemon/heartbeat", self.beats.to_string())?;
        let refreshed = self.store.refresh()?;
        let config = self.store.scan_prefix(b"config/")?;
        if config != self.seen {
            for (key, value) in &config {
                if !self.seen.contains(&(key.clone(), value.clone())) {
                    println!(
                        "daemon (pid {}): sees {} = {} (store at LSN {})",
                        std::process::id(),
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(value),
                        refreshed.last_lsn
                    );
                }
            }
            self.seen = config;
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cli") {
        let [_, dir, key, value] = &args[..] else {
            return Err("usage: daemon_and_cli cli DIR KEY VALUE".into());
        };
        cli(dir, key, value)?;
        return Ok(());
    }
    let serve = args.iter().position(|a| a == "--serve").map(|i| {
        args.get(i + 1)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(60)
    });
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<u64>().is_err())
        .map_or_else(|| default_dir("daemon-store"), Into::into);
    println!("store: {}", dir.display());

    let store = KvStore::open(&dir, Options::default())?;
    store.put("config/workers", "4")?;
    let mut daemon = Daemon {
        store,
        seen: Vec::new(),
        beats: 0,
    };
    daemon.tick()?;

    if let Some(seconds) = serve {
        println!(
            "daemon: serving for {seconds} s; try `walstate put {} config/workers 16`",
            dir.display()
        );
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            daemon.tick()?;
            std::thread::sleep(Duration::from_millis(200));
        }
        return Ok(daemon.store.close()?);
    }

    // Three CLI writes while the daemon runs, each a separate process.
    let me = std::env::current_exe()?;
    let writes = [
        ("config/workers", "8"),
        ("config/listen", "0.0.0.0:9090"),
        ("config/workers", "16"),
    ];
    for (key, value) in writes {
        let status = Command::new(&me)
            .args(["cli", &dir.to_string_lossy(), key, value])
            .status()?;
        if !status.success() {
            return Err(format!("the cli process writing {key} failed: {status}").into());
        }
        daemon.tick()?;
    }

    let beats = daemon.beats.to_string();
    let expected = [
        (&b"config/listen"[..], &b"0.0.0.0:9090"[..]),
        (b"config/workers", b"16"),
        (b"daemon/heartbeat", beats.as_bytes()),
    ];
    let mut missing = Vec::new();
    for (key, value) in expected {
        if daemon.store.get(key)?.as_deref() != Some(value) {
            missing.push(String::from_utf8_lossy(key).into_owned());
        }
    }
    daemon.store.close()?;
    if missing.is_empty() {
        println!("ok: the daemon and the CLI processes wrote one store; every write is there");
        Ok(())
    } else {
        eprintln!("lost writes: {missing:?}");
        std::process::exit(1);
    }
}
