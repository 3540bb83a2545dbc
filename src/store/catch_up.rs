//! Catching up with other processes' commits: `refresh` (readers and shared writers)
//! and the shared writer's catch-up under the writer lock, each reading only what was
//! appended since its last look, or recovering again when only recovery can judge.

use std::sync::Arc;

use super::{Applied, Inner, Refreshed, Store};
use crate::error::{Error, Result};
use crate::journal::CaughtUpTo;
use crate::journal::follow::TailPosition;
use crate::recovery::{self, Mode};
use crate::schema;
use crate::state::StateMachine;

impl<S: StateMachine> Store<S> {
    /// Catches a read-only store up with what the writer committed since the open or the
    /// last refresh. Reads only the records appended since (O(new records)); recovers
    /// again from the newest checkpoint only when the journal changed in a way that
    /// needs it, and says why in [`Refreshed::reloaded`]. The state is replaced at once,
    /// never left half-applied; on an error it stays as it was.
    ///
    /// A shared writer ([`crate::Writers::Shared`]) catches up with the other processes'
    /// commits the same way, taking the writer lock briefly (it also does so before
    /// each of its own commits; [`Store::read`] alone never looks). `records` then counts
    /// the LSNs the state moved, its own commits made meanwhile included. An exclusive
    /// writer is always current: nothing to do.
    ///
    /// A reader sees commits the writer has written, which it acknowledges once they are
    /// durable: a refresh racing a commit may show it a moment before the writer's
    /// caller hears of it.
    pub fn refresh(&self) -> Result<Refreshed> {
        let inner = &self.inner;
        if let Some(writer) = &inner.writer {
            let before = self.last_lsn();
            writer.journal.catch_up_now()?;
            return Ok(Refreshed {
                records: self.last_lsn().saturating_sub(before),
                last_lsn: self.last_lsn(),
                reloaded: writer.reloaded.lock().take(),
            });
        }
        let mut tail = inner.tail.lock();
        let store_id = inner.report.read().store_id;
        let gate = schema::gate::SchemaGate::new(inner.schema.clone(), &inner.dir, store_id);
        let caught_up = {
            let applied = inner.applied.read();
            recovery::catch_up(
                inner.vfs.as_ref(),
                &inner.dir,
                &applied.state,
                *tail,
                store_id,
                &gate,
            )?
        };
        match caught_up {
            recovery::CaughtUp::At {
                state,
                lsn,
                records,
                position,
                unfinished: _,
            } => {
                if let Some(state) = state {
                    *inner.applied.write() = Applied { state, lsn };
                }
                *tail = position;
                Ok(Refreshed {
                    records,
                    last_lsn: self.last_lsn(),
                    reloaded: None,
                })
            }
            recovery::CaughtUp::Reload(why) => {
                tracing::info!(
                    target: "walstate",
                    dir = %inner.dir.display(),
                    reason = %why,
                    "refresh recovers again"
                );
                let recovered =
                    recovery::recover::<S>(inner.vfs.as_ref(), &inner.dir, Mode::ReadOnly)?;
                *tail = TailPosition::after(&recovered.outcome);
                let records = recovered.report.records_replayed;
                *inner.applied.write() = Applied {
                    state: recovered.state,
                    lsn: recovered.lsn,
                };
                *inner.report.write() = recovered.report;
                Ok(Refreshed {
                    records,
                    last_lsn: self.last_lsn(),
                    reloaded: Some(why),
                })
            }
        }
    }

    /// A shared writer's catch-up (see [`Journal::set_catch_up`]): the journal calls it
    /// holding the writer lock, in turn, when another process appended since its last
    /// look.
    pub(super) fn install_catch_up(&self) {
        let Some(writer) = &self.inner.writer else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        writer.journal.set_catch_up(Box::new(move |from| {
            let inner = inner.upgrade().ok_or(Error::Closed)?;
            inner.catch_up_writer(from)
        }));
    }
}

impl<S: StateMachine> Inner<S> {
    /// Applies to the state what other processes appended after `from`. Anything the
    /// follower cannot explain while this process holds the writer lock (a deleted
    /// segment, a torn tail a dead holder left, a record that does not apply) is judged
    /// by recovering again as a writer, which truncates a torn tail into quarantine or
    /// fails naming the damage.
    fn catch_up_writer(&self, from: TailPosition) -> Result<CaughtUpTo> {
        let store_id = self.report.read().store_id;
        let gate = schema::gate::SchemaGate::new(self.schema.clone(), &self.dir, store_id);
        let caught_up = {
            let applied = self.applied.read();
            recovery::catch_up(
                self.vfs.as_ref(),
                &self.dir,
                &applied.state,
                from,
                store_id,
                &gate,
            )?
        };
        let why = match caught_up {
            recovery::CaughtUp::At {
                state,
                lsn,
                position,
                unfinished: None,
                ..
            } => {
                if let Some(state) = state {
                    *self.applied.write() = Applied { state, lsn };
                }
                return Ok(CaughtUpTo::At(position));
            }
            recovery::CaughtUp::At {
                unfinished: Some(why),
                ..
            } => format!("{why}, left by a writer that is gone"),
            recovery::CaughtUp::Reload(why) => why,
        };
        tracing::info!(
            target: "walstate",
            dir = %self.dir.display(),
            reason = %why,
            "shared writer recovers again"
        );
        let recovered = recovery::recover::<S>(
            self.vfs.as_ref(),
            &self.dir,
            Mode::Writer {
                salvage: self.options.salvage,
            },
        )?;
        *self.applied.write() = Applied {
            state: recovered.state,
            lsn: recovered.lsn,
        };
        *self.report.write() = recovered.report;
        if let Some(writer) = &self.writer {
            *writer.reloaded.lock() = Some(why);
        }
        Ok(CaughtUpTo::Recovered(recovered.outcome))
    }
}
