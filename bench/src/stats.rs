//! Latency histograms and error counts. Each session records into its own
//! [`Recorder`] (no sharing on the hot path); recorders are merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conn::error_name;

/// Latencies in microseconds, 1 us to 10 minutes, 3 significant digits.
pub struct Recorder {
    hist: Histogram<u64>,
    /// Error code -> count.
    pub errors: BTreeMap<i32, u64>,
    /// Successful operations recorded.
    pub ok: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            ok: 0,
        }
    }
}

impl Recorder {
    pub fn record(&mut self, latency: Duration) {
        self.record_us(latency.as_micros() as u64);
        self.ok += 1;
    }

    /// Records a latency without counting an operation (for example one
    /// notification seen by one consumer).
    pub fn record_us(&mut self, micros: u64) {
        self.hist.saturating_record(micros.max(1));
    }

    pub fn error(&mut self, code: i32) {
        *self.errors.entry(code).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        for (code, n) in &other.errors {
            *self.errors.entry(*code).or_default() += n;
        }
        self.ok += other.ok;
    }

    pub fn samples(&self) -> u64 {
        self.hist.len()
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn latency(&self) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.hist.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: ms(self.hist.value_at_quantile(0.50)),
            p90: ms(self.hist.value_at_quantile(0.90)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            p999: ms(self.hist.value_at_quantile(0.999)),
            max: ms(self.hist.max()),
            mean: self.hist.mean() / 1000.0,
        }
    }

    /// Every recorded latency bucket as [microseconds, count], lowest first
    /// (the bucket's highest equivalent value, as `latency` reports).
    pub fn histogram(&self) -> Vec<[u64; 2]> {
        self.hist
            .iter_recorded()
            .map(|v| [v.value_iterated_to(), v.count_at_value()])
            .collect()
    }

    /// Errors by ZooKeeper name, for the JSON line.
    pub fn errors_by_name(&self) -> BTreeMap<String, u64> {
        self.errors
            .iter()
            .map(|(code, n)| (error_name(*code), *n))
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::default();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us * 10));
        }
        let l = r.latency();
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p90 - 9.0).abs() < 0.01, "{l:?}");
        assert!((l.p99 - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
        assert_eq!(r.ok, 1000);
    }

    #[test]
    fn merging_adds_samples_and_errors() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        b.error(-110);
        b.error(-110);
        a.error(-101);
        a.merge(&b);
        assert_eq!(a.samples(), 2);
        assert_eq!(a.ok, 2);
        assert_eq!(a.error_total(), 3);
        let names = a.errors_by_name();
        assert_eq!(names.get("NodeExists"), Some(&2), "{names:?}");
        assert!(a.latency().max >= 2.99);
    }

    #[test]
    fn the_histogram_holds_every_sample() {
        let mut r = Recorder::default();
        for us in [100, 100, 250, 4000] {
            r.record(Duration::from_micros(us));
        }
        let buckets = r.histogram();
        assert_eq!(buckets.iter().map(|b| b[1]).sum::<u64>(), 4);
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[0], [100, 2]);
        // The last bucket's value is what `latency` calls the maximum.
        assert_eq!(buckets[2][0] as f64 / 1000.0, r.latency().max);
    }

    #[test]
    fn empty_recorder_reports_zeros() {
        assert_eq!(Recorder::default().latency(), Latency::default());
    }
}
