//! A precomputed snapshot of the provider list, built once per registry push, so that picks
//! do no parsing, string formatting or statistics lookups.
//!
//! [`ProviderSet::new`] reads every provider's weight, start time and warm-up from its URL
//! once, formats its address once, resolves its [`ProviderStats`] handle from the caller's
//! [`CallStats`] once, and precomputes what the selectors need: cumulative weights for
//! weighted random (a binary search per pick), contiguous weight and warm-up arrays for the
//! O(n) scans, the time after which no provider is warming up, and — lazily, on first use —
//! the consistent-hash ring. Selectors pick from it with [`Selector::select_in`].
//!
//! A set is cheap to clone (one `Arc`) and immutable; selectors that keep per-set state
//! (round robin) key it by [`ProviderSet::generation`], unique per set.
//!
//! [`Selector::select_in`]: super::Selector::select_in

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use super::consistent_hash::Ring;
use super::stats::{CallStats, ProviderStats};
use super::warmup::warmup_weight;
use super::{Call, RandomSource};
use crate::url::DubboUrl;

/// Source of set generations; 0 is never handed out.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// One provider of a [`ProviderSet`], with everything a pick needs already parsed.
pub struct Provider {
    index: usize,
    url: DubboUrl,
    address: String,
    weight: u32,
    warmup_ms: u64,
    started_ms: Option<i64>,
    /// The last instant (ms) at which the provider is still warming up; `i64::MIN` when it
    /// never warms up (no start time, weight 0 or `warmup=0`).
    warm_last: i64,
    stats: Arc<ProviderStats>,
    stats_id: u64,
    stats_epoch: u64,
}

impl Provider {
    /// Position in the set (and in the URL list the set was built from).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The provider's URL.
    pub fn url(&self) -> &DubboUrl {
        &self.url
    }

    /// `host:port` ([`DubboUrl::address`]), formatted once.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The full (static) weight from the URL.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The warm-up period in ms.
    pub fn warmup_ms(&self) -> u64 {
        self.warmup_ms
    }

    /// The start time used for warm-up (`remote.timestamp`, else `timestamp`), if any.
    pub fn started_ms(&self) -> Option<i64> {
        self.started_ms
    }

    /// The weight at wall-clock time `now_ms`, after warm-up; the same value as
    /// [`effective_weight`](super::effective_weight) of the URL.
    #[inline]
    pub fn weight_at(&self, now_ms: i64) -> u32 {
        if now_ms > self.warm_last {
            self.weight
        } else {
            self.warming_weight(now_ms)
        }
    }

    /// The weight while (possibly) warming up: Dubbo's ramp.
    fn warming_weight(&self, now_ms: i64) -> u32 {
        match self.started_ms {
            Some(started) => {
                warmup_weight(self.weight, now_ms.saturating_sub(started), self.warmup_ms)
            }
            None => self.weight,
        }
    }

    /// The caller's statistics for this provider, resolved when the set was built.
    pub fn stats(&self) -> &Arc<ProviderStats> {
        &self.stats
    }

    pub(crate) fn stats_id(&self) -> u64 {
        self.stats_id
    }

    pub(crate) fn stats_epoch(&self) -> u64 {
        self.stats_epoch
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("index", &self.index)
            .field("address", &self.address)
            .field("weight", &self.weight)
            .field("warmup_ms", &self.warmup_ms)
            .field("started_ms", &self.started_ms)
            .finish_non_exhaustive()
    }
}

/// An immutable, precomputed snapshot of a provider list; see the [module docs](self).
#[derive(Clone)]
pub struct ProviderSet {
    inner: Arc<Inner>,
}

struct Inner {
    generation: u64,
    stats_id: u64,
    stats_epoch: u64,
    providers: Box<[Provider]>,
    /// The providers' statistics, contiguous for the least-active and shortest-response
    /// scans.
    handles: Box<[Arc<ProviderStats>]>,
    /// Static weights and `warm_last`, contiguous for the round-robin loop.
    weights: Box<[u32]>,
    warm_last: Box<[i64]>,
    /// Inclusive prefix sums of the static weights.
    cumulative: Box<[u64]>,
    total_weight: u64,
    /// All static weights are equal.
    uniform: bool,
    /// The latest `warm_last` of any provider: after it, every provider has its full weight.
    warm_after: i64,
    /// The consistent-hash ring, built on first use.
    ring: OnceLock<Ring>,
}

impl ProviderSet {
    /// Builds the snapshot of `urls` (in that order), resolving each provider's statistics
    /// in `stats` (creating empty ones for new addresses). Costs O(n) plus one statistics
    /// lookup per provider: do it once per registry push, not per call.
    pub fn new(urls: impl Into<Vec<DubboUrl>>, stats: &CallStats) -> ProviderSet {
        let urls: Vec<DubboUrl> = urls.into();
        let stats_id = stats.id();
        let stats_epoch = stats.epoch();
        let providers: Box<[Provider]> = urls
            .into_iter()
            .enumerate()
            .map(|(index, url)| {
                let address = url.address();
                let weight = url.weight();
                let warmup_ms = url.warmup_ms();
                let started_ms = url.timestamp_ms().filter(|&t| t > 0);
                let warm_last = match started_ms {
                    Some(started) if weight > 0 && warmup_ms > 0 => {
                        // Warm once `now - started >= warmup`; i128 so nothing overflows.
                        let last = i128::from(started) + i128::from(warmup_ms) - 1;
                        i64::try_from(last).unwrap_or(i64::MAX)
                    }
                    _ => i64::MIN,
                };
                let handle = stats.provider(&address);
                Provider {
                    index,
                    url,
                    address,
                    weight,
                    warmup_ms,
                    started_ms,
                    warm_last,
                    stats: handle,
                    stats_id,
                    stats_epoch,
                }
            })
            .collect();
        let handles = providers.iter().map(|p| Arc::clone(&p.stats)).collect();
        let weights: Box<[u32]> = providers.iter().map(|p| p.weight).collect();
        let warm_last: Box<[i64]> = providers.iter().map(|p| p.warm_last).collect();
        let mut total_weight = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                total_weight += u64::from(w);
                total_weight
            })
            .collect();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let warm_after = warm_last.iter().copied().max().unwrap_or(i64::MIN);
        ProviderSet {
            inner: Arc::new(Inner {
                generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
                stats_id,
                stats_epoch,
                providers,
                handles,
                weights,
                warm_last,
                cumulative,
                total_weight,
                uniform,
                warm_after,
                ring: OnceLock::new(),
            }),
        }
    }

    /// Unique per set (process-wide): changes whenever a set is rebuilt.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The providers, in the order of the URL list.
    pub fn providers(&self) -> &[Provider] {
        &self.inner.providers
    }

    /// Provider `index`.
    pub fn get(&self, index: usize) -> Option<&Provider> {
        self.inner.providers.get(index)
    }

    /// Number of providers.
    pub fn len(&self) -> usize {
        self.inner.providers.len()
    }

    /// No providers.
    pub fn is_empty(&self) -> bool {
        self.inner.providers.is_empty()
    }

    /// Whether the cached statistics handles are those of `stats`: the set was built from
    /// it and no [`CallStats::retain`] has forgotten an address since. Picks with other
    /// statistics still work, through a lookup per provider.
    pub fn is_current(&self, stats: &CallStats) -> bool {
        self.inner.stats_id == stats.id() && self.inner.stats_epoch == stats.epoch()
    }

    /// Whether every provider has its full weight at `now_ms`.
    #[inline]
    pub fn all_warm_at(&self, now_ms: i64) -> bool {
        now_ms > self.inner.warm_after
    }

    pub(crate) fn weights(&self) -> &[u32] {
        &self.inner.weights
    }

    pub(crate) fn warm_last(&self) -> &[i64] {
        &self.inner.warm_last
    }

    /// Sum of the static weights.
    pub(crate) fn total_weight(&self) -> u64 {
        self.inner.total_weight
    }

    /// The statistics of every provider, for `stats`: the cached handles when current,
    /// else looked up by address (providers never called get empty counters).
    pub(crate) fn handles(&self, stats: &CallStats) -> Cow<'_, [Arc<ProviderStats>]> {
        if self.is_current(stats) {
            return Cow::Borrowed(&self.inner.handles);
        }
        let empty = Arc::new(ProviderStats::default());
        let map = stats.read();
        Cow::Owned(
            self.inner
                .providers
                .iter()
                .map(|p| {
                    map.get(&p.address)
                        .cloned()
                        .unwrap_or_else(|| empty.clone())
                })
                .collect(),
        )
    }

    /// The consistent-hash ring with `replicas` points per provider, if the set's ring (built
    /// on first use by whichever replica count asked first) has that many.
    pub(crate) fn ring(&self, replicas: u32) -> Option<&Ring> {
        let ring = self
            .inner
            .ring
            .get_or_init(|| Ring::build(&self.inner.providers, replicas));
        (ring.replicas() == replicas).then_some(ring)
    }

    /// Weighted random over all providers at `now_ms`: probability weight / total, uniform
    /// when all weights are zero — the distribution of [`super::weighted_pick`] over every
    /// provider. O(log n): a binary search in the cumulative static weights, and while
    /// providers warm up, rejection of a warming pick with probability 1 - warm/full weight
    /// (after a few rejections, an exact O(n) pick).
    pub(crate) fn pick_weighted(&self, now_ms: i64, rng: &RandomSource) -> Option<usize> {
        let inner = &*self.inner;
        let n = inner.providers.len();
        match n {
            0 => return None,
            1 => return Some(0),
            _ => {}
        }
        if inner.total_weight == 0 {
            return Some(rng.index(n));
        }
        let all_warm = self.all_warm_at(now_ms);
        if all_warm && inner.uniform {
            return Some(rng.index(n));
        }
        for _ in 0..REJECTION_TRIES {
            let offset = rng.below(inner.total_weight);
            let i = inner.cumulative.partition_point(|&c| c <= offset);
            if all_warm {
                return Some(i);
            }
            let p = &inner.providers[i];
            if now_ms > p.warm_last {
                return Some(i);
            }
            // Accept with probability warm / full weight: overall P(i) ∝ warm weight.
            if rng.below(u64::from(p.weight)) < u64::from(p.warming_weight(now_ms)) {
                return Some(i);
            }
        }
        weighted_pick_by(n, |i| inner.providers[i].weight_at(now_ms), rng)
    }
}

/// Rejection-sampling attempts before an exact pick; each accepts with probability (total
/// warm weight / total static weight), so this fallback only runs when most of the weight is
/// still warming up.
const REJECTION_TRIES: usize = 8;

impl fmt::Debug for ProviderSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSet")
            .field("generation", &self.inner.generation)
            .field("len", &self.inner.providers.len())
            .field("total_weight", &self.inner.total_weight)
            .finish_non_exhaustive()
    }
}

/// Picks `i` in `0..n` with probability `weight(i) / sum`, uniformly when all weights are
/// equal or all zero (Dubbo's rule); `weight` is called twice per item.
pub(crate) fn weighted_pick_by(
    n: usize,
    weight: impl Fn(usize) -> u32,
    rng: &RandomSource,
) -> Option<usize> {
    match n {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    let first = weight(0);
    let mut total: u64 = 0;
    let mut all_same = true;
    for i in 0..n {
        let w = weight(i);
        total += u64::from(w);
        all_same &= w == first;
    }
    if total == 0 || all_same {
        return Some(rng.index(n));
    }
    let mut offset = rng.below(total);
    for i in 0..n {
        let w = u64::from(weight(i));
        if offset < w {
            return Some(i);
        }
        offset -= w;
    }
    // Unreachable: offset < total = sum of weights.
    Some(n - 1)
}

thread_local! {
    /// Per-thread scratch space for the O(n) scans, so they do not allocate per pick.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty scratch vector (reused across picks on this thread).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            v.clear();
            let r = f(&mut v);
            // Do not keep a huge buffer alive after a one-off large set.
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::new();
            }
            r
        }
        // Re-entered (a selector inside a selector): use a fresh vector.
        Err(_) => f(&mut Vec::new()),
    })
}

/// Largest scratch capacity kept between picks (elements).
const SCRATCH_KEEP: usize = 1 << 20;

/// Caches [`ProviderSet`]s for the slice-based [`Selector::select`](super::Selector::select):
/// one per call key, reused while the list's identity is unchanged — [`Call::snapshot`] when
/// given (O(1) per pick), else a fingerprint of each provider's address, weight, warm-up and
/// start time (O(n) hashing, no parsing or allocation).
#[derive(Default)]
pub(crate) struct SetCache {
    sets: RwLock<HashMap<String, (Identity, ProviderSet)>>,
    /// Fingerprint addresses only: for selectors that use nothing else of a provider
    /// (consistent hashing), so a weight change need not rebuild, and validating is cheaper.
    addresses_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    Snapshot(u64, usize),
    Fingerprint(u64, usize),
}

impl SetCache {
    /// A cache whose fingerprint covers the addresses only (see the field).
    pub(crate) fn addresses_only() -> SetCache {
        SetCache {
            sets: RwLock::default(),
            addresses_only: true,
        }
    }

    /// The set for `providers` and `call`, built if the cached one does not match.
    pub(crate) fn get(&self, providers: &[DubboUrl], call: &Call<'_>) -> ProviderSet {
        let identity = match call.snapshot {
            Some(s) => Identity::Snapshot(s, providers.len()),
            None => {
                Identity::Fingerprint(fingerprint(providers, self.addresses_only), providers.len())
            }
        };
        let usable =
            |(id, set): &(Identity, ProviderSet)| *id == identity && set.is_current(call.stats);
        {
            let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = sets.get(call.key).filter(|e| usable(e)) {
                return entry.1.clone();
            }
            // A fingerprint identifies the content, so another key's set can be shared.
            if let Identity::Fingerprint(..) = identity {
                if let Some(entry) = sets.values().find(|e| usable(e)) {
                    let set = entry.1.clone();
                    drop(sets);
                    self.insert(call.key, identity, set.clone());
                    return set;
                }
            }
        }
        let set = ProviderSet::new(providers, call.stats);
        self.insert(call.key, identity, set.clone());
        set
    }

    fn insert(&self, key: &str, identity: Identity, set: ProviderSet) {
        self.sets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (identity, set));
    }
}

impl fmt::Debug for SetCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .sets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        write!(f, "SetCache({n} keys)")
    }
}

/// Order-sensitive fingerprint of what a set derives from the URLs: address, and unless
/// `addresses_only`, weight, warm-up and start time.
fn fingerprint(providers: &[DubboUrl], addresses_only: bool) -> u64 {
    let mut h = Fingerprint(0x243f_6a88_85a3_08d3);
    for p in providers {
        h.bytes(p.host.as_bytes());
        h.word(u64::from(p.port));
        if addresses_only {
            continue;
        }
        // One pass over the parameters is cheaper than four map lookups.
        for (k, v) in &p.params {
            if matches!(
                k.as_str(),
                "weight" | "warmup" | "timestamp" | "remote.timestamp"
            ) {
                h.bytes(k.as_bytes());
                h.bytes(v.as_bytes());
            }
        }
        h.word(u64::MAX);
    }
    super::consistent_hash::fmix64(h.0)
}

/// A word-at-a-time multiplicative hash (FxHash-style): fast, not keyed, good enough to
/// notice a changed list.
struct Fingerprint(u64);

impl Fingerprint {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w));
        self.word(b.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::effective_weight;
    use crate::balance::test_support::providers;

    #[test]
    fn precomputes_weights_and_warm_up_like_the_urls() {
        let mut list = providers(&[100, 0, 7, 100]);
        list[0].params.insert("timestamp".into(), "1000".into());
        list[0].params.insert("warmup".into(), "60000".into());
        list[1].params.insert("timestamp".into(), "1000".into());
        list[3]
            .params
            .insert("remote.timestamp".into(), "5000".into());
        let stats = CallStats::new();
        let set = ProviderSet::new(list.clone(), &stats);
        assert_eq!(set.len(), 4);
        assert_eq!(set.total_weight(), 207);
        for now in [
            i64::MIN,
            0,
            999,
            1000,
            1001,
            30_000,
            60_999,
            61_000,
            300_000,
            604_999,
            605_000,
            i64::MAX,
        ] {
            for (p, url) in set.providers().iter().zip(&list) {
                assert_eq!(p.weight_at(now), effective_weight(url, now), "{now} {p:?}");
            }
            let warm = list.iter().all(|u| effective_weight(u, now) == u.weight());
            if set.all_warm_at(now) {
                assert!(warm, "{now}");
            }
        }
        assert!(!set.all_warm_at(604_999));
        assert!(set.all_warm_at(605_000));
        assert_eq!(set.providers()[2].address(), list[2].address());
        assert!(Arc::ptr_eq(
            set.providers()[2].stats(),
            &stats.provider(&list[2].address())
        ));
    }

    #[test]
    fn stale_sets_fall_back_to_lookups() {
        let list = providers(&[1, 1]);
        let stats = CallStats::new();
        let set = ProviderSet::new(list.clone(), &stats);
        assert!(set.is_current(&stats));
        assert!(matches!(set.handles(&stats), Cow::Borrowed(_)));
        let other = CallStats::new();
        other.record_start(&list[1].address());
        assert!(!set.is_current(&other));
        let h = set.handles(&other);
        assert_eq!((h[0].active(), h[1].active()), (0, 1));
        stats.retain(|a| a == list[0].address());
        assert!(!set.is_current(&stats));
        // Calls begun through a stale set's provider land in the live map.
        let g = stats.begin_provider(&set.providers()[1]);
        assert_eq!(stats.active(&list[1].address()), 1);
        g.succeed();
    }

    #[test]
    fn pick_weighted_matches_weights_during_warm_up() {
        // Provider 0 at 10/100 of its weight, provider 2 drained, provider 3 in the future.
        let mut list = providers(&[100, 100, 0, 50]);
        list[0].params.insert("timestamp".into(), "1000000".into());
        list[3].params.insert("timestamp".into(), "2000000".into());
        let stats = CallStats::new();
        let set = ProviderSet::new(list, &stats);
        let now = 1_000_000 + 60_000;
        let rng = RandomSource::seeded(4);
        let mut counts = [0u32; 4];
        const PICKS: u32 = 200_000;
        for _ in 0..PICKS {
            counts[set.pick_weighted(now, &rng).expect("non-empty")] += 1;
        }
        let expected = [10.0 / 111.0, 100.0 / 111.0, 0.0, 1.0 / 111.0];
        for (c, e) in counts.iter().zip(expected) {
            let got = f64::from(*c) / f64::from(PICKS);
            assert!((got - e).abs() < 0.005, "{counts:?}");
        }
    }

    #[test]
    fn cache_reuses_and_rebuilds() {
        let mut list = providers(&[1, 2, 3]);
        let stats = CallStats::new();
        let cache = SetCache::default();
        let call = Call::new("k", &stats);
        let a = cache.get(&list, &call);
        assert_eq!(cache.get(&list, &call).generation(), a.generation());
        // Another key with the same list shares the set.
        let b = cache.get(&list, &Call::new("k2", &stats));
        assert_eq!(b.generation(), a.generation());
        list[1].params.insert("weight".into(), "5".into());
        let c = cache.get(&list, &call);
        assert_ne!(c.generation(), a.generation());
        assert_eq!(c.providers()[1].weight(), 5);
        // With a snapshot id the list is trusted as is.
        let s = Call::new("k", &stats).with_snapshot(9);
        let d = cache.get(&list, &s);
        assert_eq!(cache.get(&list, &s).generation(), d.generation());
    }
}
