//! The shape model and its canonical bytes. Pure: no I/O, no serde-reflection types.
//!
//! A [`Shape`] is what bincode needs to know to decode a store's values: the serde
//! shape of the state type and of the command type, and every named container (struct
//! or enum) they reach, by serialized name. Field and variant order is part of the
//! shape, because bincode encodes fields in order and variants by index.
//!
//! # Canonical encoding (format version [`SHAPE_ENCODING_VERSION`] = 1)
//!
//! Every integer other than a tag is an unsigned LEB128 varint (7 bits per byte, low
//! group first, high bit set on every byte but the last) of at most 10 bytes, and must
//! be minimal: no trailing `0x80`-continued zero group (`0x80 0x00` is refused, `0x00`
//! is zero). A *string* is a varint byte length then that many bytes of UTF-8. A *tag*
//! is one byte. In order:
//!
//! ```text
//! shape      = version:u8 (= 0x01)  state:ty  command:ty
//!              container_count:varint  (name:string container){container_count}
//! ty         = tag:u8 [payload]
//!   0x00 unit   0x01 bool
//!   0x02 i8     0x03 i16    0x04 i32    0x05 i64    0x06 i128
//!   0x07 u8     0x08 u16    0x09 u32    0x0a u64    0x0b u128
//!   0x0c f32    0x0d f64    0x0e char   0x0f str    0x10 bytes
//!   0x11 option  ty
//!   0x12 seq     ty
//!   0x13 map     key:ty value:ty
//!   0x14 tuple   count:varint ty{count}
//!   0x15 array   ty len:varint
//!   0x16 named   name:string
//! container  = tag:u8 [payload]
//!   0x00 unit struct
//!   0x01 newtype struct  ty
//!   0x02 tuple struct    count:varint ty{count}
//!   0x03 struct          count:varint (name:string ty){count}
//!   0x04 enum            count:varint (name:string variant_body){count}   in index order
//! variant_body = tag:u8 [payload]
//!   0x00 unit   0x01 newtype ty   0x02 tuple count:varint ty{count}
//!   0x03 struct count:varint (name:string ty){count}
//! ```
//!
//! Nothing follows the last container. Containers appear in strictly increasing
//! byte-wise order of their names (so each name once). The fingerprint
//! ([`Shape::fingerprint`]) is FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`) over exactly these bytes.
//!
//! # What [`Shape::decode`] accepts
//! Exactly the bytes [`Shape::encode`] writes for a *valid* shape, so decoding then
//! re-encoding gives the input back. Valid means, besides the layout above:
//! - at most [`SHAPE_BYTES_MAX`] bytes of input, no trailing bytes;
//! - at most [`CONTAINERS_MAX`] containers, at most [`MEMBERS_MAX`] fields, variants or
//!   tuple elements in any one list;
//! - every name (container, field, variant) is 1 to [`NAME_BYTES_MAX`] bytes of UTF-8;
//!   field names are unique within their struct or struct variant, variant names within
//!   their enum;
//! - a type nests at most [`TY_DEPTH_MAX`] levels (`u8` is depth 1, `Option<u8>` 2;
//!   a `named` reference counts 1: containers are not inlined);
//! - every `named` reference names a container of the shape, and every container is
//!   reachable from the state or command type through such references.
//!
//! Every length read from the input is checked against the bytes that remain before
//! anything is allocated for it, so a hostile length cannot allocate more than the
//! input's size allows.

use std::collections::{BTreeMap, BTreeSet};

/// The first byte of every encoded shape.
pub const SHAPE_ENCODING_VERSION: u8 = 1;
/// Largest encoded shape [`Shape::decode`] accepts: 1 MiB.
pub const SHAPE_BYTES_MAX: usize = 1 << 20;
/// Most containers in one shape.
pub const CONTAINERS_MAX: usize = 4096;
/// Most fields, variants or tuple elements in one list.
pub const MEMBERS_MAX: usize = 4096;
/// Longest name (of a container, field or variant), in bytes of UTF-8.
pub const NAME_BYTES_MAX: usize = 256;
/// Deepest nesting of one type (`u8` is 1, `Vec<Option<u8>>` is 3).
pub const TY_DEPTH_MAX: usize = 64;

/// The serde shape of an unnamed value: a primitive, a composite of types, or a
/// reference to a named container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ty {
    /// `()`.
    Unit,
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    Str,
    /// A byte string (`serialize_bytes`; bincode writes it as a `Vec<u8>` is written,
    /// but serde keeps them apart).
    Bytes,
    /// `Option<T>`.
    Option(Box<Ty>),
    /// A sequence of any length (`Vec<T>`, sets).
    Seq(Box<Ty>),
    /// A map.
    Map {
        /// The key type.
        key: Box<Ty>,
        /// The value type.
        value: Box<Ty>,
    },
    /// A tuple of differing types.
    Tuple(Vec<Ty>),
    /// A tuple of `len` values of one type (`[T; N]`, or `(T, T)`).
    Array(Box<Ty>, u64),
    /// A named container of the same [`Shape`], by its serialized name.
    Named(String),
}

/// A named field of a struct or struct variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The serialized name.
    pub name: String,
    /// Its type.
    pub ty: Ty,
}

/// What follows a variant's index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VariantBody {
    /// `A`.
    Unit,
    /// `A(T)`.
    NewType(Ty),
    /// `A(T, U)`.
    Tuple(Vec<Ty>),
    /// `A { x: T }`.
    Struct(Vec<Field>),
}

/// One variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The serialized name.
    pub name: String,
    /// What it holds.
    pub body: VariantBody,
}

/// A named struct or enum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Container {
    /// `struct A;`
    UnitStruct,
    /// `struct A(T);`
    NewTypeStruct(Ty),
    /// `struct A(T, U);`
    TupleStruct(Vec<Ty>),
    /// `struct A { x: T }`: fields in encoding order.
    Struct(Vec<Field>),
    /// `enum A { .. }`: variants in index order (position `i` is encoded as `i`).
    Enum(Vec<Variant>),
}

/// The serde shape of a store's state and command types.
///
/// A valid shape (what [`Shape::decode`] and [`crate::schema::trace`] return) holds
/// exactly the containers reachable from its two roots; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    /// The state type.
    pub state: Ty,
    /// The command type.
    pub command: Ty,
    /// Every container the roots reach, by serialized name.
    pub containers: BTreeMap<String, Container>,
}

mod encoding;
mod render;

use encoding::{Reader, put_container, put_len, put_str, put_ty};
pub use render::render_ty;
pub(crate) use render::{render_container, render_variant};

// ---------------------------------------------------------------------------------------
// Walking references
// ---------------------------------------------------------------------------------------

/// Calls `each` with every container name `ty` refers to directly (not through other
/// containers).
pub(crate) fn names_in_ty<'a>(ty: &'a Ty, each: &mut dyn FnMut(&'a str)) {
    match ty {
        Ty::Option(inner) | Ty::Seq(inner) | Ty::Array(inner, _) => names_in_ty(inner, each),
        Ty::Map { key, value } => {
            names_in_ty(key, each);
            names_in_ty(value, each);
        }
        Ty::Tuple(items) => items.iter().for_each(|t| names_in_ty(t, each)),
        Ty::Named(name) => each(name),
        _ => {}
    }
}

/// Calls `each` with every container name `container` refers to directly.
pub(crate) fn names_in_container<'a>(container: &'a Container, each: &mut dyn FnMut(&'a str)) {
    let fields = |fields: &'a [Field], each: &mut dyn FnMut(&'a str)| {
        fields.iter().for_each(|f| names_in_ty(&f.ty, each));
    };
    match container {
        Container::UnitStruct => {}
        Container::NewTypeStruct(ty) => names_in_ty(ty, each),
        Container::TupleStruct(tys) => tys.iter().for_each(|t| names_in_ty(t, each)),
        Container::Struct(fs) => fields(fs, each),
        Container::Enum(variants) => {
            for variant in variants {
                match &variant.body {
                    VariantBody::Unit => {}
                    VariantBody::NewType(ty) => names_in_ty(ty, each),
                    VariantBody::Tuple(tys) => tys.iter().for_each(|t| names_in_ty(t, each)),
                    VariantBody::Struct(fs) => fields(fs, each),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shape
// ---------------------------------------------------------------------------------------

/// FNV-1a 64 offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Shape {
    /// The canonical bytes of this shape (layout in the module docs). Deterministic:
    /// equal shapes give equal bytes, on every platform and build.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(SHAPE_ENCODING_VERSION);
        put_ty(&mut out, &self.state);
        put_ty(&mut out, &self.command);
        put_len(&mut out, self.containers.len());
        for (name, container) in &self.containers {
            put_str(&mut out, name);
            put_container(&mut out, container);
        }
        out
    }

    /// Decodes bytes written by [`encode`](Self::encode), refusing anything that is not
    /// exactly the encoding of a valid shape (see the module docs for the limits).
    /// Never panics; allocation is bounded by the input's length.
    pub fn decode(bytes: &[u8]) -> Result<Shape, String> {
        if bytes.len() > SHAPE_BYTES_MAX {
            return Err(format!(
                "an encoded shape is at most {SHAPE_BYTES_MAX} bytes, this one {}",
                bytes.len()
            ));
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = r.byte("the encoding version")?;
        if version != SHAPE_ENCODING_VERSION {
            return Err(format!(
                "unknown shape encoding version {version} (this build reads {SHAPE_ENCODING_VERSION})"
            ));
        }
        let state = r.ty(1)?;
        let command = r.ty(1)?;
        // A container is at least a 1-byte length, a 1-byte name and a 1-byte tag.
        let n = r.count("the container count", CONTAINERS_MAX, 3)?;
        let mut containers = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..n {
            let at = r.pos;
            let name = r.name("a container name")?;
            if previous
                .as_ref()
                .is_some_and(|p| p.as_bytes() >= name.as_bytes())
            {
                return Err(format!(
                    "container {name:?} at byte {at} is out of order (names must be sorted and unique)"
                ));
            }
            let container = r.container()?;
            previous = Some(name.clone());
            containers.insert(name, container);
        }
        if r.remaining() != 0 {
            return Err(format!(
                "{} trailing bytes after a complete shape of {} bytes",
                r.remaining(),
                r.pos
            ));
        }
        let shape = Shape {
            state,
            command,
            containers,
        };
        shape.check_references()?;
        Ok(shape)
    }

    /// Checks that every reference names a container of the shape and every container
    /// is reachable from the roots.
    fn check_references(&self) -> Result<(), String> {
        let mut dangling = None;
        let mut note = |name: &str| {
            if dangling.is_none() && !self.containers.contains_key(name) {
                dangling = Some(name.to_owned());
            }
        };
        names_in_ty(&self.state, &mut note);
        names_in_ty(&self.command, &mut note);
        for container in self.containers.values() {
            names_in_container(container, &mut note);
        }
        if let Some(name) = dangling {
            return Err(format!(
                "the shape refers to {name:?}, which it does not define"
            ));
        }
        let reachable = self.reachable();
        if let Some(name) = self
            .containers
            .keys()
            .find(|n| !reachable.contains(n.as_str()))
        {
            return Err(format!(
                "container {name:?} is not reachable from the state or command type"
            ));
        }
        Ok(())
    }

    /// Checks that this shape is valid: that [`decode`](Self::decode) accepts its
    /// encoding (limits, names, references; see the module docs).
    pub fn validate(&self) -> Result<(), String> {
        Shape::decode(&self.encode()).map(drop)
    }

    /// The names of the containers reachable from the two roots.
    pub(crate) fn reachable(&self) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = Vec::new();
        names_in_ty(&self.state, &mut |n| todo.push(n));
        names_in_ty(&self.command, &mut |n| todo.push(n));
        while let Some(name) = todo.pop() {
            if !seen.insert(name) {
                continue;
            }
            if let Some(container) = self.containers.get(name) {
                names_in_container(container, &mut |n| todo.push(n));
            }
        }
        seen
    }

    /// A human-readable description, one item per line: the two roots, then every
    /// container sorted by name, e.g.
    ///
    /// ```text
    /// state: Config
    /// command: Command
    /// enum Command { 0 SetListen(str), 1 SetWorkers(u16) }
    /// struct Config { listen: str, workers: u16 }
    /// ```
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn render(&self) -> String {
        let mut out = format!(
            "state: {}\ncommand: {}",
            render_ty(&self.state),
            render_ty(&self.command)
        );
        for (name, container) in &self.containers {
            out.push('\n');
            out.push_str(&render_container(name, container));
        }
        out
    }

    /// FNV-1a 64 of [`encode`](Self::encode): equal for equal shapes, and stable across
    /// builds and dependency upgrades, since the encoding is this crate's own.
    pub fn fingerprint(&self) -> u64 {
        fnv1a64(&self.encode())
    }

    /// The state type.
    pub fn state_root(&self) -> &Ty {
        &self.state
    }

    /// The command type.
    pub fn command_root(&self) -> &Ty {
        &self.command
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::encoding::tag;
    use super::*;

    fn config_shape() -> Shape {
        let mut containers = BTreeMap::new();
        containers.insert(
            "Config".to_owned(),
            Container::Struct(vec![
                Field {
                    name: "listen".into(),
                    ty: Ty::Str,
                },
                Field {
                    name: "workers".into(),
                    ty: Ty::U16,
                },
            ]),
        );
        containers.insert(
            "Command".to_owned(),
            Container::Enum(vec![
                Variant {
                    name: "SetListen".into(),
                    body: VariantBody::NewType(Ty::Str),
                },
                Variant {
                    name: "SetWorkers".into(),
                    body: VariantBody::NewType(Ty::U16),
                },
            ]),
        );
        Shape {
            state: Ty::Named("Config".into()),
            command: Ty::Named("Command".into()),
            containers,
        }
    }

    #[test]
    fn schema_round_trip_and_render() {
        let shape = config_shape();
        let bytes = shape.encode();
        assert_eq!(Shape::decode(&bytes).unwrap(), shape);
        assert_eq!(
            shape.render(),
            "state: Config\ncommand: Command\n\
             enum Command { 0 SetListen(str), 1 SetWorkers(u16) }\n\
             struct Config { listen: str, workers: u16 }"
        );
    }

    #[test]
    fn schema_fnv1a64_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn schema_decode_refuses_noncanonical_bytes() {
        let bytes = config_shape().encode();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Shape::decode(&trailing).unwrap_err().contains("trailing"));
        for cut in 0..bytes.len() {
            assert!(Shape::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Over-long varint for the container count (2 -> 0x82 0x00).
        let at = bytes.iter().position(|&b| b == 2).unwrap();
        let mut long = bytes[..at].to_vec();
        long.extend_from_slice(&[0x82, 0x00]);
        long.extend_from_slice(&bytes[at + 1..]);
        assert!(Shape::decode(&long).unwrap_err().contains("minimally"));
    }

    #[test]
    fn schema_decode_refuses_dangling_and_unreachable_containers() {
        let mut shape = config_shape();
        shape.command = Ty::Named("Missing".into());
        assert!(shape.validate().unwrap_err().contains("does not define"));
        let mut shape = config_shape();
        shape.command = Ty::Unit;
        assert!(shape.validate().unwrap_err().contains("not reachable"));
    }

    #[test]
    fn schema_decode_refuses_deep_nesting_and_huge_counts() {
        let mut ty = Ty::U8;
        for _ in 0..TY_DEPTH_MAX {
            ty = Ty::Option(Box::new(ty));
        }
        let shape = Shape {
            state: ty,
            command: Ty::Unit,
            containers: BTreeMap::new(),
        };
        assert!(shape.validate().unwrap_err().contains("deeper"));
        // A tuple claiming 4000 elements in a 10-byte input.
        let bytes = [1, tag::TUPLE, 0xa0, 0x1f, 0, 0, 0];
        assert!(Shape::decode(&bytes).unwrap_err().contains("remain"));
        let bytes = [1, tag::TUPLE, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(Shape::decode(&bytes).unwrap_err().contains("limit"));
    }
}
