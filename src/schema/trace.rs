//! Traces the serde shape of a state and a command type with `serde-reflection`, and
//! converts its registry into this crate's own [`Shape`]. The only file that knows
//! about serde-reflection; it never touches the disk.
//!
//! Tracing runs each type's `Deserialize` against a synthetic deserializer that offers
//! placeholder values (zero, empty, the first variant) and records what was asked for.
//! That works for derived impls and fails, with a [`TraceError`] saying which type and
//! what to do, for:
//! - a `Deserialize` that validates what it reads and rejects the placeholders (a
//!   non-zero number, a checked invariant);
//! - types that need `deserialize_any` (`serde_json::Value`, `#[serde(untagged)]`,
//!   `#[serde(tag = ..)]`, `#[serde(flatten)]`), which bincode cannot decode either;
//! - two different types serialized under one name (a generic type used with two
//!   parameter types, or same-named types from different modules): container names
//!   are serde's unqualified names.
//!
//! - an enum whose variants the tracer cannot all visit: it explores an enum one variant
//!   per pass, and only where the enum is reached on every pass (a root, a struct field,
//!   the first variant of an enum). Inside a `Vec`, `Option` or map it is visited once,
//!   through a later variant of another enum twice; an enum there with more variants
//!   than that is refused ([`TraceError::Incomplete`]), never returned half-traced.
//!
//! A `Deserialize` that builds something other than a Rust enum for a serde enum (a
//! struct holding the variant index, say) is traced with one variant only:
//! serde-reflection tells variants apart by the Rust discriminant of what it decoded.
//! Such types should declare their schema.
//!
//! Why serde-reflection: the shape bincode depends on is serde's data model, which
//! only a serde `Deserializer` sees, so tracing through one is the way to get it
//! without annotating every type. The alternatives were weaker: `std::any::type_name`
//! names types but not their fields or variants (and changes when a module moves); a
//! declared name and version alone depends on the application remembering to bump it
//! (still available: [`crate::state::StateMachine::SCHEMA`]); `schemars` needs a
//! derive on every type and describes JSON, not bincode's positional encoding; writing
//! our own tracing deserializer would repeat serde-reflection, which is maintained for
//! exactly this (cross-language format generation) and small (serde, thiserror).
//!
//! Known limitation of serde-reflection: a recursive enum whose *first* variant recurses
//! (`enum List { Cons(u8, Box<List>), Nil }`) makes tracing recurse without end (a
//! stack overflow, not an error); put the non-recursive variant first.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Error as ReflectionError, Format, Named, Registry, Samples, Tracer,
    TracerConfig, VariantFormat,
};

use super::shape::{
    CONTAINERS_MAX, Container, Field, MEMBERS_MAX, Shape, Ty, Variant, VariantBody,
};

/// Most fresh tracing sessions: each one learns the names of enums nested in others
/// whose variants are still unexplored.
const TRACE_ROUNDS_MAX: usize = 64;
/// Most passes over the two roots in one session: each explores at least one more
/// variant of some enum.
const TRACE_PASSES_MAX: usize = 16 * CONTAINERS_MAX;

/// What serde-reflection is given for types with validating `Deserialize` impls: none.
static NO_SAMPLES: std::sync::LazyLock<Samples> = std::sync::LazyLock::new(Samples::new);

/// The advice every trace failure ends with.
const DECLARE_HINT: &str =
    "declare a schema name and version for this state machine instead of a traced shape";

/// Why the shape of a state or command type could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// The type's `Deserialize` rejected the placeholder values tracing offers: it
    /// validates what it reads.
    #[error(
        "cannot trace the shape of {ty}: its Deserialize (or that of a type inside it) rejected the placeholder value \
         the tracer offered ({detail}); a type that validates what it decodes cannot be traced: {DECLARE_HINT}"
    )]
    Rejected {
        /// The root type being traced (`std::any::type_name`).
        ty: String,
        /// serde-reflection's report.
        detail: String,
    },
    /// The type asks for something a format without type information cannot provide.
    #[error(
        "cannot trace the shape of {ty}: {detail}; this is deserialize_any (serde_json::Value, #[serde(untagged)], \
         #[serde(tag = ...)], #[serde(flatten)]), which bincode cannot decode either: use concrete types and \
         externally tagged enums, or {DECLARE_HINT}"
    )]
    Unsupported {
        /// The root type being traced.
        ty: String,
        /// serde-reflection's report.
        detail: String,
    },
    /// Two different types are serialized under one container name.
    #[error(
        "cannot trace the shape of {ty}: two different types are serialized under one name ({detail}); \
         serde names containers without their module or type parameters, so a generic type used with two \
         parameter types, or two types of one name, clash: give each a distinct #[serde(rename = \"...\")], or {DECLARE_HINT}"
    )]
    NameClash {
        /// The root type being traced.
        ty: String,
        /// serde-reflection's report.
        detail: String,
    },
    /// Tracing ended without learning the whole shape.
    #[error("cannot trace the shape of {ty}: {detail}; {DECLARE_HINT}")]
    Incomplete {
        /// The root type being traced, or both.
        ty: String,
        /// What is missing.
        detail: String,
    },
}

/// Traces the serde shape of state type `S` and command type `C`.
///
/// Container names are the serialized ones (`#[serde(rename)]` counts), since that is
/// what the shape of stored bytes depends on. The result is valid ([`Shape::validate`]).
///
/// `Serialize` is needed too: serde-reflection learns an enum's variant indices by
/// deserializing each variant twice (by name, then by index), which an enum reached only
/// through a later variant of another enum does not get; serializing the sample values
/// the deserialization produced gives those indices (and checks that `Serialize` and
/// `Deserialize` agree on the shape).
pub fn trace<S, C>() -> Result<Shape, TraceError>
where
    S: Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
{
    let both = || format!("{} and {}", type_name::<S>(), type_name::<C>());
    // serde-reflection keeps exploring an enum's variants only when told its name, and
    // reports the names of unexplored enums only when the session ends. So: sessions
    // until one ends complete, each told every enum name the earlier ones reported.
    let mut enums: BTreeSet<String> = BTreeSet::new();
    for _ in 0..TRACE_ROUNDS_MAX {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (state, command) = trace_session::<S, C>(&mut tracer, &enums, false)?;
        match tracer.registry() {
            Ok(registry) => {
                check_names_complete(&registry, &both())?;
                if !has_provisional(&registry) {
                    return to_shape(state, command, &registry, &both());
                }
                // Every variant name was seen but not every index: replay the same
                // (deterministic) session and serialize its samples for the indices.
                let mut tracer = Tracer::new(TracerConfig::default());
                let (state, command) = trace_session::<S, C>(&mut tracer, &enums, true)?;
                let registry = tracer.registry().map_err(|e| classify(e, both()))?;
                return to_shape(state, command, &registry, &both());
            }
            Err(ReflectionError::MissingVariants(names)) => {
                let known = enums.len();
                enums.extend(names.iter().cloned());
                if enums.len() == known {
                    return Err(unexplored(&both(), &names.join(", ")));
                }
            }
            Err(err) => return Err(classify(err, both())),
        }
    }
    Err(TraceError::Incomplete {
        ty: both(),
        detail: format!("enums were still being discovered after {TRACE_ROUNDS_MAX} rounds"),
    })
}

fn type_name<T>() -> String {
    std::any::type_name::<T>().to_owned()
}

fn unexplored(ty: &str, enums: &str) -> TraceError {
    TraceError::Incomplete {
        ty: ty.to_owned(),
        detail: format!(
            "serde-reflection could not visit every variant of enum {enums}: it explores an enum fully only where \
             it is reached on every pass (a root, a struct field, the first variant of an enum), not inside a \
             Vec, Option or map, nor only through a later variant of another enum"
        ),
    }
}

/// Traces both roots pass after pass until no enum in `enums` has unexplored variants.
/// Returns the two root formats. With `serialize`, then serializes every sample value
/// the passes produced, which records the indices of variants seen by name only.
fn trace_session<S, C>(
    tracer: &mut Tracer,
    enums: &BTreeSet<String>,
    serialize: bool,
) -> Result<(Format, Format), TraceError>
where
    S: Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
{
    let mut state = Root::<S>::default();
    let mut command = Root::<C>::default();
    let mut enums = enums.clone();
    for _ in 0..TRACE_PASSES_MAX {
        state.pass(tracer)?;
        command.pass(tracer)?;
        // The roots are enums to explore too, when they are enums.
        for root in [&state.format, &command.format] {
            if let Format::TypeName(name) = root {
                enums.insert(name.clone());
            }
        }
        // `check_incomplete_enum` clears the mark, so that the next pass explores the
        // enum's next variant instead of taking its first.
        let mut incomplete = false;
        for name in &enums {
            incomplete |= tracer.check_incomplete_enum(name).is_some();
        }
        if !incomplete {
            if serialize {
                state.serialize_samples(tracer)?;
                command.serialize_samples(tracer)?;
            }
            return Ok((state.format, command.format));
        }
    }
    Err(TraceError::Incomplete {
        ty: format!("{} and {}", type_name::<S>(), type_name::<C>()),
        detail: format!("enum variants were still unexplored after {TRACE_PASSES_MAX} passes"),
    })
}

/// Whether some enum still has variants seen by name only.
fn has_provisional(registry: &Registry) -> bool {
    registry.values().any(|c| match c {
        ContainerFormat::Enum(variants) => variants.range(PROVISIONAL_INDEX_MIN..).next().is_some(),
        _ => false,
    })
}

/// Checks, on a registry built by deserialization alone, that every enum's variant
/// names were all visited. serde-reflection visits an enum's names in declaration
/// order, filing the one at position `i` of `n` under the provisional index
/// `u32::MAX - (n - 1) + i`, and starts giving real indices only once all were visited.
/// So the names are complete when some variant has a real index, or when the last
/// name (provisional index `u32::MAX`) was visited.
fn check_names_complete(registry: &Registry, ty: &str) -> Result<(), TraceError> {
    for (name, container) in registry {
        if let ContainerFormat::Enum(variants) = container {
            let has_real = variants.range(..PROVISIONAL_INDEX_MIN).next().is_some();
            if !has_real && !variants.contains_key(&u32::MAX) {
                return Err(unexplored(ty, name));
            }
        }
    }
    Ok(())
}

/// One root type's format and the sample values its deserialization produced.
struct Root<T> {
    format: Format,
    samples: Vec<T>,
}

impl<T> Default for Root<T> {
    fn default() -> Self {
        Root {
            format: Format::Unit,
            samples: Vec::new(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> Root<T> {
    /// One deserialization of `T` (serde-reflection's `trace_simple_type` without its
    /// loop, which drops the samples of variants visited by name: the loop is ours).
    fn pass(&mut self, tracer: &mut Tracer) -> Result<(), TraceError> {
        let (format, value) = tracer
            .trace_type_once::<T>(&NO_SAMPLES)
            .map_err(|e| classify(e, type_name::<T>()))?;
        self.format = format;
        self.samples.push(value);
        Ok(())
    }

    /// Records the serialized shape of every sample: the variant indices of enums that
    /// deserialization saw by name only.
    fn serialize_samples(&self, tracer: &mut Tracer) -> Result<(), TraceError> {
        let mut samples = Samples::new();
        for value in &self.samples {
            tracer
                .trace_value(&mut samples, value)
                .map_err(|e| classify(e, type_name::<T>()))?;
        }
        Ok(())
    }
}

fn classify(err: ReflectionError, ty: String) -> TraceError {
    let detail = err.to_string();
    match err {
        ReflectionError::Custom(_) | ReflectionError::UnexpectedDeserializationFormat(..) => {
            TraceError::Rejected { ty, detail }
        }
        ReflectionError::NotSupported(_) => TraceError::Unsupported { ty, detail },
        ReflectionError::Incompatible(..) => TraceError::NameClash { ty, detail },
        _ => TraceError::Incomplete { ty, detail },
    }
}

/// Converts the roots and registry to a [`Shape`] of the containers the roots reach.
fn to_shape(
    state: Format,
    command: Format,
    registry: &Registry,
    ty: &str,
) -> Result<Shape, TraceError> {
    let incomplete = |detail: String| TraceError::Incomplete {
        ty: ty.to_owned(),
        detail,
    };
    let state = to_ty(&state).map_err(&incomplete)?;
    let command = to_ty(&command).map_err(&incomplete)?;
    let mut all = BTreeMap::new();
    for (name, format) in registry {
        let container = to_container(format).map_err(|d| incomplete(format!("{name}: {d}")))?;
        all.insert(name.clone(), container);
    }
    let mut shape = Shape {
        state,
        command,
        containers: all,
    };
    let reachable: BTreeSet<String> = shape.reachable().into_iter().map(str::to_owned).collect();
    shape.containers.retain(|name, _| reachable.contains(name));
    shape.validate().map_err(|d| {
        incomplete(format!(
            "the traced shape is outside the limits of a stored shape: {d}"
        ))
    })?;
    Ok(shape)
}

fn to_ty(format: &Format) -> Result<Ty, String> {
    Ok(match format {
        Format::Variable(variable) => match &*variable.borrow() {
            Some(known) => to_ty(known)?,
            None => return Err("a type whose format was never observed".into()),
        },
        Format::TypeName(name) => Ty::Named(name.clone()),
        Format::Unit => Ty::Unit,
        Format::Bool => Ty::Bool,
        Format::I8 => Ty::I8,
        Format::I16 => Ty::I16,
        Format::I32 => Ty::I32,
        Format::I64 => Ty::I64,
        Format::I128 => Ty::I128,
        Format::U8 => Ty::U8,
        Format::U16 => Ty::U16,
        Format::U32 => Ty::U32,
        Format::U64 => Ty::U64,
        Format::U128 => Ty::U128,
        Format::F32 => Ty::F32,
        Format::F64 => Ty::F64,
        Format::Char => Ty::Char,
        Format::Str => Ty::Str,
        Format::Bytes => Ty::Bytes,
        Format::Option(inner) => Ty::Option(Box::new(to_ty(inner)?)),
        Format::Seq(inner) => Ty::Seq(Box::new(to_ty(inner)?)),
        Format::Map { key, value } => Ty::Map {
            key: Box::new(to_ty(key)?),
            value: Box::new(to_ty(value)?),
        },
        Format::Tuple(items) => tuple(items.iter().map(to_ty).collect::<Result<_, _>>()?),
        Format::TupleArray { content, size } => Ty::Array(Box::new(to_ty(content)?), *size as u64),
    })
}

/// A tuple of two or more equal types is an array, as serde-reflection writes it inside
/// containers (its root formats are not normalized): one shape for one encoding.
fn tuple(items: Vec<Ty>) -> Ty {
    match items.first() {
        Some(first) if items.len() >= 2 && items.iter().all(|t| t == first) => {
            Ty::Array(Box::new(first.clone()), items.len() as u64)
        }
        _ => Ty::Tuple(items),
    }
}

fn to_tys(formats: &[Format]) -> Result<Vec<Ty>, String> {
    formats.iter().map(to_ty).collect()
}

fn to_fields(fields: &[Named<Format>]) -> Result<Vec<Field>, String> {
    fields
        .iter()
        .map(|f| {
            Ok(Field {
                name: f.name.clone(),
                ty: to_ty(&f.value)?,
            })
        })
        .collect()
}

fn to_container(format: &ContainerFormat) -> Result<Container, String> {
    Ok(match format {
        ContainerFormat::UnitStruct => Container::UnitStruct,
        ContainerFormat::NewTypeStruct(ty) => Container::NewTypeStruct(to_ty(ty)?),
        ContainerFormat::TupleStruct(tys) => Container::TupleStruct(to_tys(tys)?),
        ContainerFormat::Struct(fields) => Container::Struct(to_fields(fields)?),
        ContainerFormat::Enum(variants) => Container::Enum(to_variants(variants)?),
    })
}

/// serde-reflection files a variant seen by name only under a provisional index at the
/// top of the `u32` range until it learns its real one.
const PROVISIONAL_INDEX_MIN: u32 = u32::MAX - MEMBERS_MAX as u32;

fn to_variants(variants: &BTreeMap<u32, Named<VariantFormat>>) -> Result<Vec<Variant>, String> {
    let mut out = Vec::with_capacity(variants.len());
    for (&index, variant) in variants.range(..PROVISIONAL_INDEX_MIN) {
        if index as usize != out.len() {
            return Err(format!("variant index {} was never observed", out.len()));
        }
        out.push(Variant {
            name: variant.name.clone(),
            body: to_body(&variant.value)?,
        });
    }
    // A provisional entry is fine once its name has a real index too.
    for (_, variant) in variants.range(PROVISIONAL_INDEX_MIN..) {
        if !out.iter().any(|v| v.name == variant.name) {
            return Err(format!(
                "the index of variant {} was never observed",
                variant.name
            ));
        }
    }
    Ok(out)
}

fn to_body(format: &VariantFormat) -> Result<VariantBody, String> {
    Ok(match format {
        VariantFormat::Variable(variable) => match &*variable.borrow() {
            Some(known) => to_body(known)?,
            None => return Err("a variant whose format was never observed".into()),
        },
        VariantFormat::Unit => VariantBody::Unit,
        VariantFormat::NewType(ty) => VariantBody::NewType(to_ty(ty)?),
        VariantFormat::Tuple(tys) => VariantBody::Tuple(to_tys(tys)?),
        VariantFormat::Struct(fields) => VariantBody::Struct(to_fields(fields)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    struct Config {
        listen: String,
        workers: u16,
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum Command {
        SetListen(String),
        SetWorkers(u16),
    }

    fn rendered<S: Serialize + DeserializeOwned, C: Serialize + DeserializeOwned>() -> String {
        trace::<S, C>().unwrap().render()
    }

    #[test]
    fn schema_trace_readme_config() {
        assert_eq!(
            rendered::<Config, Command>(),
            "state: Config\ncommand: Command\n\
             enum Command { 0 SetListen(str), 1 SetWorkers(u16) }\n\
             struct Config { listen: str, workers: u16 }"
        );
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    struct Wrapper<T> {
        inner: T,
        tag: Option<u8>,
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum Mode {
        Off,
        On { level: Level },
        Pair(i64, u128),
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum Level {
        Low,
        High(f32),
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    struct Composites {
        mode: Mode,
        seq: Vec<Wrapper<Id>>,
        map: BTreeMap<String, (u8, char, bool)>,
        array: [u8; 4],
        same: (u16, u16),
        unit: (),
        id: Id,
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    struct Id(u64);

    #[test]
    fn schema_trace_nested_generics_and_composites() {
        // Level is only reachable through Mode::On, a variant the first pass skips.
        assert_eq!(
            rendered::<Composites, Option<Vec<i32>>>(),
            "state: Composites\ncommand: Option<Vec<i32>>\n\
             struct Composites { mode: Mode, seq: Vec<Wrapper>, map: Map<str, (u8, char, bool)>, array: [u8; 4], \
             same: [u16; 2], unit: (), id: Id }\n\
             struct Id(u64);\n\
             enum Level { 0 Low, 1 High(f32) }\n\
             enum Mode { 0 Off, 1 On { level: Level }, 2 Pair(i64, u128) }\n\
             struct Wrapper { inner: Id, tag: Option<u8> }"
        );
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum CommandWithMode {
        SetListen(String),
        SetMode(Level),
    }

    #[test]
    fn schema_trace_enum_inside_later_variant() {
        assert_eq!(
            rendered::<Config, CommandWithMode>(),
            "state: Config\ncommand: CommandWithMode\n\
             enum CommandWithMode { 0 SetListen(str), 1 SetMode(Level) }\n\
             struct Config { listen: str, workers: u16 }\n\
             enum Level { 0 Low, 1 High(f32) }"
        );
    }

    #[test]
    fn schema_trace_refuses_enum_it_cannot_explore() {
        // Inside a Vec the tracer visits the element once: one variant of three.
        #[derive(Serialize, Deserialize)]
        #[allow(dead_code)]
        struct Modes {
            modes: Vec<Mode>,
        }
        let err = trace::<Modes, Command>().unwrap_err();
        assert!(matches!(err, TraceError::Incomplete { .. }), "{err}");
        assert!(err.to_string().contains("enum Mode"), "{err}");
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum Tree {
        Leaf(u32),
        Node(Box<Tree>, Box<Tree>),
    }

    #[test]
    fn schema_trace_recursive_enum() {
        assert_eq!(
            rendered::<Tree, ()>(),
            "state: Tree\ncommand: ()\nenum Tree { 0 Leaf(u32), 1 Node(Tree, Tree) }"
        );
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Cfg")]
    #[allow(dead_code)]
    struct Renamed {
        #[serde(rename = "addr")]
        listen: String,
    }

    #[derive(Serialize, Deserialize)]
    #[allow(dead_code)]
    enum RenamedCommand {
        #[serde(rename = "Listen")]
        SetListen(String),
    }

    #[test]
    fn schema_trace_uses_serialized_names() {
        assert_eq!(
            rendered::<Renamed, RenamedCommand>(),
            "state: Cfg\ncommand: RenamedCommand\nstruct Cfg { addr: str }\n\
             enum RenamedCommand { 0 Listen(str) }"
        );
    }

    #[test]
    fn schema_trace_kv_types() {
        let shape = trace::<crate::KvState, crate::KvCommand>().unwrap();
        assert_eq!(
            shape.render(),
            "state: Vec<[bytes; 2]>\ncommand: KvCommand\n\
             enum KvCommand { 0 Put { key: bytes, value: bytes }, 1 Delete { key: bytes }, \
             2 DeleteRange { start: bytes, end: bytes }, 3 DeletePrefix { prefix: bytes }, \
             4 CompareAndSet { key: bytes, expected: Option<bytes>, new: Option<bytes> } }"
        );
    }

    #[test]
    fn schema_trace_refuses_deserialize_any() {
        #[derive(Serialize, Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Loose {
            A(u8),
        }
        let err = trace::<Loose, Command>().unwrap_err();
        assert!(matches!(err, TraceError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("Loose"), "{err}");
        let err = trace::<Config, serde_json::Value>().unwrap_err();
        assert!(matches!(err, TraceError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn schema_trace_refuses_validating_deserialize() {
        #[derive(Serialize, Deserialize)]
        #[allow(dead_code)]
        struct Workers(std::num::NonZeroU16);
        let err = trace::<Config, Workers>().unwrap_err();
        assert!(matches!(err, TraceError::Rejected { .. }), "{err}");
        assert!(err.to_string().contains("Workers"), "{err}");
        assert!(err.to_string().contains("schema name and version"), "{err}");
    }

    #[test]
    fn schema_trace_refuses_one_name_for_two_types() {
        #[derive(Serialize, Deserialize)]
        #[allow(dead_code)]
        struct Two {
            a: Wrapper<u8>,
            b: Wrapper<String>,
        }
        let err = trace::<Two, Command>().unwrap_err();
        assert!(matches!(err, TraceError::NameClash { .. }), "{err}");
    }
}
