//! What a workload reports: one [`Summary`], printed for people on stderr and
//! as one JSON line on stdout (for scripts: `bench-compare.py` reads them).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::driver::LoadResult;
use crate::stats::{Latency, Recorder};

/// The result of one workload.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub workload: String,
    pub servers: String,
    pub sessions: usize,
    pub outstanding: usize,
    /// How the workload ran when it has variants (`register`: `held` or
    /// `detach`, see `--provider-detach`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Successful measured operations.
    pub ops: u64,
    pub duration_s: f64,
    pub ops_per_s: f64,
    /// Latency of the measured operations (for `register` and `churn`: the
    /// notification latency; for `expire`: time to vanish after the cut).
    pub latency_ms: Latency,
    /// The latency histogram behind `latency_ms`, as [microseconds, count]
    /// pairs; only with `--histogram`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_histogram_us: Option<Vec<[u64; 2]>>,
    /// Error replies by code name; any at all fails the workload.
    pub errors: BTreeMap<String, u64>,
    /// Server CPU time (all `--server-pid`s) per measured operation.
    pub server_cpu_us_per_op: Option<f64>,
    /// Server resident memory at the end (all `--server-pid`s).
    pub server_rss_bytes: Option<u64>,
    /// This process's CPU time per measured operation.
    pub bench_cpu_us_per_op: Option<f64>,
    /// Workload-specific figures (znode counts, rates, memory per znode...).
    pub extra: BTreeMap<String, f64>,
    /// Whether the effect of the workload was checked and found right.
    pub verified: bool,
    /// Why the workload failed, if it did.
    pub failure: Option<String>,
}

impl Summary {
    /// A summary of a closed-loop run, before verification.
    pub fn from_load(
        workload: &str,
        servers: &[String],
        sessions: usize,
        outstanding: usize,
        load: &LoadResult,
    ) -> Summary {
        let ops = load.rec.ok;
        let per_op = |seconds: f64| (ops > 0).then(|| seconds * 1e6 / ops as f64);
        Summary {
            workload: workload.to_string(),
            servers: servers.join(","),
            sessions,
            outstanding,
            ops,
            duration_s: load.elapsed.as_secs_f64(),
            ops_per_s: load.ops_per_s(),
            latency_ms: load.rec.latency(),
            latency_histogram_us: Some(load.rec.histogram()),
            errors: load.rec.errors_by_name(),
            server_cpu_us_per_op: load
                .server
                .and_then(|(a, b)| per_op(b.cpu_seconds - a.cpu_seconds)),
            server_rss_bytes: load.server.map(|(_, b)| b.rss_bytes),
            bench_cpu_us_per_op: load
                .own
                .and_then(|(a, b)| per_op(b.cpu_seconds - a.cpu_seconds)),
            ..Summary::default()
        }
    }

    /// A summary for workloads that are not closed loops.
    pub fn new(workload: &str, servers: &[String], sessions: usize, rec: &Recorder) -> Summary {
        Summary {
            workload: workload.to_string(),
            servers: servers.join(","),
            sessions,
            outstanding: 1,
            latency_ms: rec.latency(),
            latency_histogram_us: Some(rec.histogram()),
            errors: rec.errors_by_name(),
            ..Summary::default()
        }
    }

    pub fn extra(&mut self, key: &str, value: f64) {
        self.extra.insert(key.to_string(), value);
    }

    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_ms;
        let status = match (&self.failure, self.verified) {
            (Some(f), _) => format!("FAILED: {f}"),
            (None, true) => "verified".to_string(),
            (None, false) => "not verified".to_string(),
        };
        let mode = self
            .mode
            .as_deref()
            .map(|m| format!(", mode {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "== {} against {} ({} sessions x {} outstanding{mode}): {status}",
            self.workload, self.servers, self.sessions, self.outstanding
        );
        if self.ops > 0 {
            let _ = writeln!(
                s,
                "   {} ops in {:.2} s = {:.0} ops/s",
                self.ops, self.duration_s, self.ops_per_s
            );
        }
        let _ = writeln!(
            s,
            "   latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        if let Some(cpu) = self.server_cpu_us_per_op {
            let _ = write!(s, "   server CPU {cpu:.1} us/op");
            if let Some(rss) = self.server_rss_bytes {
                let _ = write!(s, ", RSS {:.1} MiB", rss as f64 / (1 << 20) as f64);
            }
            s.push('\n');
        }
        if let Some(cpu) = self.bench_cpu_us_per_op {
            let _ = writeln!(s, "   bench CPU {cpu:.1} us/op");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "   errors: {:?}", self.errors);
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "   {k}: {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_one_line_with_the_figures() {
        let mut s = Summary {
            workload: "get".into(),
            servers: "127.0.0.1:2181".into(),
            sessions: 16,
            outstanding: 256,
            ops: 1000,
            duration_s: 0.5,
            ops_per_s: 2000.0,
            verified: true,
            ..Summary::default()
        };
        s.errors.insert("NodeExists".into(), 2);
        s.extra("znodes", 10.0);
        let line = s.json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["workload"], "get");
        assert_eq!(v["ops_per_s"], 2000.0);
        assert_eq!(v["latency_ms"]["p999"], 0.0);
        assert_eq!(v["errors"]["NodeExists"], 2);
        assert_eq!(v["extra"]["znodes"], 10.0);
        assert_eq!(v["server_cpu_us_per_op"], serde_json::Value::Null);
        assert!(s.human().contains("2000 ops/s"));
    }
}
