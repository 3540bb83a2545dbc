//! A manifest and its lock file that must never disagree: both are updated in one
//! atomic batch, so a crash or a full disk at any point leaves both old or both new —
//! no more "manifest says v2, lock still says v1" after a failed update.
//!
//! Run: `cargo run --example manifest_lock [-- DIR]` (default: `walstate-examples/manifest-store`
//! under the system's temp directory; it prints where).

use walstate::{KvStore, Options};

/// Where the store goes without an argument: a fixed directory under the system's temp
/// directory (kept between runs, so a second run reopens it), never the working tree.
fn default_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("walstate-examples").join(name)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| default_dir("manifest-store"), Into::into);
    println!("store: {}", dir.display());
    let store = KvStore::open(&dir, Options::default())?;

    let current = store
        .get(b"manifest.version")?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    println!("current manifest version: {current:?}");
    let next = current
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;

    // Manifest, lock entry and version go to disk as one all-or-nothing batch: one
    // atomic group of records, one durable point.
    let manifest = format!(r#"{{"version":{next},"packages":["a","b"]}}"#);
    let lock = format!("sha256-of-v{next}");
    let version = next.to_string();
    store.put_batch([
        ("manifest.json", manifest.as_str()),
        ("manifest.lock", lock.as_str()),
        ("manifest.version", version.as_str()),
    ])?;
    println!(
        "manifest: {:?}",
        store.get(b"manifest.json")?.map(String::from_utf8)
    );
    println!(
        "lock:     {:?}",
        store.get(b"manifest.lock")?.map(String::from_utf8)
    );
    Ok(())
}
