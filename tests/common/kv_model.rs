//! The one reference model of the key-value state machine: a plain `BTreeMap`, and
//! [`apply`], written independently of `KvState::apply` (no shared code, no B-tree
//! tricks), returning what the real state machine must return.
//!
//! Shared without widening the library's API: the integration tests include it as
//! `common::kv_model` (`tests/kv_model.rs` checks `KvState` against it, `crash_sim.rs`
//! replays workloads on it), and the fuzz crate includes this same file with
//! `#[path = "../../tests/common/kv_model.rs"]`. So it may use only `walstate`'s public
//! API and `std`.

use std::collections::BTreeMap;

use walstate::{CasMismatch, KvApplied, KvCommand, KvOutput, KvState};

/// The model's state: every key with its value, in byte order.
pub type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Applies `command` to `map` and returns what `KvState::apply` must return. A rejected
/// compare-and-set leaves `map` unchanged.
pub fn apply(map: &mut Map, command: &KvCommand) -> KvOutput {
    match command {
        KvCommand::Put { key, value } => Ok(KvApplied::Put {
            previous: map.insert(key.clone(), value.clone()),
        }),
        KvCommand::Delete { key } => Ok(KvApplied::Deleted {
            previous: map.remove(key),
        }),
        KvCommand::DeleteRange { start, end } => Ok(remove_where(map, |k| {
            start.as_slice() <= k && k < end.as_slice()
        })),
        KvCommand::DeletePrefix { prefix } => Ok(remove_where(map, |k| k.starts_with(prefix))),
        KvCommand::CompareAndSet { key, expected, new } => {
            let actual = map.get(key).cloned();
            if actual != *expected {
                return Err(CasMismatch {
                    key: key.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
            match new {
                Some(value) => map.insert(key.clone(), value.clone()),
                None => map.remove(key),
            };
            Ok(KvApplied::Swapped)
        }
    }
}

/// Removes every key `doomed` accepts; the output of a range or prefix delete.
fn remove_where(map: &mut Map, doomed: impl Fn(&[u8]) -> bool) -> KvApplied {
    let before = map.len();
    map.retain(|k, _| !doomed(k));
    KvApplied::DeletedRange {
        removed: (before - map.len()) as u64,
    }
}

/// The contents of a `KvState` as a model map.
pub fn state_map(state: &KvState) -> Map {
    state
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}
