//! Command-line flags of `canopy bench`. The struct is a clap `Args` so the
//! `canopy` binary can embed it as its `bench` subcommand unchanged.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// One workload; several may be given and run one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// Create `--ops` new znodes of `--data-size` bytes.
    Create,
    /// getData on random keys of a prefilled key space.
    Get,
    /// setData on random keys of a prefilled key space.
    Set,
    /// getData/setData mix (`--read-pct` reads) on a prefilled key space.
    Mixed,
    /// Delete `--ops` prefilled znodes.
    Delete,
    /// getChildren on wide parents (`--parents` x `--width` children).
    Children,
    /// multi transactions of `--multi-size` creates each.
    Multi,
    /// Dubbo-style registration: providers create ephemerals, consumers watch.
    Register,
    /// Sessions cut without closing: time until their ephemerals vanish.
    Expire,
    /// Providers joining and leaving continuously while consumers watch.
    Churn,
    /// Create `--ops` znodes, then the server's resident memory per znode.
    Mem,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Create => "create",
            WorkloadKind::Get => "get",
            WorkloadKind::Set => "set",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Delete => "delete",
            WorkloadKind::Children => "children",
            WorkloadKind::Multi => "multi",
            WorkloadKind::Register => "register",
            WorkloadKind::Expire => "expire",
            WorkloadKind::Churn => "churn",
            WorkloadKind::Mem => "mem",
        }
    }
}

/// `canopy bench --server host:port[,…] WORKLOAD… [flags]`
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Servers, comma-separated `host:port`; sessions are spread over them.
    #[arg(long, short = 's', value_delimiter = ',', required = true)]
    pub server: Vec<String>,

    /// Workloads to run, in order.
    #[arg(value_enum, required = true)]
    pub workloads: Vec<WorkloadKind>,

    /// Concurrent sessions (one TCP connection each).
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,

    /// Requests kept in flight per session.
    #[arg(long, default_value_t = 256)]
    pub outstanding: usize,

    /// Measured operations (ignored when `--duration` is given).
    #[arg(long, default_value_t = 200_000)]
    pub ops: u64,

    /// Run each measured phase for this many seconds instead of `--ops`.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Seconds of unmeasured load before measuring (get, set, mixed, children, create, multi).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,

    /// Bytes of data per znode.
    #[arg(long, default_value_t = 64)]
    pub data_size: usize,

    /// Prefilled keys for get, set and mixed.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,

    /// Percentage of reads in `mixed`.
    #[arg(long, default_value_t = 90)]
    pub read_pct: u8,

    /// Parents for `children`.
    #[arg(long, default_value_t = 10)]
    pub parents: u64,

    /// Children per parent for `children`.
    #[arg(long, default_value_t = 100)]
    pub width: u64,

    /// Creates per multi transaction.
    #[arg(long, default_value_t = 10)]
    pub multi_size: usize,

    /// Provider sessions for `register` and `churn`.
    #[arg(long, default_value_t = 2_000)]
    pub providers: usize,

    /// `register`: each provider drops its TCP connection once its create is
    /// acknowledged, without closing its session (as behind a broken link);
    /// the sessions are resumed and closed at the end. Lets more providers
    /// run than file descriptors allow (see BENCHMARKS.md).
    #[arg(long)]
    pub provider_detach: bool,

    /// With `--provider-detach`: providers registering at once (and as many
    /// keep-alive resumes). Handshakes in flight beyond the server's listen
    /// backlog (128 for Canopy, 50 for ZooKeeper) get their SYNs dropped.
    #[arg(long, default_value_t = 64)]
    pub provider_window: usize,

    /// Watching consumer sessions for `register` and `churn`.
    #[arg(long, default_value_t = 100)]
    pub consumers: usize,

    /// Service interfaces providers are spread over.
    #[arg(long, default_value_t = 100)]
    pub interfaces: usize,

    /// Interfaces each consumer subscribes to (round robin).
    #[arg(long, default_value_t = 10)]
    pub subscriptions: usize,

    /// Sessions cut without closing in `expire`.
    #[arg(long, default_value_t = 20)]
    pub expire_sessions: usize,

    /// Session timeout requested, in milliseconds (`expire` and `churn` use it as is).
    #[arg(long, default_value_t = 30_000)]
    pub session_timeout: u32,

    /// Seconds `churn` keeps providers joining and leaving.
    #[arg(long, default_value_t = 5.0)]
    pub churn_seconds: f64,

    /// How long a churn provider stays registered, in milliseconds (mean; uniform 0.5x-1.5x).
    #[arg(long, default_value_t = 500)]
    pub churn_hold_ms: u64,

    /// Server process ids (repeatable, one per cluster member) for CPU time and
    /// resident memory read from /proc.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,

    /// Parent of everything the bench creates; each run uses a fresh child.
    #[arg(long, default_value = "/canopy-bench")]
    pub root: String,

    /// Leave the znodes in place after each workload.
    #[arg(long)]
    pub keep: bool,

    /// Load-generator threads (1 = a current-thread runtime, the lightest).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Only the JSON lines (no human summary on stderr).
    #[arg(long)]
    pub quiet: bool,

    /// Add the whole latency histogram to each JSON line
    /// (`latency_histogram_us`: [microseconds, count] pairs), so that runs
    /// can be merged exactly (`bench-compare.py` does for the serial cases).
    #[arg(long)]
    pub histogram: bool,

    /// Seconds any single network wait may take before the run fails.
    #[arg(long, default_value_t = 30.0)]
    pub io_timeout: f64,
}

impl BenchArgs {
    pub fn io_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.io_timeout.max(0.1))
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 || self.outstanding == 0 {
            return Err("--sessions and --outstanding must be at least 1".into());
        }
        if self.read_pct > 100 {
            return Err("--read-pct is a percentage (0-100)".into());
        }
        if self.keys == 0 || self.parents == 0 || self.multi_size == 0 {
            return Err("--keys, --parents and --multi-size must be at least 1".into());
        }
        // Provider ids travel in the low 24 bits of their node's IP.
        if self.providers > 1 << 24 {
            return Err("--providers is at most 16,777,216".into());
        }
        if self.provider_window == 0 {
            return Err("--provider-window must be at least 1".into());
        }
        if self.interfaces == 0 || self.subscriptions == 0 {
            return Err("--interfaces and --subscriptions must be at least 1".into());
        }
        if !self.root.starts_with('/') || self.root.len() < 2 || self.root.ends_with('/') {
            return Err("--root must be an absolute znode path other than /".into());
        }
        if self.duration.is_some_and(|d| d <= 0.0) {
            return Err("--duration must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(line: &str) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(line.split_whitespace())).map(|c| c.args)
    }

    #[test]
    fn parses_servers_workloads_and_repeated_pids() {
        let args = parse(
            "--server a:1,b:2 get mixed --read-pct 80 --server-pid 7 --server-pid 9 --sessions 4",
        )
        .unwrap();
        assert_eq!(args.server, vec!["a:1", "b:2"]);
        assert_eq!(args.workloads, vec![WorkloadKind::Get, WorkloadKind::Mixed]);
        assert_eq!(args.read_pct, 80);
        assert_eq!(args.server_pids, vec![7, 9]);
        assert_eq!(args.sessions, 4);
        assert_eq!(args.outstanding, 256);
        assert!(!args.provider_detach);
        assert!(args.validate().is_ok());
        let detach = parse("--server a:1 register --provider-detach --provider-window 64").unwrap();
        assert!(detach.provider_detach);
        assert_eq!(detach.provider_window, 64);
    }

    #[test]
    fn refuses_bad_combinations() {
        assert!(parse("get").is_err(), "a server is required");
        assert!(parse("--server a:1").is_err(), "a workload is required");
        assert!(parse("--server a:1 frobnicate").is_err());
        let bad = parse("--server a:1 mixed --read-pct 101").unwrap();
        assert!(bad.validate().is_err());
        let bad = parse("--server a:1 get --root /x/").unwrap();
        assert!(bad.validate().is_err());
    }
}
