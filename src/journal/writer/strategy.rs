//! The sync policy as one strategy: every decision the layers take that depends on
//! [`SyncPolicy`] is a question asked here, so a policy is read in one place.

use std::time::Duration;

use crate::journal::options::{JournalOptions, SyncPolicy};

/// What the background syncer thread does under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SyncerDuty {
    /// No syncer thread: every round fdatasyncs before it acknowledges (`Always`).
    None,
    /// Runs the fdatasyncs handed to it at half the unsynced bound.
    OnDemand,
    /// Also fdatasyncs everything written on a tick (`Interval`).
    OnDemandAndEvery(Duration),
}

/// The decisions a [`SyncPolicy`] makes, with the limits they depend on.
#[derive(Debug, Clone, Copy)]
pub(super) struct SyncStrategy {
    policy: SyncPolicy,
    /// Most bytes written and not yet synced.
    unsynced_bytes_max: u64,
    /// The write buffer a round may leave unwritten (0 unless `Buffered`).
    buffered_bytes_max: u64,
}

impl SyncStrategy {
    pub(super) fn new(options: &JournalOptions) -> Self {
        SyncStrategy {
            policy: options.sync_policy,
            unsynced_bytes_max: options.unsynced_bytes_max,
            buffered_bytes_max: options.buffered_bytes_max(),
        }
    }

    /// The syncer thread this policy needs.
    pub(super) fn syncer_duty(&self) -> SyncerDuty {
        match self.policy {
            SyncPolicy::Always => SyncerDuty::None,
            SyncPolicy::Interval(every) => SyncerDuty::OnDemandAndEvery(every),
            SyncPolicy::Never | SyncPolicy::Buffered => SyncerDuty::OnDemand,
        }
    }

    /// Whether a lone appender may acknowledge records that are only in the write buffer
    /// (the `Buffered` fast path), if `frame_bytes` more keep the buffer below its bound.
    pub(super) fn may_buffer(&self, buffered: u64, frame_bytes: u64) -> bool {
        self.policy == SyncPolicy::Buffered && buffered + frame_bytes < self.buffered_bytes_max
    }

    /// Whether a round that leaves `buffered` bytes in the write buffer writes them out
    /// before acknowledging (always, except under `Buffered` with room left).
    pub(super) fn writes_round(&self, buffered: u64) -> bool {
        buffered >= self.buffered_bytes_max
    }

    /// Whether a round with `unsynced` bytes written and not synced fdatasyncs before
    /// acknowledging (always under `Always`; otherwise only past the unsynced bound).
    pub(super) fn syncs_round(&self, unsynced: u64) -> bool {
        self.policy == SyncPolicy::Always || unsynced > self.unsynced_bytes_max
    }

    /// Whether every round fdatasyncs before acknowledging, whatever it wrote (`Always`).
    pub(super) fn syncs_every_round(&self) -> bool {
        self.syncs_round(0)
    }

    /// Whether, with `unsynced` bytes not synced after a write, an fdatasync is handed
    /// to the syncer thread (at half the bound; never under `Always`).
    pub(super) fn hands_off_sync(&self, unsynced: u64) -> bool {
        self.policy != SyncPolicy::Always && unsynced >= self.unsynced_bytes_max / 2
    }

    /// Whether writing `pending` buffered bytes plus `frame_bytes` more, with `unsynced`
    /// bytes already unsynced, would pass the unsynced bound (a single frame larger than
    /// the bound is allowed onto a synced segment: the torn window covers one frame).
    pub(super) fn over_bound(&self, unsynced: u64, pending: u64, frame_bytes: u64) -> bool {
        (pending > 0 || unsynced > 0) && unsynced + pending + frame_bytes > self.unsynced_bytes_max
    }

    /// The most bytes of requests one round takes from the queue.
    pub(super) fn round_bytes_max(&self) -> u64 {
        self.unsynced_bytes_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(policy: SyncPolicy) -> SyncStrategy {
        SyncStrategy::new(&JournalOptions {
            sync_policy: policy,
            ..JournalOptions::default()
        })
    }

    #[test]
    fn always_syncs_every_round_and_never_hands_off() {
        let always = strategy(SyncPolicy::Always);
        assert_eq!(always.syncer_duty(), SyncerDuty::None);
        assert!(always.syncs_round(1));
        assert!(always.syncs_every_round());
        assert!(!always.hands_off_sync(u64::MAX));
        assert!(always.writes_round(0));
        assert!(!always.may_buffer(0, 1));
    }

    #[test]
    fn buffered_keeps_a_round_in_memory_until_the_buffer_fills() {
        let buffered = strategy(SyncPolicy::Buffered);
        let max = buffered.buffered_bytes_max;
        assert!(max > 0);
        assert!(!buffered.writes_round(max - 1));
        assert!(buffered.writes_round(max));
        assert!(buffered.may_buffer(0, max - 1));
        assert!(!buffered.may_buffer(1, max - 1));
        assert!(!buffered.syncs_round(buffered.unsynced_bytes_max));
        assert!(!buffered.syncs_every_round());
        assert!(buffered.syncs_round(buffered.unsynced_bytes_max + 1));
    }

    #[test]
    fn interval_ticks_and_never_acknowledges_unwritten_records() {
        let every = Duration::from_millis(7);
        let interval = strategy(SyncPolicy::Interval(every));
        assert_eq!(interval.syncer_duty(), SyncerDuty::OnDemandAndEvery(every));
        assert!(interval.writes_round(0));
        assert!(!interval.may_buffer(0, 1));
        assert!(interval.hands_off_sync(interval.unsynced_bytes_max / 2));
        assert!(!interval.hands_off_sync(interval.unsynced_bytes_max / 2 - 1));
    }

    #[test]
    fn the_bound_allows_one_oversized_frame_onto_a_synced_segment() {
        let never = strategy(SyncPolicy::Never);
        let max = never.unsynced_bytes_max;
        assert!(!never.over_bound(0, 0, max * 4));
        assert!(never.over_bound(1, 0, max));
        assert!(never.over_bound(0, 1, max));
        assert!(!never.over_bound(0, 1, max - 1));
    }
}
