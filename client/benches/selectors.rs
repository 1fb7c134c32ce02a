//! Cost of one selector pick at 10, 100 and 10,000 providers.
//!
//! A plain timing harness (no criterion): `cargo bench -p canopy-client --bench selectors`.
//! Every provider has statistics (one finished call with a latency spread across providers,
//! so the latency-aware selectors do real comparisons); picks reuse one call key, as a
//! consumer calling one method does. Each figure is the best of 5 rounds, each round long
//! enough (~100 ms) to make timer noise negligible.
//!
//! Three tables: the fast path (`select_in` on a prebuilt `ProviderSet`), the slice API
//! (`select`) with a snapshot id (the set is cached), and the slice API without one (the
//! cached set is validated by fingerprinting the list on every pick). A fourth table repeats
//! the fast path while one provider is still warming up.

use std::hint::black_box;
use std::time::{Duration, Instant};

use canopy_client::balance::{Call, CallStats, ProviderSet, SelectorKind};
use canopy_client::url::DubboUrl;

fn providers(n: usize) -> Vec<DubboUrl> {
    (0..n)
        .map(|i| {
            let url = format!(
                "dubbo://10.{}.{}.{}:20880/com.foo.DemoService?application=demo&interface=com.foo.DemoService&methods=sayHello&side=provider&timestamp=1700000000000&version=1.0.0&weight={}",
                i / 65_536,
                (i / 256) % 256,
                i % 256,
                50 + i % 100
            );
            DubboUrl::parse(&url).expect("bench url")
        })
        .collect()
}

fn stats_for(list: &[DubboUrl]) -> CallStats {
    let stats = CallStats::new();
    for (i, p) in list.iter().enumerate() {
        let addr = p.address();
        stats.record_start(&addr);
        stats.record_end(
            &addr,
            Duration::from_micros(500 + (i as u64 * 37) % 1000),
            true,
        );
    }
    stats
}

/// ns per pick: best of 5 rounds of `iters` picks.
fn measure(mut pick: impl FnMut(u64), iters: u64) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..iters {
            pick(i);
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

/// Picks so that one round takes about 100 ms, estimated from a short trial.
fn calibrate(mut pick: impl FnMut(u64)) -> u64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(20) {
        pick(n);
        n += 1;
    }
    (n * 5).max(10)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Set,
    SliceSnapshot,
    Slice,
}

fn table(title: &str, mode: Mode, warming: bool) {
    let sizes = [10usize, 100, 10_000];
    let args: Vec<String> = (0..1_024).map(|i| format!("user-{i}")).collect();
    println!(
        "{:<28}{:>14}{:>14}{:>14}",
        title, "n=10", "n=100", "n=10000"
    );
    for kind in SelectorKind::ALL {
        let mut line = format!("{:<28}", kind.name());
        for &n in &sizes {
            let mut list = providers(n);
            let now = canopy_client::balance::now_ms();
            if warming {
                // One provider started a minute ago, 10 minutes of warm-up.
                list[n / 2]
                    .params
                    .insert("timestamp".into(), (now - 60_000).to_string());
            }
            let stats = stats_for(&list);
            let set = ProviderSet::new(list.clone(), &stats);
            let selector = kind.build_seeded(42);
            let snapshot = (mode == Mode::SliceSnapshot).then_some(1);
            let mut pick = |i: u64| {
                let arg = &args[(i % 1_024) as usize];
                let mut call = Call::new("com.foo.DemoService:1.0.0.sayHello", &stats)
                    .at(now)
                    .with_hash_arg(arg);
                call.snapshot = snapshot;
                if mode == Mode::Set {
                    black_box(selector.select_in(black_box(&set), &call));
                } else {
                    black_box(selector.select(black_box(&list), &call));
                }
            };
            // The first pick builds the lazily built state (rings, caches).
            pick(0);
            let iters = calibrate(&mut pick);
            line.push_str(&format!("{:>14.0}", measure(&mut pick, iters)));
        }
        println!("{line}");
    }
    println!();
}

fn main() {
    table("select_in (ns/pick)", Mode::Set, false);
    table("select+snapshot (ns/pick)", Mode::SliceSnapshot, false);
    table("select (ns/pick)", Mode::Slice, false);
    table("select_in, 1 warming", Mode::Set, true);
}
