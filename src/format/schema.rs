//! The schema record: which state and command types (and which codec) wrote a file,
//! as stored in a schema file (wal-format.md section 5.1). Bytes only; what the shape
//! bytes mean is [`crate::schema::Shape`]'s business.

use std::fmt;

use super::le_u32;

/// Version of the schema record layout (its first byte).
pub const SCHEMA_RECORD_VERSION: u8 = 1;
/// The longest declared schema name, in bytes of UTF-8.
pub const SCHEMA_NAME_MAX: usize = 256;
/// The largest encoded shape a schema record holds (1 MiB).
pub const SCHEMA_SHAPE_MAX: usize = 1 << 20;

/// Fixed part of a record: version, codec, declared version, name length, shape flag,
/// shape length.
const FIXED_LEN: usize = 1 + 1 + 4 + 2 + 1 + 4;

/// The id of a schema: FNV-1a 64 of its schema record's bytes, never 0 (0 in a header
/// means "no schema recorded"). Shown as 16 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaId(u64);

impl SchemaId {
    /// The id for a non-zero value.
    pub const fn new(value: u64) -> Option<SchemaId> {
        if value == 0 {
            None
        } else {
            Some(SchemaId(value))
        }
    }

    /// The raw value, as stored in headers.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id of the schema whose record encodes to `record`.
    pub fn of_record(record: &[u8]) -> SchemaId {
        // FNV-1a 64: stable, specified in a line, and plenty for telling apart the few
        // schemas one store sees (this is an identity check, not a defence).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in record {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        SchemaId(hash.max(1))
    }
}

impl serde::Serialize for SchemaId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A schema record as stored: the codec's id, the declared name and version (empty and
/// 0 when the application declares none), and the encoded shape of the state and
/// command types (absent when they could not be traced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// The codec of state and command bytes (`crate::codec::Codec::id`).
    pub codec: u8,
    /// The declared version, 0 when none is declared.
    pub version: u32,
    /// The declared name, or, when the types could not be traced and none is declared,
    /// the Rust type names of state and command; empty otherwise.
    pub name: String,
    /// The traced shape ([`crate::schema::Shape::encode`]), if any.
    pub shape: Option<Vec<u8>>,
}

/// Why a schema record was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaRecordError {
    /// Fewer bytes than the lengths say.
    Truncated,
    /// Bytes after the record.
    TrailingBytes,
    /// A record layout version this build does not read.
    UnsupportedVersion(u8),
    /// A field out of range.
    BadField(&'static str),
}

impl fmt::Display for SchemaRecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaRecordError::Truncated => f.write_str("schema record is truncated"),
            SchemaRecordError::TrailingBytes => f.write_str("bytes after the schema record"),
            SchemaRecordError::UnsupportedVersion(v) => write!(
                f,
                "schema record version {v}, this build reads version {SCHEMA_RECORD_VERSION}"
            ),
            SchemaRecordError::BadField(what) => f.write_str(what),
        }
    }
}

impl SchemaRecord {
    /// Encodes the record: `version u8, codec u8, declared_version u32, name_len u16,
    /// name, has_shape u8, shape_len u32, shape` (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.name.len() <= SCHEMA_NAME_MAX);
        let shape = self.shape.as_deref().unwrap_or(&[]);
        debug_assert!(shape.len() <= SCHEMA_SHAPE_MAX);
        let mut out = Vec::with_capacity(FIXED_LEN + self.name.len() + shape.len());
        out.push(SCHEMA_RECORD_VERSION);
        out.push(self.codec);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.push(u8::from(self.shape.is_some()));
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        out.extend_from_slice(shape);
        out
    }

    /// The record's id.
    pub fn id(&self) -> SchemaId {
        SchemaId::of_record(&self.encode())
    }

    /// Decodes a record that must fill `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<SchemaRecord, SchemaRecordError> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], SchemaRecordError> {
            let end = at + n;
            let part = bytes.get(at..end).ok_or(SchemaRecordError::Truncated)?;
            at = end;
            Ok(part)
        };
        let version = take(1)?[0];
        if version != SCHEMA_RECORD_VERSION {
            return Err(SchemaRecordError::UnsupportedVersion(version));
        }
        let codec = take(1)?[0];
        let declared = le_u32(take(4)?, 0);
        let name_len = u16::from_le_bytes([take(1)?[0], take(1)?[0]]) as usize;
        if name_len > SCHEMA_NAME_MAX {
            return Err(SchemaRecordError::BadField(
                "schema name longer than 256 bytes",
            ));
        }
        let name = std::str::from_utf8(take(name_len)?)
            .map_err(|_| SchemaRecordError::BadField("schema name is not UTF-8"))?
            .to_owned();
        let has_shape = take(1)?[0];
        let shape_len = le_u32(take(4)?, 0) as usize;
        if shape_len > SCHEMA_SHAPE_MAX {
            return Err(SchemaRecordError::BadField("shape longer than 1 MiB"));
        }
        let shape = match has_shape {
            0 if shape_len == 0 => None,
            0 => return Err(SchemaRecordError::BadField("shape bytes without a shape")),
            1 => Some(take(shape_len)?.to_vec()),
            _ => return Err(SchemaRecordError::BadField("shape flag is not 0 or 1")),
        };
        if at != bytes.len() {
            return Err(SchemaRecordError::TrailingBytes);
        }
        Ok(SchemaRecord {
            codec,
            version: declared,
            name,
            shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SchemaRecord {
        SchemaRecord {
            codec: 1,
            version: 3,
            name: "config".into(),
            shape: Some(vec![1, 2, 3]),
        }
    }

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let bytes = record().encode();
        assert_eq!(SchemaRecord::decode(&bytes), Ok(record()));
        for len in 0..bytes.len() {
            assert!(SchemaRecord::decode(&bytes[..len]).is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            SchemaRecord::decode(&longer),
            Err(SchemaRecordError::TrailingBytes)
        );
    }

    #[test]
    fn ids_differ_for_any_field_and_are_never_zero() {
        let base = record().id();
        let mut other = record();
        other.version = 4;
        assert_ne!(other.id(), base);
        other = record();
        other.codec = 0;
        assert_ne!(other.id(), base);
        other = record();
        other.shape = None;
        assert_ne!(other.id(), base);
        assert_ne!(SchemaId::of_record(&[]).get(), 0);
        assert_eq!(SchemaId::new(0), None);
    }
}
