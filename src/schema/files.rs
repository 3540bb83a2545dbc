//! Schema files: `schema-<id>.schema` in the store directory, one per schema that ever
//! wrote to the store, each a checkpoint-format file (LSN 0, the store's id, the
//! schema's id) whose state bytes are the schema record (wal-format.md section 5.1).
//! Written once, atomically, before the first file that names the schema; never
//! deleted (they are small, and snapshots may name old schemas).

use std::path::{Path, PathBuf};

use super::Schema;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::format::{self, SchemaId, SchemaRecord, StoreId};
use crate::io::Vfs;

/// A schema file as found.
#[derive(Debug, Clone)]
pub(crate) enum SchemaFile {
    /// There is none for this id.
    Missing,
    /// It exists but cannot be used; why.
    Damaged(String),
    /// It holds this schema.
    Valid(Schema),
}

/// The path of the schema file of `id` in `dir`.
pub(crate) fn path(dir: &Path, id: SchemaId) -> PathBuf {
    dir.join(format::schema_file_name(id))
}

/// Reads the schema file of `id`, checking that it belongs to store `store_id` (when
/// known) and really describes `id`.
pub(crate) fn read(
    vfs: &dyn Vfs,
    dir: &Path,
    id: SchemaId,
    store_id: Option<StoreId>,
) -> Result<SchemaFile> {
    let path = path(dir, id);
    let bytes = match vfs.read_file(&path, false) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(SchemaFile::Missing),
        Err(err) => return Err(Error::io("read schema file", &path, err)),
    };
    Ok(match decode(&bytes, id, store_id) {
        Ok(schema) => SchemaFile::Valid(schema),
        Err(reason) => SchemaFile::Damaged(reason),
    })
}

/// Decodes a schema file's bytes, which must describe `id` (and belong to `store_id`).
pub(crate) fn decode(
    bytes: &[u8],
    id: SchemaId,
    store_id: Option<StoreId>,
) -> std::result::Result<Schema, String> {
    let (header, body) = format::decode_checkpoint(bytes).map_err(|err| err.describe())?;
    if header.schema_id != id.get() {
        return Err(format!(
            "its header names schema {:016x}, its file name {id}",
            header.schema_id
        ));
    }
    if let Some(store_id) = store_id
        && header.store_id != store_id.get()
    {
        return Err(format!(
            "it belongs to store {:016x}, this store is {store_id}",
            header.store_id
        ));
    }
    let record = SchemaRecord::decode(body).map_err(|err| err.to_string())?;
    if record.id() != id {
        return Err(format!(
            "its record hashes to {}, not to the {id} it is named for",
            record.id()
        ));
    }
    Schema::from_record(record)
}

/// Makes sure the schema file of `schema` exists and is intact before anything names
/// it: written atomically if missing; a damaged one is moved to `quarantine/` and
/// written again (its content follows from the id).
pub(crate) fn ensure(vfs: &dyn Vfs, dir: &Path, store_id: StoreId, schema: &Schema) -> Result<()> {
    let id = schema.id();
    match read(vfs, dir, id, Some(store_id))? {
        SchemaFile::Valid(found) => {
            debug_assert_eq!(found.record(), schema.record());
            return Ok(());
        }
        SchemaFile::Damaged(_) => {
            crate::recovery::move_into_quarantine(vfs, dir, &path(dir, id))?;
        }
        SchemaFile::Missing => {}
    }
    let bytes = format::encode_checkpoint(0, store_id, id.get(), &schema.record().encode());
    checkpoint::write_atomically(vfs, dir, &format::schema_file_name(id), &bytes)
        .map(drop)
        .map_err(|failure| failure.error)
}

/// The schema the store in `dir` is written with now: that of its last segment (the
/// one new records go to) or, without segments, of its newest checkpoint. `None` when
/// that file records none (written before walstate recorded schemas) or there is none.
pub(crate) fn current_schema_id(vfs: &dyn Vfs, dir: &Path) -> Result<Option<SchemaId>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let newest = |parse: fn(&str) -> Option<u64>| {
        names
            .iter()
            .filter_map(|name| parse(name).map(|n| (n, name)))
            .max()
            .map(|(_, name)| dir.join(name))
    };
    if let Some(segment) = newest(format::parse_segment_file_name) {
        let bytes = vfs
            .read_file(&segment, false)
            .map_err(|err| Error::io("read segment", &segment, err))?;
        if let Ok(header) = format::SegmentHeader::decode(&bytes) {
            return Ok(SchemaId::new(header.schema_id));
        }
    }
    if let Some(checkpoint) = newest(format::parse_checkpoint_file_name) {
        let bytes = vfs
            .read_file(&checkpoint, false)
            .map_err(|err| Error::io("read checkpoint", &checkpoint, err))?;
        if let Ok((header, _)) = format::decode_checkpoint(&bytes) {
            return Ok(SchemaId::new(header.schema_id));
        }
    }
    Ok(None)
}

/// One line saying which schema the store in `dir` is written with now (that of its
/// last segment or, without segments, of its newest checkpoint), for tools.
pub fn describe_store_schema(vfs: &dyn Vfs, dir: &Path) -> Result<String> {
    let store_id = crate::journal::identity::read(vfs, dir)?
        .valid()
        .map(|identity| identity.store_id);
    Ok(match current_schema_id(vfs, dir)? {
        None => "none recorded (written before walstate recorded schemas)".into(),
        Some(id) => match read(vfs, dir, id, store_id)? {
            SchemaFile::Valid(schema) => schema.describe(),
            SchemaFile::Missing => format!("schema {id} (its schema file is missing)"),
            SchemaFile::Damaged(reason) => {
                format!("schema {id} (its schema file is unusable: {reason})")
            }
        },
    })
}
