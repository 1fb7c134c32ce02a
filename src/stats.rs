//! Counters for the four-letter words and, later, metrics.

use std::time::{Instant, SystemTime};

use canopy_protocol::OpCode;

/// Server-wide request counters and latency (microseconds).
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency: Latency,
}

impl ServerStats {
    pub fn record(&mut self, micros: u64) {
        self.latency.record(micros);
    }

    /// `srst`: reset counters.
    pub fn reset(&mut self) {
        *self = ServerStats::default();
    }
}

/// Min/avg/max of request latencies.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub count: u64,
    pub total_micros: u64,
    pub min_micros: u64,
    pub max_micros: u64,
    pub last_micros: u64,
}

impl Latency {
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Counts `n` requests that each took `micros`.
    pub fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.count == 0 || micros < self.min_micros {
            self.min_micros = micros;
        }
        self.max_micros = self.max_micros.max(micros);
        self.last_micros = micros;
        self.count += n;
        self.total_micros += micros * n;
    }

    /// (min, avg, max) in milliseconds. ZooKeeper counts whole milliseconds;
    /// printers floor the minimum and round the maximum up, so min <= avg <= max
    /// holds in what they show.
    pub fn millis(&self) -> (f64, f64, f64) {
        if self.count == 0 {
            return (0.0, 0.0, 0.0);
        }
        (
            self.min_micros as f64 / 1000.0,
            self.total_micros as f64 / self.count as f64 / 1000.0,
            self.max_micros as f64 / 1000.0,
        )
    }
}

/// Per-connection counters, as `cons` shows them.
#[derive(Debug, Clone)]
pub struct ConnStats {
    pub received: u64,
    pub sent: u64,
    pub established: SystemTime,
    pub established_at: Instant,
    pub last_op: Option<OpCode>,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response: Option<SystemTime>,
    pub latency: Latency,
}

impl ConnStats {
    pub fn new() -> ConnStats {
        ConnStats {
            received: 0,
            sent: 0,
            established: SystemTime::now(),
            established_at: Instant::now(),
            last_op: None,
            last_cxid: 0,
            last_zxid: -1,
            last_response: None,
            latency: Latency::default(),
        }
    }

    /// `n` requests answered, each taking `micros`; `op` and `xid` are the
    /// last one's.
    pub fn record(&mut self, op: OpCode, xid: i32, micros: u64, n: u64, zxid: i64) {
        self.last_op = Some(op);
        self.last_cxid = xid;
        self.last_zxid = zxid;
        self.last_response = Some(SystemTime::now());
        self.latency.record_n(micros, n);
    }

    /// `crst`: reset the counters of every connection.
    pub fn reset(&mut self) {
        self.received = 0;
        self.sent = 0;
        self.latency = Latency::default();
        self.last_op = None;
        self.last_zxid = -1;
        self.last_response = None;
    }
}

impl Default for ConnStats {
    fn default() -> Self {
        ConnStats::new()
    }
}
