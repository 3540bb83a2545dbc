//! Appends in a stream: queued without waiting, in order, and waited for later, so one
//! submitter keeps many appends in flight (one group commit covers them) while their
//! LSN order stays the order they were queued in.
//!
//! One thread queues ([`Journal::enqueue`]) and one thread waits for the tickets in the
//! order they were queued ([`Journal::wait`]); the waiting thread leads the rounds
//! (nobody else may be appending). A stream stops at its first failure: every later
//! request of it fails with [`Error::StreamStopped`] without being written, so nothing
//! after a failed append becomes durable.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Condvar;

use super::barrier::Requests;
use super::{Journal, RecordToAppend, boxed_hook};
use crate::error::{Error, Result};

/// An ordered stream of appends (see the module docs).
#[derive(Debug, Default)]
pub struct AppendStream {
    /// Wakes the thread waiting for the stream's tickets.
    waker: Arc<Condvar>,
    /// Set when one of the stream's appends failed.
    stopped: Arc<AtomicBool>,
}

impl AppendStream {
    /// Whether one of the stream's appends failed (its later ones are not written).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// An append queued in a stream; [`Journal::wait`] returns its first LSN and its hook's
/// output once it is durable. Every ticket must be waited for, in the order queued.
#[must_use = "every ticket must be waited for with Journal::wait"]
#[derive(Debug)]
pub struct Ticket<T> {
    id: u64,
    output: PhantomData<fn() -> T>,
}

impl Journal {
    /// A new, empty stream of appends.
    pub fn stream(&self) -> AppendStream {
        AppendStream::default()
    }

    /// Queues `records` as one atomic group behind everything queued before, without
    /// waiting; `hook` runs with the first LSN once the group is durable, in LSN order.
    /// Refused (nothing queued) if the records break a limit, the journal is unusable,
    /// or the stream has stopped.
    pub fn enqueue<T: Send + 'static>(
        &self,
        stream: &AppendStream,
        records: Vec<RecordToAppend>,
        hook: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Result<Ticket<T>> {
        self.check_usable()?;
        if stream.is_stopped() {
            return Err(Error::StreamStopped);
        }
        let frame_bytes = super::limits::frame_bytes(&records, self.shared.options.record_payload_max)?;
        let id = self.shared.enqueue(
            Requests::from_vec(records),
            frame_bytes,
            Some(boxed_hook(hook)),
            &stream.waker,
            Some(Arc::clone(&stream.stopped)),
        );
        Ok(Ticket {
            id,
            output: PhantomData,
        })
    }

    /// Waits until the append of `ticket` (queued in `stream`) is durable, leading
    /// group-commit rounds meanwhile, and returns its first LSN and its hook's output.
    pub fn wait<T: 'static>(&self, stream: &AppendStream, ticket: Ticket<T>) -> Result<(u64, T)> {
        let done = self.shared.wait_for(ticket.id, &stream.waker)?;
        match done.output.map(|output| output.downcast::<T>()) {
            Some(Ok(output)) => Ok((done.first_lsn, *output)),
            _ => unreachable!("a ticket's hook output has the ticket's type"),
        }
    }
}
