//! Property: a store written with one shape of types and reopened with any other shape
//! (a field added, removed, renamed, reordered or retyped; a variant added) fails with a
//! schema error — it never decodes silently. The types are one Rust type whose serde
//! shape follows a runtime description, so proptest can draw the shapes.

use std::fmt;
use std::sync::Mutex;

use proptest::prelude::*;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use walstate::{Error, Options, StateMachine, Store};

/// The type of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldTy {
    U8,
    U16,
    U64,
    Bool,
    Str,
    OptU16,
}

/// A runtime shape: the state's fields (name, type) and the command's variant names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DynShape {
    fields: Vec<(String, FieldTy)>,
    variants: Vec<String>,
}

/// The shape the types have now. Global, not per thread: the store encodes on its own
/// threads (the checkpoint writer). Tests that set it hold [`SHAPE_USER`].
static SHAPE: Mutex<Option<DynShape>> = Mutex::new(None);
static SHAPE_USER: Mutex<()> = Mutex::new(());

fn shape() -> DynShape {
    SHAPE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .expect("a shape is set")
}

fn leak_names(names: impl Iterator<Item = String>) -> &'static [&'static str] {
    let names: Vec<&'static str> = names.map(|n| &*Box::leak(n.into_boxed_str())).collect();
    Box::leak(names.into_boxed_slice())
}

/// One value of a field.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    U8(u8),
    U16(u16),
    U64(u64),
    Bool(bool),
    Str(String),
    OptU16(Option<u16>),
}

impl Val {
    fn default_of(ty: FieldTy) -> Val {
        match ty {
            FieldTy::U8 => Val::U8(7),
            FieldTy::U16 => Val::U16(700),
            FieldTy::U64 => Val::U64(70_000_000_000),
            FieldTy::Bool => Val::Bool(true),
            FieldTy::Str => Val::Str("seven".into()),
            FieldTy::OptU16 => Val::OptU16(Some(7)),
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::U8(v) => v.serialize(s),
            Val::U16(v) => v.serialize(s),
            Val::U64(v) => v.serialize(s),
            Val::Bool(v) => v.serialize(s),
            Val::Str(v) => v.serialize(s),
            Val::OptU16(v) => v.serialize(s),
        }
    }
}

struct ValSeed(FieldTy);

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Ok(match self.0 {
            FieldTy::U8 => Val::U8(u8::deserialize(d)?),
            FieldTy::U16 => Val::U16(u16::deserialize(d)?),
            FieldTy::U64 => Val::U64(u64::deserialize(d)?),
            FieldTy::Bool => Val::Bool(bool::deserialize(d)?),
            FieldTy::Str => Val::Str(String::deserialize(d)?),
            FieldTy::OptU16 => Val::OptU16(Option::<u16>::deserialize(d)?),
        })
    }
}

/// The state: a struct `Dyn` with the shape's fields.
#[derive(Debug, Clone, PartialEq)]
struct Dyn(Vec<Val>);

impl Default for Dyn {
    fn default() -> Self {
        Dyn(shape()
            .fields
            .iter()
            .map(|(_, ty)| Val::default_of(*ty))
            .collect())
    }
}

impl Serialize for Dyn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shape = shape();
        let names = leak_names(shape.fields.iter().map(|(n, _)| n.clone()));
        let mut st = s.serialize_struct("Dyn", self.0.len())?;
        for (name, value) in names.iter().zip(&self.0) {
            st.serialize_field(name, value)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Dyn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dyn, D::Error> {
        struct DynVisitor(Vec<FieldTy>);
        impl<'de> Visitor<'de> for DynVisitor {
            type Value = Dyn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct Dyn")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dyn, A::Error> {
                let mut values = Vec::new();
                for (i, ty) in self.0.iter().enumerate() {
                    values.push(
                        seq.next_element_seed(ValSeed(*ty))?
                            .ok_or_else(|| de::Error::invalid_length(i, &self))?,
                    );
                }
                Ok(Dyn(values))
            }
        }
        let shape = shape();
        let names = leak_names(shape.fields.iter().map(|(n, _)| n.clone()));
        let types = shape.fields.iter().map(|(_, ty)| *ty).collect();
        d.deserialize_struct("Dyn", names, DynVisitor(types))
    }
}

/// The command: an enum `Op` whose variants are the shape's names (at most five), each
/// a unit variant; applying one bumps the first `U8` or `U16` field. A Rust enum, as
/// serde-reflection tells variants apart by the Rust discriminant of what it decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    V0,
    V1,
    V2,
    V3,
    V4,
}

impl Op {
    const ALL: [Op; 5] = [Op::V0, Op::V1, Op::V2, Op::V3, Op::V4];

    fn new(index: u32) -> Op {
        Op::ALL[index as usize]
    }

    fn index(self) -> u32 {
        self as u32
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names = leak_names(shape().variants.into_iter());
        s.serialize_unit_variant("Op", self.index(), names[self.index() as usize])
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
        struct OpVisitor;
        impl<'de> Visitor<'de> for OpVisitor {
            type Value = Op;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("enum Op")
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Op, A::Error> {
                use serde::de::VariantAccess;
                let (index, variant) = data.variant_seed(VariantIndex)?;
                variant.unit_variant()?;
                Ok(Op::new(index))
            }
        }
        /// A variant given by index (bincode) or by name (self-describing formats).
        struct VariantIndex;
        impl<'de> DeserializeSeed<'de> for VariantIndex {
            type Value = u32;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
                d.deserialize_identifier(self)
            }
        }
        impl<'de> Visitor<'de> for VariantIndex {
            type Value = u32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variant of Op")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&i| (i as usize) < shape().variants.len())
                    .ok_or_else(|| E::custom(format!("no variant {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
                shape()
                    .variants
                    .iter()
                    .position(|name| name == v)
                    .map(|i| i as u32)
                    .ok_or_else(|| E::custom(format!("no variant {v}")))
            }
        }
        let names = leak_names(shape().variants.into_iter());
        d.deserialize_enum("Op", names, OpVisitor)
    }
}

impl StateMachine for Dyn {
    type Command = Op;
    type Output = ();
    fn apply(&mut self, op: &Op) {
        for value in &mut self.0 {
            match value {
                Val::U8(v) => *v = v.wrapping_add(op.index() as u8 + 1),
                Val::U16(v) => *v = v.wrapping_add(op.index() as u16 + 1),
                _ => continue,
            }
            return;
        }
    }
}

fn field_ty() -> impl Strategy<Value = FieldTy> {
    prop_oneof![
        Just(FieldTy::U8),
        Just(FieldTy::U16),
        Just(FieldTy::U64),
        Just(FieldTy::Bool),
        Just(FieldTy::Str),
        Just(FieldTy::OptU16),
    ]
}

fn base_shape() -> impl Strategy<Value = DynShape> {
    (prop::collection::vec(field_ty(), 1..5), 1usize..4).prop_map(|(types, variants)| DynShape {
        fields: types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| (format!("f{i}"), ty))
            .collect(),
        variants: (0..variants).map(|i| format!("V{i}")).collect(),
    })
}

/// One change to a shape; every one changes what the bytes mean.
#[derive(Debug, Clone)]
enum Change {
    Retype(usize, FieldTy),
    Add(usize, FieldTy),
    Remove(usize),
    Rename(usize),
    Swap(usize, usize),
    AddVariant(usize),
    RenameVariant(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), field_ty()).prop_map(|(i, t)| Change::Retype(i, t)),
        (any::<usize>(), field_ty()).prop_map(|(i, t)| Change::Add(i, t)),
        any::<usize>().prop_map(Change::Remove),
        any::<usize>().prop_map(Change::Rename),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Change::Swap(a, b)),
        any::<usize>().prop_map(Change::AddVariant),
        any::<usize>().prop_map(Change::RenameVariant),
    ]
}

/// `shape` with `change` applied, or `None` when it would change nothing.
fn changed(shape: &DynShape, change: &Change) -> Option<DynShape> {
    let mut out = shape.clone();
    let n = out.fields.len();
    match *change {
        Change::Retype(i, ty) => out.fields[i % n].1 = ty,
        Change::Add(i, ty) => out.fields.insert(i % (n + 1), ("added".into(), ty)),
        Change::Remove(i) if n > 1 => {
            out.fields.remove(i % n);
        }
        Change::Remove(_) => return None,
        Change::Rename(i) => out.fields[i % n].0.push_str("_renamed"),
        Change::Swap(a, b) => out.fields.swap(a % n, b % n),
        Change::AddVariant(i) => {
            let at = i % (out.variants.len() + 1);
            out.variants.insert(at, "Inserted".into());
        }
        Change::RenameVariant(i) => {
            let at = i % out.variants.len();
            out.variants[at].push_str("Renamed");
        }
    }
    (out != *shape).then_some(out)
}

fn set_shape(shape: &DynShape) {
    *SHAPE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(shape.clone());
}

fn hold_shape() -> std::sync::MutexGuard<'static, ()> {
    SHAPE_USER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn reopening_with_any_other_shape_is_a_schema_error(
        shape in base_shape(),
        change in change(),
        ops in prop::collection::vec(0u32..8, 1..6),
        checkpoint in any::<bool>(),
    ) {
        let Some(other) = changed(&shape, &change) else {
            return Ok(());
        };
        let _shape = hold_shape();
        let tmp = tempfile::tempdir().unwrap();
        set_shape(&shape);
        let expected = {
            let store = Store::<Dyn>::open(tmp.path(), Options::default()).unwrap();
            for op in &ops {
                store.apply(Op::new(op % shape.variants.len() as u32)).unwrap();
            }
            if checkpoint {
                store.checkpoint().unwrap();
            }
            let state = store.read(Clone::clone).unwrap();
            store.close().unwrap();
            state
        };
        set_shape(&other);
        match Store::<Dyn>::open(tmp.path(), Options::default()) {
            Err(Error::SchemaMismatch { changes, .. }) => prop_assert!(!changes.is_empty()),
            Err(err) => prop_assert!(false, "{change:?}: not a schema error: {err}"),
            Ok(store) => prop_assert!(
                false,
                "{change:?}: opened with another shape and decoded {:?}",
                store.read(Clone::clone).unwrap()
            ),
        }
        // The same shape still opens, with the same state.
        set_shape(&shape);
        let store = Store::<Dyn>::open(tmp.path(), Options::default()).unwrap();
        prop_assert_eq!(store.read(Clone::clone).unwrap(), expected);
    }
}

#[test]
fn the_dynamic_types_trace() {
    let _shape = hold_shape();
    set_shape(&DynShape {
        fields: vec![("f0".into(), FieldTy::U8), ("f1".into(), FieldTy::Str)],
        variants: vec!["V0".into(), "V1".into()],
    });
    let shape = walstate::schema::trace::<Dyn, Op>().unwrap();
    let text = shape.render();
    assert!(text.contains("f1: str") && text.contains("1 V1"), "{text}");
}
