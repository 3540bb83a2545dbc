//! Properties of `walstate::schema`: canonical bytes round-trip, every single change to
//! a shape is reported and changes the fingerprint, decoding never panics, and the
//! encoding of the README's example shape is frozen.

use std::collections::BTreeMap;

use proptest::prelude::*;
use walstate::schema::{Container, Field, Shape, Ty, Variant, VariantBody, differences};

// ---------------------------------------------------------------------------------------
// Random shapes
// ---------------------------------------------------------------------------------------

/// Container names of a random shape: `T0`, `T1`, ...
fn container_name(i: usize) -> String {
    format!("T{i}")
}

fn leaf_ty(containers: usize) -> BoxedStrategy<Ty> {
    let mut leaves = vec![
        Just(Ty::Unit).boxed(),
        Just(Ty::Bool).boxed(),
        Just(Ty::I8).boxed(),
        Just(Ty::I64).boxed(),
        Just(Ty::I128).boxed(),
        Just(Ty::U8).boxed(),
        Just(Ty::U16).boxed(),
        Just(Ty::U32).boxed(),
        Just(Ty::U128).boxed(),
        Just(Ty::F64).boxed(),
        Just(Ty::Char).boxed(),
        Just(Ty::Str).boxed(),
        Just(Ty::Bytes).boxed(),
    ];
    if containers > 0 {
        leaves.push(
            (0..containers)
                .prop_map(|i| Ty::Named(container_name(i)))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(leaves).boxed()
}

fn ty(containers: usize) -> BoxedStrategy<Ty> {
    leaf_ty(containers)
        .prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| Ty::Option(Box::new(t))),
                inner.clone().prop_map(|t| Ty::Seq(Box::new(t))),
                (inner.clone(), inner.clone()).prop_map(|(k, v)| Ty::Map {
                    key: Box::new(k),
                    value: Box::new(v),
                }),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Ty::Tuple),
                (inner, 0u64..300).prop_map(|(t, n)| Ty::Array(Box::new(t), n)),
            ]
        })
        .boxed()
}

/// Members with unique names, in random order.
fn named<T: std::fmt::Debug + Clone + 'static>(
    item: BoxedStrategy<T>,
) -> BoxedStrategy<Vec<(String, T)>> {
    prop::collection::vec(("[a-z]{1,6}", item), 0..6)
        .prop_map(|items| {
            let mut seen = std::collections::BTreeSet::new();
            items
                .into_iter()
                .filter(|(name, _)| seen.insert(name.clone()))
                .collect()
        })
        .boxed()
}

fn fields(containers: usize) -> BoxedStrategy<Vec<Field>> {
    named(ty(containers))
        .prop_map(|items| {
            items
                .into_iter()
                .map(|(name, ty)| Field { name, ty })
                .collect()
        })
        .boxed()
}

fn container(containers: usize) -> BoxedStrategy<Container> {
    let body = prop_oneof![
        Just(VariantBody::Unit),
        ty(containers).prop_map(VariantBody::NewType),
        prop::collection::vec(ty(containers), 0..3).prop_map(VariantBody::Tuple),
        fields(containers).prop_map(VariantBody::Struct),
    ]
    .boxed();
    prop_oneof![
        Just(Container::UnitStruct),
        ty(containers).prop_map(Container::NewTypeStruct),
        prop::collection::vec(ty(containers), 0..4).prop_map(Container::TupleStruct),
        fields(containers).prop_map(Container::Struct),
        named(body).prop_map(|items| Container::Enum(
            items
                .into_iter()
                .map(|(name, body)| Variant { name, body })
                .collect()
        )),
    ]
    .boxed()
}

/// A valid shape: the state root refers to every container, so all are reachable.
fn shape() -> impl Strategy<Value = Shape> {
    (0usize..5).prop_flat_map(|n| {
        (prop::collection::vec(container(n), n), ty(n), ty(n)).prop_map(
            move |(containers, state, command)| {
                let mut roots = vec![state];
                roots.extend((0..n).map(|i| Ty::Named(container_name(i))));
                Shape {
                    state: Ty::Tuple(roots),
                    command,
                    containers: containers
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| (container_name(i), c))
                        .collect::<BTreeMap<_, _>>(),
                }
            },
        )
    })
}

// ---------------------------------------------------------------------------------------
// Single mutations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Mutation {
    RenameField,
    InsertField,
    RemoveField,
    SwapFields,
    RenameVariant,
    InsertVariant,
    RemoveVariant,
    SwapVariants,
    ChangeFieldType,
    ChangeArrayLength,
    RenameContainer,
}

const MUTATIONS: [Mutation; 11] = [
    Mutation::RenameField,
    Mutation::InsertField,
    Mutation::RemoveField,
    Mutation::SwapFields,
    Mutation::RenameVariant,
    Mutation::InsertVariant,
    Mutation::RemoveVariant,
    Mutation::SwapVariants,
    Mutation::ChangeFieldType,
    Mutation::ChangeArrayLength,
    Mutation::RenameContainer,
];

/// The name of the first container (after `pick` rotations) that `fits`.
fn pick_container(shape: &Shape, pick: usize, fits: impl Fn(&Container) -> bool) -> Option<String> {
    let n = shape.containers.len().max(1);
    shape
        .containers
        .iter()
        .cycle()
        .skip(pick % n)
        .take(shape.containers.len())
        .find(|(_, c)| fits(c))
        .map(|(name, _)| name.clone())
}

/// The fields of the first struct (after `pick` rotations) with at least `min` fields.
fn struct_fields(shape: &mut Shape, pick: usize, min: usize) -> Option<&mut Vec<Field>> {
    let name = pick_container(
        shape,
        pick,
        |c| matches!(c, Container::Struct(f) if f.len() >= min),
    )?;
    match shape.containers.get_mut(&name) {
        Some(Container::Struct(f)) => Some(f),
        _ => None,
    }
}

/// The variants of the first enum (after `pick` rotations) with at least `min` variants.
fn enum_variants(shape: &mut Shape, pick: usize, min: usize) -> Option<&mut Vec<Variant>> {
    let name = pick_container(
        shape,
        pick,
        |c| matches!(c, Container::Enum(v) if v.len() >= min),
    )?;
    match shape.containers.get_mut(&name) {
        Some(Container::Enum(v)) => Some(v),
        _ => None,
    }
}

fn first_array(ty: &mut Ty) -> Option<&mut u64> {
    match ty {
        Ty::Array(_, len) => Some(len),
        Ty::Option(inner) | Ty::Seq(inner) => first_array(inner),
        Ty::Map { key, value } => first_array(key).or_else(|| first_array(value)),
        Ty::Tuple(items) => items.iter_mut().find_map(first_array),
        _ => None,
    }
}

fn rename_refs(ty: &mut Ty, from: &str, to: &str) {
    match ty {
        Ty::Named(name) if name == from => *name = to.to_owned(),
        Ty::Option(inner) | Ty::Seq(inner) | Ty::Array(inner, _) => rename_refs(inner, from, to),
        Ty::Map { key, value } => {
            rename_refs(key, from, to);
            rename_refs(value, from, to);
        }
        Ty::Tuple(items) => items.iter_mut().for_each(|t| rename_refs(t, from, to)),
        _ => {}
    }
}

fn rename_in_container(c: &mut Container, from: &str, to: &str) {
    let fields = |fs: &mut Vec<Field>| fs.iter_mut().for_each(|f| rename_refs(&mut f.ty, from, to));
    match c {
        Container::UnitStruct => {}
        Container::NewTypeStruct(t) => rename_refs(t, from, to),
        Container::TupleStruct(ts) => ts.iter_mut().for_each(|t| rename_refs(t, from, to)),
        Container::Struct(fs) => fields(fs),
        Container::Enum(vs) => {
            for v in vs {
                match &mut v.body {
                    VariantBody::Unit => {}
                    VariantBody::NewType(t) => rename_refs(t, from, to),
                    VariantBody::Tuple(ts) => ts.iter_mut().for_each(|t| rename_refs(t, from, to)),
                    VariantBody::Struct(fs) => fields(fs),
                }
            }
        }
    }
}

/// Applies `m` to a copy of `shape`; `None` when the shape has nothing to apply it to.
fn mutate(shape: &Shape, m: Mutation, pick: usize) -> Option<Shape> {
    let mut s = shape.clone();
    match m {
        Mutation::RenameField => {
            let f = struct_fields(&mut s, pick, 1)?;
            let i = pick % f.len();
            f[i].name.push('Z'); // generated names are lowercase: still unique
        }
        Mutation::InsertField => {
            let f = struct_fields(&mut s, pick, 0)?;
            let i = pick % (f.len() + 1);
            f.insert(
                i,
                Field {
                    name: "Inserted".into(),
                    ty: Ty::U16,
                },
            );
        }
        Mutation::RemoveField => {
            let f = struct_fields(&mut s, pick, 1)?;
            let i = pick % f.len();
            f.remove(i);
        }
        Mutation::SwapFields => {
            let f = struct_fields(&mut s, pick, 2)?;
            let i = pick % (f.len() - 1);
            f.swap(i, i + 1);
        }
        Mutation::RenameVariant => {
            let v = enum_variants(&mut s, pick, 1)?;
            let i = pick % v.len();
            v[i].name.push('Z');
        }
        Mutation::InsertVariant => {
            let v = enum_variants(&mut s, pick, 0)?;
            let i = pick % (v.len() + 1);
            v.insert(
                i,
                Variant {
                    name: "Inserted".into(),
                    body: VariantBody::NewType(Ty::U16),
                },
            );
        }
        Mutation::RemoveVariant => {
            let v = enum_variants(&mut s, pick, 1)?;
            let i = pick % v.len();
            v.remove(i);
        }
        Mutation::SwapVariants => {
            let v = enum_variants(&mut s, pick, 2)?;
            let i = pick % (v.len() - 1);
            v.swap(i, i + 1);
        }
        Mutation::ChangeFieldType => {
            let f = struct_fields(&mut s, pick, 1)?;
            let i = pick % f.len();
            f[i].ty = if f[i].ty == Ty::U8 { Ty::U16 } else { Ty::U8 };
        }
        Mutation::ChangeArrayLength => {
            let len = first_array(&mut s.state).or_else(|| first_array(&mut s.command))?;
            *len += 1;
        }
        Mutation::RenameContainer => {
            let n = s.containers.len();
            if n == 0 {
                return None;
            }
            let from = container_name(pick % n);
            let to = "Renamed".to_owned();
            let c = s.containers.remove(&from)?;
            s.containers.insert(to.clone(), c);
            rename_refs(&mut s.state, &from, &to);
            rename_refs(&mut s.command, &from, &to);
            for c in s.containers.values_mut() {
                rename_in_container(c, &from, &to);
            }
        }
    }
    Some(s)
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn schema_encoding_round_trips(s in shape()) {
        let bytes = s.encode();
        prop_assert_eq!(Shape::decode(&bytes), Ok(s.clone()));
        prop_assert_eq!(s.encode(), bytes, "encoding is deterministic");
    }

    #[test]
    fn schema_identical_shapes_have_no_differences(s in shape()) {
        let copy = Shape::decode(&s.encode()).unwrap();
        prop_assert!(differences(&s, &copy).is_empty());
        prop_assert_eq!(s.fingerprint(), copy.fingerprint());
    }

    #[test]
    fn schema_every_single_change_is_reported(
        s in shape(),
        which in 0..MUTATIONS.len(),
        pick in any::<u16>(),
    ) {
        // The first mutation from `which` on that the shape has something to apply to;
        // wrapping the command type in an Option when none does.
        let (m, changed) = (0..MUTATIONS.len())
            .map(|k| MUTATIONS[(which + k) % MUTATIONS.len()])
            .find_map(|m| mutate(&s, m, usize::from(pick)).map(|c| (Some(m), c)))
            .unwrap_or_else(|| {
                let mut c = s.clone();
                c.command = Ty::Option(Box::new(c.command.clone()));
                (None, c)
            });
        prop_assert!(changed.validate().is_ok(), "{:?} made an invalid shape", m);
        prop_assert_ne!(&changed, &s);
        let forward = differences(&s, &changed);
        let backward = differences(&changed, &s);
        prop_assert!(!forward.is_empty(), "{:?} not reported", m);
        prop_assert!(!backward.is_empty(), "{:?} not reported backwards", m);
        prop_assert_ne!(s.fingerprint(), changed.fingerprint());
    }

    #[test]
    fn schema_decode_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        lead in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if lead && !bytes.is_empty() {
            bytes[0] = 1; // past the version byte
        }
        if let Ok(s) = Shape::decode(&bytes) {
            prop_assert_eq!(s.encode(), bytes);
        }
    }

    #[test]
    fn schema_decode_never_panics_on_damaged_encodings(
        s in shape(),
        cut in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let bytes = s.encode();
        let cut_at = cut.index(bytes.len());
        prop_assert!(Shape::decode(&bytes[..cut_at]).is_err(), "a truncated shape decoded");
        let mut flipped = bytes.clone();
        let b = bit.index(bytes.len() * 8);
        flipped[b / 8] ^= 1 << (b % 8);
        if let Ok(back) = Shape::decode(&flipped) {
            prop_assert_eq!(back.encode(), flipped, "decode accepted non-canonical bytes");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The README's Config/Command (its frozen encoding is a golden vector of wal-format.md,
// checked in tests/golden_vectors.rs)
// ---------------------------------------------------------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
#[allow(dead_code)]
struct Config {
    listen: String,
    workers: u16,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[allow(dead_code)]
enum Command {
    SetListen(String),
    SetWorkers(u16),
}

#[test]
fn schema_inserted_variant_is_explained_against_the_readme_shape() {
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(rename = "Command")]
    #[allow(dead_code, clippy::enum_variant_names)]
    enum CommandV2 {
        SetListen(String),
        SetTimeoutSecs(u16),
        SetWorkers(u16),
    }
    let stored = walstate::schema::trace::<Config, Command>().unwrap();
    let wanted = walstate::schema::trace::<Config, CommandV2>().unwrap();
    let lines = differences(&stored, &wanted);
    assert!(
        lines[0].starts_with(
            "Command: variant 1 is SetWorkers(u16) in the store, SetTimeoutSecs(u16) here"
        ),
        "{lines:?}"
    );
}

#[test]
fn schema_fuzz_seeds_are_valid_encodings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/schema_decode");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let shape = Shape::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(shape.encode(), bytes);
        seeds += 1;
    }
    assert!(seeds >= 3);
}
