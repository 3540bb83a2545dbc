//! Three openraft nodes on walstate storage, each its own process on loopback, and a
//! driver that checks no acknowledged write is lost when the leader is SIGKILLed.
//!
//! ```text
//! cargo run --release -p walstate-raft --example cluster              # 1,000 + 1,000 writes
//! cargo run --release -p walstate-raft --example cluster -- 100       # a smaller run
//! cargo run --release -p walstate-raft --example cluster -- bench 5000 # BENCHMARKS.md
//! ```
//!
//! The driver starts three node processes (this binary with `node ID DIR ADDR ADDR
//! ADDR`), forms the cluster, writes N puts through the leader, SIGKILLs the leader,
//! waits for a new one, writes N more, restarts the killed node on its directory, waits
//! until it has caught up (it is far enough behind to be sent a snapshot), and checks
//! that every acknowledged put is on all three nodes. It exits 0 only then, and 1 on any
//! failure or after two minutes. The network layer is HTTP with JSON bodies (axum,
//! reqwest), on 127.0.0.1 only.
//!
//! `bench WRITES` measures replicated durable commits per second at 1 and 16 clients,
//! on disk and on walstate's in-memory file system (the cost of durability), each on a
//! fresh cluster, and prints a Markdown table.

use std::collections::{BTreeMap, BTreeSet};
// The raft types' snapshot data (`declare_raft_types!` names it unqualified).
use std::io::Cursor;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;
use walstate::{KvCommand, KvOutput, KvState, Options};

openraft::declare_raft_types!(
    /// A replicated walstate `KvState`.
    pub Types: D = KvCommand, R = Option<KvOutput>
);

type NodeId = u64;
/// A node's whole key-value state, as `/dump` answers it.
type Dump = Result<Vec<(Vec<u8>, Vec<u8>)>, String>;
type Sm = walstate_raft::StateMachineStore<Types, KvState>;

/// The whole run may take this long; past it the driver kills the nodes and fails.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
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

// ------------------------------------------------------------------------------------
// A node: openraft on walstate storage, served over HTTP.

/// What the node's HTTP handlers share.
struct App {
    raft: Raft<Types>,
    sm: Sm,
}

fn run_node(args: &[String]) -> Result<(), String> {
    let [id, storage, snapshot_every, dir, addrs @ ..] = args else {
        return Err(
            "usage: cluster node ID disk|memory SNAPSHOT_EVERY DIR ADDR1 ADDR2 ADDR3".into(),
        );
    };
    let id: NodeId = id.parse().map_err(|e| format!("node id: {e}"))?;
    let snapshot_every: u64 = snapshot_every
        .parse()
        .map_err(|e| format!("snapshot interval: {e}"))?;
    let options = match storage.as_str() {
        "disk" => Options::default(),
        // The benchmark's baseline: the same storage code on walstate's in-memory file
        // system, where fdatasync costs nothing.
        "memory" => Options::default().vfs(walstate::io::SimFs::new(id)),
        other => return Err(format!("storage {other:?}: disk or memory")),
    };
    let addrs: Vec<String> = addrs.to_vec();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let config = Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
            max_in_snapshot_log_to_keep: snapshot_every / 2,
            ..Config::default()
        };
        let config = Arc::new(config.validate().map_err(|e| e.to_string())?);
        let (log, sm) = walstate_raft::open::<Types, KvState>(dir, options)
            .map_err(|e| format!("open the node's storage in {dir}: {e}"))?;
        let network = Network {
            client: reqwest::Client::new(),
        };
        let raft = Raft::new(id, config, network, log, sm.clone())
            .await
            .map_err(|e| e.to_string())?;
        let app = Arc::new(App { raft, sm });
        let router = Router::new()
            .route("/raft/append", post(append))
            .route("/raft/vote", post(vote))
            .route("/raft/snapshot", post(snapshot))
            .route("/init", post(init))
            .route("/write", post(write))
            .route("/status", get(status))
            .route("/dump", get(dump))
            .with_state(app);
        let addr = &addrs[(id - 1) as usize];
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        axum::serve(listener, router)
            .await
            .map_err(|e| e.to_string())
    })
}

async fn append(
    State(app): State<Arc<App>>,
    Json(rpc): Json<AppendEntriesRequest<Types>>,
) -> Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    Json(app.raft.append_entries(rpc).await)
}

async fn vote(
    State(app): State<Arc<App>>,
    Json(rpc): Json<VoteRequest<NodeId>>,
) -> Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>> {
    Json(app.raft.vote(rpc).await)
}

async fn snapshot(
    State(app): State<Arc<App>>,
    Json(rpc): Json<InstallSnapshotRequest<Types>>,
) -> Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>> {
    Json(app.raft.install_snapshot(rpc).await)
}

/// Forms the cluster from the given members (on one node only).
async fn init(
    State(app): State<Arc<App>>,
    Json(members): Json<BTreeMap<NodeId, BasicNode>>,
) -> Json<Result<(), String>> {
    Json(
        app.raft
            .initialize(members)
            .await
            .map_err(|e| e.to_string()),
    )
}

/// A client write: acknowledged once committed (durable on a majority) and applied.
async fn write(
    State(app): State<Arc<App>>,
    Json(command): Json<KvCommand>,
) -> Json<Result<(), String>> {
    let result = app.raft.client_write(command).await;
    Json(result.map(drop).map_err(|err| match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => "not the leader".into(),
        other => other.to_string(),
    }))
}

/// (current leader, last applied index, last snapshot index) of this node.
async fn status(State(app): State<Arc<App>>) -> Json<(Option<NodeId>, u64, Option<u64>)> {
    let metrics = app.raft.metrics().borrow().clone();
    let applied = metrics.last_applied.map_or(0, |id| id.index);
    let snapshot = metrics.snapshot.map(|id| id.index);
    Json((metrics.current_leader, applied, snapshot))
}

/// Every key and value of this node's state.
async fn dump(State(app): State<Arc<App>>) -> Json<Dump> {
    Json(
        app.sm
            .read(|kv| kv.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
            .map_err(|e| e.to_string()),
    )
}

/// The network layer: one HTTP client; a connection per request target.
struct Network {
    client: reqwest::Client,
}

struct Peer {
    client: reqwest::Client,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<Types> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            client: self.client.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

impl Peer {
    /// POSTs `body` to `path` and returns the peer's `Result`: an unreachable peer is
    /// `Unreachable` (openraft backs off), a refusal by the peer is a `RemoteError`.
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("http://{}{path}", self.addr);
        let response = self
            .client
            .post(url)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let result: Result<Resp, E> = response
            .json()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<Types> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Types>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Types>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("/raft/snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, option.hard_ttl()).await
    }
}

// ------------------------------------------------------------------------------------
// The driver.

/// The three node processes, killed when dropped.
struct Cluster {
    dir: PathBuf,
    /// `disk`, or `memory` (walstate's simulated file system).
    storage: &'static str,
    /// openraft's snapshot policy: a snapshot every this many entries.
    snapshot_every: u64,
    addrs: Vec<String>,
    children: BTreeMap<NodeId, Child>,
}

impl Cluster {
    fn start(dir: &Path, storage: &'static str, snapshot_every: u64) -> Result<Cluster, String> {
        let addrs = (0..NODES)
            .map(|_| free_loopback_addr())
            .collect::<Result<Vec<_>, _>>()?;
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            storage,
            snapshot_every,
            addrs,
            children: BTreeMap::new(),
        };
        for id in 1..=NODES {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, id: NodeId) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let node_dir = self.dir.join(format!("node-{id}"));
        let child = Command::new(exe)
            .arg("node")
            .arg(id.to_string())
            .arg(self.storage)
            .arg(self.snapshot_every.to_string())
            .arg(&node_dir)
            .args(&self.addrs)
            .spawn()
            .map_err(|e| format!("start node {id}: {e}"))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// SIGKILL: the process gets no chance to flush or close anything.
    fn kill(&mut self, id: NodeId) -> Result<(), String> {
        let mut child = self.children.remove(&id).ok_or("no such node")?;
        child.kill().map_err(|e| e.to_string())?;
        child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn url(&self, id: NodeId, path: &str) -> String {
        format!("http://{}{path}", self.addrs[(id - 1) as usize])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_loopback_addr() -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string())
}

fn drive(writes_per_phase: u64) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + RUN_DEADLINE;
    // Snapshots often and few entries kept after them, so the restarted node is sent a
    // snapshot: the install path runs too.
    let mut cluster = Cluster::start(tmp.path(), "disk", 50)?;
    let client = reqwest::Client::new();
    let outcome = runtime.block_on(async {
        match tokio::time::timeout_at(
            deadline.into(),
            scenario(&mut cluster, &client, writes_per_phase),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(format!("not done within {RUN_DEADLINE:?}")),
        }
    });
    drop(cluster);
    outcome
}

/// Waits for the nodes to answer, then forms the cluster of all three.
async fn form(cluster: &mut Cluster, client: &reqwest::Client) -> Result<(), String> {
    let members: BTreeMap<NodeId, BasicNode> = (1..=NODES)
        .map(|id| (id, BasicNode::new(&cluster.addrs[(id - 1) as usize])))
        .collect();
    let everyone: BTreeSet<NodeId> = (1..=NODES).collect();
    wait_until_up(cluster, client, &everyone).await?;
    let init: Result<(), String> = post_json(client, &cluster.url(1, "/init"), &members).await?;
    init.map_err(|e| format!("initialize: {e}"))
}

async fn scenario(cluster: &mut Cluster, client: &reqwest::Client, n: u64) -> Result<(), String> {
    let everyone: BTreeSet<NodeId> = (1..=NODES).collect();
    form(cluster, client).await?;

    let mut acked = BTreeMap::new();
    let leader = wait_for_leader(cluster, client, &everyone, None).await;
    println!("leader: node {leader}; writing {n}");
    write_puts(cluster, client, &everyone, 0..n, &mut acked).await?;

    let old = wait_for_leader(cluster, client, &everyone, None).await;
    let applied_at_kill = node_status(client, &cluster.url(old, "/status")).await?.1;
    cluster.kill(old)?;
    println!("SIGKILLed leader node {old} (applied up to index {applied_at_kill})");
    let survivors: BTreeSet<NodeId> = everyone.iter().copied().filter(|&id| id != old).collect();
    let leader = wait_for_leader(cluster, client, &survivors, Some(old)).await;
    println!("new leader: node {leader}; writing {n} more");
    write_puts(cluster, client, &survivors, n..2 * n, &mut acked).await?;

    cluster.spawn(old)?;
    println!("restarted node {old}; waiting for it to catch up");
    wait_until_up(cluster, client, &everyone).await?;
    let target = node_status(client, &cluster.url(leader, "/status"))
        .await?
        .1;
    loop {
        let mut behind = false;
        for &id in &everyone {
            behind |= node_status(client, &cluster.url(id, "/status")).await?.1 < target;
        }
        if !behind {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, snapshot) = node_status(client, &cluster.url(old, "/status")).await?;
    match snapshot {
        Some(index) if index > applied_at_kill => {
            println!("node {old} caught up through a snapshot up to index {index}")
        }
        _ => println!("node {old} caught up from the log"),
    }
    for &id in &everyone {
        let dump: Dump = get_json(client, &cluster.url(id, "/dump")).await?;
        let state: BTreeMap<Vec<u8>, Vec<u8>> = dump?.into_iter().collect();
        for (key, value) in &acked {
            if state.get(key) != Some(value) {
                return Err(format!(
                    "node {id} lacks the acknowledged put of {}",
                    String::from_utf8_lossy(key)
                ));
            }
        }
    }
    println!(
        "all {} acknowledged puts are on all {NODES} nodes",
        acked.len()
    );
    Ok(())
}

/// Replicated durable commits per second of a fresh cluster on `storage` with
/// `clients` concurrent clients, each writing one put at a time through the leader.
async fn measure(storage: &'static str, clients: u64, writes: u64) -> Result<f64, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cluster = Cluster::start(tmp.path(), storage, 5000)?;
    let client = reqwest::Client::new();
    form(&mut cluster, &client).await?;
    let everyone: BTreeSet<NodeId> = (1..=NODES).collect();
    let mut warm_up = BTreeMap::new();
    write_puts(&cluster, &client, &everyone, 0..100, &mut warm_up).await?;
    let cluster = Arc::new(cluster);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (cluster, client, everyone) =
                (Arc::clone(&cluster), client.clone(), everyone.clone());
            let range = 1_000 + c * writes / clients..1_000 + (c + 1) * writes / clients;
            tokio::spawn(async move {
                let mut acked = BTreeMap::new();
                write_puts(&cluster, &client, &everyone, range, &mut acked).await
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(writes as f64 / start.elapsed().as_secs_f64())
}

/// The benchmark: `writes` replicated puts at 1 and 16 clients, on disk and on the
/// in-memory file system, each on a fresh cluster; prints a Markdown table.
fn bench(writes: u64) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    println!("| clients | disk (commits/s) | memory (commits/s) | disk / memory |");
    println!("| ---: | ---: | ---: | ---: |");
    for clients in [1, 16] {
        let disk = runtime.block_on(measure("disk", clients, writes))?;
        let memory = runtime.block_on(measure("memory", clients, writes))?;
        println!(
            "| {clients} | {disk:.0} | {memory:.0} | {:.2} |",
            disk / memory
        );
    }
    Ok(())
}

/// Writes `k{i}` = `v{i}` for each i through the leader among `nodes`, one at a time,
/// retrying (a put is idempotent) until acknowledged; records each acknowledged one.
async fn write_puts(
    cluster: &Cluster,
    client: &reqwest::Client,
    nodes: &BTreeSet<NodeId>,
    range: std::ops::Range<u64>,
    acked: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<(), String> {
    let mut leader = wait_for_leader(cluster, client, nodes, None).await;
    for i in range {
        let (key, value) = (format!("k{i}").into_bytes(), format!("v{i}").into_bytes());
        let command = KvCommand::put(key.clone(), value.clone());
        loop {
            let result: Result<Result<(), String>, String> =
                post_json(client, &cluster.url(leader, "/write"), &command).await;
            if let Ok(Ok(())) = result {
                break;
            }
            leader = wait_for_leader(cluster, client, nodes, None).await;
        }
        acked.insert(key, value);
    }
    Ok(())
}

/// Polls `nodes` until one of them names a leader among `nodes` (other than `not`).
async fn wait_for_leader(
    cluster: &Cluster,
    client: &reqwest::Client,
    nodes: &BTreeSet<NodeId>,
    not: Option<NodeId>,
) -> NodeId {
    loop {
        for &id in nodes {
            if let Ok((Some(leader), _, _)) = node_status(client, &cluster.url(id, "/status")).await
                && nodes.contains(&leader)
                && Some(leader) != not
            {
                return leader;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until each of `nodes` answers; fails if one of their processes exited (it
/// could not bind its port, or open its storage: its error is on stderr).
async fn wait_until_up(
    cluster: &mut Cluster,
    client: &reqwest::Client,
    nodes: &BTreeSet<NodeId>,
) -> Result<(), String> {
    for &id in nodes {
        while node_status(client, &cluster.url(id, "/status"))
            .await
            .is_err()
        {
            if let Some(child) = cluster.children.get_mut(&id)
                && let Ok(Some(exit)) = child.try_wait()
            {
                return Err(format!("node {id} exited before it answered: {exit}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn node_status(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Option<NodeId>, u64, Option<u64>), String> {
    get_json(client, url).await
}

async fn get_json<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T, String> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

async fn post_json<B: Serialize, T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &B,
) -> Result<T, String> {
    let response = client
        .post(url)
        .timeout(Duration::from_secs(5))
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}
