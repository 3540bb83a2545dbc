//! Four releases of one service's configuration types, each opening the store the one
//! before it wrote. The state is config-style, so it uses the evolvable codec: fields
//! and variants are stored by name.
//!
//! - **v1**: `listen`, `workers`, `log_level`.
//! - **v2**: a field added (`features`, `#[serde(default)]`) and a command appended. No
//!   migration code: v2 opens v1's store as it is.
//! - **v3**: a command inserted in the middle (`SetTimeoutSecs`) and a field renamed
//!   (`listen` → `address`). A rename is not something the codec can guess, so v3
//!   supplies a migration from v2 (`From<v2::Config>`); the v1 → v2 change needs none.
//! - **v4**: a field removed (`log_level`). Old bytes that still hold it decode, and the
//!   field is dropped; no migration code. v4 keeps the migration from v2 for stores that
//!   skipped release 3.
//!
//! `open` of each release is all an application writes.

// The command names mirror the configuration fields they set (`SetWorkers`).
#![allow(clippy::enum_variant_names)]

use std::path::Path;

use serde::{Deserialize, Serialize};
use walstate::migrate::Migrations;
use walstate::state::{Codec, SchemaName};
use walstate::{Options, StateMachine, Store};

/// The schema name every release declares; the version orders releases.
pub const SCHEMA: &str = "service-config";

pub mod v1 {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
        pub log_level: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetWorkers(u16),
        SetLogLevel(String),
    }

    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new(SCHEMA, 1));
        const CODEC: Codec = Codec::Evolvable;

        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLogLevel(level) => self.log_level = level.clone(),
            }
        }
    }

    pub fn open(dir: &Path) -> walstate::Result<Store<Config>> {
        Store::open(dir, Options::default())
    }
}

pub mod v2 {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
        pub log_level: String,
        /// New in v2: a store of v1 has none.
        #[serde(default)]
        pub features: Vec<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetWorkers(u16),
        SetLogLevel(String),
        /// New in v2, appended.
        AddFeature(String),
    }

    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new(SCHEMA, 2));
        const CODEC: Codec = Codec::Evolvable;

        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLogLevel(level) => self.log_level = level.clone(),
                Command::AddFeature(feature) => self.features.push(feature.clone()),
            }
        }
    }

    /// Opens a store of v1 or v2: nothing to migrate.
    pub fn open(dir: &Path) -> walstate::Result<Store<Config>> {
        Store::open(dir, Options::default())
    }
}

pub mod v3 {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        /// Was `listen` until v2.
        pub address: String,
        pub workers: u16,
        pub log_level: String,
        pub features: Vec<String>,
        #[serde(default)]
        pub timeout_secs: u16,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetAddress(String),
        /// New in v3, inserted before `SetWorkers`: variants are stored by name.
        SetTimeoutSecs(u16),
        SetWorkers(u16),
        SetLogLevel(String),
        AddFeature(String),
    }

    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new(SCHEMA, 3));
        const CODEC: Codec = Codec::Evolvable;

        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetAddress(address) => self.address = address.clone(),
                Command::SetTimeoutSecs(secs) => self.timeout_secs = *secs,
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLogLevel(level) => self.log_level = level.clone(),
                Command::AddFeature(feature) => self.features.push(feature.clone()),
            }
        }
    }

    /// The rename: v2's `listen` is v3's `address`.
    impl From<v2::Config> for Config {
        fn from(old: v2::Config) -> Self {
            Config {
                address: old.listen,
                workers: old.workers,
                log_level: old.log_level,
                features: old.features,
                timeout_secs: 30,
            }
        }
    }

    /// Opens a store of v1, v2 or v3, migrating v1 and v2 stores (v2's types read v1's
    /// files as they are).
    pub fn open(dir: &Path) -> walstate::Result<Store<Config>> {
        let migrations = Migrations::new().step::<v2::Config, Config>();
        Store::open_migrating(dir, Options::default(), &migrations)
    }
}

pub mod v4 {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub address: String,
        pub workers: u16,
        pub features: Vec<String>,
        #[serde(default)]
        pub timeout_secs: u16,
        // `log_level` is gone: stored values of it are ignored.
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetAddress(String),
        SetTimeoutSecs(u16),
        SetWorkers(u16),
        /// Kept so records of it still replay (as a no-op); drop it only once no
        /// journal holds one (after a checkpoint of this release).
        SetLogLevel(String),
        AddFeature(String),
    }

    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new(SCHEMA, 4));
        const CODEC: Codec = Codec::Evolvable;

        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetAddress(address) => self.address = address.clone(),
                Command::SetTimeoutSecs(secs) => self.timeout_secs = *secs,
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLogLevel(_) => {}
                Command::AddFeature(feature) => self.features.push(feature.clone()),
            }
        }
    }

    /// Opens a store of any release: v1 and v2 stores are migrated with v3's step
    /// (whose result v4 reads as it is), v3 stores need nothing.
    pub fn open(dir: &Path) -> walstate::Result<Store<Config>> {
        let migrations = Migrations::new().step::<v2::Config, v3::Config>();
        Store::open_migrating(dir, Options::default(), &migrations)
    }
}
