//! Weighted random: each provider is picked with probability weight / total weight (after
//! warm-up), uniformly when all weights are equal or all zero. Dubbo's default selector:
//! stateless, so it spreads load well across many consumers without coordination.
//!
//! On a [`ProviderSet`] a pick is a binary search in the precomputed cumulative weights,
//! O(log n); a provider still warming up is accepted with probability warm / full weight
//! (rejection sampling), which keeps the distribution exact.

use super::set::SetCache;
use super::{select_cached, Call, Provider, ProviderSet, RandomSource, Selector};
use crate::url::DubboUrl;

/// Weighted random selection.
#[derive(Debug)]
pub struct Random {
    rng: RandomSource,
    cache: SetCache,
}

impl Default for Random {
    fn default() -> Self {
        Random::new()
    }
}

impl Random {
    /// Uses the thread-local generator.
    pub fn new() -> Random {
        Random {
            rng: RandomSource::Thread,
            cache: SetCache::default(),
        }
    }

    /// Uses a generator seeded with `seed`: the same picks every run.
    pub fn seeded(seed: u64) -> Random {
        Random {
            rng: RandomSource::seeded(seed),
            cache: SetCache::default(),
        }
    }
}

impl Selector for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        set.pick_weighted(call.now_ms, &self.rng)
            .and_then(|i| set.get(i))
    }

    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl> {
        select_cached(self, &self.cache, providers, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{index_of, providers};
    use crate::balance::CallStats;

    #[test]
    fn shares_follow_weights_within_one_percent() {
        let weights = [1, 2, 3, 4, 0, 10];
        let list = providers(&weights);
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats);
        let sel = Random::seeded(42);
        const PICKS: usize = 200_000;
        let mut counts = vec![0usize; list.len()];
        for _ in 0..PICKS {
            let p = sel.select(&list, &call).expect("non-empty");
            counts[index_of(&list, p)] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let expected = f64::from(w) / f64::from(total);
            let got = counts[i] as f64 / PICKS as f64;
            // Tolerance: 1 percentage point (the binomial standard deviation is < 0.12 pp).
            assert!(
                (got - expected).abs() < 0.01,
                "provider {i}: {got} vs {expected}"
            );
        }
        assert_eq!(
            counts[4], 0,
            "weight 0 is never picked while others have weight"
        );
    }

    #[test]
    fn warming_provider_gets_a_small_share() {
        // Provider 1 started 60 s into a 600 s warm-up: weight 100 * 60/600 = 10 vs 100.
        let mut list = providers(&[100, 100]);
        list[1].params.insert("timestamp".into(), "1000000".into());
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats).at(1_000_000 + 60_000);
        let sel = Random::seeded(1);
        let warm = (0..110_000)
            .filter(|_| std::ptr::eq(sel.select(&list, &call).expect("non-empty"), &list[1]))
            .count();
        let share = warm as f64 / 110_000.0;
        assert!((share - 10.0 / 110.0).abs() < 0.01, "{share}");
    }
}
