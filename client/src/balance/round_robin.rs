//! Smooth weighted round robin, as nginx and Dubbo do it.
//!
//! Each provider has a running `current` value. On every pick each provider's `current`
//! grows by its weight, the provider with the largest `current` wins (the first one on a
//! tie), and the winner's `current` drops by the total weight. Over any `total` consecutive
//! picks each provider is chosen exactly `weight` times, and the picks are interleaved
//! rather than bunched: weights 5,1,1 give `a a b a c a a`, not `a a a a a b c`.
//!
//! State is kept per call key: the `current` values in a vector indexed by position in the
//! [`ProviderSet`], tagged with the set's generation. A pick is one pass over two contiguous
//! arrays (weights and currents) with no allocation, hashing or string work; once every
//! provider is warm the weights and their total are the set's precomputed ones. When a new
//! set arrives (a registry push), the currents are carried over by provider address, so a
//! push that reorders or rebuilds the list does not reset the rotation, and providers that
//! left are dropped. Warm-up weights change over time, which the algorithm absorbs naturally
//! (each pick uses the current weights).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::set::SetCache;
use super::{lock, select_cached, Call, Provider, ProviderSet, Selector};
use crate::url::DubboUrl;

/// Smooth weighted round robin.
#[derive(Debug, Default)]
pub struct RoundRobin {
    keys: RwLock<HashMap<String, Arc<Mutex<KeyState>>>>,
    cache: SetCache,
}

#[derive(Debug, Default)]
struct KeyState {
    /// The set `currents` is indexed by (`None` before the first pick).
    set: Option<ProviderSet>,
    currents: Vec<i64>,
}

impl KeyState {
    /// Re-indexes the currents for `set`, carrying values over by address.
    fn adopt(&mut self, set: &ProviderSet) {
        let carried: HashMap<&str, i64> = match &self.set {
            Some(old) => old
                .providers()
                .iter()
                .map(Provider::address)
                .zip(self.currents.iter().copied())
                .collect(),
            None => HashMap::new(),
        };
        let currents = set
            .providers()
            .iter()
            .map(|p| carried.get(p.address()).copied().unwrap_or(0))
            .collect();
        self.currents = currents;
        self.set = Some(set.clone());
    }
}

impl RoundRobin {
    /// An empty rotation state.
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    fn key_state(&self, key: &str) -> Arc<Mutex<KeyState>> {
        if let Some(state) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Arc::clone(state);
        }
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(keys.entry(key.to_owned()).or_default())
    }
}

impl Selector for RoundRobin {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        match set.len() {
            0 => return None,
            1 => return set.get(0),
            _ => {}
        }
        let state = self.key_state(call.key);
        let mut state = lock(&state);
        if state.set.as_ref().map(ProviderSet::generation) != Some(set.generation()) {
            state.adopt(set);
        }
        let winner = if set.total_weight() == 0 {
            // All weights zero: rotate evenly rather than always picking the first.
            advance(&mut state.currents, set.weights(), |_, _| 1)
        } else if set.all_warm_at(call.now_ms) {
            advance(&mut state.currents, set.weights(), |_, w| i64::from(w))
        } else {
            let now = call.now_ms;
            let warm_last = set.warm_last();
            let providers = set.providers();
            advance(&mut state.currents, set.weights(), |i, w| {
                if now > warm_last[i] {
                    i64::from(w)
                } else {
                    i64::from(providers[i].weight_at(now))
                }
            })
        };
        set.get(winner)
    }

    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl> {
        select_cached(self, &self.cache, providers, call)
    }
}

/// One smooth-weighted-round-robin step over `currents` (non-empty, same length as
/// `weights`), with `weight(i, static weight)` the weight to use now; returns the winner.
#[inline(always)]
fn advance(currents: &mut [i64], weights: &[u32], weight: impl Fn(usize, u32) -> i64) -> usize {
    let mut total: i64 = 0;
    let mut best = 0;
    let mut best_current = i64::MIN;
    for (i, (c, &w)) in currents.iter_mut().zip(weights).enumerate() {
        let w = weight(i, w);
        *c = c.saturating_add(w);
        total = total.saturating_add(w);
        // Strictly greater: the first provider wins a tie, as in nginx and Dubbo.
        if i == 0 || *c > best_current {
            best = i;
            best_current = *c;
        }
    }
    if let Some(c) = currents.get_mut(best) {
        *c = c.saturating_sub(total);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{index_of, providers};
    use crate::balance::CallStats;

    fn sequence(sel: &RoundRobin, list: &[DubboUrl], call: &Call<'_>, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| index_of(list, sel.select(list, call).expect("non-empty")))
            .collect()
    }

    #[test]
    fn exact_smooth_sequence_for_5_1_1() {
        let list = providers(&[5, 1, 1]);
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats);
        let sel = RoundRobin::new();
        // nginx's documented sequence {a, a, b, a, c, a, a}, repeating.
        let expected = [0, 0, 1, 0, 2, 0, 0];
        let got = sequence(&sel, &list, &call, 21);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, expected[i % 7], "pick {i}: {got:?}");
        }
    }

    #[test]
    fn shares_are_exact_over_whole_cycles() {
        let weights = [3, 7, 1, 0, 9];
        let list = providers(&weights);
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats);
        let sel = RoundRobin::new();
        let cycles = 1_000;
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u32; list.len()];
        for i in sequence(&sel, &list, &call, (total * cycles) as usize) {
            counts[i] += 1;
        }
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(counts[i], w * cycles, "provider {i}");
        }
    }

    #[test]
    fn keys_rotate_independently_and_all_zero_rotates_evenly() {
        let list = providers(&[0, 0, 0]);
        let stats = CallStats::new();
        let sel = RoundRobin::new();
        let a = Call::new("svc.a", &stats);
        let b = Call::new("svc.b", &stats);
        assert_eq!(sequence(&sel, &list, &a, 3), vec![0, 1, 2]);
        assert_eq!(sequence(&sel, &list, &b, 1), vec![0]);
        assert_eq!(sequence(&sel, &list, &a, 1), vec![0]);
    }

    #[test]
    fn warming_provider_rotates_at_its_warm_weight_and_sets_carry_state() {
        // Provider 1: weight 100 ramping over 100 s, 10 s in: weight 10, exactly.
        let mut list = providers(&[10, 100]);
        list[1].params.insert("timestamp".into(), "1000".into());
        list[1].params.insert("warmup".into(), "100000".into());
        let stats = CallStats::new();
        let set = ProviderSet::new(list.clone(), &stats);
        let sel = RoundRobin::new();
        let call = Call::new("svc.m", &stats).at(11_000);
        let mut counts = [0u32; 2];
        for _ in 0..200 {
            counts[sel.select_in(&set, &call).expect("non-empty").index()] += 1;
        }
        assert_eq!(counts, [100, 100]);
        // Warm: 10 vs 100. A rebuilt set (new generation) keeps the rotation going.
        let rebuilt = ProviderSet::new(list, &stats);
        let call = Call::new("svc.m", &stats).at(200_000);
        let mut counts = [0u32; 2];
        for _ in 0..110 {
            counts[sel.select_in(&rebuilt, &call).expect("non-empty").index()] += 1;
        }
        assert_eq!(counts, [10, 100]);
    }

    #[test]
    fn survives_reordering_and_forgets_departed_providers() {
        let list = providers(&[1, 1, 1, 1]);
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats);
        let sel = RoundRobin::new();
        let _ = sequence(&sel, &list, &call, 2);
        let mut smaller: Vec<DubboUrl> = list[1..].to_vec();
        smaller.reverse();
        let mut counts = [0i32; 3];
        for i in sequence(&sel, &smaller, &call, 300) {
            counts[i] += 1;
        }
        // The rotation carries its old counters over, so shares settle within one pick.
        assert!(counts.iter().all(|&c| (c - 100).abs() <= 1), "{counts:?}");
        let keys = sel.keys.read().expect("keys");
        assert_eq!(keys.get("svc.m").map(|s| lock(s).currents.len()), Some(3));
    }
}
