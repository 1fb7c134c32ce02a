//! Warm-up: a freshly started provider gets a small share of traffic that grows to its full
//! weight over its warm-up period, so a cold JVM (or cold caches) is not flooded at once.
//!
//! This is Dubbo's rule: with `weight` from the URL (default 100), `warmup` (default 10
//! minutes) and the provider's start time (`remote.timestamp`, else `timestamp`), a provider
//! `uptime` ms old has weight `weight * uptime / warmup`, at least 1 and at most `weight`.
//! A provider whose start time lies in the future (clock skew) gets weight 1 until its clock
//! is reached, as in Dubbo. A weight of 0 stays 0 (the provider is drained), and a URL without
//! a start time, or with `warmup=0`, has its full weight.
//!
//! One deliberate difference: Dubbo skips the ramp at exactly `uptime == 0` (its test is
//! `uptime > 0`); here a provider that started this very millisecond gets weight 1.

use crate::url::DubboUrl;

/// The warm-up weight of a provider `uptime_ms` old whose full weight is `weight`.
pub fn warmup_weight(weight: u32, uptime_ms: i64, warmup_ms: u64) -> u32 {
    if weight == 0 {
        return 0;
    }
    if uptime_ms < 0 {
        return 1;
    }
    let uptime = uptime_ms as u64;
    if warmup_ms == 0 || uptime >= warmup_ms {
        return weight;
    }
    // u128: weight (up to 2^32) times uptime (up to 2^63) does not fit in u64.
    let ramped = u128::from(weight) * u128::from(uptime) / u128::from(warmup_ms);
    // ramped < weight here because uptime < warmup, so the cast is lossless.
    (ramped as u32).clamp(1, weight)
}

/// The weight a selector should use for `url` at wall-clock time `now_ms`.
pub fn effective_weight(url: &DubboUrl, now_ms: i64) -> u32 {
    let weight = url.weight();
    match url.timestamp_ms() {
        Some(started) if started > 0 && weight > 0 => {
            warmup_weight(weight, now_ms.saturating_sub(started), url.warmup_ms())
        }
        _ => weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_from_one_to_full() {
        assert_eq!(warmup_weight(100, 0, 600_000), 1);
        assert_eq!(warmup_weight(100, 3_000, 600_000), 1); // 0.5 rounds down, floor is 1
        assert_eq!(warmup_weight(100, 60_000, 600_000), 10);
        assert_eq!(warmup_weight(100, 300_000, 600_000), 50);
        assert_eq!(warmup_weight(100, 599_999, 600_000), 99);
        assert_eq!(warmup_weight(100, 600_000, 600_000), 100);
        assert_eq!(warmup_weight(100, i64::MAX, 600_000), 100);
        assert_eq!(warmup_weight(u32::MAX, 1, 2), u32::MAX / 2);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(warmup_weight(100, -5, 600_000), 1);
        assert_eq!(warmup_weight(0, 300_000, 600_000), 0);
        assert_eq!(warmup_weight(100, 10, 0), 100);
    }

    #[test]
    fn reads_weight_warmup_and_timestamp_from_the_url() {
        let u = DubboUrl::parse(
            "dubbo://h:1/x?weight=200&warmup=60000&timestamp=1000&remote.timestamp=2000",
        )
        .expect("parse");
        // remote.timestamp (2000) is the start: 30 s into a 60 s warm-up.
        assert_eq!(effective_weight(&u, 32_000), 100);
        assert_eq!(effective_weight(&u, 62_000), 200);
        assert_eq!(effective_weight(&u, 1_000), 1);
        let plain = DubboUrl::parse("dubbo://h:1/x?weight=7").expect("parse");
        assert_eq!(effective_weight(&plain, 0), 7);
        let default = DubboUrl::parse("dubbo://h:1/x?timestamp=0").expect("parse");
        assert_eq!(effective_weight(&default, 5), 100);
    }
}
