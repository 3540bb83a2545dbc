//! The benchmark: replicated durable commits per second, on disk and on walstate's
//! in-memory file system.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crate::driver::{Cluster, form, write_puts};
use crate::{NODES, NodeId};

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
pub(crate) fn bench(writes: u64) -> Result<(), String> {
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
