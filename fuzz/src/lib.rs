//! Helpers shared by the walstate fuzz targets: a byte reader that turns fuzzer input
//! into decisions, and the reference model of the key-value state machine (the same
//! file the integration tests use).
//!
//! The reader never fails: once the input is used up every read returns zeros, so a
//! short input is simply a short program.

use walstate::KvCommand;

/// Reads decisions from fuzzer bytes; returns zeros once the input is exhausted.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// One byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        let byte = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        byte
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value in `0..n` (`n` must be at least 1), from one byte.
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// True with probability about `percent`%.
    pub fn chance(&mut self, percent: u8) -> bool {
        u32::from(self.u8()) * 100 < u32::from(percent) * 256
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn short_bytes(&mut self, max: usize) -> &'a [u8] {
        let len = self.below(max + 1);
        self.bytes(len)
    }

    /// An LSN or sequence number: usually `usual`, sometimes close to it, sometimes an
    /// extreme value (0, 1, `u64::MAX`, ...).
    pub fn number_near(&mut self, usual: u64) -> u64 {
        match self.below(16) {
            0..=10 => usual,
            11 => usual.wrapping_add(1),
            12 => usual.wrapping_sub(1),
            13 => u64::from(self.u8()),
            14 => [
                0,
                1,
                u64::MAX,
                u64::MAX - 1,
                1 << 32,
                i64::MAX as u64,
                (1 << 62) - 1,
                1 << 62,
                (1 << 62) + 1,
            ][self.below(9)],
            _ => self.u64(),
        }
    }
}

/// A key from a small alphabet, so keys collide, share prefixes and include 0xFF.
pub fn key(input: &mut Input<'_>) -> Vec<u8> {
    const ALPHABET: [u8; 4] = [b'a', b'b', 0x00, 0xFF];
    let len = input.below(3);
    (0..len).map(|_| ALPHABET[input.below(4)]).collect()
}

/// A value: usually short, sometimes large enough to force segment rotation or to
/// exceed a small record limit.
pub fn value(input: &mut Input<'_>) -> Vec<u8> {
    let len = match input.below(16) {
        0..=12 => input.below(12),
        13 | 14 => 100 + input.below(256) * 4,
        _ => 1000 + input.below(256) * 16,
    };
    let fill = input.u8();
    vec![fill; len]
}

/// An optional value (for compare-and-set).
pub fn opt_value(input: &mut Input<'_>) -> Option<Vec<u8>> {
    if input.chance(30) {
        None
    } else {
        Some(value(input))
    }
}

/// A key-value command of any kind.
pub fn command(input: &mut Input<'_>) -> KvCommand {
    match input.below(10) {
        0..=3 => KvCommand::Put {
            key: key(input),
            value: value(input),
        },
        4 | 5 => KvCommand::Delete { key: key(input) },
        6 | 7 => KvCommand::CompareAndSet {
            key: key(input),
            expected: opt_value(input),
            new: opt_value(input),
        },
        8 => KvCommand::DeleteRange {
            start: key(input),
            end: key(input),
        },
        _ => KvCommand::DeletePrefix { prefix: key(input) },
    }
}

#[path = "../../tests/common/kv_model.rs"]
mod kv_model;

/// The one key-value reference model, shared with the integration tests
/// (`tests/common/kv_model.rs`): `model_apply` returns what `KvState::apply` must.
pub use kv_model::{Map, apply as model_apply, state_map};

/// Hex dump of a byte string (for failure messages).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A process-wide switch read once from the environment: `WALSTATE_FUZZ_<name>=1`.
/// Used to re-enable scenarios that hit known, reported library bugs.
pub fn env_flag(name: &str) -> bool {
    static FLAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FLAGS
        .get_or_init(|| {
            std::env::vars()
                .filter_map(|(k, v)| {
                    let name = k.strip_prefix("WALSTATE_FUZZ_")?;
                    (v == "1").then(|| name.to_string())
                })
                .collect()
        })
        .iter()
        .any(|set| set == name)
}
