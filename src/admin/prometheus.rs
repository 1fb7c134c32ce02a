//! `GET /metrics`: Prometheus text format (version 0.0.4).
//!
//! - every numeric `mntr` figure as a gauge named as exporters name them from
//!   `mntr` (`zk_znode_count`, `zk_avg_latency`, ...);
//! - Canopy's monotonic counters and histograms: requests and their latency
//!   per request type, bytes in and out, fsync and snapshot times, accepted
//!   and refused connections.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;
use crate::access::Refusal;
use crate::core::Core;
use crate::metrics::{Histogram, BUCKETS_MICROS};
use crate::monitor;

/// `GET /metrics`.
pub async fn scrape(State(state): State<AdminState>) -> impl IntoResponse {
    let text = render(&state.core.lock());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The whole exposition.
pub fn render(core: &Core) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP canopy_info The server's version and the ZooKeeper version it speaks.\n\
         # TYPE canopy_info gauge\n\
         canopy_info{{version=\"{}\",zookeeper_version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::fourlw::ZOOKEEPER_VERSION
    );
    for (key, figure) in monitor::figures(core) {
        let Some(value) = figure.as_f64() else {
            continue;
        };
        let _ = writeln!(out, "# TYPE zk_{key} gauge\nzk_{key} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP zk_last_processed_zxid The zxid of the last change applied.\n\
         # TYPE zk_last_processed_zxid gauge\nzk_last_processed_zxid {}",
        core.last_zxid
    );

    let metrics = &core.metrics;
    let requests = metrics.requests();
    let _ = writeln!(
        out,
        "# HELP canopy_requests_total Requests processed, by type.\n# TYPE canopy_requests_total counter"
    );
    for (name, (_, histogram)) in &requests {
        let _ = writeln!(
            out,
            "canopy_requests_total{{op=\"{name}\"}} {}",
            histogram.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP canopy_request_duration_seconds Time a request spends in the core, by type \
         (the wait for the log's fsync is in canopy_fsync_duration_seconds).\n\
         # TYPE canopy_request_duration_seconds histogram"
    );
    for (name, (_, histogram)) in &requests {
        histogram_lines(
            &mut out,
            "canopy_request_duration_seconds",
            &format!("op=\"{name}\","),
            histogram,
        );
    }
    let _ = writeln!(
        out,
        "# HELP canopy_fsync_duration_seconds Time each fsync of the write-ahead log took.\n\
         # TYPE canopy_fsync_duration_seconds histogram"
    );
    histogram_lines(
        &mut out,
        "canopy_fsync_duration_seconds",
        "",
        &metrics.fsync(),
    );
    let (queue_and_flush, _) = metrics.log_batches();
    let _ = writeln!(
        out,
        "# HELP canopy_log_queue_and_flush_seconds Per log batch: from its oldest record's \
         append to the batch being durable (group commit wait, write, fsync).\n\
         # TYPE canopy_log_queue_and_flush_seconds histogram"
    );
    histogram_lines(
        &mut out,
        "canopy_log_queue_and_flush_seconds",
        "",
        &queue_and_flush,
    );
    let _ = writeln!(
        out,
        "# HELP canopy_snapshot_duration_seconds Time each snapshot took to write.\n\
         # TYPE canopy_snapshot_duration_seconds histogram"
    );
    histogram_lines(
        &mut out,
        "canopy_snapshot_duration_seconds",
        "",
        &metrics.snapshots(),
    );
    let counters = [
        (
            "canopy_bytes_received_total",
            "Bytes read from client connections.",
            metrics.bytes_received.load(Ordering::Relaxed),
        ),
        (
            "canopy_bytes_sent_total",
            "Bytes of replies and notifications queued to clients.",
            metrics.bytes_sent.load(Ordering::Relaxed),
        ),
        (
            "canopy_connections_accepted_total",
            "Client connections let in by the access rules.",
            core.access.accepted.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP canopy_connections_refused_total Client connections closed at accept, by reason.\n\
         # TYPE canopy_connections_refused_total counter"
    );
    for reason in Refusal::ALL {
        let _ = writeln!(
            out,
            "canopy_connections_refused_total{{reason=\"{}\"}} {}",
            reason.label(),
            core.access.refused.get(reason)
        );
    }
    out
}

/// Cumulative buckets, sum and count of one histogram, in seconds.
fn histogram_lines(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (bound, count) in BUCKETS_MICROS.iter().zip(h.buckets.iter()) {
        cumulative += count;
        let le = *bound as f64 / 1_000_000.0;
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let labels = labels.trim_end_matches(',');
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(
        out,
        "{name}_sum{braces} {}",
        h.sum_micros as f64 / 1_000_000.0
    );
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}
