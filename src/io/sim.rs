//! Placeholder: the simulated file system is being written.
use super::*;
/// Placeholder.
#[derive(Debug)]
pub struct SimFs;
