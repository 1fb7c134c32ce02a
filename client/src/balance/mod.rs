//! Load-balancing selectors: pick one provider from a snapshot of the live provider list.
//!
//! Every selector implements [`Selector`]: given the providers and a [`Call`] (the call key,
//! an optional routing argument, the caller's [`CallStats`] and the current time), it returns
//! one provider or `None` when the list is empty. Selectors are `Send + Sync` and keep any
//! per-key state behind their own locks, so one selector is shared by all calls of a consumer.
//!
//! Two ways to pick:
//! * the fast path, [`Selector::select_in`], picks from a [`ProviderSet`]: a snapshot built
//!   once per registry push ([`ProviderSet::new`]) with every provider's weight, warm-up and
//!   statistics handle precomputed. Weighted random and consistent hashing are then
//!   O(log n) per pick, power of two choices O(1); round robin, least active and shortest
//!   response scan the providers (O(n), as in Dubbo) with no parsing, allocation or lookups.
//!   Start calls on the picked provider with [`CallStats::begin_provider`].
//! * [`Selector::select`] takes the URL slice as the registry holds it (in order) and keeps
//!   a cached set per call key, rebuilt when the list changes: identified by
//!   [`Call::snapshot`] when given (then O(1) extra per pick), else by a fingerprint of the
//!   list (O(n) hashing per pick).
//!
//! Layout:
//! * [`stats`] — per-provider in-flight counts and latency averages, with begin/end helpers.
//! * [`set`] — [`ProviderSet`], the precomputed snapshot the selectors pick from.
//! * [`warmup`] — a provider's effective weight, ramping up after it starts, as Dubbo does.
//! * one file per selector: [`random`], [`round_robin`], [`least_active`],
//!   [`consistent_hash`], [`shortest_response`], [`p2c`].
//!
//! [`SelectorKind`] maps the names a command-line flag uses
//! (`random|roundrobin|leastactive|consistenthash|shortestresponse|p2c`, Dubbo's names where
//! Dubbo has one) to a boxed selector.
//!
//! Randomness comes from `rand`'s thread-local generator by default; every selector that uses
//! randomness has a `seeded` constructor so tests are deterministic.

pub mod consistent_hash;
pub mod least_active;
pub mod p2c;
pub mod random;
pub mod round_robin;
pub mod set;
pub mod shortest_response;
pub mod stats;
pub mod warmup;

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::url::DubboUrl;

pub use consistent_hash::ConsistentHash;
pub use least_active::LeastActive;
pub use p2c::PowerOfTwo;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use set::{Provider, ProviderSet};
pub use shortest_response::ShortestResponse;
pub use stats::{CallGuard, CallStats, ProviderStats, StatsSnapshot};
pub use warmup::{effective_weight, warmup_weight};

/// What a selector knows about the call being routed.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Identifies the call for per-call state (round-robin counters, hash rings); typically
    /// `"<service key>.<method>"`, as Dubbo keys its state.
    pub key: &'a str,
    /// The call argument consistent hashing routes on (Dubbo hashes the first argument by
    /// default). Without one, consistent hashing routes on `key`.
    pub hash_arg: Option<&'a str>,
    /// The caller's statistics (in-flight counts, latencies) per provider address.
    pub stats: &'a CallStats,
    /// Wall-clock time in ms since the Unix epoch, for warm-up (compared with the providers'
    /// `timestamp` parameters).
    pub now_ms: i64,
    /// Optional identity of the provider list given to [`Selector::select`]: a number that
    /// changes whenever the list (or any provider's parameters) changes, e.g. a registry
    /// generation counter, unique per call key. The cached [`ProviderSet`] is then reused
    /// without fingerprinting the list on every pick. Ignored by [`Selector::select_in`].
    pub snapshot: Option<u64>,
}

impl<'a> Call<'a> {
    /// A call with the current wall-clock time, no hash argument and no snapshot identity.
    pub fn new(key: &'a str, stats: &'a CallStats) -> Call<'a> {
        Call {
            key,
            hash_arg: None,
            stats,
            now_ms: now_ms(),
            snapshot: None,
        }
    }

    /// Sets the argument consistent hashing routes on.
    pub fn with_hash_arg(mut self, arg: &'a str) -> Call<'a> {
        self.hash_arg = Some(arg);
        self
    }

    /// Sets the time (ms since the epoch) used for warm-up; for tests and simulations.
    pub fn at(mut self, now_ms: i64) -> Call<'a> {
        self.now_ms = now_ms;
        self
    }

    /// Declares the identity of the provider list (see [`Call::snapshot`]).
    pub fn with_snapshot(mut self, snapshot: u64) -> Call<'a> {
        self.snapshot = Some(snapshot);
        self
    }
}

/// Current wall-clock time in ms since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Picks one provider from a snapshot.
pub trait Selector: Send + Sync + fmt::Debug {
    /// The selector's name, as accepted by [`SelectorKind::from_str`].
    fn name(&self) -> &'static str;

    /// Picks one provider of `set` for `call`; `None` only if the set is empty. The fast
    /// path: build the set once per registry push and pick from it on every call.
    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider>;

    /// Picks one of `providers` for `call`; `None` only if `providers` is empty. A
    /// convenience over [`select_in`](Self::select_in) that caches a [`ProviderSet`] per
    /// call key (see [`Call::snapshot`]).
    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl>;
}

/// [`Selector::select`] in terms of [`Selector::select_in`] and a set cache.
pub(crate) fn select_cached<'p, S: Selector + ?Sized>(
    selector: &S,
    cache: &set::SetCache,
    providers: &'p [DubboUrl],
    call: &Call<'_>,
) -> Option<&'p DubboUrl> {
    match providers.len() {
        0 => None,
        1 => providers.first(),
        _ => {
            let set = cache.get(providers, call);
            let index = selector.select_in(&set, call)?.index();
            providers.get(index)
        }
    }
}

/// The selectors by name, for a consumer's command-line flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorKind {
    Random,
    RoundRobin,
    LeastActive,
    ConsistentHash,
    ShortestResponse,
    PowerOfTwo,
}

impl SelectorKind {
    /// Every selector, in the order of the documentation.
    pub const ALL: [SelectorKind; 6] = [
        SelectorKind::Random,
        SelectorKind::RoundRobin,
        SelectorKind::LeastActive,
        SelectorKind::ConsistentHash,
        SelectorKind::ShortestResponse,
        SelectorKind::PowerOfTwo,
    ];

    /// The canonical name: `random`, `roundrobin`, `leastactive`, `consistenthash`,
    /// `shortestresponse` or `p2c`.
    pub fn name(self) -> &'static str {
        match self {
            SelectorKind::Random => "random",
            SelectorKind::RoundRobin => "roundrobin",
            SelectorKind::LeastActive => "leastactive",
            SelectorKind::ConsistentHash => "consistenthash",
            SelectorKind::ShortestResponse => "shortestresponse",
            SelectorKind::PowerOfTwo => "p2c",
        }
    }

    /// A selector of this kind with default settings and thread-local randomness.
    pub fn build(self) -> Box<dyn Selector> {
        match self {
            SelectorKind::Random => Box::new(Random::new()),
            SelectorKind::RoundRobin => Box::new(RoundRobin::new()),
            SelectorKind::LeastActive => Box::new(LeastActive::new()),
            SelectorKind::ConsistentHash => Box::new(ConsistentHash::new()),
            SelectorKind::ShortestResponse => Box::new(ShortestResponse::new()),
            SelectorKind::PowerOfTwo => Box::new(PowerOfTwo::new()),
        }
    }

    /// Like [`build`](Self::build) but with a seeded generator, for reproducible runs.
    pub fn build_seeded(self, seed: u64) -> Box<dyn Selector> {
        match self {
            SelectorKind::Random => Box::new(Random::seeded(seed)),
            SelectorKind::RoundRobin => Box::new(RoundRobin::new()),
            SelectorKind::LeastActive => Box::new(LeastActive::seeded(seed)),
            SelectorKind::ConsistentHash => Box::new(ConsistentHash::new()),
            SelectorKind::ShortestResponse => Box::new(ShortestResponse::seeded(seed)),
            SelectorKind::PowerOfTwo => Box::new(PowerOfTwo::seeded(seed)),
        }
    }
}

impl fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A selector name that is not one of [`SelectorKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown selector {0:?} (expected random, roundrobin, leastactive, consistenthash, shortestresponse or p2c)")]
pub struct UnknownSelector(pub String);

impl FromStr for SelectorKind {
    type Err = UnknownSelector;

    /// Case-insensitive; `-` and `_` are ignored, so `round_robin` and `least-active` work,
    /// and `powerOfTwo` is accepted for `p2c`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match norm.as_str() {
            "random" => Ok(SelectorKind::Random),
            "roundrobin" => Ok(SelectorKind::RoundRobin),
            "leastactive" => Ok(SelectorKind::LeastActive),
            "consistenthash" => Ok(SelectorKind::ConsistentHash),
            "shortestresponse" => Ok(SelectorKind::ShortestResponse),
            "p2c" | "poweroftwo" | "poweroftwochoices" => Ok(SelectorKind::PowerOfTwo),
            _ => Err(UnknownSelector(s.to_owned())),
        }
    }
}

/// Builds a selector from its name (see [`SelectorKind::from_str`]).
pub fn selector_by_name(name: &str) -> Result<Box<dyn Selector>, UnknownSelector> {
    Ok(name.parse::<SelectorKind>()?.build())
}

/// Where a selector's randomness comes from: the thread-local generator (no lock, the
/// default) or a seeded generator behind a mutex (deterministic tests and benchmarks).
pub(crate) enum RandomSource {
    Thread,
    /// Boxed: a ChaCha state is a few hundred bytes, the thread variant none.
    Seeded(Box<Mutex<StdRng>>),
}

impl RandomSource {
    pub(crate) fn seeded(seed: u64) -> RandomSource {
        RandomSource::Seeded(Box::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    /// A uniform number in `0..n`; `n` must be positive.
    pub(crate) fn below(&self, n: u64) -> u64 {
        debug_assert!(n > 0);
        match self {
            RandomSource::Thread => rand::thread_rng().gen_range(0..n),
            RandomSource::Seeded(rng) => lock(rng).gen_range(0..n),
        }
    }

    /// A uniform index into a slice of length `n > 0`.
    pub(crate) fn index(&self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

impl fmt::Debug for RandomSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RandomSource::Thread => "ThreadRng",
            RandomSource::Seeded(_) => "SeededRng",
        })
    }
}

/// Locks a mutex, ignoring poisoning: selector state stays valid even if a panic happened
/// while it was held (at worst one pick's counters are off).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Picks one of `candidates` (index, weight) at random in proportion to the weights, or
/// uniformly when all weights are equal or all zero, as Dubbo's random selector does.
#[cfg(test)]
pub(crate) fn weighted_pick(candidates: &[(usize, u32)], rng: &RandomSource) -> Option<usize> {
    set::weighted_pick_by(candidates.len(), |k| candidates[k].1, rng).map(|k| candidates[k].0)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Call, CallStats, Selector};
    use crate::url::DubboUrl;
    use std::time::Duration;

    /// Providers `10.0.0.<i>:20880` with the given weights and no warm-up timestamp.
    pub fn providers(weights: &[u32]) -> Vec<DubboUrl> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                DubboUrl::parse(&format!(
                    "dubbo://10.0.{}.{}:20880/com.foo.Demo?weight={w}",
                    i / 250,
                    i % 250
                ))
                .expect("test url")
            })
            .collect()
    }

    /// Index of `picked` in `providers` (by address).
    pub fn index_of(providers: &[DubboUrl], picked: &DubboUrl) -> usize {
        providers
            .iter()
            .position(|p| std::ptr::eq(p, picked))
            .expect("picked provider is from the list")
    }

    /// Runs `calls` calls with `concurrency` outstanding; provider `i` answers after
    /// `service_ms[i]` ms of virtual time. Returns each provider's share of the calls.
    pub fn simulate(
        sel: &dyn Selector,
        list: &[DubboUrl],
        service_ms: &[u64],
        concurrency: usize,
        calls: usize,
    ) -> Vec<f64> {
        let stats = CallStats::new();
        let mut in_flight: Vec<(u64, usize)> = Vec::new(); // (finish time, provider)
        let mut now = 0u64;
        let mut counts = vec![0usize; list.len()];
        for _ in 0..calls {
            if in_flight.len() == concurrency {
                // Advance virtual time to the earliest completion.
                let (pos, &(t, p)) = in_flight
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (t, _))| *t)
                    .expect("non-empty");
                in_flight.swap_remove(pos);
                now = t;
                stats.record_end(
                    &list[p].address(),
                    Duration::from_millis(service_ms[p]),
                    true,
                );
            }
            let call = Call::new("svc.m", &stats);
            let p = index_of(list, sel.select(list, &call).expect("non-empty"));
            stats.record_start(&list[p].address());
            counts[p] += 1;
            in_flight.push((now + service_ms[p], p));
        }
        counts.iter().map(|&c| c as f64 / calls as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_names_round_trip() {
        for kind in SelectorKind::ALL {
            assert_eq!(kind.name().parse::<SelectorKind>(), Ok(kind));
            assert_eq!(kind.build().name(), kind.name());
            assert_eq!(kind.build_seeded(1).name(), kind.name());
        }
        assert_eq!("Round_Robin".parse(), Ok(SelectorKind::RoundRobin));
        assert_eq!("least-active".parse(), Ok(SelectorKind::LeastActive));
        assert!(selector_by_name("fastest").is_err());
    }

    #[test]
    fn every_selector_handles_empty_and_single_lists() {
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats);
        let one = test_support::providers(&[0]);
        for kind in SelectorKind::ALL {
            let s = kind.build_seeded(7);
            assert!(s.select(&[], &call).is_none(), "{kind}");
            assert_eq!(s.select(&one, &call), Some(&one[0]), "{kind}");
        }
    }

    #[test]
    fn select_in_picks_what_select_picks() {
        let list = test_support::providers(&[5, 1, 0, 3, 9, 2, 7, 7]);
        let stats = CallStats::new();
        for (i, p) in list.iter().enumerate().take(5) {
            stats.record_start(&p.address());
            if i % 2 == 0 {
                stats.record_end(
                    &p.address(),
                    std::time::Duration::from_millis(1 + i as u64),
                    true,
                );
            }
        }
        let set = ProviderSet::new(list.clone(), &stats);
        for kind in SelectorKind::ALL {
            let (a, b) = (kind.build_seeded(3), kind.build_seeded(3));
            for k in 0..200 {
                let arg = format!("arg-{k}");
                let call = Call::new("svc.m", &stats).with_hash_arg(&arg);
                let via_slice = a.select(&list, &call).expect("non-empty");
                let via_set = b.select_in(&set, &call).expect("non-empty");
                assert!(
                    std::ptr::eq(via_slice, &list[via_set.index()]),
                    "{kind} pick {k}"
                );
                assert_eq!(via_set.address(), via_slice.address());
            }
            assert!(a
                .select_in(&ProviderSet::new(vec![], &stats), &Call::new("k", &stats))
                .is_none());
        }
    }

    #[test]
    fn sets_from_other_statistics_still_see_the_callers_load() {
        let list = test_support::providers(&[1, 1, 1]);
        let built_with = CallStats::new();
        let set = ProviderSet::new(list.clone(), &built_with);
        let caller = CallStats::new();
        caller.record_start(&list[0].address());
        caller.record_start(&list[2].address());
        let call = Call::new("svc.m", &caller);
        for kind in [SelectorKind::LeastActive, SelectorKind::ShortestResponse] {
            let s = kind.build_seeded(1);
            for _ in 0..50 {
                assert_eq!(
                    s.select_in(&set, &call).map(Provider::index),
                    Some(1),
                    "{kind}"
                );
            }
        }
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let rng = RandomSource::seeded(3);
        let cands = [(0, 1), (1, 0), (2, 3)];
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[weighted_pick(&cands, &rng).expect("non-empty")] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = f64::from(counts[2]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{counts:?}");
        assert_eq!(weighted_pick(&[], &rng), None);
    }
}
