//! The canonical bytes of a shape (layout in the parent module's docs): tags, the
//! writer and the bounded reader.

use std::collections::BTreeSet;

use super::*;

pub(super) mod tag {
    pub const UNIT: u8 = 0x00;
    pub const BOOL: u8 = 0x01;
    pub const I8: u8 = 0x02;
    pub const I16: u8 = 0x03;
    pub const I32: u8 = 0x04;
    pub const I64: u8 = 0x05;
    pub const I128: u8 = 0x06;
    pub const U8: u8 = 0x07;
    pub const U16: u8 = 0x08;
    pub const U32: u8 = 0x09;
    pub const U64: u8 = 0x0a;
    pub const U128: u8 = 0x0b;
    pub const F32: u8 = 0x0c;
    pub const F64: u8 = 0x0d;
    pub const CHAR: u8 = 0x0e;
    pub const STR: u8 = 0x0f;
    pub const BYTES: u8 = 0x10;
    pub const OPTION: u8 = 0x11;
    pub const SEQ: u8 = 0x12;
    pub const MAP: u8 = 0x13;
    pub const TUPLE: u8 = 0x14;
    pub const ARRAY: u8 = 0x15;
    pub const NAMED: u8 = 0x16;

    pub const UNIT_STRUCT: u8 = 0x00;
    pub const NEWTYPE_STRUCT: u8 = 0x01;
    pub const TUPLE_STRUCT: u8 = 0x02;
    pub const STRUCT: u8 = 0x03;
    pub const ENUM: u8 = 0x04;

    pub const BODY_UNIT: u8 = 0x00;
    pub const BODY_NEWTYPE: u8 = 0x01;
    pub const BODY_TUPLE: u8 = 0x02;
    pub const BODY_STRUCT: u8 = 0x03;
}

/// The tag `ty` is encoded with.
fn tag_of(ty: &Ty) -> u8 {
    match ty {
        Ty::Unit => tag::UNIT,
        Ty::Bool => tag::BOOL,
        Ty::I8 => tag::I8,
        Ty::I16 => tag::I16,
        Ty::I32 => tag::I32,
        Ty::I64 => tag::I64,
        Ty::I128 => tag::I128,
        Ty::U8 => tag::U8,
        Ty::U16 => tag::U16,
        Ty::U32 => tag::U32,
        Ty::U64 => tag::U64,
        Ty::U128 => tag::U128,
        Ty::F32 => tag::F32,
        Ty::F64 => tag::F64,
        Ty::Char => tag::CHAR,
        Ty::Str => tag::STR,
        Ty::Bytes => tag::BYTES,
        Ty::Option(_) => tag::OPTION,
        Ty::Seq(_) => tag::SEQ,
        Ty::Map { .. } => tag::MAP,
        Ty::Tuple(_) => tag::TUPLE,
        Ty::Array(..) => tag::ARRAY,
        Ty::Named(_) => tag::NAMED,
    }
}

/// The primitive with this tag, if any.
fn primitive_of_tag(t: u8) -> Option<Ty> {
    Some(match t {
        tag::UNIT => Ty::Unit,
        tag::BOOL => Ty::Bool,
        tag::I8 => Ty::I8,
        tag::I16 => Ty::I16,
        tag::I32 => Ty::I32,
        tag::I64 => Ty::I64,
        tag::I128 => Ty::I128,
        tag::U8 => Ty::U8,
        tag::U16 => Ty::U16,
        tag::U32 => Ty::U32,
        tag::U64 => Ty::U64,
        tag::U128 => Ty::U128,
        tag::F32 => Ty::F32,
        tag::F64 => Ty::F64,
        tag::CHAR => Ty::Char,
        tag::STR => Ty::Str,
        tag::BYTES => Ty::Bytes,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

pub(super) fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, len as u64);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_ty(out: &mut Vec<u8>, ty: &Ty) {
    out.push(tag_of(ty));
    match ty {
        Ty::Option(inner) | Ty::Seq(inner) => put_ty(out, inner),
        Ty::Map { key, value } => {
            put_ty(out, key);
            put_ty(out, value);
        }
        Ty::Tuple(items) => put_tys(out, items),
        Ty::Array(inner, len) => {
            put_ty(out, inner);
            put_varint(out, *len);
        }
        Ty::Named(name) => put_str(out, name),
        _ => {} // a primitive: the tag is all
    }
}

pub(super) fn put_tys(out: &mut Vec<u8>, tys: &[Ty]) {
    put_len(out, tys.len());
    for ty in tys {
        put_ty(out, ty);
    }
}

pub(super) fn put_fields(out: &mut Vec<u8>, fields: &[Field]) {
    put_len(out, fields.len());
    for field in fields {
        put_str(out, &field.name);
        put_ty(out, &field.ty);
    }
}

pub(super) fn put_container(out: &mut Vec<u8>, container: &Container) {
    match container {
        Container::UnitStruct => out.push(tag::UNIT_STRUCT),
        Container::NewTypeStruct(ty) => {
            out.push(tag::NEWTYPE_STRUCT);
            put_ty(out, ty);
        }
        Container::TupleStruct(tys) => {
            out.push(tag::TUPLE_STRUCT);
            put_tys(out, tys);
        }
        Container::Struct(fields) => {
            out.push(tag::STRUCT);
            put_fields(out, fields);
        }
        Container::Enum(variants) => {
            out.push(tag::ENUM);
            put_len(out, variants.len());
            for variant in variants {
                put_str(out, &variant.name);
                match &variant.body {
                    VariantBody::Unit => out.push(tag::BODY_UNIT),
                    VariantBody::NewType(ty) => {
                        out.push(tag::BODY_NEWTYPE);
                        put_ty(out, ty);
                    }
                    VariantBody::Tuple(tys) => {
                        out.push(tag::BODY_TUPLE);
                        put_tys(out, tys);
                    }
                    VariantBody::Struct(fields) => {
                        out.push(tag::BODY_STRUCT);
                        put_fields(out, fields);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// A cursor over untrusted input; every read is bounds-checked.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

type DecodeResult<T> = Result<T, String>;

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(super) fn byte(&mut self, what: &str) -> DecodeResult<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| format!("input ends at byte {} where {what} should be", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn varint(&mut self, what: &str) -> DecodeResult<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10u32 {
            let b = self.byte(what)?;
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return Err(format!("{what} at byte {start} does not fit in 64 bits"));
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(format!("{what} at byte {start} is not minimally encoded"));
                }
                return Ok(value);
            }
        }
        Err(format!("{what} at byte {start} is longer than 10 bytes"))
    }

    /// A count of items each at least `item_bytes_min` bytes long, checked against `max`
    /// and against the bytes that remain.
    pub(super) fn count(
        &mut self,
        what: &str,
        max: usize,
        item_bytes_min: usize,
    ) -> DecodeResult<usize> {
        let at = self.pos;
        let n = self.varint(what)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max {
            return Err(format!(
                "{what} at byte {at} is {n}, more than the limit {max}"
            ));
        }
        if n.saturating_mul(item_bytes_min) > self.remaining() {
            return Err(format!(
                "{what} at byte {at} is {n}, but only {} bytes remain",
                self.remaining()
            ));
        }
        Ok(n)
    }

    pub(super) fn name(&mut self, what: &str) -> DecodeResult<String> {
        let at = self.pos;
        let len = self.count(what, NAME_BYTES_MAX, 1)?;
        if len == 0 {
            return Err(format!("{what} at byte {at} is empty"));
        }
        let raw = &self.bytes[self.pos..self.pos + len];
        let s = std::str::from_utf8(raw)
            .map_err(|_| format!("{what} at byte {at} is not UTF-8"))?
            .to_owned();
        self.pos += len;
        Ok(s)
    }

    pub(super) fn ty(&mut self, depth: usize) -> DecodeResult<Ty> {
        if depth > TY_DEPTH_MAX {
            return Err(format!(
                "a type at byte {} nests deeper than {TY_DEPTH_MAX} levels",
                self.pos
            ));
        }
        let at = self.pos;
        let t = self.byte("a type tag")?;
        if let Some(primitive) = primitive_of_tag(t) {
            return Ok(primitive);
        }
        Ok(match t {
            tag::OPTION => Ty::Option(Box::new(self.ty(depth + 1)?)),
            tag::SEQ => Ty::Seq(Box::new(self.ty(depth + 1)?)),
            tag::MAP => {
                let key = Box::new(self.ty(depth + 1)?);
                let value = Box::new(self.ty(depth + 1)?);
                Ty::Map { key, value }
            }
            tag::TUPLE => Ty::Tuple(self.tys(depth + 1)?),
            tag::ARRAY => {
                let inner = Box::new(self.ty(depth + 1)?);
                Ty::Array(inner, self.varint("an array length")?)
            }
            tag::NAMED => Ty::Named(self.name("a type name")?),
            other => return Err(format!("unknown type tag {other:#04x} at byte {at}")),
        })
    }

    pub(super) fn tys(&mut self, depth: usize) -> DecodeResult<Vec<Ty>> {
        let n = self.count("a tuple length", MEMBERS_MAX, 1)?;
        let mut tys = Vec::with_capacity(n);
        for _ in 0..n {
            tys.push(self.ty(depth)?);
        }
        Ok(tys)
    }

    pub(super) fn fields(&mut self) -> DecodeResult<Vec<Field>> {
        // A field is at least a 1-byte length, a 1-byte name and a 1-byte type.
        let n = self.count("a field count", MEMBERS_MAX, 3)?;
        let mut fields = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            let at = self.pos;
            let name = self.name("a field name")?;
            if !seen.insert(name.clone()) {
                return Err(format!("field {name:?} at byte {at} appears twice"));
            }
            let ty = self.ty(1)?;
            fields.push(Field { name, ty });
        }
        Ok(fields)
    }

    pub(super) fn container(&mut self) -> DecodeResult<Container> {
        let at = self.pos;
        Ok(match self.byte("a container tag")? {
            tag::UNIT_STRUCT => Container::UnitStruct,
            tag::NEWTYPE_STRUCT => Container::NewTypeStruct(self.ty(1)?),
            tag::TUPLE_STRUCT => Container::TupleStruct(self.tys(1)?),
            tag::STRUCT => Container::Struct(self.fields()?),
            tag::ENUM => Container::Enum(self.variants()?),
            other => return Err(format!("unknown container tag {other:#04x} at byte {at}")),
        })
    }

    pub(super) fn variants(&mut self) -> DecodeResult<Vec<Variant>> {
        let n = self.count("a variant count", MEMBERS_MAX, 3)?;
        let mut variants = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            let at = self.pos;
            let name = self.name("a variant name")?;
            if !seen.insert(name.clone()) {
                return Err(format!("variant {name:?} at byte {at} appears twice"));
            }
            let body_at = self.pos;
            let body = match self.byte("a variant body tag")? {
                tag::BODY_UNIT => VariantBody::Unit,
                tag::BODY_NEWTYPE => VariantBody::NewType(self.ty(1)?),
                tag::BODY_TUPLE => VariantBody::Tuple(self.tys(1)?),
                tag::BODY_STRUCT => VariantBody::Struct(self.fields()?),
                other => {
                    return Err(format!(
                        "unknown variant body tag {other:#04x} at byte {body_at}"
                    ));
                }
            };
            variants.push(Variant { name, body });
        }
        Ok(variants)
    }
}
