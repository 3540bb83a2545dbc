//! The driver: starts the node processes, forms the cluster, writes through the leader,
//! SIGKILLs it, restarts it and checks every acknowledged write on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use walstate::KvCommand;

use crate::{Dump, NODES, NodeId, RUN_DEADLINE};

/// The three node processes, killed when dropped.
pub(crate) struct Cluster {
    dir: PathBuf,
    /// `disk`, or `memory` (walstate's simulated file system).
    storage: &'static str,
    /// openraft's snapshot policy: a snapshot every this many entries.
    snapshot_every: u64,
    addrs: Vec<String>,
    children: BTreeMap<NodeId, Child>,
}

impl Cluster {
    pub(crate) fn start(
        dir: &Path,
        storage: &'static str,
        snapshot_every: u64,
    ) -> Result<Cluster, String> {
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

    pub(crate) fn url(&self, id: NodeId, path: &str) -> String {
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

pub(crate) fn drive(writes_per_phase: u64) -> Result<(), String> {
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
pub(crate) async fn form(cluster: &mut Cluster, client: &reqwest::Client) -> Result<(), String> {
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

/// Writes `k{i}` = `v{i}` for each i through the leader among `nodes`, one at a time,
/// retrying (a put is idempotent) until acknowledged; records each acknowledged one.
pub(crate) async fn write_puts(
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
pub(crate) async fn wait_for_leader(
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
pub(crate) async fn wait_until_up(
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

pub(crate) async fn node_status(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Option<NodeId>, u64, Option<u64>), String> {
    get_json(client, url).await
}

pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

pub(crate) async fn post_json<B: Serialize, T: DeserializeOwned>(
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
