//! A manifest and its lock file that must never disagree: both are updated in one
//! atomic batch, so a crash or a full disk at any point leaves both old or both new —
//! no more "manifest says v2, lock still says v1" after a failed update.
//!
//! Run: `cargo run --example manifest_lock -- ./manifest-store`

use walstate::{KvStore, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./manifest-store".into());
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
