//! The `canopy` command: `canopy serve` runs a server; `canopy data`
//! inspects a data folder; `canopy bench` measures any ZooKeeper-compatible
//! server.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use canopy::config::{Config, Overrides};
use canopy::server::Server;
use clap::{Args, Parser, Subcommand};

/// mimalloc rather than the system allocator: the tree is millions of small
/// allocations, and glibc's malloc spends more time and keeps more memory
/// resident for them (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "canopy",
    version,
    about = "A ZooKeeper-compatible tree store and service registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server (defaults: port 2181 on all interfaces, data in ./canopy-data).
    Serve(ServeArgs),
    /// Inspect a data folder: its snapshots and log segments, the change
    /// records, and a check of every checksum.
    Data(DataArgs),
    /// Benchmark any ZooKeeper-compatible server (Canopy or ZooKeeper).
    Bench(canopy_bench::BenchArgs),
}

#[derive(Args)]
struct DataArgs {
    /// Data folder.
    #[arg(long, default_value = "./canopy-data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// List snapshots and log segments with their zxids and sizes.
    List,
    /// Print change records, one per line.
    Log {
        /// First zxid to print (hex with 0x, or decimal).
        #[arg(long, default_value = "0")]
        from: String,
        /// Print at most this many records.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
    },
    /// Read every snapshot and segment, check every checksum and replay the
    /// log as a start would; exit non-zero on any damage.
    Verify,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file with settings; flags given here win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Client port (0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Data folder.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// ZooKeeper's tickTime in milliseconds.
    #[arg(long)]
    tick_time: Option<u64>,
    /// Smallest session timeout granted, in milliseconds (default 2 ticks).
    #[arg(long)]
    min_session_timeout: Option<i32>,
    /// Largest session timeout granted, in milliseconds (default 20 ticks).
    #[arg(long)]
    max_session_timeout: Option<i32>,
    /// Largest request frame accepted, in bytes (ZooKeeper's jute.maxbuffer).
    #[arg(long)]
    max_frame_bytes: Option<usize>,
    /// Milliseconds between checks for empty containers and expired TTL nodes.
    #[arg(long)]
    container_check_interval: Option<u64>,
    /// Refuse TTL nodes (ZooKeeper's extendedTypesEnabled=false).
    #[arg(long)]
    disable_ttl: bool,
    /// `super:<base64 sha1>`: the digest identity that may do anything.
    #[arg(long)]
    super_digest: Option<String>,
    /// Four-letter words to answer, comma-separated, or `*` for all.
    #[arg(long, value_delimiter = ',')]
    four_letter_words: Option<Vec<String>>,
    /// fsync the log before acknowledging writes (default true). `false` is
    /// for benchmarks only: a crash then loses acknowledged writes.
    #[arg(long)]
    fsync: Option<bool>,
    /// Take a snapshot after this many changes.
    #[arg(long)]
    snapshot_every_txns: Option<u64>,
    /// Snapshots to keep (with the log needed from the oldest).
    #[arg(long)]
    snapshots_retained: Option<usize>,
    /// Start a new log segment past this many bytes.
    #[arg(long)]
    log_segment_bytes: Option<u64>,
    /// Bytes a connection may have queued unwritten before it is cut off.
    #[arg(long)]
    max_outbound_bytes: Option<usize>,
    /// Milliseconds a new connection has to send its ConnectRequest.
    #[arg(long)]
    handshake_timeout: Option<u64>,
    /// Refuse writes past a hard quota (ZooKeeper's zookeeper.enforceQuota).
    #[arg(long)]
    enforce_quota: Option<bool>,
    /// Most children a node may have (0: no limit).
    #[arg(long)]
    max_children_per_node: Option<usize>,
    /// Print the effective settings and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind,
            port: self.port,
            data_dir: self.data_dir.clone(),
            tick_time_ms: self.tick_time,
            min_session_timeout_ms: self.min_session_timeout,
            max_session_timeout_ms: self.max_session_timeout,
            max_frame_bytes: self.max_frame_bytes,
            ttl_enabled: self.disable_ttl.then_some(false),
            container_check_interval_ms: self.container_check_interval,
            super_digest: self.super_digest.clone(),
            four_letter_words: self.four_letter_words.clone(),
            server_id: None,
            fsync: self.fsync,
            snapshot_every_txns: self.snapshot_every_txns,
            snapshot_every_log_bytes: None,
            log_segment_bytes: self.log_segment_bytes,
            snapshots_retained: self.snapshots_retained,
            max_outbound_bytes: self.max_outbound_bytes,
            handshake_timeout_ms: self.handshake_timeout,
            enforce_quota: self.enforce_quota,
            max_children_per_node: self.max_children_per_node,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Data(args) => data(args),
        Command::Bench(args) => canopy_bench::run(args),
    }
}

fn data(args: DataArgs) -> ExitCode {
    use canopy::storage::inspect;
    let dir = &args.data_dir;
    let result = match args.command {
        DataCommand::List => inspect::list(dir).map(|text| print!("{text}")),
        DataCommand::Verify => inspect::verify(dir).map(|text| print!("{text}")),
        DataCommand::Log { from, limit } => {
            let from = match parse_zxid(&from) {
                Some(zxid) => zxid,
                None => {
                    eprintln!("error: --from {from:?} is not a zxid");
                    return ExitCode::FAILURE;
                }
            };
            let stdout = std::io::stdout();
            inspect::print_log(dir, from, limit, &mut stdout.lock()).map(|_| ())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse_zxid(text: &str) -> Option<i64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|z| z as i64),
        None => text.parse().ok(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let file = match &args.config {
        Some(path) => match Overrides::from_file(path) {
            Ok(file) => file,
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => Overrides::default(),
    };
    let config = Config::resolve(&[&file, &args.overrides()]);
    if args.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    // Every client connection is a file descriptor.
    canopy::limits::raise_open_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(err) => {
                eprintln!("error: cannot start the server: {err}");
                return ExitCode::FAILURE;
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        server.stop();
        ExitCode::SUCCESS
    })
}
