//! Power-of-two histograms of what the journal did: fdatasync latencies and the records
//! each group-commit round made durable. Recorded with one relaxed atomic increment;
//! read as a plain copy in [`super::JournalStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of a [`Histogram`]: bucket 0 counts the value 0 and 1, bucket `i` counts
/// values in `2^i ..= 2^(i+1) - 1`, the last bucket everything larger.
pub const HISTOGRAM_BUCKETS: usize = 40;

/// A histogram of values in power-of-two buckets (see [`HISTOGRAM_BUCKETS`]).
///
/// ```
/// # use walstate::Histogram;
/// let mut latencies = Histogram::default();
/// for micros in [90, 110, 130, 5_000] {
///     latencies.record(micros);
/// }
/// assert_eq!(latencies.count(), 4);
/// assert_eq!(latencies.percentile(0.5), Some(127)); // the bucket 64..=127
/// assert_eq!(latencies.percentile(1.0), Some(8_191)); // 4096..=8191
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; HISTOGRAM_BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; HISTOGRAM_BUCKETS],
        }
    }
}

fn bucket_of(value: u64) -> usize {
    (value.max(1).ilog2() as usize).min(HISTOGRAM_BUCKETS - 1)
}

/// The largest value bucket `index` counts.
fn bucket_upper_bound(index: usize) -> u64 {
    if index + 1 >= HISTOGRAM_BUCKETS {
        u64::MAX
    } else {
        (2u64 << index) - 1
    }
}

impl Histogram {
    /// A histogram holding these bucket counts (as [`Histogram::buckets`] returns them).
    pub fn from_buckets(buckets: [u64; HISTOGRAM_BUCKETS]) -> Histogram {
        Histogram { buckets }
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.buckets[bucket_of(value)] += 1;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The counts per bucket.
    pub fn buckets(&self) -> &[u64; HISTOGRAM_BUCKETS] {
        &self.buckets
    }

    /// An upper bound of the `quantile` (0.0..=1.0) of the values counted: the largest
    /// value of the bucket it falls in. `None` when nothing was counted.
    pub fn percentile(&self, quantile: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &in_bucket) in self.buckets.iter().enumerate() {
            seen += in_bucket;
            if seen >= rank {
                return Some(bucket_upper_bound(index));
            }
        }
        Some(u64::MAX)
    }
}

/// The journal's side of a histogram: recorded from any thread.
pub(super) struct AtomicHistogram {
    buckets: [AtomicU64; HISTOGRAM_BUCKETS],
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl AtomicHistogram {
    pub(super) fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_duration(&self, elapsed: Duration) {
        self.record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub(super) fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|index| self.buckets[index].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_and_percentiles_their_upper_bounds() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.percentile(0.5), None);
        for value in [0, 1, 2, 3, 4, 7, 8, 1000, u64::MAX] {
            histogram.record(value);
        }
        let buckets = histogram.buckets();
        assert_eq!(buckets[0], 2, "0 and 1");
        assert_eq!(buckets[1], 2, "2 and 3");
        assert_eq!(buckets[2], 2, "4 and 7");
        assert_eq!(buckets[3], 1, "8");
        assert_eq!(buckets[9], 1, "1000 in 512..=1023");
        assert_eq!(buckets[HISTOGRAM_BUCKETS - 1], 1, "the rest");
        assert_eq!(histogram.count(), 9);
        assert_eq!(histogram.percentile(0.0), Some(1));
        assert_eq!(histogram.percentile(0.5), Some(7));
        assert_eq!(histogram.percentile(8.0 / 9.0), Some(1023));
        assert_eq!(histogram.percentile(1.0), Some(u64::MAX));
    }

    #[test]
    fn the_atomic_side_records_the_same() {
        let atomic = AtomicHistogram::default();
        let mut plain = Histogram::default();
        for value in [5, 50, 500, 5_000] {
            atomic.record(value);
            plain.record(value);
        }
        atomic.record_duration(Duration::from_millis(3));
        plain.record(3_000);
        assert_eq!(atomic.snapshot(), plain);
    }
}
