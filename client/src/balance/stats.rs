//! The caller's view of each provider: calls in flight, outcomes and latency averages.
//!
//! Keyed by provider address (`host:port`, [`DubboUrl::address`]), so a provider keeps its
//! statistics across registry pushes that rebuild the URL list. All counters are atomics
//! behind one `RwLock`ed map: a pick takes the read lock once and reads every provider's
//! counters without blocking the calls that update them; the write lock is only taken the
//! first time an address is seen.
//!
//! Use [`CallStats::begin_call`] around each call:
//! ```
//! # use canopy_client::balance::CallStats;
//! let stats = CallStats::new();
//! let call = stats.begin_call("10.0.0.1:20880");
//! // ... send the request and await the answer ...
//! call.succeed(); // or call.fail(); dropping the guard counts as a failure
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::url::DubboUrl;

/// Weight of the newest sample in the exponentially weighted latency average.
pub const DEFAULT_EWMA_ALPHA: f64 = 0.3;

/// Marks "no latency measured yet" in [`ProviderStats::ewma_ns`].
const UNMEASURED: u64 = u64::MAX;

/// Counters for one provider address.
pub struct ProviderStats {
    active: AtomicU64,
    total: AtomicU64,
    failed: AtomicU64,
    succeeded: AtomicU64,
    succeeded_elapsed_ns: AtomicU64,
    /// Succeeded calls and their total latency since the last window reset; shortest
    /// response uses these, so an old slow period stops counting (Dubbo's sliding window).
    window_succeeded: AtomicU64,
    window_elapsed_ns: AtomicU64,
    /// Exponentially weighted latency average in ns, or [`UNMEASURED`].
    ewma_ns: AtomicU64,
}

impl Default for ProviderStats {
    fn default() -> Self {
        ProviderStats {
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            succeeded_elapsed_ns: AtomicU64::new(0),
            window_succeeded: AtomicU64::new(0),
            window_elapsed_ns: AtomicU64::new(0),
            ewma_ns: AtomicU64::new(UNMEASURED),
        }
    }
}

impl ProviderStats {
    /// Calls started and not yet finished.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// The exponentially weighted latency average, `None` before the first finished call.
    pub fn ewma(&self) -> Option<Duration> {
        self.ewma_ns_opt().map(Duration::from_nanos)
    }

    pub(crate) fn ewma_ns_opt(&self) -> Option<u64> {
        match self.ewma_ns.load(Ordering::Relaxed) {
            UNMEASURED => None,
            ns => Some(ns),
        }
    }

    /// Average latency of succeeded calls since the last window reset, in ns.
    pub(crate) fn window_average_ns(&self) -> Option<u64> {
        let n = self.window_succeeded.load(Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let elapsed = self.window_elapsed_ns.load(Ordering::Relaxed);
        // Shortest response divides once per provider per pick, and a 64-bit integer
        // division costs tens of cycles. Below 2^53 both operands are exact in f64 and the
        // correctly rounded quotient truncates to the exact floor (the distance from
        // elapsed/n to the next integer, >= 1/n, exceeds the rounding error).
        Some(if elapsed < 1 << 53 {
            (elapsed as f64 / n as f64) as u64
        } else {
            elapsed / n
        })
    }

    fn start(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(&self, elapsed: Duration, succeeded: bool, alpha: f64) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX - 1);
        // Saturating: an unmatched end must not wrap the in-flight count to 2^64.
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                Some(a.saturating_sub(1))
            });
        self.total.fetch_add(1, Ordering::Relaxed);
        if succeeded {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
            self.succeeded_elapsed_ns.fetch_add(ns, Ordering::Relaxed);
            self.window_succeeded.fetch_add(1, Ordering::Relaxed);
            self.window_elapsed_ns.fetch_add(ns, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .ewma_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                if old == UNMEASURED {
                    return Some(ns.min(UNMEASURED - 1));
                }
                // A fast failure (connection refused, an error reply) must not make a broken
                // provider look fast and attract traffic, so failures can only raise it.
                if !succeeded && ns <= old {
                    return None;
                }
                let next = old as f64 + alpha * (ns as f64 - old as f64);
                Some((next.round() as u64).min(UNMEASURED - 1))
            });
    }

    fn reset_window(&self) {
        self.window_succeeded.store(0, Ordering::Relaxed);
        self.window_elapsed_ns.store(0, Ordering::Relaxed);
    }

    fn snapshot(&self) -> StatsSnapshot {
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        StatsSnapshot {
            active: self.active(),
            total: self.total.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            succeeded,
            average_succeeded: (succeeded > 0).then(|| {
                Duration::from_nanos(self.succeeded_elapsed_ns.load(Ordering::Relaxed) / succeeded)
            }),
            ewma: self.ewma(),
        }
    }
}

impl fmt::Debug for ProviderStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// A copy of one provider's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Calls in flight.
    pub active: u64,
    /// Finished calls.
    pub total: u64,
    /// Finished calls that failed.
    pub failed: u64,
    /// Finished calls that succeeded.
    pub succeeded: u64,
    /// Mean latency of all succeeded calls.
    pub average_succeeded: Option<Duration>,
    /// Exponentially weighted latency average.
    pub ewma: Option<Duration>,
}

/// The caller's statistics for every provider address it has called. Cheap to share
/// (`Arc<CallStats>`) between tasks; all methods take `&self`.
pub struct CallStats {
    providers: RwLock<HashMap<String, Arc<ProviderStats>>>,
    alpha: f64,
    /// Unique per instance: a [`ProviderSet`](super::ProviderSet) remembers which
    /// statistics its cached handles came from.
    id: u64,
    /// Bumped whenever [`retain`](Self::retain) forgets an address, which orphans handles
    /// cached by provider sets built earlier.
    epoch: AtomicU64,
}

/// Source of [`CallStats`] identities.
static NEXT_STATS_ID: AtomicU64 = AtomicU64::new(1);

impl Default for CallStats {
    fn default() -> Self {
        CallStats::new()
    }
}

impl fmt::Debug for CallStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallStats")
            .field("providers", &*self.read())
            .field("alpha", &self.alpha)
            .finish()
    }
}

impl CallStats {
    /// Empty statistics with the default EWMA weight ([`DEFAULT_EWMA_ALPHA`]).
    pub fn new() -> CallStats {
        CallStats::with_ewma_alpha(DEFAULT_EWMA_ALPHA)
    }

    /// Empty statistics whose latency average gives the newest sample weight `alpha`
    /// (clamped to `0.01..=1.0`; higher reacts faster, lower smooths more).
    pub fn with_ewma_alpha(alpha: f64) -> CallStats {
        let alpha = if alpha.is_nan() {
            DEFAULT_EWMA_ALPHA
        } else {
            alpha.clamp(0.01, 1.0)
        };
        CallStats {
            providers: RwLock::new(HashMap::new()),
            alpha,
            id: NEXT_STATS_ID.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }

    /// The counters of `address`, created on first use.
    pub fn provider(&self, address: &str) -> Arc<ProviderStats> {
        if let Some(p) = self.read().get(address) {
            return Arc::clone(p);
        }
        let mut map = self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(address.to_owned()).or_default())
    }

    /// The counters of `address`, if it was ever called.
    pub fn get(&self, address: &str) -> Option<Arc<ProviderStats>> {
        self.read().get(address).cloned()
    }

    /// A copy of the counters of `address` (all zero if it was never called).
    pub fn snapshot(&self, address: &str) -> StatsSnapshot {
        self.get(address).map(|p| p.snapshot()).unwrap_or_default()
    }

    /// Calls in flight to `address`.
    pub fn active(&self, address: &str) -> u64 {
        self.get(address).map_or(0, |p| p.active())
    }

    /// Starts a call to `address`; finish it with [`CallGuard::succeed`] or
    /// [`CallGuard::fail`]. The latency is measured from now.
    pub fn begin_call(&self, address: &str) -> CallGuard {
        let stats = self.provider(address);
        stats.start();
        CallGuard {
            stats,
            alpha: self.alpha,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Starts a call to `provider` (by its address); see [`begin_call`](Self::begin_call).
    pub fn begin(&self, provider: &DubboUrl) -> CallGuard {
        self.begin_call(&provider.address())
    }

    /// Starts a call to a provider picked from a [`ProviderSet`](super::ProviderSet),
    /// through the statistics handle the set cached (no address formatting or map lookup)
    /// when the set was built from these statistics and is still current; otherwise by
    /// address, like [`begin_call`](Self::begin_call).
    pub fn begin_provider(&self, provider: &super::Provider) -> CallGuard {
        let stats = if provider.stats_id() == self.id && provider.stats_epoch() == self.epoch() {
            Arc::clone(provider.stats())
        } else {
            self.provider(provider.address())
        };
        stats.start();
        CallGuard {
            stats,
            alpha: self.alpha,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records a start without a guard; pair with [`record_end`](Self::record_end). For
    /// callers that cannot hold a guard across the call (and for simulations).
    pub fn record_start(&self, address: &str) {
        self.provider(address).start();
    }

    /// Records the end of a call started with [`record_start`](Self::record_start).
    pub fn record_end(&self, address: &str, elapsed: Duration, succeeded: bool) {
        self.provider(address)
            .finish(elapsed, succeeded, self.alpha);
    }

    /// Forgets the addresses for which `keep` is false, e.g. providers gone from the
    /// registry. Calls still in flight to them keep their own `Arc` and finish harmlessly.
    ///
    /// Provider sets built before a `retain` that forgot something no longer trust their
    /// cached handles (picks fall back to lookups by address): rebuild them afterwards.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut map = self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|addr, _| keep(addr));
        if map.len() != before {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// This instance's identity, unique in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// How many `retain` calls forgot addresses so far.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Starts a new latency window for every provider (see [`ProviderStats`]).
    pub(crate) fn reset_windows(&self) {
        for p in self.read().values() {
            p.reset_window();
        }
    }

    /// The map, read-locked: selectors take this once per pick.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<ProviderStats>>> {
        self.providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One call in flight; finishing it records the outcome and latency. Dropping it unfinished
/// (e.g. a cancelled future) records a failure, so the in-flight count never leaks.
#[must_use = "finish the call with succeed() or fail()"]
pub struct CallGuard {
    stats: Arc<ProviderStats>,
    alpha: f64,
    started: Instant,
    finished: bool,
}

impl CallGuard {
    /// The call succeeded.
    pub fn succeed(self) {
        self.finish(true);
    }

    /// The call failed.
    pub fn fail(self) {
        self.finish(false);
    }

    /// Ends the call with the given outcome, measuring the latency from the start.
    pub fn finish(mut self, succeeded: bool) {
        let elapsed = self.started.elapsed();
        self.finish_inner(elapsed, succeeded);
    }

    /// Ends the call with an externally measured latency.
    pub fn finish_with(mut self, elapsed: Duration, succeeded: bool) {
        self.finish_inner(elapsed, succeeded);
    }

    fn finish_inner(&mut self, elapsed: Duration, succeeded: bool) {
        if !self.finished {
            self.finished = true;
            self.stats.finish(elapsed, succeeded, self.alpha);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.finish_inner(elapsed, false);
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("started", &self.started)
            .field("finished", &self.finished)
            .finish()
    }
}

/// Writes `url`'s address into `buf` (cleared first) and returns it: selectors look up every
/// provider's statistics per pick, and reusing one buffer avoids an allocation per provider.
pub(crate) fn address_key<'b>(buf: &'b mut String, url: &DubboUrl) -> &'b str {
    buf.clear();
    // Writing to a String cannot fail.
    let _ = crate::url::write_address(buf, &url.host, url.port);
    buf.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_tracks_in_flight_and_outcomes() {
        let stats = CallStats::new();
        let a = stats.begin_call("h:1");
        let b = stats.begin_call("h:1");
        assert_eq!(stats.active("h:1"), 2);
        a.finish_with(Duration::from_millis(10), true);
        drop(b); // counts as a failure
        let s = stats.snapshot("h:1");
        assert_eq!((s.active, s.total, s.succeeded, s.failed), (0, 2, 1, 1));
        assert_eq!(s.average_succeeded, Some(Duration::from_millis(10)));
        assert_eq!(stats.snapshot("never:0"), StatsSnapshot::default());
    }

    #[test]
    fn ewma_moves_towards_samples_and_failures_only_raise_it() {
        let stats = CallStats::with_ewma_alpha(0.5);
        stats.record_start("h:1");
        stats.record_end("h:1", Duration::from_millis(100), true);
        assert_eq!(stats.snapshot("h:1").ewma, Some(Duration::from_millis(100)));
        stats.record_start("h:1");
        stats.record_end("h:1", Duration::from_millis(20), true);
        assert_eq!(stats.snapshot("h:1").ewma, Some(Duration::from_millis(60)));
        stats.record_start("h:1");
        stats.record_end("h:1", Duration::from_millis(1), false);
        assert_eq!(stats.snapshot("h:1").ewma, Some(Duration::from_millis(60)));
        stats.record_start("h:1");
        stats.record_end("h:1", Duration::from_millis(160), false);
        assert_eq!(stats.snapshot("h:1").ewma, Some(Duration::from_millis(110)));
    }

    #[test]
    fn window_average_is_the_exact_integer_quotient() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let s = ProviderStats::default();
        for i in 0..100_000u64 {
            let n: u64 = match i % 3 {
                0 => rng.gen_range(1..10),
                1 => rng.gen_range(1..1 << 20),
                _ => rng.gen_range(1..u64::MAX),
            };
            let elapsed: u64 = match i % 4 {
                0 => rng.gen_range(0..1 << 53),
                1 => (1 << 53) - 1 - rng.gen_range(0..1000),
                2 => n
                    .saturating_mul(rng.gen_range(0..1 << 20))
                    .saturating_sub(i % 2),
                _ => rng.gen(),
            };
            s.window_succeeded.store(n, Ordering::Relaxed);
            s.window_elapsed_ns.store(elapsed, Ordering::Relaxed);
            assert_eq!(s.window_average_ns(), Some(elapsed / n), "{elapsed} / {n}");
        }
    }

    #[test]
    fn unmatched_end_does_not_underflow_and_retain_forgets() {
        let stats = CallStats::new();
        stats.record_end("h:1", Duration::ZERO, true);
        assert_eq!(stats.active("h:1"), 0);
        stats.record_start("h:2");
        stats.retain(|a| a == "h:2");
        assert!(stats.get("h:1").is_none());
        assert_eq!(stats.active("h:2"), 1);
    }

    #[test]
    fn address_key_brackets_ipv6() {
        let mut buf = String::new();
        let u = DubboUrl::parse("dubbo://[::1]:20880/x").expect("parse");
        assert_eq!(address_key(&mut buf, &u), "[::1]:20880");
        assert_eq!(address_key(&mut buf, &u), u.address());
    }
}
