//! Least active: prefer the provider with the fewest calls in flight from this caller,
//! choosing among ties by weighted random, as Dubbo does. A slow provider accumulates
//! in-flight calls and so receives fewer new ones, without any latency measurement.
//!
//! On a [`ProviderSet`] a pick is one pass over the providers' cached statistics handles
//! (one atomic load each), collecting the tied positions in a per-thread scratch buffer.
//! When every provider ties (an idle consumer) the weighted pick is the set's O(log n) one.

use super::set::{weighted_pick_by, with_scratch, SetCache};
use super::{select_cached, Call, Provider, ProviderSet, RandomSource, Selector};
use crate::url::DubboUrl;

/// Fewest in-flight calls, weighted random among ties.
#[derive(Debug)]
pub struct LeastActive {
    rng: RandomSource,
    cache: SetCache,
}

impl Default for LeastActive {
    fn default() -> Self {
        LeastActive::new()
    }
}

impl LeastActive {
    /// Uses the thread-local generator for ties.
    pub fn new() -> LeastActive {
        LeastActive {
            rng: RandomSource::Thread,
            cache: SetCache::default(),
        }
    }

    /// Uses a generator seeded with `seed` for ties.
    pub fn seeded(seed: u64) -> LeastActive {
        LeastActive {
            rng: RandomSource::seeded(seed),
            cache: SetCache::default(),
        }
    }
}

impl Selector for LeastActive {
    fn name(&self) -> &'static str {
        "leastactive"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        let n = set.len();
        match n {
            0 => return None,
            1 => return set.get(0),
            _ => {}
        }
        let handles = set.handles(call.stats);
        let providers = set.providers();
        let now = call.now_ms;
        let index = with_scratch(|ties| {
            let mut least = u64::MAX;
            for (i, s) in handles.iter().enumerate() {
                let active = s.active();
                if active < least {
                    least = active;
                    ties.clear();
                }
                if active == least {
                    ties.push(i as u64);
                }
            }
            if ties.len() == n {
                return set.pick_weighted(now, &self.rng);
            }
            weighted_pick_by(
                ties.len(),
                |k| providers[ties[k] as usize].weight_at(now),
                &self.rng,
            )
            .map(|k| ties[k] as usize)
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
    fn picks_the_least_busy_and_weights_ties() {
        let list = providers(&[1, 3, 100]);
        let stats = CallStats::new();
        stats.record_start(&list[2].address());
        let call = Call::new("svc.m", &stats);
        let sel = LeastActive::seeded(9);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[index_of(&list, sel.select(&list, &call).expect("non-empty"))] += 1;
        }
        assert_eq!(
            counts[2], 0,
            "the busy provider is avoided despite its weight"
        );
        let share = f64::from(counts[1]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{counts:?}");
    }

    /// A closed-loop simulation: each of 4 providers serves calls in fixed time, one of them
    /// 10x slower; the caller keeps 8 calls in flight. Calls pile up on the slow provider,
    /// so least active sends it far less than its 1/4 share.
    #[test]
    fn avoids_a_slowed_provider() {
        let list = providers(&[100, 100, 100, 100]);
        let service_ms = [1u64, 1, 1, 10];
        let share = simulate(&LeastActive::seeded(5), &list, &service_ms, 8, 20_000);
        assert!(share[3] < 0.06, "slow provider share {share:?}");
    }
}
