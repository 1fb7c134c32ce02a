//! Consistent hashing: calls with the same routing argument go to the same provider, and
//! when a provider joins or leaves only about 1/n of the arguments move.
//!
//! Like Dubbo, each provider is placed on a 64-bit hash ring at 160 virtual points, and a
//! call goes to the first point at or after the hash of its argument (wrapping around).
//! Dubbo derives the points from MD5; here the hash is FNV-1a 64 followed by the MurmurHash3
//! 64-bit finalizer, which avalanches well enough for ring placement, needs no dependency,
//! and — unlike `std`'s randomly keyed SipHash — gives the same ring in every process, so
//! all consumers send an argument to the same provider. (It is therefore not wire-compatible
//! with Dubbo's MD5 ring: a Rust and a Java consumer may route one key to different
//! providers.) Weights are ignored, as in Dubbo.
//!
//! The ring depends only on the providers and the replica count, so it is built once per
//! [`ProviderSet`] (on first use) and shared by every call key; a pick is one hash of the
//! argument and a binary search over the ring's points, O(log n). A selector configured with
//! a replica count other than the one the set's ring was built with keeps its own ring for
//! the latest set.

use std::sync::{Arc, Mutex};

use super::set::SetCache;
use super::{lock, select_cached, Call, Provider, ProviderSet, Selector};
use crate::url::DubboUrl;

/// Dubbo's default number of virtual nodes per provider (`hash.nodes`).
pub const DEFAULT_REPLICAS: u32 = 160;

/// Consistent-hash selection over a ring with virtual nodes.
#[derive(Debug)]
pub struct ConsistentHash {
    replicas: u32,
    /// (set generation, ring) when the set's own ring has another replica count.
    own_ring: Mutex<Option<(u64, Arc<Ring>)>>,
    cache: SetCache,
}

/// A hash ring: virtual points sorted, with the provider index owning each.
#[derive(Debug)]
pub(crate) struct Ring {
    replicas: u32,
    points: Box<[u64]>,
    owners: Box<[u32]>,
}

impl Ring {
    /// The ring of `providers` (by address) with `replicas` points each.
    pub(crate) fn build(providers: &[Provider], replicas: u32) -> Ring {
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(providers.len() * replicas as usize);
        for (i, p) in providers.iter().enumerate() {
            let base = hash_address(p.url());
            for r in 0..replicas {
                // Derive each virtual point from the address hash and the replica number;
                // the finalizer makes consecutive replica numbers land far apart.
                let point = fmix64(base ^ u64::from(r).wrapping_add(1).wrapping_mul(GOLDEN));
                pairs.push((point, i as u32));
            }
        }
        pairs.sort_unstable();
        Ring {
            replicas,
            points: pairs.iter().map(|&(p, _)| p).collect(),
            owners: pairs.iter().map(|&(_, o)| o).collect(),
        }
    }

    pub(crate) fn replicas(&self) -> u32 {
        self.replicas
    }

    /// The provider index owning the first point at or after `h`, wrapping around.
    fn owner(&self, h: u64) -> Option<usize> {
        let at = self.points.partition_point(|&p| p < h);
        let at = if at == self.points.len() { 0 } else { at };
        self.owners.get(at).map(|&o| o as usize)
    }
}

impl Default for ConsistentHash {
    fn default() -> Self {
        ConsistentHash::new()
    }
}

impl ConsistentHash {
    /// 160 virtual nodes per provider.
    pub fn new() -> ConsistentHash {
        ConsistentHash::with_replicas(DEFAULT_REPLICAS)
    }

    /// `replicas` virtual nodes per provider (at least 1). More nodes spread keys more
    /// evenly at the cost of a bigger ring.
    pub fn with_replicas(replicas: u32) -> ConsistentHash {
        ConsistentHash {
            replicas: replicas.max(1),
            own_ring: Mutex::new(None),
            cache: SetCache::addresses_only(),
        }
    }

    /// The owner of `h` on `set`'s ring with this selector's replica count.
    fn owner(&self, set: &ProviderSet, h: u64) -> Option<usize> {
        if let Some(ring) = set.ring(self.replicas) {
            return ring.owner(h);
        }
        let ring = {
            let mut own = lock(&self.own_ring);
            match &*own {
                Some((generation, ring)) if *generation == set.generation() => Arc::clone(ring),
                _ => {
                    let ring = Arc::new(Ring::build(set.providers(), self.replicas));
                    *own = Some((set.generation(), Arc::clone(&ring)));
                    ring
                }
            }
        };
        ring.owner(h)
    }
}

impl Selector for ConsistentHash {
    fn name(&self) -> &'static str {
        "consistenthash"
    }

    fn select_in<'s>(&self, set: &'s ProviderSet, call: &Call<'_>) -> Option<&'s Provider> {
        match set.len() {
            0 => return None,
            1 => return set.get(0),
            _ => {}
        }
        let h = hash64(call.hash_arg.unwrap_or(call.key).as_bytes());
        set.get(self.owner(set, h)?)
    }

    fn select<'p>(&self, providers: &'p [DubboUrl], call: &Call<'_>) -> Option<&'p DubboUrl> {
        select_cached(self, &self.cache, providers, call)
    }
}

/// Hash of a provider's address, consistent with [`DubboUrl::address`] without allocating.
fn hash_address(url: &DubboUrl) -> u64 {
    let h = fnv1a(FNV_OFFSET, url.host.as_bytes());
    fmix64(fnv1a(h, &url.port.to_be_bytes()))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The stable 64-bit hash used for routing arguments.
pub fn hash64(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::providers;
    use crate::balance::CallStats;

    const KEYS: usize = 20_000;

    /// Where each of KEYS argument values is routed, by provider address.
    fn routes(sel: &ConsistentHash, list: &[DubboUrl]) -> Vec<String> {
        let stats = CallStats::new();
        (0..KEYS)
            .map(|k| {
                let arg = format!("user-{k}");
                let call = Call::new("svc.m", &stats).with_hash_arg(&arg);
                sel.select(list, &call).expect("non-empty").address()
            })
            .collect()
    }

    #[test]
    fn same_argument_same_provider_and_even_spread() {
        let list = providers(&[100; 10]);
        let sel = ConsistentHash::new();
        let first = routes(&sel, &list);
        assert_eq!(first, routes(&sel, &list));
        // A fresh selector (another process) routes identically: the hash is unkeyed.
        assert_eq!(first, routes(&ConsistentHash::new(), &list));
        for p in &list {
            let share = first.iter().filter(|a| **a == p.address()).count() as f64 / KEYS as f64;
            // 160 virtual nodes keep each share near 1/10.
            assert!((share - 0.1).abs() < 0.035, "{} has {share}", p.address());
        }
    }

    #[test]
    fn adding_a_provider_moves_about_one_in_n_keys_all_to_it() {
        let list = providers(&[100; 11]);
        let sel = ConsistentHash::new();
        let before = routes(&sel, &list[..10]);
        let after = routes(&sel, &list);
        let newcomer = list[10].address();
        let moved: Vec<usize> = (0..KEYS).filter(|&k| before[k] != after[k]).collect();
        assert!(
            moved.iter().all(|&k| after[k] == newcomer),
            "keys only move to the newcomer"
        );
        let fraction = moved.len() as f64 / KEYS as f64;
        assert!((fraction - 1.0 / 11.0).abs() < 0.035, "moved {fraction}");
    }

    #[test]
    fn removing_a_provider_moves_only_its_keys() {
        let list = providers(&[100; 10]);
        let sel = ConsistentHash::new();
        let before = routes(&sel, &list);
        let gone = list[3].address();
        let remaining: Vec<DubboUrl> = list
            .iter()
            .filter(|p| p.address() != gone)
            .cloned()
            .collect();
        let after = routes(&sel, &remaining);
        let moved: Vec<usize> = (0..KEYS).filter(|&k| before[k] != after[k]).collect();
        assert!(
            moved.iter().all(|&k| before[k] == gone),
            "only the removed provider's keys move"
        );
        let fraction = moved.len() as f64 / KEYS as f64;
        assert!((fraction - 0.1).abs() < 0.035, "moved {fraction}");
    }

    #[test]
    fn snapshot_identity_and_reordering() {
        let list = providers(&[100; 5]);
        let sel = ConsistentHash::new();
        let stats = CallStats::new();
        let call = Call::new("svc.m", &stats)
            .with_hash_arg("k")
            .with_snapshot(1);
        let chosen = sel.select(&list, &call).expect("non-empty").address();
        // Reordered list without a snapshot id: the fingerprint changes, the ring is rebuilt
        // and the key still maps to the same address.
        let mut rev = list.clone();
        rev.reverse();
        let call = Call::new("svc.m", &stats).with_hash_arg("k");
        assert_eq!(
            sel.select(&rev, &call).expect("non-empty").address(),
            chosen
        );
        // Without an argument the call key is hashed: stable too.
        let call = Call::new("svc.m", &stats);
        assert_eq!(sel.select(&list, &call), sel.select(&list, &call));
    }
}
