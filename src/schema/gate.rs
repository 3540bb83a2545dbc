//! The schema gate of recovery: before any state or command bytes are decoded, the
//! schema their file names is checked against the schema the caller opens the store
//! with. A different schema is an [`Error::SchemaMismatch`] saying what changed (never
//! corruption); bytes that pass the gate but do not decode are one too.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::diff::differences_by_name;
use super::files::{self, SchemaFile};
use super::{Schema, SchemaId, differences};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::StoreId;
use crate::io::Vfs;

/// Why bytes of a file may be decoded with the caller's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The file names the caller's schema.
    Same,
    /// The file names no schema (written before schema identity): decode and see.
    Unrecorded,
    /// An evolvable store whose schema moved on compatibly (fields or variants added):
    /// decode by name and see.
    Evolved(SchemaId),
}

/// Checks files' schema ids against the caller's schema, remembering each verdict.
pub(crate) struct SchemaGate {
    wanted: Schema,
    dir: PathBuf,
    store_id: Option<StoreId>,
    verdicts: Mutex<Vec<(u64, Admission)>>,
}

impl SchemaGate {
    /// A gate for opening the store in `dir` (of `store_id`, when known) with `wanted`.
    pub(crate) fn new(wanted: Schema, dir: &Path, store_id: Option<StoreId>) -> Self {
        SchemaGate {
            wanted,
            dir: dir.to_path_buf(),
            store_id,
            verdicts: Mutex::new(Vec::new()),
        }
    }

    /// Whether `file`, whose header names schema `stored` (0: none), may be decoded
    /// with the caller's types.
    pub(crate) fn admit(&self, vfs: &dyn Vfs, stored: u64, file: &Path) -> Result<Admission> {
        if let Some(&(_, verdict)) = self.verdicts.lock().iter().find(|(id, _)| *id == stored) {
            return Ok(verdict);
        }
        let verdict = self.judge(vfs, stored, file)?;
        self.verdicts.lock().push((stored, verdict));
        Ok(verdict)
    }

    fn judge(&self, vfs: &dyn Vfs, stored: u64, file: &Path) -> Result<Admission> {
        let Some(stored_id) = SchemaId::new(stored) else {
            return Ok(Admission::Unrecorded);
        };
        if stored_id == self.wanted.id() {
            return Ok(Admission::Same);
        }
        let stored = match files::read(vfs, &self.dir, stored_id, self.store_id)? {
            SchemaFile::Valid(schema) => schema,
            SchemaFile::Missing => {
                return Err(self.mismatch(
                    file,
                    format!("schema {stored_id}"),
                    vec![format!(
                        "the store's schema file {} is missing, so what changed cannot be shown; the schema ids differ",
                        files::path(&self.dir, stored_id).display()
                    )],
                ));
            }
            SchemaFile::Damaged(reason) => {
                return Err(self.mismatch(
                    file,
                    format!("schema {stored_id}"),
                    vec![format!(
                        "the store's schema file {} is unusable ({reason}), so what changed cannot be shown; the schema ids differ",
                        files::path(&self.dir, stored_id).display()
                    )],
                ));
            }
        };
        if stored.codec() == Codec::Evolvable
            && self.wanted.codec() == Codec::Evolvable
            && compatible_release(&stored, &self.wanted)
        {
            return Ok(Admission::Evolved(stored_id));
        }
        Err(self.mismatch(file, stored.describe(), changes(&stored, &self.wanted)))
    }

    /// The error for bytes of `file` that passed the gate as `admission` but do not
    /// decode with the caller's types (`detail` says why).
    pub(crate) fn undecodable(
        &self,
        vfs: &dyn Vfs,
        admission: Admission,
        file: &Path,
        what: &str,
        detail: &str,
    ) -> Error {
        let (stored, mut changes) = match admission {
            Admission::Same => (
                self.wanted.describe(),
                vec![
                    "the recorded schema is the same, yet the bytes (intact: their checksum is valid) no longer decode: the types' Deserialize changed its rules without changing their shape (validation, a custom impl); declare a new SchemaName version and a migration".to_owned(),
                ],
            ),
            Admission::Unrecorded => (
                "no recorded schema (the files were written before walstate recorded schemas)"
                    .to_owned(),
                vec![
                    "the store records no schema, and its intact bytes do not decode with these types: open it with the types that wrote it".to_owned(),
                ],
            ),
            Admission::Evolved(id) => match files::read(vfs, &self.dir, id, self.store_id) {
                Ok(SchemaFile::Valid(stored)) => {
                    let changes = changes(&stored, &self.wanted);
                    (stored.describe(), changes)
                }
                _ => (format!("schema {id}"), Vec::new()),
            },
        };
        changes.push(format!("{what} does not decode: {detail}"));
        self.mismatch(file, stored, changes)
    }

    fn mismatch(&self, file: &Path, stored: String, changes: Vec<String>) -> Error {
        Error::SchemaMismatch {
            path: file.to_path_buf(),
            stored,
            wanted: self.wanted.describe(),
            changes,
        }
    }
}

/// What differs between the stored and the wanted schema, most specific first.
pub(crate) fn changes(stored: &Schema, wanted: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    match (stored.declared(), wanted.declared()) {
        (Some((a, _)), Some((b, _))) if a != b => {
            out.push(format!("the schema name is {a:?} in the store, {b:?} here"));
        }
        (Some((_, a)), Some((_, b))) if a != b => {
            out.push(format!("the schema version is {a} in the store, {b} here"));
        }
        (Some((name, version)), None) => out.push(format!(
            "the store's types declare schema {name} v{version}, these declare none"
        )),
        (None, Some((name, version))) => out.push(format!(
            "these types declare schema {name} v{version}, the store's declare none"
        )),
        _ => {}
    }
    if stored.codec() != wanted.codec() {
        out.push(format!(
            "the codec is {} in the store, {} here",
            stored.codec().name(),
            wanted.codec().name()
        ));
    }
    let by_name = stored.codec() == Codec::Evolvable && wanted.codec() == Codec::Evolvable;
    match (stored.shape(), wanted.shape()) {
        (Some(a), Some(b)) if by_name => out.extend(differences_by_name(a, b)),
        (Some(a), Some(b)) => out.extend(differences(a, b)),
        (None, Some(_)) => out.push("the store's types could not be traced, these can".into()),
        (Some(_), None) => out.push("these types could not be traced, the store's could".into()),
        (None, None) if stored.record().name != wanted.record().name => out.push(format!(
            "the types are {} in the store, {} here",
            stored.record().name,
            wanted.record().name
        )),
        (None, None) => {}
    }
    if out.is_empty() {
        out.push("the schema records differ".into());
    }
    out
}

/// Whether an evolvable store of `stored` may be opened by `wanted` without a
/// migration: the same declared name (or none on either side), and no older release.
pub(crate) fn compatible_release(stored: &Schema, wanted: &Schema) -> bool {
    match (stored.declared(), wanted.declared()) {
        (Some((a, va)), Some((b, vb))) => a == b && vb >= va,
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => true,
    }
}
