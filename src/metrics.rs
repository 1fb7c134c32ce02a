//! Monotonic counters and latency histograms for `/metrics` and `mntr`.
//!
//! Unlike [`crate::stats`] (what `srvr`/`stat` show, reset by `srst`), these
//! never go backwards while the server runs, as Prometheus counters must.
//! Byte counters and fsync times are written from outside the core lock
//! (connection tasks, the log writer thread), hence atomics and a lock of
//! their own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use canopy_protocol::OpCode;
use parking_lot::Mutex;

/// Upper bounds of the histogram buckets, in microseconds (the last bucket,
/// +Inf, is implicit).
pub const BUCKETS_MICROS: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// A latency histogram with exact count, sum, min and max.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// One count per bucket of [`BUCKETS_MICROS`], then the +Inf bucket
    /// (not cumulative).
    pub buckets: [u64; BUCKETS_MICROS.len() + 1],
    pub count: u64,
    pub sum_micros: u64,
    pub min_micros: u64,
    pub max_micros: u64,
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Counts `n` events that each took `micros`.
    pub fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        let at = BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BUCKETS_MICROS.len());
        self.buckets[at] += n;
        if self.count == 0 || micros < self.min_micros {
            self.min_micros = micros;
        }
        self.max_micros = self.max_micros.max(micros);
        self.count += n;
        self.sum_micros += micros * n;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
        if self.count == 0 || other.min_micros < self.min_micros {
            self.min_micros = other.min_micros;
        }
        self.max_micros = self.max_micros.max(other.max_micros);
        self.count += other.count;
        self.sum_micros += other.sum_micros;
    }

    /// The upper bound of the bucket holding the `q` quantile, capped by the
    /// largest value seen: an upper estimate, in microseconds.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = BUCKETS_MICROS.get(i).copied().unwrap_or(u64::MAX);
                return bound.min(self.max_micros);
            }
        }
        self.max_micros
    }
}

/// Count, sum, min and max of plain numbers (not times).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

impl Tally {
    pub fn record(&mut self, value: u64) {
        if self.count == 0 || value < self.min {
            self.min = value;
        }
        self.max = self.max.max(value);
        self.count += 1;
        self.sum += value;
    }
}

/// Requests whose latency ZooKeeper counts as `updatelatency` (they change
/// state); the rest count as `readlatency`.
pub fn is_update(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::Create
            | OpCode::Create2
            | OpCode::CreateContainer
            | OpCode::CreateTtl
            | OpCode::Delete
            | OpCode::DeleteContainer
            | OpCode::SetData
            | OpCode::SetAcl
            | OpCode::Check
            | OpCode::Multi
            | OpCode::Reconfig
            | OpCode::CreateSession
            | OpCode::CloseSession
    )
}

/// Last, smallest and largest response sizes; -1 until the first response.
#[derive(Debug)]
struct ResponseSizes {
    last: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

impl Default for ResponseSizes {
    fn default() -> Self {
        ResponseSizes {
            last: AtomicI64::new(-1),
            min: AtomicI64::new(-1),
            max: AtomicI64::new(-1),
        }
    }
}

/// The server's monotonic metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bytes read from client connections (frames and four-letter words).
    pub bytes_received: AtomicU64,
    /// Bytes of frames queued to clients (replies and notifications).
    pub bytes_sent: AtomicU64,
    /// `addauth` requests refused (the connection is closed after each).
    pub auth_failed: AtomicU64,
    /// Sizes of the frames sent to clients: the last, the smallest, the
    /// largest (ZooKeeper's client_response_stats).
    response_size: ResponseSizes,
    /// Start-up: how long loading the data folder took, and how many log
    /// records were replayed (ZooKeeper's dbinittime, startup_txns_loaded).
    pub startup_millis: AtomicU64,
    pub startup_txns_loaded: AtomicU64,
    /// Per request type: how many were processed and how long each took in
    /// the core (decode to reply queued; the wait for the log is apart).
    /// A short list searched by opcode: cheaper per request than a map
    /// keyed by name, and only a handful of request types are ever seen.
    requests: Mutex<Vec<(OpCode, Histogram)>>,
    /// How long each log fsync took.
    fsync: Mutex<Histogram>,
    /// How long each snapshot took to write.
    snapshots: Mutex<Histogram>,
    /// Per log batch (one write + fsync): the time from its oldest record's
    /// append to the batch being durable, and how many records it held.
    log_batches: Mutex<(Histogram, Tally)>,
}

impl Metrics {
    pub fn add_received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One frame queued to a client.
    pub fn add_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        let size = bytes as i64;
        let sizes = &self.response_size;
        // Plain loads first: the extremes rarely change, and a write to a
        // counter every thread touches costs far more than a read.
        if sizes.last.load(Ordering::Relaxed) != size {
            sizes.last.store(size, Ordering::Relaxed);
        }
        if size > sizes.max.load(Ordering::Relaxed) {
            sizes.max.fetch_max(size, Ordering::Relaxed);
        }
        let min = sizes.min.load(Ordering::Relaxed);
        if min < 0 || size < min {
            let _ = sizes
                .min
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |min| {
                    (min < 0 || size < min).then_some(size)
                });
        }
    }

    /// (last, min, max) response size in bytes; -1 before any.
    pub fn response_sizes(&self) -> (i64, i64, i64) {
        let sizes = &self.response_size;
        (
            sizes.last.load(Ordering::Relaxed),
            sizes.min.load(Ordering::Relaxed),
            sizes.max.load(Ordering::Relaxed),
        )
    }

    pub fn record_request(&self, op: OpCode, micros: u64) {
        self.record_requests(op, micros, 1);
    }

    /// `n` requests of type `op` that each took `micros`.
    pub fn record_requests(&self, op: OpCode, micros: u64, n: u64) {
        let mut requests = self.requests.lock();
        match requests.iter_mut().find(|(seen, _)| *seen == op) {
            Some((_, histogram)) => histogram.record_n(micros, n),
            None => {
                let mut histogram = Histogram::default();
                histogram.record_n(micros, n);
                requests.push((op, histogram));
            }
        }
    }

    pub fn record_fsync(&self, took: Duration) {
        self.fsync.lock().record(took.as_micros() as u64);
    }

    /// One log batch made durable: `records` records, the oldest of which
    /// waited `waited` (queueing behind the previous fsync, write, fsync).
    pub fn record_log_batch(&self, records: u64, waited: Duration) {
        let mut batches = self.log_batches.lock();
        batches.0.record(waited.as_micros() as u64);
        batches.1.record(records);
    }

    /// (queue-and-flush time, records per batch).
    pub fn log_batches(&self) -> (Histogram, Tally) {
        self.log_batches.lock().clone()
    }

    pub fn record_snapshot(&self, took: Duration) {
        self.snapshots.lock().record(took.as_micros() as u64);
    }

    /// Per request type name: its opcode and latency histogram.
    pub fn requests(&self) -> BTreeMap<&'static str, (OpCode, Histogram)> {
        self.requests
            .lock()
            .iter()
            .map(|(op, histogram)| (op.name(), (*op, histogram.clone())))
            .collect()
    }

    pub fn fsync(&self) -> Histogram {
        self.fsync.lock().clone()
    }

    pub fn snapshots(&self) -> Histogram {
        self.snapshots.lock().clone()
    }

    /// All updates and all reads, merged (ZooKeeper's updatelatency and
    /// readlatency).
    pub fn update_and_read_latency(&self) -> (Histogram, Histogram) {
        let mut update = Histogram::default();
        let mut read = Histogram::default();
        for (op, histogram) in self.requests.lock().iter() {
            if is_update(*op) {
                update.merge(histogram);
            } else {
                read.merge(histogram);
            }
        }
        (update, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_and_quantiles() {
        let mut h = Histogram::default();
        for micros in [10, 80, 90, 700, 3_000] {
            h.record(micros);
        }
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_micros, 3_880);
        assert_eq!((h.min_micros, h.max_micros), (10, 3_000));
        assert_eq!(h.buckets[0], 1); // <= 50
        assert_eq!(h.buckets[1], 2); // <= 100
        assert_eq!(h.quantile_micros(0.5), 100);
        assert_eq!(h.quantile_micros(0.99), 3_000);
    }

    #[test]
    fn requests_split_into_updates_and_reads() {
        let m = Metrics::default();
        m.record_request(OpCode::Create, 100);
        m.record_request(OpCode::GetData, 10);
        m.record_request(OpCode::GetData, 20);
        let (update, read) = m.update_and_read_latency();
        assert_eq!((update.count, read.count), (1, 2));
        assert_eq!(m.requests()["getData"].1.count, 2);
    }
}
