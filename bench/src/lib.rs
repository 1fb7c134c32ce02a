//! `canopy bench`: load and scenarios against any ZooKeeper-compatible
//! server (issue 5). It speaks the wire protocol through `canopy-protocol`
//! directly, with its own pipelined connection, so that the load generator
//! costs far less CPU than the server it measures.
//!
//! # Layout
//! - [`args`]: the flags ([`BenchArgs`], a clap `Args` the `canopy` binary embeds).
//! - [`conn`]: one session on one TCP connection, pipelined, no background task.
//! - [`driver`]: the closed-loop engine (sessions x outstanding requests).
//! - [`workload`]: one module per workload, each verifying its effect.
//! - [`tree`]: unmeasured setup, read-back and cleanup, pipelined.
//! - [`payload`]: data that says which key it belongs to.
//! - [`stats`]: latency histograms and error counts; [`report`]: the summary
//!   for people and the JSON line for scripts; [`procfs`]: server CPU and RSS.
//! - [`progress`]: the progress bar.
//! - [`hostile`]: the hardening load tests (`canopy-hostile`).
//!
//! # Entry points
//! `canopy bench ARGS` is `run(BenchArgs)`; [`main_with_args`] parses argv.

pub mod args;
pub mod conn;
pub mod driver;
pub mod hostile;
pub mod payload;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod stats;
pub mod tree;
pub mod workload;

use std::io::Write;
use std::process::ExitCode;

pub use args::{BenchArgs, WorkloadKind};
pub use report::Summary;

/// Runs every workload named in `args`, in order. Prints a human summary of
/// each on stderr (unless `--quiet`) and one JSON line per workload on
/// stdout. Fails (exit code 1) if any workload failed or saw an unexpected
/// error, and with 2 on bad flags.
pub fn run(args: BenchArgs) -> ExitCode {
    if let Err(why) = args.validate() {
        eprintln!("canopy bench: {why}");
        return ExitCode::from(2);
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("canopy bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summaries = runtime.block_on(async {
        let mut summaries = Vec::new();
        for kind in &args.workloads {
            let mut summary = workload::run(*kind, &args).await;
            if !args.histogram {
                summary.latency_histogram_us = None;
            }
            if !args.quiet {
                eprint!("{}", summary.human());
            }
            println!("{}", summary.json_line());
            let _ = std::io::stdout().flush();
            summaries.push(summary);
        }
        summaries
    });
    if summaries.iter().all(|s| s.failure.is_none() && s.verified) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Parses `args` (without the program name) as `canopy bench` flags and runs.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    use clap::Parser;

    /// Benchmark any ZooKeeper-compatible server.
    #[derive(Parser)]
    #[command(name = "canopy-bench")]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }
    let argv = std::iter::once("canopy-bench".to_string()).chain(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => run(cli.args),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
