//! A typed configuration manager: replaces "write to a temp file, back up the old one,
//! rename, and hope" with one durable command per save.
//!
//! A save is acknowledged only once it is on disk; a full disk or a crash leaves the old
//! configuration whole, on disk and in memory. Validation failures are outputs of the
//! state machine (logged and replayed identically), not store errors.
//!
//! Run: `cargo run --example config_manager -- ./config-store`

use serde::{Deserialize, Serialize};
use walstate::{Options, StateMachine, Store};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./config-store".into());
    let store: Store<ServiceConfig> = Store::open(&dir, Options::default())?;
    println!("opened {dir}: {:?}", store.read(Clone::clone)?);

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
