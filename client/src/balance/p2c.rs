//! Power of two choices over a latency average (the "peak EWMA"-style balancer of Finagle,
//! Linkerd and tower, without the peak part).
//!
//! Each pick draws two distinct providers uniformly at random and keeps the cheaper one,
//! where the cost is `latency * (in-flight + 1) / weight`: `latency` is the caller's
//! exponentially weighted average ([`CallStats`](super::CallStats)), in-flight makes a
//! provider that is currently piling up calls expensive before its slow answers arrive, and
//! dividing by the (warm-up) weight lets a warming provider take less. Comparing only two
//! random candidates avoids the herd behaviour of always taking the single best provider,
//! and costs O(1) per pick instead of O(n).
//!
//! A provider with no latency measured yet is given the other candidate's latency, so the
//! comparison falls back to in-flight calls and weight: new providers get probed, and one
//! that never answers is avoided once its calls pile up.

use super::stats::address_key;
use super::{Call, Provider, ProviderSet, RandomSource, Selector};
use crate::balance::warmup::effective_weight;
use crate::url::DubboUrl;

/// Power of two choices on EWMA latency times in-flight calls, divided by weight.
#[derive(Debug)]
pub struct PowerOfTwo {
    rng: RandomSource,
}

impl Default for PowerOfTwo {
    fn default() -> Self {
        PowerOfTwo::new()
    }
}

impl PowerOfTwo {
    /// Uses the thread-local generator.
    pub fn new() -> PowerOfTwo {
        PowerOfTwo {
            rng: RandomSource::Thread,
        }
    }

    /// Uses a generator seeded with `seed`.
    pub fn seeded(seed: u64) -> PowerOfTwo {
        PowerOfTwo {
            rng: RandomSource::seeded(seed),
        }
    }
}

impl Selector for PowerOfTwo {
    fn name(&self) -> &'static str {
        "p2c"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        let n = set.len();
        match n {
            0 => return None,
            1 => return set.get(0),
            _ => {}
        }
        let a = self.rng.index(n);
        let mut b = self.rng.index(n - 1);
        if b >= a {
            b += 1;
        }
        let (pa, pb) = (set.get(a)?, set.get(b)?);
        let (lat_a, act_a, lat_b, act_b) = if set.is_current(call.stats) {
            let (sa, sb) = (pa.stats(), pb.stats());
            (sa.ewma_ns_opt(), sa.active(), sb.ewma_ns_opt(), sb.active())
        } else {
            // A set built from other statistics: look the two up by address.
            let read = |p: &Provider| {
                call.stats
                    .get(p.address())
                    .map_or((None, 0), |s| (s.ewma_ns_opt(), s.active()))
            };
            let ((lat_a, act_a), (lat_b, act_b)) = (read(pa), read(pb));
            (lat_a, act_a, lat_b, act_b)
        };
        let b_wins = second_cheaper(
            (lat_a, act_a, pa.weight_at(call.now_ms)),
            (lat_b, act_b, pb.weight_at(call.now_ms)),
        );
        Some(if b_wins { pb } else { pa })
    }

    /// O(1) without a set: only the two candidates' weights and statistics are read, so
    /// this does not go through the set cache (which would fingerprint the whole list).
    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl> {
        let n = providers.len();
        match n {
            0 => return None,
            1 => return providers.first(),
            _ => {}
        }
        let a = self.rng.index(n);
        let mut b = self.rng.index(n - 1);
        if b >= a {
            b += 1;
        }
        let (pa, pb) = (&providers[a], &providers[b]);
        let (lat_a, act_a, lat_b, act_b) = {
            let stats = call.stats.read();
            let mut buf = String::new();
            let sa = stats.get(address_key(&mut buf, pa));
            let (lat_a, act_a) = sa.map_or((None, 0), |s| (s.ewma_ns_opt(), s.active()));
            let sb = stats.get(address_key(&mut buf, pb));
            let (lat_b, act_b) = sb.map_or((None, 0), |s| (s.ewma_ns_opt(), s.active()));
            (lat_a, act_a, lat_b, act_b)
        };
        let b_wins = second_cheaper(
            (lat_a, act_a, effective_weight(pa, call.now_ms)),
            (lat_b, act_b, effective_weight(pb, call.now_ms)),
        );
        Some(if b_wins { pb } else { pa })
    }
}

/// Whether candidate `b` (latency if measured, in flight, weight) is strictly cheaper than
/// `a`. `a` was drawn at random, so preferring it on a tie is still a fair coin.
fn second_cheaper(a: (Option<u64>, u64, u32), b: (Option<u64>, u64, u32)) -> bool {
    let (lat_a, lat_b) = match (a.0, b.0) {
        (Some(x), Some(y)) => (x, y),
        (Some(x), None) => (x, x),
        (None, Some(y)) => (y, y),
        (None, None) => (0, 0),
    };
    let cost = |lat: u64, active: u64, weight: u32| -> f64 {
        // +1 ns so equal zero latencies still compare on load and weight.
        let load = (lat as f64 + 1.0) * (active as f64 + 1.0);
        if weight == 0 {
            f64::INFINITY
        } else {
            load / f64::from(weight)
        }
    };
    let ca = cost(lat_a, a.1, a.2);
    let cb = cost(lat_b, b.1, b.2);
    cb < ca
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{index_of, providers, simulate};
    use crate::balance::CallStats;
    use std::time::Duration;

    #[test]
    fn never_picks_the_slowest_when_it_is_strictly_worst() {
        let list = providers(&[100; 5]);
        let stats = CallStats::new();
        for (i, ms) in [5u64, 5, 5, 5, 50].iter().enumerate() {
            stats.record_start(&list[i].address());
            stats.record_end(&list[i].address(), Duration::from_millis(*ms), true);
        }
        let sel = PowerOfTwo::seeded(11);
        let call = Call::new("svc.m", &stats);
        let mut counts = [0u32; 5];
        for _ in 0..20_000 {
            counts[index_of(&list, sel.select(&list, &call).expect("non-empty"))] += 1;
        }
        assert_eq!(counts[4], 0, "{counts:?}");
        // The four equal providers share evenly: each 1/4 within 1.5 points.
        for c in &counts[..4] {
            let share = f64::from(*c) / 20_000.0;
            assert!((share - 0.25).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn avoids_a_slowed_provider() {
        let list = providers(&[100, 100, 100, 100]);
        let share = simulate(&PowerOfTwo::seeded(5), &list, &[1, 1, 1, 10], 8, 20_000);
        assert!(share[3] < 0.05, "slow provider share {share:?}");
    }

    #[test]
    fn unmeasured_provider_is_compared_on_load() {
        let list = providers(&[100, 100]);
        let stats = CallStats::new();
        stats.record_start(&list[0].address());
        stats.record_end(&list[0].address(), Duration::from_millis(5), true);
        // Provider 1 is new and has 3 calls hanging: it loses to idle provider 0.
        for _ in 0..3 {
            stats.record_start(&list[1].address());
        }
        let sel = PowerOfTwo::seeded(2);
        let call = Call::new("svc.m", &stats);
        for _ in 0..100 {
            assert!(std::ptr::eq(
                sel.select(&list, &call).expect("non-empty"),
                &list[0]
            ));
        }
    }
}
