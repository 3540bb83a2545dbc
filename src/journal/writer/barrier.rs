//! The group-commit barrier (raft-engine's `write_barrier.rs` is the model): the queue
//! of appenders, leadership, and the numbered turns in which rounds run their hooks.
//!
//! Appenders queue requests; whoever finds no leader becomes the leader, takes every
//! queued request (up to the unsynced bound), has them written and synced as one round
//! (see [`super::round`]), and hands leadership to the oldest waiting appender right
//! away, so the next round's write and fdatasync overlap this round's hooks. It then
//! runs its round's on-durable hooks once every earlier round's have run (rounds take
//! numbered turns, so hooks run in LSN order) and wakes exactly the appenders it
//! completed. Appenders arriving meanwhile queue up for the next leader, so under load
//! one fdatasync covers many commits.
//!
//! Two fast paths skip the queue. An appender that finds no leader and nobody queued
//! leads a round of its own request and runs its hook itself, so a lone appender's
//! commit allocates nothing ([`Shared::lead_alone`]). Where the strategy lets a lone
//! appender acknowledge buffered records (`Buffered`), it does less still: holding the
//! queue's mutex (so no round can start meanwhile), it frames its records into the
//! buffer and runs its hook, with no round or turn at all ([`Shared::append_to_buffer`]).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;

use super::round::{Round, Staged};
use super::{DurableHook, RecordToAppend, Shared};
use crate::error::Result;

/// The requests of one round and what became of them, or the records of one request.
/// Inline room for one: a lone appender's round of one record allocates nothing.
pub(super) type Requests<T> = SmallVec<[T; 1]>;

pub(super) struct Request {
    pub(super) id: u64,
    pub(super) records: Requests<RecordToAppend>,
    pub(super) frame_bytes: u64,
    pub(super) hook: Option<DurableHook>,
    /// Wakes the appender waiting for this request (its thread's own condvar, or its
    /// stream's); `None` for a lone leader's own request (nobody waits for it).
    pub(super) waker: Option<Arc<Condvar>>,
    /// For a request of an [`super::AppendStream`]: the stream's stop flag. Set when any
    /// of its requests fails; its later requests then fail without being written.
    pub(super) stream: Option<Arc<AtomicBool>>,
}

impl Request {
    /// Whether an earlier request of this request's stream failed.
    pub(super) fn stream_stopped(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stopped| stopped.load(Ordering::Acquire))
    }
}

thread_local! {
    /// Each thread waits for at most one request at a time, always with the queue mutex
    /// of the journal it appends to, so one condvar per thread serves every request.
    static WAKER: Arc<Condvar> = Arc::new(Condvar::new());
}

/// A completed append.
pub(super) struct Completed {
    pub(super) first_lsn: u64,
    pub(super) output: Option<Box<dyn Any + Send>>,
}

/// A request's result, with the condvar that wakes its appender.
pub(super) struct Outcome {
    pub(super) id: u64,
    pub(super) waker: Option<Arc<Condvar>>,
    pub(super) result: Result<Completed>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Request>,
    leader_active: bool,
    results: HashMap<u64, Result<Completed>>,
    next_id: u64,
    /// Number of the next leader round; rounds run their hooks in this order.
    next_round: u64,
}

/// The queue and the hook turns.
#[derive(Default)]
pub(super) struct Barrier {
    queue: Mutex<Queue>,
    /// The round whose hooks run next. Read and passed on without a lock (a lone
    /// appender's turn is always ready); `turn_waiters` says whether a pass must wake
    /// someone.
    turn: AtomicU64,
    turn_lock: Mutex<()>,
    turn_cv: Condvar,
    /// Appenders waiting in [`Barrier::wait_for_turn`].
    turn_waiters: AtomicU64,
}

/// Passes the hook turn on to the next round when dropped.
pub(super) struct PassTurn<'a>(&'a Barrier);

impl Drop for PassTurn<'_> {
    fn drop(&mut self) {
        let barrier = self.0;
        // SeqCst with the waiter's increment-then-check: either it sees the new turn,
        // or this sees it waiting and wakes it (taking the lock orders the wake-up after
        // its wait began).
        barrier.turn.fetch_add(1, Ordering::SeqCst);
        if barrier.turn_waiters.load(Ordering::SeqCst) > 0 {
            drop(barrier.turn_lock.lock());
            barrier.turn_cv.notify_all();
        }
    }
}

impl Barrier {
    /// Waits until the hooks of every round before `number` have run; the returned guard
    /// passes the turn on when dropped (even if a hook panics, so later rounds never
    /// wait forever).
    fn wait_for_turn(&self, number: u64) -> PassTurn<'_> {
        self.wait_until_turn(number);
        PassTurn(self)
    }

    /// Waits until the hooks of every round before `number` have run, without taking
    /// the turn (round `number` takes it later with [`Barrier::wait_for_turn`]). A
    /// shared writer's leader waits so before applying other processes' records.
    pub(super) fn wait_until_turn(&self, number: u64) {
        if self.turn.load(Ordering::SeqCst) != number {
            let mut guard = self.turn_lock.lock();
            self.turn_waiters.fetch_add(1, Ordering::SeqCst);
            while self.turn.load(Ordering::SeqCst) != number {
                self.turn_cv.wait(&mut guard);
            }
            self.turn_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Ends the caller's leadership and wakes the oldest queued appender to lead next.
    fn pass_leadership(&self) {
        let mut queue = self.queue.lock();
        assert!(queue.leader_active, "only a leader passes leadership on");
        queue.leader_active = false;
        if let Some(waker) = queue.pending.front().and_then(|next| next.waker.as_ref()) {
            waker.notify_one();
        }
    }

    /// The single-appender fast path: when no round is being led and nobody is queued,
    /// the caller becomes the leader of a round of just its own request, without
    /// queueing it. Returns the round's number.
    fn lead_alone(&self) -> Option<u64> {
        let mut queue = self.queue.lock();
        if queue.leader_active || !queue.pending.is_empty() {
            return None;
        }
        queue.leader_active = true;
        let number = queue.next_round;
        queue.next_round += 1;
        Some(number)
    }
}

/// Takes queued requests for one round, oldest first, up to `bytes_max` frame bytes
/// (at least one).
fn take_batch(queue: &mut Queue, bytes_max: u64) -> Requests<Request> {
    let mut batch = Requests::new();
    let mut total = 0u64;
    while let Some(front) = queue.pending.front() {
        if !batch.is_empty() && total + front.frame_bytes > bytes_max {
            break;
        }
        total += front.frame_bytes;
        if let Some(request) = queue.pending.pop_front() {
            batch.push(request);
        }
    }
    batch
}

/// What a fast path did: the append's result, or the records and hook handed back
/// untouched for the next path.
pub(super) enum FastPath<T, H> {
    Done(Result<(u64, T)>),
    Declined(Requests<RecordToAppend>, H),
}

impl Shared {
    /// The queued path: waits for a leader (or becomes one) to write and sync the
    /// request with others, and for its hook's output.
    pub(super) fn submit(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: Option<DurableHook>,
    ) -> Result<Completed> {
        let waker = WAKER.with(Arc::clone);
        let id = self.enqueue(records, frame_bytes, hook, &waker, None);
        self.wait_for(id, &waker)
    }

    /// Queues a request behind every request queued before it (its LSNs follow theirs)
    /// and returns its id; `waker` wakes whoever will wait for it.
    pub(super) fn enqueue(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: Option<DurableHook>,
        waker: &Arc<Condvar>,
        stream: Option<Arc<AtomicBool>>,
    ) -> u64 {
        let mut queue = self.barrier.queue.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        queue.pending.push_back(Request {
            id,
            records,
            frame_bytes,
            hook,
            waker: Some(Arc::clone(waker)),
            stream,
        });
        id
    }

    /// Waits until request `id` (queued with `waker`) completes, leading rounds whenever
    /// nobody leads, and returns its result.
    pub(super) fn wait_for(&self, id: u64, waker: &Arc<Condvar>) -> Result<Completed> {
        let barrier = &self.barrier;
        let mut queue = barrier.queue.lock();
        loop {
            if let Some(result) = queue.results.remove(&id) {
                return result;
            }
            if !queue.leader_active {
                queue.leader_active = true;
                let batch = take_batch(&mut queue, self.strategy.round_bytes_max());
                let round_number = queue.next_round;
                queue.next_round += 1;
                drop(queue);
                let round = self.lead(batch, round_number);
                // Hand leadership on before running hooks: the next round's write and
                // fdatasync overlap this round's hooks.
                barrier.pass_leadership();
                let outcomes = self.run_hooks_in_turn(round_number, round);
                let mut own = None;
                queue = barrier.queue.lock();
                for outcome in outcomes {
                    if outcome.id == id {
                        own = Some(outcome.result);
                    } else {
                        queue.results.insert(outcome.id, outcome.result);
                        if let Some(waker) = &outcome.waker {
                            waker.notify_one();
                        }
                    }
                }
                if let Some(result) = own {
                    return result;
                }
                continue;
            }
            waker.wait(&mut queue);
        }
    }

    /// The lone-appender path: leads a round of the caller's own request if nobody
    /// leads or waits (see [`Barrier::lead_alone`]), writing and syncing it like any
    /// round, handing leadership on, and running `hook` itself in the round's turn (no
    /// boxed hook, no results map, no wake-up). Declines, handing the request back,
    /// when someone else leads or waits.
    pub(super) fn lead_own_round<T, H: FnOnce(u64) -> T>(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: H,
    ) -> FastPath<T, H> {
        let Some(number) = self.barrier.lead_alone() else {
            return FastPath::Declined(records, hook);
        };
        let request = Request {
            // Never queued: its outcome never enters the results map.
            id: u64::MAX,
            records,
            frame_bytes,
            hook: None,
            waker: None,
            stream: None,
        };
        let Round { durable, failed } = self.lead(smallvec::smallvec![request], number);
        self.barrier.pass_leadership();
        let _pass = self.barrier.wait_for_turn(number);
        assert_eq!(
            durable.len() + failed.len(),
            1,
            "a round of one request accounts for it exactly once"
        );
        let result = match (durable.into_iter().next(), failed.into_iter().next()) {
            (Some(staged), _) => Ok((staged.first_lsn, hook(staged.first_lsn))),
            (None, Some(Outcome { result, .. })) => Err(match result {
                Err(err) => err,
                Ok(_) => unreachable!("a failed request carries its error"),
            }),
            (None, None) => unreachable!("asserted above"),
        };
        FastPath::Done(result)
    }

    /// Waits for round `number`'s turn, runs the hooks of its durable requests in LSN
    /// order, passes the turn on, and returns every request's result.
    fn run_hooks_in_turn(&self, number: u64, round: Round) -> Requests<Outcome> {
        let Round {
            durable,
            mut failed,
        } = round;
        let _pass = self.barrier.wait_for_turn(number);
        for Staged { request, first_lsn } in durable {
            let output = request.hook.map(|hook| hook(first_lsn));
            failed.push(Outcome {
                id: request.id,
                waker: request.waker,
                result: Ok(Completed { first_lsn, output }),
            });
        }
        failed
    }

    /// The buffered fast path of a lone appender: when the strategy lets it buffer,
    /// nobody leads, nobody is queued and every earlier round's hooks have run, and the
    /// records fit in the write buffer with no write, sync or rotation due and LSNs to
    /// spare, frames them into the buffer (they are then acknowledged) and runs `hook`
    /// at once. The queue's mutex is held throughout, so no other round can start in
    /// between and hooks stay in LSN order; no round number is taken, since none can be
    /// waiting for one. Anything else is declined untouched for the general path, which
    /// handles every case.
    pub(super) fn append_to_buffer<T, H: FnOnce(u64) -> T>(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: H,
    ) -> FastPath<T, H> {
        if !self.strategy.may_buffer(0, frame_bytes) {
            return FastPath::Declined(records, hook);
        }
        let queue = self.barrier.queue.lock();
        if queue.leader_active
            || !queue.pending.is_empty()
            || self.barrier.turn.load(Ordering::SeqCst) != queue.next_round
        {
            return FastPath::Declined(records, hook);
        }
        let mut writer = self.writer.lock();
        let count = records.len() as u64;
        let unsynced = self.syncer.unsynced(&writer);
        let fits = writer.has_active_segment()
            && !writer.overflows_segment(frame_bytes)
            && self.strategy.may_buffer(writer.buffered(), frame_bytes)
            && !self
                .strategy
                .over_bound(unsynced, writer.buffered(), frame_bytes)
            && writer.has_lsns_for(count)
            // A shared writer buffers only while it holds the lease: taking it means
            // catching up first, which the general path does.
            && self.lease.as_ref().is_none_or(|lease| lease.is_held());
        // Checked last, right before acknowledging, as the general path does.
        if !fits || self.health.check_usable().is_err() {
            return FastPath::Declined(records, hook);
        }
        assert_eq!(
            writer.buffered(),
            writer.buffered_acknowledged(),
            "between rounds the buffer holds acknowledged records only"
        );
        let frontier = self.syncer.durable_frontier(&writer);
        let first_lsn = writer.push_group(&records, frontier);
        writer.acknowledge_buffered();
        self.counters.round_started();
        self.counters.completed(count, frame_bytes);
        self.counters.group_completed(count);
        drop(writer);
        let output = hook(first_lsn);
        drop(queue);
        FastPath::Done(Ok((first_lsn, output)))
    }
}
