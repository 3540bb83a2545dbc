//! A typed configuration manager: replaces "write to a temp file, back up the old one,
//! rename, and hope" with one durable command per save.
//!
//! A save is acknowledged only once it is on disk; a full disk or a crash leaves the old
//! configuration whole, on disk and in memory. Validation failures are outputs of the
//! state machine (logged and replayed identically), not store errors.
//!
//! Run: `cargo run --example config_manager [-- DIR]` (default:
//! `walstate-examples/config-store` under the system's temp directory; it prints where).
//!
//! With `--releases [DIR]` (default: a new `walstate-examples/config-releases-PID`
//! there), it plays four releases of a service instead (see `releases.rs`): release 1
//! writes a store, and each later release opens the store the one before it left, with a
//! field added, a command inserted, a field renamed (a migration) and a field removed.

use serde::{Deserialize, Serialize};
use walstate::{Options, StateMachine, Store};

mod releases;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct ServiceConfig {
    revision: u64,
    listen: String,
    workers: u16,
    features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ConfigCommand {
    /// Replace the whole configuration (a "save").
    Save {
        listen: String,
        workers: u16,
        features: Vec<String>,
    },
    /// Change one field.
    SetWorkers(u16),
}

#[derive(Debug, PartialEq)]
enum Rejected {
    ZeroWorkers,
}

impl StateMachine for ServiceConfig {
    type Command = ConfigCommand;
    type Output = Result<u64, Rejected>;

    fn apply(&mut self, command: &ConfigCommand) -> Result<u64, Rejected> {
        match command {
            ConfigCommand::Save {
                listen,
                workers,
                features,
            } => {
                if *workers == 0 {
                    return Err(Rejected::ZeroWorkers);
                }
                self.listen = listen.clone();
                self.workers = *workers;
                self.features = features.clone();
            }
            ConfigCommand::SetWorkers(0) => return Err(Rejected::ZeroWorkers),
            ConfigCommand::SetWorkers(workers) => self.workers = *workers,
        }
        self.revision += 1;
        Ok(self.revision)
    }
}

/// Where the store goes without an argument: a fixed directory under the system's temp
/// directory (kept between runs, so a second run reopens it), never the working tree.
fn default_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("walstate-examples").join(name)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--releases") {
        // The story starts from an empty store: a new directory for each run.
        let dir = args.get(1).map_or_else(
            || default_dir(&format!("config-releases-{}", std::process::id())),
            Into::into,
        );
        println!("store: {}", dir.display());
        return release_story(&dir);
    }
    let dir = args
        .first()
        .map_or_else(|| default_dir("config-store"), Into::into);
    let store: Store<ServiceConfig> = Store::open(&dir, Options::default())?;
    println!("opened {}: {:?}", dir.display(), store.read(Clone::clone)?);

    let revision = store.apply(ConfigCommand::Save {
        listen: "0.0.0.0:8080".into(),
        workers: 8,
        features: vec!["metrics".into()],
    })?;
    println!("saved revision {revision:?}");

    // A rejected change is an output: nothing changes, and replay rejects it the same way.
    let rejected = store.apply(ConfigCommand::SetWorkers(0))?;
    println!("SetWorkers(0) -> {rejected:?}");

    match store.apply(ConfigCommand::SetWorkers(16)) {
        Ok(revision) => println!("workers = 16 at revision {revision:?}"),
        // On a full disk the save fails clearly and the old configuration stays in force.
        Err(err) => eprintln!(
            "save failed, still running {:?}: {err}",
            store.read(Clone::clone)?
        ),
    }
    println!("now: {:?}", store.read(Clone::clone)?);
    store.close()?;
    Ok(())
}

/// Release 1 writes the store; releases 2, 3 and 4 each open what the one before left.
fn release_story(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use releases::{v1, v2, v3, v4};

    let store = v1::open(dir)?;
    store.apply(v1::Command::SetListen("0.0.0.0:8080".into()))?;
    store.apply(v1::Command::SetWorkers(8))?;
    store.apply(v1::Command::SetLogLevel("info".into()))?;
    println!("release 1 wrote {:?}", store.read(Clone::clone)?);
    store.close()?;

    let store = v2::open(dir)?;
    println!("release 2 read   {:?}", store.read(Clone::clone)?);
    store.apply(v2::Command::AddFeature("metrics".into()))?;
    store.close()?;

    let store = v3::open(dir)?;
    if let Some(migration) = store.recovery_report().migration {
        println!(
            "release 3 migrated {} -> {} at LSN {}; the old state is snapshot {:?}",
            migration.from, migration.to, migration.lsn, migration.snapshot
        );
    }
    println!("release 3 read   {:?}", store.read(Clone::clone)?);
    store.apply(v3::Command::SetTimeoutSecs(5))?;
    store.close()?;

    let store = v4::open(dir)?;
    println!("release 4 read   {:?}", store.read(Clone::clone)?);
    store.close()?;

    // An older release is refused with a schema error, never fed newer bytes.
    match v1::open(dir) {
        Err(err) => println!("release 1 again: refused ({err})"),
        Ok(_) => return Err("release 1 opened a store of release 4".into()),
    }
    Ok(())
}
