//! Schema identity: which state and command types (and which codec) wrote a store, so
//! that a store is never decoded with types other than those that wrote it.
//!
//! The shape part is I/O-free: a canonical model of the serde shape of the types
//! ([`Shape`], whose bytes [`shape`] specifies), how to trace it from the types
//! ([`trace`]), and what changed between two shapes ([`differences`]). The rest ties
//! it to the store's files.
//!
//! A [`Schema`] is what a state type declares about itself ([`StateMachine::SCHEMA`],
//! [`StateMachine::CODEC`]) plus the serde shape of its state and command types, traced
//! ([`trace`]) without any value. Its id ([`SchemaId`], a hash of its schema record) goes
//! into every segment, checkpoint, restore and snapshot header the store writes, and the
//! record itself into a schema file (`schema-<id>.schema`), so a later open can say what
//! changed ([`differences`]).

pub mod diff;
pub(crate) mod files;
pub(crate) mod gate;
pub mod shape;
mod trace;

pub use crate::format::SchemaId;
pub use diff::differences;
pub use files::describe_store_schema;
pub use shape::Shape;
#[cfg(feature = "internals")]
pub use shape::{Container, Field, Ty, Variant, VariantBody};
#[cfg(feature = "internals")]
pub use trace::TraceError;
pub use trace::trace;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::{SCHEMA_NAME_MAX, SchemaRecord};
use crate::state::StateMachine;

/// A schema name and version an application declares for its state and command types
/// ([`StateMachine::SCHEMA`]).
///
/// ```
/// use walstate::state::SchemaName;
/// const SCHEMA: SchemaName = SchemaName::new("config", 2);
/// assert_eq!(SCHEMA.to_string(), "config v2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaName {
    /// The name (at most 256 bytes), the same in every release of the application.
    pub name: &'static str,
    /// The release of the types, from 1: raise it whenever their encoding changes.
    pub version: u32,
}

impl SchemaName {
    /// A declared name and version (from 1; 0 is refused at compile time in a const).
    pub const fn new(name: &'static str, version: u32) -> Self {
        assert!(version >= 1, "schema versions start at 1");
        assert!(!name.is_empty(), "a schema name is not empty");
        SchemaName { name, version }
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// The schema of a state type, or one read back from a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    record: SchemaRecord,
    shape: Option<Shape>,
    id: SchemaId,
}

impl Schema {
    /// The schema of state machine `S`: its declaration, its codec and its traced shape.
    ///
    /// Fails with [`Error::SchemaUntraceable`] when the shape of its types cannot be
    /// traced (serde-reflection's limits: `deserialize_any` types, validating
    /// `Deserialize` impls, enums reached only inside a collection) and `S` declares no
    /// [`StateMachine::SCHEMA`]: then nothing could tell its releases apart. With a
    /// declaration, the declared name and version are the identity.
    pub fn of<S: StateMachine>() -> Result<Schema> {
        let traced = trace::<S, S::Command>();
        let name = match (S::SCHEMA, &traced) {
            (Some(declared), _) => declared.name.to_owned(),
            (None, Ok(_)) => String::new(),
            (None, Err(err)) => {
                return Err(Error::SchemaUntraceable {
                    types: format!(
                        "{} / {}",
                        std::any::type_name::<S>(),
                        std::any::type_name::<S::Command>()
                    ),
                    detail: err.to_string(),
                });
            }
        };
        let shape = traced.ok();
        let record = SchemaRecord {
            codec: S::CODEC.id(),
            version: S::SCHEMA.map_or(0, |declared| declared.version),
            name: truncate_to_boundary(name, SCHEMA_NAME_MAX),
            shape: shape.as_ref().map(Shape::encode),
        };
        let id = record.id();
        Ok(Schema { record, shape, id })
    }

    /// The schema a schema record describes.
    pub fn from_record(record: SchemaRecord) -> std::result::Result<Schema, String> {
        Codec::from_id(record.codec).ok_or_else(|| format!("unknown codec id {}", record.codec))?;
        let shape = match &record.shape {
            Some(bytes) => Some(Shape::decode(bytes)?),
            None => None,
        };
        let id = record.id();
        Ok(Schema { record, shape, id })
    }

    /// Its id, as headers record it.
    pub fn id(&self) -> SchemaId {
        self.id
    }

    /// Its record, as a schema file stores it.
    pub fn record(&self) -> &SchemaRecord {
        &self.record
    }

    /// The codec of its states and commands.
    pub fn codec(&self) -> Codec {
        Codec::from_id(self.record.codec).unwrap_or_default()
    }

    /// The declared name and version, if any (a record declares one iff its version is
    /// not 0).
    pub fn declared(&self) -> Option<(&str, u32)> {
        (self.record.version != 0).then_some((self.record.name.as_str(), self.record.version))
    }

    /// The traced shape, if the types could be traced.
    pub fn shape(&self) -> Option<&Shape> {
        self.shape.as_ref()
    }

    /// One line for errors and tools, e.g. `config v2 (evolvable codec, id 1a2b…)` or
    /// `state Config, command Command (compact codec, id …)`.
    pub fn describe(&self) -> String {
        let what = match (self.declared(), &self.shape) {
            (Some((name, version)), _) => format!("{name} v{version}"),
            (None, Some(shape)) => shape.summary(),
            (None, None) => "untraced types".to_owned(),
        };
        let codec = match self.codec() {
            Codec::Compact => "compact",
            Codec::Evolvable => "evolvable",
        };
        format!("{what} ({codec} codec, schema {})", self.id)
    }
}

impl Shape {
    /// The root types in one line: `state Config, command Command`.
    pub fn summary(&self) -> String {
        format!(
            "state {}, command {}",
            shape::render_ty(self.state_root()),
            shape::render_ty(self.command_root())
        )
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate_to_boundary(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
