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
    Serve(Box<ServeArgs>),
    /// Inspect a data folder: its snapshots and log segments, the change
    /// records, and a check of every checksum.
    Data(DataArgs),
    /// Benchmark any ZooKeeper-compatible server (Canopy or ZooKeeper).
    Bench(canopy_bench::BenchArgs),
    /// The tree browser: zkCli.sh's commands and more (cli/ crate).
    #[command(flatten)]
    Browser(canopy_cli::CliCommand),
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
    /// A TOML file with settings (see canopy.toml.example); flags given here
    /// win over it. A name ending in `.cfg` is read as a ZooKeeper zoo.cfg.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A ZooKeeper zoo.cfg: the settings with a Canopy equivalent are taken
    /// (under the TOML file and the flags), the others are warned about.
    #[arg(long)]
    zoo_cfg: Option<PathBuf>,
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
    /// TLS client port (ZooKeeper's secureClientPort; needs [tls] in the config file).
    #[arg(long)]
    secure_port: Option<u16>,
    /// HTTP admin server port (default 8080); 0 switches it off.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Address the admin server listens on (default 127.0.0.1).
    #[arg(long)]
    admin_bind: Option<IpAddr>,
    /// Bearer token for admin calls that change state (needed when the admin
    /// server is not on loopback). Flags show in `ps`: prefer `admin_token`
    /// in the config file.
    #[arg(long)]
    admin_token: Option<String>,
    /// Connections one client address may hold (ZooKeeper's maxClientCnxns,
    /// default 60); 0 = no limit.
    #[arg(long)]
    max_client_cnxns: Option<u32>,
    /// Connections the server holds at once (default 0 = no limit).
    #[arg(long)]
    max_connections: Option<u32>,
    /// Addresses or CIDR ranges allowed to connect, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    allow: Option<Vec<String>>,
    /// Addresses or CIDR ranges refused, comma-separated; deny wins over allow.
    #[arg(long, value_delimiter = ',')]
    deny: Option<Vec<String>>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Log level or tracing filter (`info`, `canopy=debug,info`); RUST_LOG wins.
    #[arg(long)]
    log_level: Option<String>,
    /// Close every session on SIGTERM instead of letting them survive.
    #[arg(long)]
    close_sessions_on_shutdown: Option<bool>,
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
            admin_port: self.admin_port,
            admin_bind: self.admin_bind,
            admin_token: self.admin_token.clone(),
            max_client_cnxns: self.max_client_cnxns,
            max_connections: self.max_connections,
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            close_sessions_on_shutdown: self.close_sessions_on_shutdown,
            shutdown_grace_ms: None,
            secure_port: self.secure_port,
            max_outbound_bytes: self.max_outbound_bytes,
            handshake_timeout_ms: self.handshake_timeout,
            enforce_quota: self.enforce_quota,
            max_children_per_node: self.max_children_per_node,
            ..Default::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` installs its logger from its settings. The browser's commands
    // print their own output, so only their warnings go to stderr; the other
    // commands log plain text at info.
    let default_level = match cli.command {
        Command::Serve(_) => None,
        Command::Browser(_) => Some("warn"),
        _ => Some("info"),
    };
    if let Some(level) = default_level {
        if let Err(err) = canopy::logging::init("text", level) {
            eprintln!("error: {err}");
        }
    }
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Data(args) => data(args),
        Command::Bench(args) => canopy_bench::run(args),
        Command::Browser(command) => canopy_cli::run(command),
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

/// Where the settings come from, kept so SIGHUP can read the files again:
/// defaults < zoo.cfg < TOML file < flags.
struct Sources {
    zoo_cfg: Option<PathBuf>,
    toml: Option<PathBuf>,
    flags: Overrides,
}

impl Sources {
    fn new(args: &ServeArgs) -> Sources {
        let mut zoo_cfg = args.zoo_cfg.clone();
        let mut toml = args.config.clone();
        if let Some(path) = &args.config {
            if canopy::zoocfg::looks_like_zoo_cfg(path) && zoo_cfg.is_none() {
                zoo_cfg = Some(path.clone());
                toml = None;
            }
        }
        Sources {
            zoo_cfg,
            toml,
            flags: args.overrides(),
        }
    }

    /// The effective settings, and the warnings the zoo.cfg gave.
    fn resolve(&self) -> Result<(Config, Vec<String>), String> {
        let (zoo, warnings) = match &self.zoo_cfg {
            Some(path) => {
                let cfg = canopy::zoocfg::read(path)?;
                (cfg.overrides, cfg.warnings)
            }
            None => (Overrides::default(), Vec::new()),
        };
        let file = match &self.toml {
            Some(path) => Overrides::from_file(path)?,
            None => Overrides::default(),
        };
        let config = Config::resolve(&[&zoo, &file, &self.flags]);
        config.validate()?;
        Ok((config, warnings))
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let sources = Sources::new(&args);
    let (config, warnings) = match sources.resolve() {
        Ok(resolved) => resolved,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.print_config {
        for warning in &warnings {
            eprintln!("warning: zoo.cfg: {warning}");
        }
        // The token is a secret: say whether one is set, not what it is.
        let shown = Config {
            admin_token: config.admin_token.as_ref().map(|_| "<set>".to_string()),
            ..config
        };
        println!("{shown:#?}");
        return ExitCode::SUCCESS;
    }
    if let Err(err) = canopy::logging::init(&config.log_format, &config.log_level) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    for warning in &warnings {
        tracing::warn!("zoo.cfg: {warning}");
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
        // Before the server starts: a SIGHUP or SIGTERM that arrives once
        // the port is open must find its handler, not the default (exit).
        let signals = Signals::install();
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(err) => {
                tracing::error!("cannot start the server: {err}");
                return ExitCode::FAILURE;
            }
        };
        signals.wait_for_stop(&server, &sources).await;
        tracing::info!("shutting down: no new connections; letting queued replies out");
        let report = server.shutdown().await;
        tracing::info!(
            sessions_closed = report.sessions_closed,
            connections_closed = report.connections_closed,
            connections_left = report.connections_left,
            "log closed; bye"
        );
        ExitCode::SUCCESS
    })
}

/// SIGTERM, SIGINT and SIGHUP, listened for from start-up on.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let hangup = signal(SignalKind::hangup());
        if term.is_err() || hangup.is_err() {
            tracing::warn!("cannot listen for SIGTERM/SIGHUP; stopping on Ctrl-C only");
        }
        Signals {
            term: term.ok(),
            hangup: hangup.ok(),
        }
    }

    /// Waits for SIGTERM or SIGINT; on SIGHUP reads the settings again and
    /// applies what can change while running: the access rules and the log
    /// level.
    async fn wait_for_stop(mut self, server: &Server, sources: &Sources) {
        loop {
            tokio::select! {
                _ = recv(&mut self.term) => return,
                _ = tokio::signal::ctrl_c() => return,
                _ = recv(&mut self.hangup) => reload(server, sources),
            }
        }
    }
}

/// The next delivery of a signal; never, if it could not be listened for.
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn reload(server: &Server, sources: &Sources) {
    let config = match sources.resolve() {
        Ok((config, _)) => config,
        Err(err) => {
            tracing::error!("SIGHUP: settings not reloaded, keeping the old ones: {err}");
            return;
        }
    };
    match canopy::access::AccessRules::from_config(&config) {
        Ok(rules) => {
            tracing::info!(?rules, "SIGHUP: access rules reloaded");
            server.access.replace(rules);
        }
        Err(err) => tracing::error!("SIGHUP: access rules not reloaded: {err}"),
    }
    if let Some(control) = canopy::logging::control() {
        if std::env::var_os("RUST_LOG").is_none() && control.level() != config.log_level {
            if let Err(err) = control.set_level(&config.log_level) {
                tracing::error!("SIGHUP: {err}");
            }
        }
    }
}
