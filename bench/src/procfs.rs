//! Server (and bench) CPU time and resident memory, read from `/proc`.
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat` (all threads), in clock
//! ticks of 10 ms on Linux; runs of a second or more keep the rounding small.
//! Resident memory is `VmRSS` of `/proc/<pid>/status`.

use std::fs;

/// Linux's `USER_HZ` on every architecture we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds and resident bytes of a set of processes at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Sums CPU time and RSS of `pids`; `None` if any cannot be read (gone, or
/// not Linux), so a wrong pid never reports a made-up figure.
pub fn sample(pids: &[u32]) -> Option<Sample> {
    if pids.is_empty() {
        return None;
    }
    let mut total = Sample::default();
    for pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        total.cpu_seconds += cpu_seconds(&stat)?;
        total.rss_bytes += rss_bytes(&status)?;
    }
    Some(total)
}

/// This process's own sample, to show the load generator's cost per op.
pub fn own() -> Option<Sample> {
    sample(&[std::process::id()])
}

/// This process's soft limit on open files (`ulimit -n`), from
/// `/proc/self/limits`; `None` if unknown or unlimited.
pub fn open_files_limit() -> Option<u64> {
    max_open_files(&fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft value of the `Max open files` line of a limits file.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// `VmRSS:   1234 kB` from `/proc/<pid>/status`.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "42 (java (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 30 0 1 2 3";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tcanopy\nVmPeak:\t  9 kB\nVmRSS:\t    2048 kB\nThreads: 3\n";
        assert_eq!(rss_bytes(status), Some(2048 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn parses_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             unlimited            unlimited            processes \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(max_open_files(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
    }

    #[test]
    fn reads_our_own_process() {
        let s = own().expect("/proc is readable on Linux");
        assert!(s.rss_bytes > 0);
        assert!(sample(&[]).is_none());
    }
}
