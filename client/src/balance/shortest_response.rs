//! Shortest response: prefer the provider whose calls are expected to finish soonest,
//! estimated as its average latency times the calls in flight (plus the new one), choosing
//! among ties by weighted random, as Dubbo's `shortestresponse` does.
//!
//! The average is over succeeded calls in the current window (30 s by default); windows
//! restart together so an old slow period stops counting, like Dubbo's sliding window.
//! A provider without a measured average is assumed to be as fast as the fastest measured
//! one, so new providers get traffic but a hung new provider is still avoided once its
//! in-flight calls pile up. (Dubbo multiplies by in-flight calls alone and uses 0 for an
//! unmeasured provider, which lets a provider that never answers attract every call.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::set::{weighted_pick_by, with_scratch, SetCache};
use super::{select_cached, Call, Provider, ProviderSet, RandomSource, Selector};
use crate::url::DubboUrl;

/// Dubbo's default sliding-window period.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// Marks an unmeasured provider in the scan's scratch buffer.
const UNMEASURED: u64 = u64::MAX;

/// Lowest average latency times in-flight calls, weighted random among ties.
#[derive(Debug)]
pub struct ShortestResponse {
    rng: RandomSource,
    window: Duration,
    /// Time origin for `window_start_ns`.
    origin: Instant,
    /// Start of the current window, in ns since `origin`.
    window_start_ns: AtomicU64,
    cache: SetCache,
}

impl Default for ShortestResponse {
    fn default() -> Self {
        ShortestResponse::new()
    }
}

impl ShortestResponse {
    /// Thread-local randomness, 30 s windows.
    pub fn new() -> ShortestResponse {
        ShortestResponse::with_window(RandomSource::Thread, DEFAULT_WINDOW)
    }

    /// A seeded generator for ties, 30 s windows.
    pub fn seeded(seed: u64) -> ShortestResponse {
        ShortestResponse::with_window(RandomSource::seeded(seed), DEFAULT_WINDOW)
    }

    /// Sets the averaging window.
    pub fn window(mut self, window: Duration) -> ShortestResponse {
        self.window = window;
        self
    }

    fn with_window(rng: RandomSource, window: Duration) -> ShortestResponse {
        ShortestResponse {
            rng,
            window,
            origin: Instant::now(),
            window_start_ns: AtomicU64::new(0),
            cache: SetCache::default(),
        }
    }

    /// Starts a new window if the current one is over; one thread wins the reset.
    fn roll_window(&self, call: &Call<'_>) {
        let window_ns = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        let now_ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let start = self.window_start_ns.load(Ordering::Relaxed);
        if now_ns.saturating_sub(start) >= window_ns
            && self
                .window_start_ns
                .compare_exchange(start, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            call.stats.reset_windows();
        }
    }
}

impl Selector for ShortestResponse {
    fn name(&self) -> &'static str {
        "shortestresponse"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        let n = set.len();
        match n {
            0 => return None,
            1 => return set.get(0),
            _ => {}
        }
        self.roll_window(call);
        let handles = set.handles(call.stats);
        let providers = set.providers();
        let now = call.now_ms;
        let index = with_scratch(|scratch| {
            // Pass 1: one consistent reading of (average ns or UNMEASURED, in flight).
            let mut fastest = UNMEASURED;
            for s in handles.iter() {
                let avg = s.window_average_ns().unwrap_or(UNMEASURED);
                fastest = fastest.min(avg);
                scratch.push(avg);
                scratch.push(s.active());
            }
            let unmeasured = if fastest == UNMEASURED { 0 } else { fastest };
            // +1 ns so a zero average still ranks by in-flight calls.
            let estimate = |avg: u64, active: u64| {
                let avg = if avg == UNMEASURED { unmeasured } else { avg };
                u128::from(avg.saturating_add(1)) * u128::from(active.saturating_add(1))
            };
            // Pass 2: the best estimate and how many providers reach it.
            let mut best = u128::MAX;
            let mut count = 0usize;
            for pair in scratch.chunks_exact(2) {
                let e = estimate(pair[0], pair[1]);
                if e < best {
                    best = e;
                    count = 0;
                }
                if e == best {
                    count += 1;
                }
            }
            if count == n {
                return set.pick_weighted(now, &self.rng);
            }
            // Pass 3: compact the tied positions to the front (slot k <= i is already read).
            let mut k = 0;
            for i in 0..n {
                if estimate(scratch[2 * i], scratch[2 * i + 1]) == best {
                    scratch[k] = i as u64;
                    k += 1;
                }
            }
            let ties = &scratch[..k];
            weighted_pick_by(k, |j| providers[ties[j] as usize].weight_at(now), &self.rng)
                .map(|j| ties[j] as usize)
        })?;
        set.get(index)
    }

    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl> {
        select_cached(self, &self.cache, providers, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{index_of, providers, simulate};
    use crate::balance::CallStats;

    #[test]
    fn prefers_low_latency_times_load() {
        let list = providers(&[100, 100, 100]);
        let stats = CallStats::new();
        let record = |i: usize, ms: u64| {
            stats.record_start(&list[i].address());
            stats.record_end(&list[i].address(), Duration::from_millis(ms), true);
        };
        record(0, 10);
        record(1, 4);
        record(2, 5);
        let sel = ShortestResponse::seeded(3);
        let pick = |stats: &CallStats| {
            index_of(
                &list,
                sel.select(&list, &Call::new("svc.m", stats))
                    .expect("non-empty"),
            )
        };
        assert_eq!(pick(&stats), 1);
        // Two calls in flight on provider 1: 4 ms * 3 > 5 ms * 1.
        stats.record_start(&list[1].address());
        stats.record_start(&list[1].address());
        assert_eq!(pick(&stats), 2);
    }

    #[test]
    fn window_reset_forgets_old_latency() {
        let list = providers(&[100, 100]);
        let stats = CallStats::new();
        stats.record_start(&list[0].address());
        stats.record_end(&list[0].address(), Duration::from_secs(1), true);
        stats.record_start(&list[1].address());
        stats.record_end(&list[1].address(), Duration::from_millis(1), true);
        let sel = ShortestResponse::seeded(1).window(Duration::ZERO);
        // With a zero window every pick starts a new window: both unmeasured, a fair tie.
        let picks0 = (0..2_000)
            .filter(|_| {
                let call = Call::new("svc.m", &stats);
                std::ptr::eq(sel.select(&list, &call).expect("non-empty"), &list[0])
            })
            .count();
        assert!((800..1_200).contains(&picks0), "{picks0}");
    }

    #[test]
    fn avoids_a_slowed_provider() {
        let list = providers(&[100, 100, 100, 100]);
        let share = simulate(
            &ShortestResponse::seeded(5),
            &list,
            &[1, 1, 1, 10],
            8,
            20_000,
        );
        assert!(share[3] < 0.05, "slow provider share {share:?}");
    }
}
