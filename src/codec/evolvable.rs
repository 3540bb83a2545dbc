//! The evolvable codec: CBOR (RFC 8949) through `ciborium`, behind a structure check of
//! our own that bounds declared lengths and nesting before ciborium allocates anything.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EVOLVABLE_DEPTH_MAX, expect_end};
use crate::error::{CodecFailure, Error, Result};

pub(super) fn cbor_encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| cbor_encode_error::<T>(&e))?;
    Ok(out)
}

pub(super) fn cbor_encode_into<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> Result<usize> {
    let mut counted = CountingWriter {
        inner: writer,
        written: 0,
    };
    ciborium::into_writer(value, &mut counted).map_err(|e| cbor_encode_error::<T>(&e))?;
    Ok(counted.written)
}

/// Counts what passes through to `inner`.
struct CountingWriter<'a, W: std::io::Write> {
    inner: &'a mut W,
    written: usize,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(super) fn cbor_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let ty = std::any::type_name::<T>();
    let len = bytes.len();
    let end = check_cbor(bytes).map_err(|e| {
        Error::codec(
            CodecFailure::Decode,
            format!("cannot decode {ty} from {len} bytes: {e}"),
        )
    })?;
    if end != len {
        return Err(Error::codec(
            CodecFailure::TrailingBytes,
            format!(
                "{} trailing bytes after a complete {ty} ({end} of {len} bytes used): the bytes are corrupt or hold a different type",
                len - end,
            ),
        ));
    }
    // The structure check bounds nesting at EVOLVABLE_DEPTH_MAX containers; ciborium
    // counts a few more levels of its own (enum variants), so its limit is a backstop.
    ciborium::de::from_reader_with_recursion_limit(bytes, 2 * EVOLVABLE_DEPTH_MAX)
        .map_err(|e| cbor_decode_error::<T>(&e, len))
}

pub(super) fn cbor_decode_from_reader<T: DeserializeOwned>(
    reader: &mut dyn std::io::Read,
    input_len: u64,
) -> Result<T> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    // `take` + `read_to_end` grows the buffer with the bytes that arrive, so a wrong
    // `input_len` cannot make this allocate more than the reader holds.
    reader
        .take(input_len)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::codec(CodecFailure::Decode, format!("reading encoded bytes: {e}")))?;
    if (bytes.len() as u64) < input_len {
        return Err(Error::codec(
            CodecFailure::Decode,
            format!(
                "cannot decode {}: input ends early ({} of {input_len} bytes; truncated or corrupt)",
                std::any::type_name::<T>(),
                bytes.len()
            ),
        ));
    }
    expect_end(reader)?;
    cbor_decode(&bytes)
}

/// Why CBOR bytes are structurally unusable, found before any decoding.
#[derive(Debug)]
enum CborDefect {
    /// The input ends inside the item starting at `offset`.
    Truncated { offset: usize },
    /// An item at `offset` declares `claimed` bytes or elements; fewer bytes remain.
    LengthExceedsInput {
        offset: usize,
        claimed: u64,
        remaining: usize,
    },
    /// Nesting deeper than [`EVOLVABLE_DEPTH_MAX`] at `offset`.
    TooDeep { offset: usize },
    /// A byte at `offset` that starts no valid item here.
    Malformed { offset: usize, what: &'static str },
}

impl std::fmt::Display for CborDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CborDefect::Truncated { offset } => write!(
                f,
                "input ends early inside the item at byte {offset} (truncated or corrupt)"
            ),
            CborDefect::LengthExceedsInput {
                offset,
                claimed,
                remaining,
            } => write!(
                f,
                "a length prefix at byte {offset} claims {claimed} bytes or elements but only {remaining} bytes follow (corrupt or hostile bytes)"
            ),
            CborDefect::TooDeep { offset } => write!(
                f,
                "nesting deeper than {EVOLVABLE_DEPTH_MAX} levels at byte {offset} (corrupt or hostile bytes)"
            ),
            CborDefect::Malformed { offset, what } => {
                write!(f, "malformed CBOR at byte {offset}: {what}")
            }
        }
    }
}

/// Walks the one CBOR item at the start of `bytes` without decoding it and returns where
/// it ends. Checks every declared length against the bytes left (an element takes at
/// least one byte, a map entry two), the nesting depth, and well-formedness of headers
/// and indefinite-length items. Linear in the input: each step consumes a byte or more.
fn check_cbor(bytes: &[u8]) -> std::result::Result<usize, CborDefect> {
    let mut walker = CborWalker { bytes, pos: 0 };
    walker.item(0)?;
    debug_assert!(walker.pos <= bytes.len());
    Ok(walker.pos)
}

struct CborWalker<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// CBOR major types (the top three bits of an item's first byte).
const CBOR_UNSIGNED: u8 = 0;
const CBOR_NEGATIVE: u8 = 1;
const CBOR_BYTES: u8 = 2;
const CBOR_TEXT: u8 = 3;
const CBOR_ARRAY: u8 = 4;
const CBOR_MAP: u8 = 5;
const CBOR_TAG: u8 = 6;
/// The additional-information value that marks an indefinite length (or a break).
const CBOR_INDEFINITE: u8 = 31;
/// The whole byte that ends an indefinite-length item.
const CBOR_BREAK: u8 = 0xff;

impl CborWalker<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, start: usize) -> std::result::Result<&[u8], CborDefect> {
        if n > self.remaining() {
            return Err(CborDefect::Truncated { offset: start });
        }
        let taken = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    /// Reads an item header: (major type, additional info, argument). The argument of an
    /// indefinite length (additional info 31) is 0.
    fn header(&mut self) -> std::result::Result<(u8, u8, u64), CborDefect> {
        let start = self.pos;
        let initial = self.take(1, start)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        let width = match info {
            0..=23 => return Ok((major, info, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            CBOR_INDEFINITE => return Ok((major, info, 0)),
            _ => {
                return Err(CborDefect::Malformed {
                    offset: start,
                    what: "reserved additional information (28-30)",
                });
            }
        };
        let arg = self
            .take(width, start)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Ok((major, info, arg))
    }

    /// Checks that `claimed` units of `unit_bytes` each fit in the rest of the input.
    fn fits(
        &self,
        claimed: u64,
        unit_bytes: u64,
        offset: usize,
    ) -> std::result::Result<usize, CborDefect> {
        let remaining = self.remaining();
        match claimed.checked_mul(unit_bytes) {
            Some(need) if need <= remaining as u64 => Ok(claimed as usize),
            _ => Err(CborDefect::LengthExceedsInput {
                offset,
                claimed,
                remaining,
            }),
        }
    }

    fn item(&mut self, depth: usize) -> std::result::Result<(), CborDefect> {
        let start = self.pos;
        let (major, info, arg) = self.header()?;
        let indefinite = info == CBOR_INDEFINITE;
        match major {
            CBOR_UNSIGNED | CBOR_NEGATIVE if indefinite => Err(CborDefect::Malformed {
                offset: start,
                what: "an integer cannot have indefinite length",
            }),
            CBOR_UNSIGNED | CBOR_NEGATIVE => Ok(()),
            CBOR_BYTES | CBOR_TEXT if indefinite => self.chunks(major, start),
            CBOR_BYTES | CBOR_TEXT => {
                let len = self.fits(arg, 1, start)?;
                self.take(len, start).map(drop)
            }
            CBOR_ARRAY | CBOR_MAP | CBOR_TAG if depth >= EVOLVABLE_DEPTH_MAX => {
                Err(CborDefect::TooDeep { offset: start })
            }
            CBOR_ARRAY | CBOR_MAP if indefinite => {
                self.until_break(major == CBOR_MAP, depth + 1, start)
            }
            CBOR_ARRAY | CBOR_MAP => {
                let per_element = if major == CBOR_MAP { 2 } else { 1 };
                let count = self.fits(arg, per_element, start)?;
                for _ in 0..count * per_element as usize {
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            CBOR_TAG if indefinite => Err(CborDefect::Malformed {
                offset: start,
                what: "a tag cannot have indefinite length",
            }),
            CBOR_TAG => self.item(depth + 1),
            _ if indefinite => Err(CborDefect::Malformed {
                offset: start,
                what: "a break outside an indefinite-length item",
            }),
            _ => Ok(()), // simple values and floats: the header was the whole item
        }
    }

    /// The elements (or, for a map, keys and values) of an indefinite-length array or map.
    fn until_break(
        &mut self,
        map: bool,
        depth: usize,
        start: usize,
    ) -> std::result::Result<(), CborDefect> {
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(CborDefect::Truncated { offset: start }),
                Some(&CBOR_BREAK) => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => {
                    self.item(depth)?;
                    if map {
                        self.item(depth)?;
                    }
                }
            }
        }
    }

    /// The chunks of an indefinite-length byte or text string: definite-length strings of
    /// the same major type, then a break.
    fn chunks(&mut self, major: u8, start: usize) -> std::result::Result<(), CborDefect> {
        loop {
            if self.bytes.get(self.pos) == Some(&CBOR_BREAK) {
                self.pos += 1;
                return Ok(());
            }
            let chunk_start = self.pos;
            let (chunk_major, info, arg) = self
                .header()
                .map_err(|_| CborDefect::Truncated { offset: start })?;
            if chunk_major != major || info == CBOR_INDEFINITE {
                return Err(CborDefect::Malformed {
                    offset: chunk_start,
                    what: "an indefinite-length string chunk is not a definite string of the same type",
                });
            }
            let len = self.fits(arg, 1, chunk_start)?;
            self.take(len, chunk_start)?;
        }
    }
}

fn cbor_encode_error<T: ?Sized>(err: &ciborium::ser::Error<std::io::Error>) -> Error {
    let ty = std::any::type_name::<T>();
    match err {
        ciborium::ser::Error::Io(e) => Error::codec(
            CodecFailure::Encode,
            format!("cannot encode {ty}: writing: {e}"),
        ),
        ciborium::ser::Error::Value(msg) => {
            Error::codec(CodecFailure::Encode, format!("cannot encode {ty}: {msg}"))
        }
    }
}

fn cbor_decode_error<T>(err: &ciborium::de::Error<std::io::Error>, len: usize) -> Error {
    use ciborium::de::Error as De;
    let ty = std::any::type_name::<T>();
    match err {
        De::Semantic(_, msg) => Error::codec(
            CodecFailure::StructureMismatch,
            format!(
                "cannot decode {ty} from {len} bytes: {msg} (a field renamed without #[serde(alias)], a field added without #[serde(default)], a removed variant, or a changed type; see the codec module's evolution rules)"
            ),
        ),
        De::Syntax(offset) => Error::codec(
            CodecFailure::Decode,
            format!(
                "cannot decode {ty} from {len} bytes: malformed CBOR at byte {offset} (corrupt bytes)"
            ),
        ),
        De::RecursionLimitExceeded => Error::codec(
            CodecFailure::Decode,
            format!(
                "cannot decode {ty} from {len} bytes: nesting deeper than the decoder allows (corrupt or hostile bytes)"
            ),
        ),
        De::Io(e) => Error::codec(
            CodecFailure::Decode,
            format!("cannot decode {ty} from {len} bytes: {e} (truncated or corrupt)"),
        ),
    }
}
