//! The store's identity: the random id every version-2 file carries, and the layout of
//! the `IDENTITY` file that holds it (`wal-format.md` section 3.1).

use std::fmt;

use super::{
    CheckpointError, FORMAT_VERSION, IDENTITY_FLAG_LEGACY_V1, IDENTITY_LEN, IDENTITY_MAGIC,
    KNOWN_IDENTITY_FLAGS, crc, le_u32, le_u64,
};

/// The random 64-bit id a store gets at creation; every version-2 file carries it, so a
/// file from another store is recognised wherever it turns up. Never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct StoreId(u64);

impl StoreId {
    /// The id as stored on disk (`None` for 0, which no store has).
    pub fn new(raw: u64) -> Option<StoreId> {
        (raw != 0).then_some(StoreId(raw))
    }

    /// A fresh random id (from the kernel's `getrandom`, mixed with the clock and the
    /// process id should that fail).
    pub fn generate() -> StoreId {
        let mut raw = [0u8; 8];
        // SAFETY: getrandom writes at most `raw.len()` bytes into the buffer it is given.
        let filled = unsafe { libc::getrandom(raw.as_mut_ptr().cast(), raw.len(), 0) };
        let mut value = u64::from_le_bytes(raw);
        if filled != raw.len() as isize {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            value = splitmix(nanos ^ (u64::from(std::process::id()) << 32));
        }
        StoreId(value.max(1))
    }

    /// The raw value written to disk.
    pub fn get(self) -> u64 {
        self.0
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<StoreId> for String {
    fn from(id: StoreId) -> String {
        id.to_string()
    }
}

/// The contents of the identity file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The store's id.
    pub store_id: StoreId,
    /// Flags, see `IDENTITY_FLAG_*`.
    pub flags: u32,
}

impl Identity {
    /// True when version-1 files (which name no store) may still be in the store.
    pub fn legacy_v1(&self) -> bool {
        self.flags & IDENTITY_FLAG_LEGACY_V1 != 0
    }

    /// Encodes the identity file.
    pub fn encode(&self) -> [u8; IDENTITY_LEN] {
        let mut out = [0u8; IDENTITY_LEN];
        out[0..8].copy_from_slice(&IDENTITY_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.store_id.get().to_le_bytes());
        let sum = crc(&[&out[0..28]]);
        out[28..32].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes and validates an identity file.
    pub fn decode(bytes: &[u8]) -> Result<Identity, CheckpointError> {
        if bytes.len() < IDENTITY_LEN {
            return Err(CheckpointError::Truncated);
        }
        if bytes.len() > IDENTITY_LEN {
            return Err(CheckpointError::TrailingBytes);
        }
        if bytes[0..8] != IDENTITY_MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        if crc(&[&bytes[0..28]]) != le_u32(bytes, 28) {
            return Err(CheckpointError::BadChecksum);
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION && version != super::FORMAT_VERSION_V2 {
            return Err(CheckpointError::UnsupportedVersion(version));
        }
        let flags = le_u32(bytes, 12);
        if flags & !KNOWN_IDENTITY_FLAGS != 0 || le_u32(bytes, 24) != 0 {
            return Err(CheckpointError::BadField("unknown identity flags"));
        }
        let store_id =
            StoreId::new(le_u64(bytes, 16)).ok_or(CheckpointError::BadField("store id 0"))?;
        Ok(Identity { store_id, flags })
    }
}
