//! The figures `mntr` prints, computed once for its three readers: the
//! four-letter word (tab-separated lines), the admin command `monitor` (JSON)
//! and `/metrics` (Prometheus). Keys and their order follow ZooKeeper 3.8;
//! only figures Canopy can honestly compute are reported.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::core::Core;
use crate::fourlw::version_string;
use crate::metrics::{Histogram, Tally};

/// One figure's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Int(i64),
    /// Printed as Java prints a double (`3.0`, `0.1667`).
    Float(f64),
    Text(String),
}

impl Figure {
    /// As a number, for Prometheus; text figures have none.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Figure::Int(v) => Some(*v as f64),
            Figure::Float(v) => Some(*v),
            Figure::Text(_) => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Figure::Int(v) => (*v).into(),
            // Rounded to 4 decimals, as ZooKeeper reports its averages.
            Figure::Float(v) => serde_json::Number::from_f64((v * 10_000.0).round() / 10_000.0)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Figure::Text(v) => v.clone().into(),
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Figure::Int(v) => write!(f, "{v}"),
            Figure::Float(v) => f.write_str(&java_double(*v)),
            Figure::Text(v) => f.write_str(v),
        }
    }
}

/// A double as Java prints it after ZooKeeper's rounding to 4 decimals:
/// `3.0`, `0.25`, `0.1667`.
pub fn java_double(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.1}")
    } else {
        format!("{rounded}")
    }
}

/// Figures in ZooKeeper's `mntr` order, without the `zk_` prefix.
pub fn figures(core: &Core) -> Vec<(String, Figure)> {
    use Figure::{Float, Int, Text};
    let (min, avg, max) = core.stats.latency.millis();
    let (_, _, watches) = core.watches.summary();
    let metrics = &core.metrics;
    let access = &core.access;
    let (max_fds, open_fds) = file_descriptors();
    let (last_size, min_size, max_size) = metrics.response_sizes();
    let mut out: Vec<(String, Figure)> = vec![
        ("version".into(), Text(version_string())),
        ("server_state".into(), Text("standalone".into())),
        (
            "ephemerals_count".into(),
            Int(core.tree.ephemeral_count() as i64),
        ),
        ("num_alive_connections".into(), Int(core.conns.len() as i64)),
        ("avg_latency".into(), Float(avg)),
        // Requests are handled to the end under one lock as they arrive:
        // none wait in a queue between reading and processing.
        ("outstanding_requests".into(), Int(0)),
        ("znode_count".into(), Int(core.tree.node_count() as i64)),
        ("global_sessions".into(), Int(core.sessions.len() as i64)),
        ("packets_sent".into(), Int(core.stats.packets_sent as i64)),
        (
            "packets_received".into(),
            Int(core.stats.packets_received as i64),
        ),
        ("last_client_response_size".into(), Int(last_size)),
        ("max_client_response_size".into(), Int(max_size)),
        ("watch_count".into(), Int(watches as i64)),
        (
            "auth_failed_count".into(),
            Int(metrics.auth_failed.load(Ordering::Relaxed) as i64),
        ),
        ("min_latency".into(), Int(min as i64)),
    ];
    if let Some(max_fds) = max_fds {
        out.push(("max_file_descriptor_count".into(), Int(max_fds)));
    }
    out.push((
        "approximate_data_size".into(),
        Int(core.tree.approximate_data_size()),
    ));
    if let Some(open_fds) = open_fds {
        out.push(("open_file_descriptor_count".into(), Int(open_fds)));
    }
    out.extend([
        ("min_client_response_size".into(), Int(min_size)),
        ("local_sessions".into(), Int(0)),
        ("uptime".into(), Int(core.now_ms() as i64)),
        ("max_latency".into(), Int(max.ceil() as i64)),
        (
            "connection_rejected".into(),
            Int(access.refused.total() as i64),
        ),
        (
            "bytes_received_count".into(),
            Int(metrics.bytes_received.load(Ordering::Relaxed) as i64),
        ),
        (
            "response_bytes".into(),
            Int(metrics.bytes_sent.load(Ordering::Relaxed) as i64),
        ),
        (
            "connection_request_count".into(),
            Int(access.accepted.load(Ordering::Relaxed) as i64),
        ),
        ("snap_count".into(), Int(metrics.snapshots().count as i64)),
        ("last_zxid".into(), Text(format!("0x{:x}", core.last_zxid))),
    ]);
    // Measured once, at start-up: summaries of one value, as ZooKeeper has them.
    single(
        &mut out,
        "dbinittime",
        metrics.startup_millis.load(Ordering::Relaxed) as i64,
    );
    single(
        &mut out,
        "startup_txns_loaded",
        metrics.startup_txns_loaded.load(Ordering::Relaxed) as i64,
    );
    summary(&mut out, "fsynctime", &metrics.fsync(), false);
    let (queue_and_flush, batch_size) = metrics.log_batches();
    counts(&mut out, "sync_processor_batch_size", &batch_size);
    summary(
        &mut out,
        "sync_processor_queue_and_flush_time_ms",
        &queue_and_flush,
        true,
    );
    summary(&mut out, "snapshottime", &metrics.snapshots(), false);
    let (update, read) = metrics.update_and_read_latency();
    summary(&mut out, "updatelatency", &update, true);
    summary(&mut out, "readlatency", &read, true);
    out
}

/// ZooKeeper's summary lines for a timing, in milliseconds: avg, min, max,
/// cnt, sum, and with `percentiles` p50, p95, p99, p999.
fn summary(out: &mut Vec<(String, Figure)>, name: &str, h: &Histogram, percentiles: bool) {
    let ms = |micros: u64| Figure::Int((micros / 1000) as i64);
    let avg = if h.count == 0 {
        0.0
    } else {
        h.sum_micros as f64 / 1000.0 / h.count as f64
    };
    out.push((format!("avg_{name}"), Figure::Float(avg)));
    out.push((format!("min_{name}"), ms(h.min_micros)));
    out.push((format!("max_{name}"), ms(h.max_micros)));
    out.push((format!("cnt_{name}"), Figure::Int(h.count as i64)));
    out.push((format!("sum_{name}"), ms(h.sum_micros)));
    if percentiles {
        for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
            out.push((format!("{label}_{name}"), ms(h.quantile_micros(q))));
        }
    }
}

/// Summary lines for a histogram of plain counts (not times).
fn counts(out: &mut Vec<(String, Figure)>, name: &str, t: &Tally) {
    let avg = if t.count == 0 {
        0.0
    } else {
        t.sum as f64 / t.count as f64
    };
    out.push((format!("avg_{name}"), Figure::Float(avg)));
    out.push((format!("min_{name}"), Figure::Int(t.min as i64)));
    out.push((format!("max_{name}"), Figure::Int(t.max as i64)));
    out.push((format!("cnt_{name}"), Figure::Int(t.count as i64)));
    out.push((format!("sum_{name}"), Figure::Int(t.sum as i64)));
}

/// Summary lines for a figure observed once.
fn single(out: &mut Vec<(String, Figure)>, name: &str, value: i64) {
    out.push((format!("avg_{name}"), Figure::Float(value as f64)));
    out.push((format!("min_{name}"), Figure::Int(value)));
    out.push((format!("max_{name}"), Figure::Int(value)));
    out.push((format!("cnt_{name}"), Figure::Int(1)));
    out.push((format!("sum_{name}"), Figure::Int(value)));
}

/// The soft limit on open files and how many are open, where the system
/// tells (Linux's /proc).
fn file_descriptors() -> (Option<i64>, Option<i64>) {
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as i64);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse().ok());
    (max, open)
}

/// The bytes of the files in the data folder (snapshots, log segments and
/// the secret), as `dirs` and `conf` report ZooKeeper's version-2 folder.
/// The log lives in the same folder, so both of ZooKeeper's figures are this.
pub fn data_dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(3.0), "3.0");
        assert_eq!(java_double(0.25), "0.25");
        assert_eq!(java_double(1.0 / 6.0), "0.1667");
    }

    #[test]
    fn summaries_have_zookeepers_keys() {
        let mut h = Histogram::default();
        h.record(2_000);
        h.record(4_000);
        let mut out = Vec::new();
        summary(&mut out, "fsynctime", &h, false);
        let keys: Vec<_> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "avg_fsynctime",
                "min_fsynctime",
                "max_fsynctime",
                "cnt_fsynctime",
                "sum_fsynctime"
            ]
        );
        assert_eq!(out[0].1.to_string(), "3.0");
        assert_eq!(out[4].1, Figure::Int(6));
    }
}
