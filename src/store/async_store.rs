//! `AsyncStore<S>` (feature `tokio`): the store's commit path as futures. A command is
//! encoded and queued on the caller's task, one committer thread per store waits for the
//! queued groups in order (leading the journal's group-commit rounds), and each future
//! is resolved from the journal's durable hook. No thread waits per commit: a thousand
//! waiting commits are a thousand futures and one thread.
//!
//! Open, close and checkpoints do blocking I/O of their own; they run on tokio's
//! blocking pool, never on a runtime worker. Snapshots and restores run on the committer
//! thread, in turn between the commits queued before and after them.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Inner, Store, apply_all, command_record, logged, logged_group};
use crate::error::{Error, Result};
use crate::journal::{AppendStream, Journal};
use crate::options::Options;
use crate::state::StateMachine;
use crate::{CheckpointInfo, RestoreInfo, SnapshotInfo};

/// What the committer thread does once a queued group is waited for: hand the result to
/// its future.
type Waiter = Box<dyn FnOnce(&Journal, &AppendStream) + Send>;
/// Queues a group in the journal (in the order jobs arrive) and returns its waiter, or
/// answers at once (refused, or nothing to wait for).
type Enqueue = Box<dyn FnOnce(&Journal, &AppendStream) -> Option<Waiter> + Send>;

/// A job for the committer thread.
enum Job {
    /// A group to queue.
    Queue(Enqueue),
    /// An operation ordered between commits (a snapshot, a restore): it runs once every
    /// group queued before it is answered, before any queued after it, without the gate.
    Exclusive(Box<dyn FnOnce() + Send>),
}

/// A [`Store`] whose commits are futures (feature `tokio`). Clone it freely: clones
/// share one store and one committer thread.
///
/// ```
/// use walstate::{AsyncStore, KvCommand, KvState, Options};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// # let tmp = tempfile::tempdir()?;
/// let store = AsyncStore::<KvState>::open(tmp.path().join("s"), Options::default()).await?;
/// // A thousand tasks committing at once share fdatasyncs; no thread waits per commit.
/// let commits: Vec<_> = (0..1000)
///     .map(|i| store.apply(KvCommand::put(format!("k{i}"), "v")))
///     .collect();
/// for commit in commits {
///     commit.await??; // the store's result, then the put's (a put is never rejected)
/// }
/// assert_eq!(store.read(|state| state.len())?, 1000);
/// store.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Cancellation
/// A commit is queued when its future is created (the `apply` call), not when it is
/// first polled. Dropping the future never un-commits: the command is still written,
/// made durable and applied, and only its output is discarded. After a crash it may or
/// may not be there, like any commit that was never acknowledged. To know, keep the
/// future (or read the state after a later commit).
///
/// # Failures
/// A failed commit fails the commits queued behind it with [`Error::StreamStopped`]
/// (unwritten), so nothing after a failure becomes durable; commits queued once those
/// are answered start afresh. A failed fdatasync poisons the store as always.
pub struct AsyncStore<S: StateMachine> {
    store: Store<S>,
    committer: Arc<Committer>,
}

impl<S: StateMachine> Clone for AsyncStore<S> {
    fn clone(&self) -> Self {
        AsyncStore {
            store: self.store.clone(),
            committer: Arc::clone(&self.committer),
        }
    }
}

impl<S: StateMachine> std::fmt::Debug for AsyncStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStore")
            .field("store", &self.store)
            .finish()
    }
}

/// The committer thread and the channel to it. Dropping the last handle closes the
/// channel; the thread answers what it holds and ends.
struct Committer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    fn start<S: StateMachine>(inner: Arc<Inner<S>>) -> Result<Committer> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let dir = inner.dir.clone();
        let name = format!("walstate-commit {}", dir.display());
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || commit_loop(&inner, &receiver))
            .map_err(|err| Error::io("spawn the committer thread of", &dir, err))?;
        Ok(Committer {
            jobs: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn submit(&self, job: Job) -> Result<()> {
        match &*self.jobs.lock() {
            Some(sender) => sender.send(job).map_err(|_| Error::Closed),
            None => Err(Error::Closed),
        }
    }

    /// Closes the channel and waits for the thread to answer what it holds.
    fn stop(&self) {
        self.jobs.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The committer thread: queues each job's group in arrival order, then waits for the
/// oldest group (leading the journal's rounds, which commit everything queued so far in
/// one fdatasync), answers it, and repeats. While groups are outstanding it holds the
/// writer's gate shared, as a blocking commit does, so a restore knows its LSN. An
/// exclusive job waits until everything before it is answered and runs with the gate
/// released; nothing after it is queued before it has run.
fn commit_loop<S: StateMachine>(inner: &Inner<S>, jobs: &mpsc::Receiver<Job>) {
    let Some(writer) = inner.writer.as_ref() else {
        return;
    };
    let journal = &writer.journal;
    let mut stream = journal.stream();
    let mut received: VecDeque<Job> = VecDeque::new();
    let mut outstanding: VecDeque<Waiter> = VecDeque::new();
    let mut gate = None;
    loop {
        if outstanding.is_empty() && received.is_empty() {
            gate = None;
            let Ok(job) = jobs.recv() else {
                return;
            };
            received.push_back(job);
        }
        received.extend(jobs.try_iter());
        while let Some(Job::Queue(_)) = received.front() {
            let Some(Job::Queue(enqueue)) = received.pop_front() else {
                unreachable!("the front job is a Queue");
            };
            // A stopped stream's groups are all answered: later ones start afresh.
            if outstanding.is_empty() && stream.is_stopped() {
                stream = journal.stream();
            }
            gate.get_or_insert_with(|| writer.gate.read());
            outstanding.extend(enqueue(journal, &stream));
        }
        if let Some(waiter) = outstanding.pop_front() {
            waiter(journal, &stream);
        } else if let Some(Job::Exclusive(run)) = received.pop_front() {
            gate = None;
            run();
        }
    }
}

impl<S: StateMachine> AsyncStore<S> {
    /// Opens (or creates) the store in `dir` on tokio's blocking pool (see
    /// [`Store::open`]) and starts its committer thread.
    pub async fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let store = blocking(move || Store::<S>::open(&dir, options)).await?;
        AsyncStore::from_store(store)
    }

    /// Wraps an open store; its commits through this handle are futures.
    pub fn from_store(store: Store<S>) -> Result<Self> {
        let committer = Arc::new(Committer::start(Arc::clone(&store.inner))?);
        Ok(AsyncStore { store, committer })
    }

    /// The blocking store underneath (reads, stats, anything not offered here).
    pub fn store(&self) -> &Store<S> {
        &self.store
    }

    /// Like [`Store::apply`]: resolves once `command` is durable and applied, with its
    /// output. Queued when called (see the type's docs on cancellation).
    pub fn apply(
        &self,
        command: S::Command,
    ) -> impl std::future::Future<Output = Result<S::Output>> + Send + 'static {
        let queued = self.queue_group(
            1,
            |state: &mut S, decoded: Vec<S::Command>| {
                let mut outputs = apply_all(state, decoded);
                outputs.pop().expect("one command, one output") // ok: apply_batch returns one output per command
            },
            vec![command],
        );
        async move {
            queued?
                .await
                .map_err(|_| Error::Closed)?
                .map(|(_, output)| output)
        }
    }

    /// Like [`Store::apply_batch`]: one atomic group, resolved once durable and applied.
    pub fn apply_batch(
        &self,
        commands: Vec<S::Command>,
    ) -> impl std::future::Future<Output = Result<Vec<S::Output>>> + Send + 'static {
        let count = commands.len() as u64;
        // A read-only store refuses even an empty batch, as Store::apply_batch does.
        let queued = match self.store.writer() {
            Err(error) => Err(error),
            Ok(_) if commands.is_empty() => Ok(None),
            Ok(_) => self.queue_group(count, apply_all, commands).map(Some),
        };
        async move {
            match queued? {
                None => Ok(Vec::new()),
                Some(receiver) => receiver
                    .await
                    .map_err(|_| Error::Closed)?
                    .map(|(_, outputs)| outputs),
            }
        }
    }

    /// Like [`Store::sync`]: resolves once everything acknowledged before it is durable.
    /// Runs on the committer thread after the commits queued before it.
    pub fn sync(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        let submitted = self.store.writer().map(drop).and_then(|()| {
            self.committer.submit(Job::Queue(Box::new(move |_, _| {
                Some(Box::new(move |journal: &Journal, _: &AppendStream| {
                    let _ = sender.send(journal.sync());
                }) as Waiter)
            })))
        });
        async move {
            submitted?;
            receiver.await.map_err(|_| Error::Closed)?
        }
    }

    /// Like [`Store::read`] (no I/O, so not a future).
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> Result<R> {
        self.store.read(f)
    }

    /// Like [`Store::checkpoint`], on tokio's blocking pool.
    pub async fn checkpoint(&self) -> Result<CheckpointInfo> {
        let store = self.store.clone();
        blocking(move || store.checkpoint()).await
    }

    /// Like [`Store::snapshot`]: the state after every commit queued before this call
    /// and none queued after it. Runs on the committer thread, in turn.
    pub fn snapshot(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<SnapshotInfo>> + Send + 'static {
        let (store, name) = (self.store.clone(), name.to_owned());
        self.exclusive(move || store.snapshot(&name))
    }

    /// Like [`Store::restore_snapshot`]: after every commit queued before this call and
    /// before any queued after it. Runs on the committer thread, in turn.
    pub fn restore_snapshot(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<RestoreInfo>> + Send + 'static {
        let (store, name) = (self.store.clone(), name.to_owned());
        self.exclusive(move || store.restore_snapshot(&name))
    }

    /// Runs `f` on the committer thread between the commits queued before and after it.
    fn exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        let submitted = self.store.writer().map(drop).and_then(|()| {
            self.committer.submit(Job::Exclusive(Box::new(move || {
                let _ = sender.send(f());
            })))
        });
        async move {
            submitted?;
            receiver.await.map_err(|_| Error::Closed)?
        }
    }

    /// Stops this store's committer (after answering every queued commit) and closes the
    /// store (see [`Store::close`]), on tokio's blocking pool. Other clones then fail
    /// with [`Error::Closed`].
    pub async fn close(self) -> Result<()> {
        let AsyncStore { store, committer } = self;
        blocking(move || {
            committer.stop();
            store.close()
        })
        .await
    }

    /// Encodes `commands` and queues them as one group whose hook applies them with
    /// `apply`; returns the receiver of (first LSN, output).
    fn queue_group<O: Send + 'static>(
        &self,
        count: u64,
        apply: impl FnOnce(&mut S, Vec<S::Command>) -> O + Send + 'static,
        commands: Vec<S::Command>,
    ) -> Result<oneshot::Receiver<Result<(u64, O)>>> {
        self.store.writer()?;
        let (records, decoded) = if commands.len() == 1 {
            let command = commands.into_iter().next().expect("one command"); // ok: the branch holds exactly one
            let (payload, decoded) = logged::<S>(command)?;
            (vec![command_record(payload)], vec![decoded])
        } else {
            logged_group::<S>(commands)?
        };
        let hook = self
            .store
            .when_durable(count, move |state: &mut S| apply(state, decoded));
        let (sender, receiver) = oneshot::channel();
        let store = self.store.clone();
        self.committer
            .submit(Job::Queue(Box::new(move |journal, stream| {
                match journal.enqueue(stream, records, hook) {
                    Ok(ticket) => Some(Box::new(move |journal: &Journal, stream: &AppendStream| {
                        let result = journal.wait(stream, ticket);
                        if result.is_ok()
                            && let Some(writer) = store.inner.writer.as_ref()
                        {
                            store.maybe_trigger_checkpoint(writer);
                        }
                        let _ = sender.send(result);
                    }) as Waiter),
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        None
                    }
                }
            })))?;
        Ok(receiver)
    }
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| Error::Poisoned {
            cause: format!("a blocking store call panicked or was cancelled: {err}"),
        })?
}
