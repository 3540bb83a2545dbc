//! The built-in state machine: an ordered map of byte keys to byte values.
//!
//! [`KvState`] is changed only by applying [`KvCommand`]s, each of which returns a
//! [`KvOutput`]. A failed compare-and-set is a rejection ([`CasMismatch`]), not a store
//! error: it is logged like any command and changes nothing.
//!
//! One job per file: `keys` (the key and value byte types and their order), `queries`
//! (reads), `commands` (commands, outputs and the apply logic), `encoding` (serde),
//! `tree` (the persistent B+tree the map is).

mod commands;
mod encoding;
mod keys;
mod queries;
#[cfg(test)]
mod tests;
mod tree;

use crate::state::StateMachine;

pub(crate) use commands::PreparedPut;
pub use commands::{CasMismatch, KvApplied, KvCommand, KvOutput};
pub use queries::Entries;

use encoding::{Drained, bytes};
use tree::Tree;
use keys::Entry;

/// The declared schema name of [`KvState`] stores.
pub const KV_SCHEMA_NAME: &str = "walstate.kv";

/// An ordered map of byte keys to byte values.
///
/// Backed by a persistent B+tree (`tree.rs`): `clone` is O(1) and shares structure
/// with the original, which is what lets checkpoints snapshot it under a short lock, and
/// a checkpoint loads by building it from the sorted file in one pass (full leaves, no
/// per-key descent).
/// Each key and its value share one reference-counted allocation behind a one-word
/// pointer (`keys::Entry`), so the copy-on-write of a shared leaf after a snapshot copies
/// 16-byte slots (key head, pointer), not the bytes; and each key keeps its first 8 bytes
/// inline and compares them first, so most comparisons in the tree's binary searches
/// touch no allocation (the order is still exactly the byte order).
///
/// A checkpoint's snapshot does not stay shared for the length of the checkpoint: its
/// entries are first moved out into a flat list (8 bytes per entry, freed as written;
/// see [`StateMachine::encode_owned`]), so commits during the checkpoint change the
/// live map's leaves in place instead of copying them.
///
/// Serialized as a sequence of `(key, value)` pairs in strictly increasing key order (the
/// same bytes as a `Vec<(Vec<u8>, Vec<u8>)>` in bincode); deserializing rejects unsorted
/// or duplicate keys.
#[derive(Default, Clone, Debug)]
pub struct KvState {
    map: Tree<Entry, ()>,
    /// Sum of key and value lengths over all entries.
    bytes: usize,
}

/// Same entries: equal keys with equal values, in order.
impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for KvState {}

impl StateMachine for KvState {
    type Command = KvCommand;
    type Output = KvOutput;

    /// Byte strings and options only: checked by `commands_round_trip` in `tests.rs`.
    const COMMANDS_ROUND_TRIP: bool = true;
    /// Declared, so tools name it: a store of `walstate.kv v1` is the CLI's own.
    const SCHEMA: Option<crate::schema::SchemaName> =
        Some(crate::schema::SchemaName::new(KV_SCHEMA_NAME, 1));

    /// Checks an encoded state one entry at a time (memory for one entry, not a second
    /// map): every pair decodes, keys strictly increase, nothing trails.
    fn check_encoded(encoded: &mut dyn std::io::Read, len: u64) -> crate::Result<()> {
        let mut previous: Option<Vec<u8>> = None;
        let mut index = 0u64;
        // Through `deserialize_byte_buf` (as `KvState` itself decodes), not as a `Vec<u8>`
        // sequence of single bytes: the same bytes are checked, one read per key or value.
        crate::codec::for_each_in_seq::<(bytes::De, bytes::De)>(
            encoded,
            len,
            |(bytes::De(key), _)| {
                if previous.as_ref().is_some_and(|last| key <= *last) {
                    return Err(crate::Error::codec(
                        crate::error::CodecFailure::InvalidValue,
                        format!("KvState entry {index}: keys are not unique and sorted"),
                    ));
                }
                previous = Some(key);
                index += 1;
                Ok(())
            },
        )
    }

    /// Same bytes as encoding by reference, but first moves the entries out of the
    /// snapshot's B-tree into a flat list (16 bytes per entry, two pointers), which frees
    /// the snapshot's tree and so ends its sharing with the live map: commits stop copying
    /// B-tree leaves (1.5 KiB each) for the rest of the checkpoint. The list is freed as
    /// it is written, and with it any value the live map has replaced since.
    fn encode_owned<W: std::io::Write>(self, out: &mut W) -> crate::Result<()> {
        crate::codec::encode_into(&Drained::new(self.map), out).map(drop)
    }

    /// Puts (almost every record of a journal) are applied from the payload's bytes in
    /// place: one allocation for the entry, no command built. Anything else is decoded.
    fn apply_encoded(&mut self, payload: &[u8]) -> crate::Result<()> {
        if let Some((key, value)) = encoding::borrowed_put(payload) {
            self.insert(Entry::new(key, value));
            return Ok(());
        }
        let command = Self::CODEC.decode::<KvCommand>(payload)?;
        // A rejected compare-and-set is an output, not a failure: replay drops it too.
        let _output = self.apply_owned(command);
        Ok(())
    }

    fn apply(&mut self, command: &KvCommand) -> KvOutput {
        self.apply_command(command)
    }

    /// Same result as [`apply`](StateMachine::apply); a rejected compare-and-set moves
    /// the command's key and expected value into the [`CasMismatch`] instead of cloning
    /// them. A `Put` still copies its bytes once, into the map's `SharedBytes`
    /// allocations (a reference-counted allocation cannot adopt a `Vec`'s buffer), but
    /// frees the command's buffers right away.
    fn apply_owned(&mut self, command: KvCommand) -> KvOutput {
        self.apply_command_owned(command)
    }
}
