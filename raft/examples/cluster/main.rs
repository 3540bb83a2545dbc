//! Three openraft nodes on walstate storage, each its own process on loopback, and a
//! driver that checks no acknowledged write is lost when the leader is SIGKILLed.
//!
//! ```text
//! cargo run --release -p walstate-raft --example cluster              # 1,000 + 1,000 writes
//! cargo run --release -p walstate-raft --example cluster -- 100       # a smaller run
//! cargo run --release -p walstate-raft --example cluster -- bench 5000 # BENCHMARKS.md
//! ```
//!
//! The driver starts three node processes (this binary with `node ID disk|memory
//! SNAPSHOT_EVERY DIR ADDR ADDR ADDR`), forms the cluster, writes N puts through the
//! leader, SIGKILLs the leader, waits for a new one, writes N more, restarts the killed
//! node on its directory, waits until it has caught up (it is far enough behind to be
//! sent a snapshot), and checks that every acknowledged put is on all three nodes. It exits 0 only then, and 1 on any
//! failure or after two minutes. The network layer is HTTP with JSON bodies (axum,
//! reqwest), on 127.0.0.1 only.
//!
//! `bench WRITES` measures replicated durable commits per second at 1 and 16 clients,
//! on disk and on walstate's in-memory file system (the cost of durability), each on a
//! fresh cluster, and prints a Markdown table.

// One job per file: `node` (a node process: openraft on walstate storage, served over
// HTTP), `network` (the RaftNetwork over HTTP), `driver` (the scenario: start, kill,
// restart, check), `bench` (replicated commits per second).
mod bench;
mod driver;
mod network;
mod node;

// The raft types' snapshot data (`declare_raft_types!` names it unqualified).
use std::io::Cursor;
use std::process::ExitCode;
use std::time::Duration;

use walstate::{KvCommand, KvOutput};

use crate::bench::bench;
use crate::driver::drive;
use crate::node::run_node;

openraft::declare_raft_types!(
    /// A replicated walstate `KvState`.
    pub Types: D = KvCommand, R = Option<KvOutput>
);

/// Node ids.
type NodeId = u64;
/// A node's whole key-value state, as `/dump` answers it.
type Dump = Result<Vec<(Vec<u8>, Vec<u8>)>, String>;
/// The state machine store of a node.
type Sm = walstate_raft::StateMachineStore<Types, walstate::KvState>;

/// The whole run may take this long; past it the driver kills the nodes and fails.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// The cluster's size.
const NODES: u64 = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("node") => run_node(&args[1..]),
        Some("bench") => match args.get(1).map_or(Ok(2000), |n| n.parse::<u64>()) {
            Ok(writes) => bench(writes),
            Err(err) => Err(format!("usage: cluster bench [WRITES]: {err}")),
        },
        count => {
            let count = count.map_or(Ok(1000), str::parse::<u64>);
            match count {
                Ok(count) => drive(count),
                Err(err) => Err(format!("usage: cluster [WRITES_PER_PHASE]: {err}")),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cluster: {err}");
            ExitCode::FAILURE
        }
    }
}
