//! Catching a state up with the journal's tail: the records appended since a
//! [`TailPosition`] are applied to a copy of the state, exactly as replay applies them
//! (the schema gate on each segment, commands decoded with the store's codec, restore
//! records loading their restore file). The copy replaces the state only when everything
//! applied; anything a follower cannot judge, and any record that does not apply, is
//! answered with a reload: the caller runs a full recovery, which is authoritative.

use std::path::Path;

use super::replay::{RecordContext, Replayer, Typed};
use crate::error::Result;
use crate::format::StoreId;
use crate::io::Vfs;
use crate::journal::follow::{self, Followed, TailPosition};
use crate::schema::gate::SchemaGate;
use crate::state::StateMachine;

/// What catching up did.
pub(crate) enum CaughtUp<S> {
    /// Caught up to `position`: `records` records were applied, giving `state` (`None`
    /// when there were none) at `lsn`. `unfinished` says why bytes after it do not form
    /// a complete group yet, if there are such bytes.
    At {
        state: Option<S>,
        lsn: u64,
        records: u64,
        position: TailPosition,
        unfinished: Option<String>,
    },
    /// Only a full recovery can judge what changed (why).
    Reload(String),
}

/// Applies what the journal in `dir` holds after `position` to a copy of `state`.
pub(crate) fn catch_up<S: StateMachine>(
    vfs: &dyn Vfs,
    dir: &Path,
    state: &S,
    position: TailPosition,
    store_id: Option<StoreId>,
    gate: &SchemaGate,
) -> Result<CaughtUp<S>> {
    let mut next: Option<Typed<S>> = None;
    let mut records = 0u64;
    let mut lsn = position.next_lsn().saturating_sub(1);
    // The first record that did not apply: the copy is discarded and a reload judges it.
    let mut failed: Option<String> = None;
    let followed = follow::follow(
        vfs,
        dir,
        position,
        store_id.map(StoreId::get),
        |group, at| {
            if failed.is_some() {
                return Ok(());
            }
            let admission = match gate.admit(vfs, at.schema_id, at.path) {
                Ok(admission) => admission,
                Err(err) => {
                    failed = Some(err.to_string());
                    return Ok(());
                }
            };
            let target = next.get_or_insert_with(|| Typed(state.clone()));
            for record in group {
                let applied = target.apply_record(RecordContext {
                    vfs,
                    dir,
                    kind: record.kind,
                    payload: record.payload,
                    lsn: record.lsn,
                    may_map: false,
                    gate: Some((gate, admission)),
                    path: at.path,
                    offset: at.offset,
                });
                if let Err(err) = applied {
                    failed = Some(format!(
                        "the record at LSN {} did not apply ({err})",
                        record.lsn
                    ));
                    return Ok(());
                }
                lsn = record.lsn;
                records += 1;
            }
            Ok(())
        },
    )?;
    if let Some(why) = failed {
        return Ok(CaughtUp::Reload(why));
    }
    Ok(match followed {
        Followed::Reload(why) => CaughtUp::Reload(why),
        Followed::At(position) => CaughtUp::At {
            state: next.map(|Typed(state)| state),
            lsn,
            records,
            position,
            unfinished: None,
        },
        Followed::Unfinished(position, why) => CaughtUp::At {
            state: next.map(|Typed(state)| state),
            lsn,
            records,
            position,
            unfinished: Some(why),
        },
    })
}
