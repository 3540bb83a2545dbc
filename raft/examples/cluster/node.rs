//! A node process: openraft on walstate storage, served over HTTP (axum).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use walstate::{KvCommand, KvState, Options};

use crate::network::Network;
use crate::{Dump, NodeId, Sm, Types};

/// What the node's HTTP handlers share.
struct App {
    raft: Raft<Types>,
    sm: Sm,
}

pub(crate) fn run_node(args: &[String]) -> Result<(), String> {
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
