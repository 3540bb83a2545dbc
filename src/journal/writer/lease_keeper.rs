//! The lease keeper: a thread that lets go of a shared writer's lingering lease once
//! its linger runs out (see [`super::lease`]). Rounds extend a linger without waking
//! it; it is woken only when a linger starts while it sleeps. Both sides update its
//! schedule holding the writer's mutex, so a linger is never left without a keeper.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::Shared;
use crate::error::{Error, Result};

#[derive(Default)]
pub(super) struct LeaseKeeper {
    slot: Mutex<Slot>,
    wake: Condvar,
}

#[derive(Default)]
struct Slot {
    /// When to look at the lease next; `None` while no linger runs.
    at: Option<Instant>,
    stop: bool,
}

impl LeaseKeeper {
    /// A linger runs until `until` (called with the writer's mutex held).
    pub(super) fn linger_started(&self, until: Instant) {
        let mut slot = self.slot.lock();
        if slot.at.is_none() {
            slot.at = Some(until);
            self.wake.notify_one();
        }
    }

    pub(super) fn stop(&self) {
        self.slot.lock().stop = true;
        self.wake.notify_one();
    }
}

/// Starts the keeper of `shared`'s lease; it runs until [`LeaseKeeper::stop`].
pub(super) fn spawn_lease_keeper(shared: Arc<Shared>) -> Result<JoinHandle<()>> {
    let dir = shared.dir.clone();
    std::thread::Builder::new()
        .name("walstate-lease".into())
        .spawn(move || run(&shared))
        .map_err(|err| Error::io("start lease keeper thread for", &dir, err))
}

fn run(shared: &Shared) {
    let keeper = &shared.keeper;
    let Some(lease) = &shared.lease else {
        return;
    };
    loop {
        {
            let mut slot = keeper.slot.lock();
            loop {
                if slot.stop {
                    return;
                }
                match slot.at {
                    None => keeper.wake.wait(&mut slot),
                    Some(at) if at > Instant::now() => {
                        let _ = keeper.wake.wait_until(&mut slot, at);
                    }
                    Some(_) => break,
                }
            }
        }
        // No round runs while the writer's mutex is held: the lease changes hands only
        // between rounds.
        let writer = shared.writer.lock();
        let next = lease.expire_linger(writer.buffered());
        keeper.slot.lock().at = next;
        drop(writer);
    }
}
