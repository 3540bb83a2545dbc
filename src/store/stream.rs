//! `Store::apply_stream`: commands applied in input order with many in flight, so one
//! submitter's commands share group commits instead of each waiting for its own
//! fdatasync (what `walstate apply` reading stdin does).

use std::sync::mpsc;

use super::{Store, apply_all, logged_group};
use crate::error::Error;
use crate::journal::{AppendStream, Journal, Ticket};
use crate::state::StateMachine;

/// Items read ahead of the oldest one not yet durable: bounds the memory a stream holds.
pub const STREAM_IN_FLIGHT_MAX: usize = 4096;

/// What became of one item of a stream, reported in input order.
#[derive(Debug)]
pub enum Streamed<C, E, O> {
    /// The item's commands were applied, as one atomic group: the LSN of the first (0 for
    /// an empty item, which logs nothing) and their outputs.
    Applied {
        /// The item's context, as given.
        context: C,
        /// LSN of the item's first command.
        first_lsn: u64,
        /// The commands' outputs, in order.
        outputs: Vec<O>,
    },
    /// The store refused the item before writing anything (a command that does not
    /// encode, or one over the record size limit): nothing of it was applied, and the
    /// stream goes on.
    Refused {
        /// The item's context, as given.
        context: C,
        /// Why it was refused.
        error: Error,
    },
    /// An item the input marked as not to be applied, handed back as given.
    Skipped(E),
}

/// Why a stream stopped: the store failed (I/O, a full disk, poisoned), so nothing after
/// the failed item was applied.
#[derive(Debug)]
pub struct StreamStopped<C> {
    /// The item that failed (`None`: the store was unusable before any item).
    pub context: Option<C>,
    /// The failure.
    pub error: Error,
}

impl<C> std::fmt::Display for StreamStopped<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the stream stopped: {}", self.error)
    }
}

impl<C: std::fmt::Debug> std::error::Error for StreamStopped<C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<C> From<StreamStopped<C>> for Error {
    fn from(stopped: StreamStopped<C>) -> Error {
        stopped.error
    }
}

/// What the submitting thread hands to the waiting one, in input order.
enum Entry<C, E, O> {
    Queued(C, Ticket<Vec<O>>),
    Empty(C),
    Refused(C, Error),
    Skipped(E),
    Failed(C, Error),
}

impl<S: StateMachine> Store<S> {
    /// Applies `items` in order, each one atomic group of commands (like
    /// [`Store::apply_batch`]), keeping up to [`STREAM_IN_FLIGHT_MAX`] of them in flight:
    /// the iterator runs on its own thread, queueing each item behind the last, while the
    /// calling thread waits for them in order and calls `done` for each once it is
    /// durable and applied. Commands get LSNs in input order, so the state is the one
    /// applying them one by one gives; a crash keeps a prefix of the items.
    ///
    /// An `Err` item is handed back to `done` in its place ([`Streamed::Skipped`]); an
    /// item the store refuses before writing is [`Streamed::Refused`]. A store failure
    /// stops the stream: nothing after the failed item is applied (items already queued
    /// behind it fail with [`Error::StreamStopped`] unwritten), and it is returned with
    /// the failed item's context. Other appends of the store wait while a stream runs.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use walstate::{KvCommand, KvStore, Options, Streamed};
    /// # let tmp = tempfile::tempdir()?;
    /// let store = KvStore::open(tmp.path(), Options::default())?;
    /// let lines = ["a=1", "oops", "b=2"];
    /// let items = lines.iter().enumerate().map(|(number, line)| match line.split_once('=') {
    ///     Some((key, value)) => Ok((number, vec![KvCommand::put(key, value)])),
    ///     None => Err(number),
    /// });
    /// let mut acks = Vec::new();
    /// store.apply_stream(items, |done| match done {
    ///     Streamed::Applied { context, first_lsn, .. } => acks.push((context, first_lsn)),
    ///     Streamed::Skipped(number) => acks.push((number, 0)),
    ///     Streamed::Refused { .. } => unreachable!("small puts encode"),
    /// })?;
    /// assert_eq!(acks, vec![(0, 1), (1, 0), (2, 2)]);
    /// assert_eq!(store.get(b"b")?.as_deref(), Some(&b"2"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply_stream<C, E, I>(
        &self,
        items: I,
        mut done: impl FnMut(Streamed<C, E, S::Output>),
    ) -> std::result::Result<(), StreamStopped<C>>
    where
        C: Send,
        E: Send,
        I: IntoIterator<Item = std::result::Result<(C, Vec<S::Command>), E>>,
        I::IntoIter: Send,
    {
        let writer = self.writer().map_err(|error| StreamStopped {
            context: None,
            error,
        })?;
        // Held for the whole stream: a restore waits until no item is in flight.
        let _gate = writer.gate.read();
        let journal = &writer.journal;
        let stream = journal.stream();
        let items = items.into_iter();
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::sync_channel(STREAM_IN_FLIGHT_MAX);
            let stream = &stream;
            scope.spawn(move || {
                for item in items {
                    let entry = self.queue_item(journal, stream, item);
                    let failed = matches!(entry, Entry::Failed(..));
                    // A closed channel: the waiting side stopped.
                    if sender.send(entry).is_err() || failed {
                        break;
                    }
                }
            });
            let mut stopped: Option<StreamStopped<C>> = None;
            // Every queued item is waited for, also after a failure (they then fail
            // at once, unwritten), so nothing is left in the journal's queue.
            for entry in receiver {
                let report = match entry {
                    Entry::Queued(context, ticket) => match journal.wait(stream, ticket) {
                        Ok((first_lsn, outputs)) => Streamed::Applied {
                            context,
                            first_lsn,
                            outputs,
                        },
                        Err(error) => {
                            stopped.get_or_insert(StreamStopped {
                                context: Some(context),
                                error,
                            });
                            continue;
                        }
                    },
                    Entry::Empty(context) => Streamed::Applied {
                        context,
                        first_lsn: 0,
                        outputs: Vec::new(),
                    },
                    Entry::Refused(context, error) => Streamed::Refused { context, error },
                    Entry::Skipped(skipped) => Streamed::Skipped(skipped),
                    Entry::Failed(context, error) => {
                        stopped.get_or_insert(StreamStopped {
                            context: Some(context),
                            error,
                        });
                        continue;
                    }
                };
                if stopped.is_none() {
                    done(report);
                    self.maybe_trigger_checkpoint(writer);
                }
            }
            stopped.map_or(Ok(()), Err)
        })
    }

    /// Encodes one item and queues it in `stream` (on the submitting thread).
    fn queue_item<C, E>(
        &self,
        journal: &Journal,
        stream: &AppendStream,
        item: std::result::Result<(C, Vec<S::Command>), E>,
    ) -> Entry<C, E, S::Output> {
        let (context, commands) = match item {
            Err(skipped) => return Entry::Skipped(skipped),
            Ok((context, commands)) if commands.is_empty() => return Entry::Empty(context),
            Ok(item) => item,
        };
        let (records, decoded) = match logged_group::<S>(commands) {
            Ok(group) => group,
            Err(error) => return Entry::Refused(context, error),
        };
        let count = records.len() as u64;
        let apply = self.when_durable(count, move |state: &mut S| apply_all(state, decoded));
        match journal.enqueue(stream, records, apply) {
            Ok(ticket) => Entry::Queued(context, ticket),
            // Over a limit: the item is refused, nothing was queued.
            Err(error @ Error::InvalidArgument(_)) => Entry::Refused(context, error),
            Err(error) => Entry::Failed(context, error),
        }
    }
}
