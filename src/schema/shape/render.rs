//! How shapes are shown to people: `u16`, `Option<str>`, `struct Config { .. }`.

use std::fmt::Write as _;

use super::*;

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// Writes `ty` the way [`Shape::render`] shows it: `u16`, `Option<str>`, `Vec<u8>`,
/// `Map<str, u64>`, `(u8, str)`, `[u8; 32]`, or a container's name.
pub fn render_ty(ty: &Ty) -> String {
    let mut out = String::new();
    write_ty(&mut out, ty);
    out
}

fn write_ty(out: &mut String, ty: &Ty) {
    let word = match ty {
        Ty::Unit => "()",
        Ty::Bool => "bool",
        Ty::I8 => "i8",
        Ty::I16 => "i16",
        Ty::I32 => "i32",
        Ty::I64 => "i64",
        Ty::I128 => "i128",
        Ty::U8 => "u8",
        Ty::U16 => "u16",
        Ty::U32 => "u32",
        Ty::U64 => "u64",
        Ty::U128 => "u128",
        Ty::F32 => "f32",
        Ty::F64 => "f64",
        Ty::Char => "char",
        Ty::Str => "str",
        Ty::Bytes => "bytes",
        Ty::Option(inner) => return wrap(out, "Option<", inner, ">"),
        Ty::Seq(inner) => return wrap(out, "Vec<", inner, ">"),
        Ty::Map { key, value } => {
            out.push_str("Map<");
            write_ty(out, key);
            out.push_str(", ");
            write_ty(out, value);
            out.push('>');
            return;
        }
        Ty::Tuple(items) => {
            out.push('(');
            write_list(out, items);
            // `(u8,)` is a 1-tuple; `(,)` the empty tuple, which is not `()` (unit).
            if items.len() <= 1 {
                out.push(',');
            }
            out.push(')');
            return;
        }
        Ty::Array(inner, len) => {
            out.push('[');
            write_ty(out, inner);
            let _ = write!(out, "; {len}]");
            return;
        }
        Ty::Named(name) => name,
    };
    out.push_str(word);
}

fn wrap(out: &mut String, open: &str, inner: &Ty, close: &str) {
    out.push_str(open);
    write_ty(out, inner);
    out.push_str(close);
}

fn write_list(out: &mut String, tys: &[Ty]) {
    for (i, ty) in tys.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_ty(out, ty);
    }
}

/// `{ a: u8, b: str }`, or `{}` when there are no fields.
pub(crate) fn render_fields(fields: &[Field]) -> String {
    if fields.is_empty() {
        return "{}".into();
    }
    let mut out = String::from("{ ");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: ", field.name);
        write_ty(&mut out, &field.ty);
    }
    out.push_str(" }");
    out
}

/// A variant as its name and body: `Quit`, `Set(u8)`, `Move(i32, i32)`, `Put { k: str }`.
pub(crate) fn render_variant(variant: &Variant) -> String {
    let mut out = variant.name.clone();
    match &variant.body {
        VariantBody::Unit => {}
        VariantBody::NewType(ty) => wrap(&mut out, "(", ty, ")"),
        VariantBody::Tuple(tys) => {
            out.push('(');
            write_list(&mut out, tys);
            out.push(')');
        }
        VariantBody::Struct(fields) => {
            out.push(' ');
            out.push_str(&render_fields(fields));
        }
    }
    out
}

/// One line: `struct Config { listen: str, workers: u16 }`, `enum Command { 0 A, 1 B(u8) }`.
pub(crate) fn render_container(name: &str, container: &Container) -> String {
    match container {
        Container::UnitStruct => format!("struct {name};"),
        Container::NewTypeStruct(ty) => format!("struct {name}({});", render_ty(ty)),
        Container::TupleStruct(tys) => {
            let mut out = format!("struct {name}(");
            write_list(&mut out, tys);
            out.push_str(");");
            out
        }
        Container::Struct(fields) => format!("struct {name} {}", render_fields(fields)),
        Container::Enum(variants) if variants.is_empty() => format!("enum {name} {{}}"),
        Container::Enum(variants) => {
            let mut out = format!("enum {name} {{ ");
            for (i, variant) in variants.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{i} {}", render_variant(variant));
            }
            out.push_str(" }");
            out
        }
    }
}
