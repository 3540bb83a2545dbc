//! The serde shape of a store's state and command types: a canonical, I/O-free model
//! ([`Shape`]), how to trace it from the types ([`trace`]), and what changed between
//! two shapes ([`differences`]).
//!
//! A store records the shape of the types that wrote it, so that opening it with
//! changed types (a field added, an enum variant inserted in the middle, a type
//! changed) fails saying what changed, instead of bincode silently reading one variant
//! as another. This module never touches the disk; the canonical bytes of a shape are
//! specified in [`shape`].

pub mod diff;
pub mod shape;
mod trace;

pub use diff::differences;
pub use shape::{Container, Field, Shape, Ty, Variant, VariantBody};
pub use trace::{TraceError, trace};
