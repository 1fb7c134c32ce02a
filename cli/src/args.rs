//! The command line: every command of the tree browser, as clap parses it.
//! The `canopy` binary flattens [`CliCommand`] into its own subcommands; the
//! interactive shell parses each line with the same definitions.

use clap::{Args, Subcommand, ValueEnum};

/// Where to connect and how to print; every command takes these.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// `host:port[,host:port...][/chroot]`.
    #[arg(
        long,
        default_value = "127.0.0.1:2181",
        env = "CANOPY_SERVER",
        global = true
    )]
    pub server: String,
    /// `text` for people, `json` for scripts (read commands).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// Credentials to add before the command, as `scheme:auth`
    /// (e.g. `digest:bob:secret`); may be repeated.
    #[arg(long, value_name = "SCHEME:AUTH", global = true)]
    pub auth: Vec<String>,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 5.0, global = true)]
    pub connect_timeout: f64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// The tree-browser commands.
#[derive(Subcommand, Debug, Clone)]
pub enum CliCommand {
    /// List the children of a node (zkCli `ls [-s] [-R] [-w] path`).
    Ls(LsArgs),
    /// Print a node's data (zkCli `get [-s] [-w] path`).
    Get(GetArgs),
    /// Print a node's Stat (zkCli `stat [-w] path`).
    Stat(StatArgs),
    /// Set a node's data (zkCli `set [-s] [-v version] path data`).
    Set(SetArgs),
    /// Create a node (zkCli `create [-e] [-s] [-c] [-t ttl] path [data] [acl]`).
    Create(CreateArgs),
    /// Delete a node (zkCli `delete [-v version] path`).
    Delete(DeleteArgs),
    /// Delete a node and everything under it (zkCli `deleteall path`).
    #[command(name = "deleteall", alias = "rmr")]
    DeleteAll(DeleteAllArgs),
    /// Print a node's ACL (zkCli `getAcl [-s] path`).
    #[command(name = "getAcl", alias = "get-acl")]
    GetAcl(GetAclArgs),
    /// Set a node's ACL (zkCli `setAcl [-s] [-v version] [-R] path acl`).
    #[command(name = "setAcl", alias = "set-acl")]
    SetAcl(SetAclArgs),
    /// Add credentials to the session (useful in `canopy shell`).
    #[command(name = "addauth")]
    AddAuth(AddAuthArgs),
    /// Make the server catch up with the leader (zkCli `sync path`).
    Sync(PathArgs),
    /// This session's ephemeral nodes (zkCli `getEphemerals [path]`).
    #[command(name = "getEphemerals", alias = "get-ephemerals")]
    GetEphemerals(OptionalPathArgs),
    /// The number of nodes under a path (zkCli `getAllChildrenNumber path`).
    #[command(name = "getAllChildrenNumber", alias = "get-all-children-number")]
    GetAllChildrenNumber(PathArgs),
    /// Add a persistent watch and print its events until interrupted
    /// (zkCli `addWatch [-m mode] path`).
    #[command(name = "addWatch", alias = "add-watch")]
    AddWatch(AddWatchArgs),
    /// Remove this session's watches (zkCli `removewatches path [-c|-d|-a]`).
    #[command(name = "removewatches")]
    RemoveWatches(RemoveWatchesArgs),
    /// The identities the server knows this session by.
    #[command(name = "whoami")]
    WhoAmI(NoArgs),
    /// The ensemble configuration (`/zookeeper/config`).
    Config(ConfigArgs),
    /// Draw a subtree with box characters, child counts, sizes and kinds.
    Tree(TreeArgs),
    /// Search node names and data.
    Find(FindArgs),
    /// Print the data lines that match a regular expression.
    Grep(GrepArgs),
    /// Node count and bytes per subtree, largest first.
    Du(DuArgs),
    /// Print events under a path with timestamps until interrupted.
    Watch(WatchArgs),
    /// Write a subtree (data, ACLs, kinds) as JSON to stdout.
    Export(ExportArgs),
    /// Create the nodes of an export file.
    Import(ImportArgs),
    /// Compare two subtrees, on one server or two.
    Diff(DiffArgs),
    /// The service registry: Dubbo interfaces with their providers and
    /// consumers, and Dubbo 3 applications.
    Services(ServicesArgs),
    /// The server's sessions and their ephemeral nodes (from `cons` and `dump`).
    Sessions(SessionsArgs),
    /// Send a four-letter word and print the answer.
    Four(FourArgs),
    /// An interactive prompt with history and tab completion of paths.
    Shell(ShellArgs),
    /// A full-screen browser: tree, data and Stat, live through watches.
    Browse(BrowseArgs),
}

impl CliCommand {
    pub fn common(&self) -> &Common {
        use CliCommand::*;
        match self {
            Ls(a) => &a.common,
            Get(a) => &a.common,
            Stat(a) => &a.common,
            Set(a) => &a.common,
            Create(a) => &a.common,
            Delete(a) => &a.common,
            DeleteAll(a) => &a.common,
            GetAcl(a) => &a.common,
            SetAcl(a) => &a.common,
            AddAuth(a) => &a.common,
            Sync(a) => &a.common,
            GetEphemerals(a) => &a.common,
            GetAllChildrenNumber(a) => &a.common,
            AddWatch(a) => &a.common,
            RemoveWatches(a) => &a.common,
            WhoAmI(a) => &a.common,
            Config(a) => &a.common,
            Tree(a) => &a.common,
            Find(a) => &a.common,
            Grep(a) => &a.common,
            Du(a) => &a.common,
            Watch(a) => &a.common,
            Export(a) => &a.common,
            Import(a) => &a.common,
            Diff(a) => &a.common,
            Services(a) => &a.common,
            Sessions(a) => &a.common,
            Four(a) => &a.common,
            Shell(a) => &a.common,
            Browse(a) => &a.common,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct NoArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct PathArgs {
    pub path: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct OptionalPathArgs {
    #[arg(default_value = "/")]
    pub path: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Also print the Stat.
    #[arg(short = 's')]
    pub stat: bool,
    /// Every path under this one, depth first.
    #[arg(short = 'R')]
    pub recursive: bool,
    /// Leave a child watch and print its event when it fires.
    #[arg(short = 'w')]
    pub watch: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    pub path: String,
    /// Also print the Stat.
    #[arg(short = 's')]
    pub stat: bool,
    /// Leave a data watch and print its event when it fires.
    #[arg(short = 'w')]
    pub watch: bool,
    /// Print the bytes exactly as stored (no JSON pretty-printing, no hex).
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct StatArgs {
    pub path: String,
    /// Leave a watch and print its event when it fires.
    #[arg(short = 'w')]
    pub watch: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    pub path: String,
    #[arg(allow_hyphen_values = true)]
    pub data: String,
    /// Print the new Stat.
    #[arg(short = 's')]
    pub stat: bool,
    /// Only if the node has this data version.
    #[arg(short = 'v')]
    pub version: Option<i32>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub path: String,
    #[arg(allow_hyphen_values = true)]
    pub data: Option<String>,
    /// `scheme:id:perms[,...]`, e.g. `world:anyone:cdrwa`.
    pub acl: Option<String>,
    /// Ephemeral: deleted when this session ends.
    #[arg(short = 'e')]
    pub ephemeral: bool,
    /// Sequential: the server appends a 10-digit counter.
    #[arg(short = 's')]
    pub sequential: bool,
    /// Container: deleted once its last child is gone.
    #[arg(short = 'c')]
    pub container: bool,
    /// TTL in milliseconds: deleted after that long without changes and children.
    #[arg(short = 't')]
    pub ttl: Option<i64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    pub path: String,
    /// Only if the node has this data version.
    #[arg(short = 'v')]
    pub version: Option<i32>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteAllArgs {
    pub path: String,
    /// Deletes per multi request.
    #[arg(short = 'b', default_value_t = 1000)]
    pub batch: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct GetAclArgs {
    pub path: String,
    /// Also print the Stat.
    #[arg(short = 's')]
    pub stat: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct SetAclArgs {
    pub path: String,
    /// `scheme:id:perms[,...]`.
    pub acl: String,
    /// Print the new Stat.
    #[arg(short = 's')]
    pub stat: bool,
    /// Only if the node has this ACL version.
    #[arg(short = 'v')]
    pub version: Option<i32>,
    /// Also every node under the path.
    #[arg(short = 'R')]
    pub recursive: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct AddAuthArgs {
    pub scheme: String,
    pub auth: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchModeArg {
    #[value(name = "persistent")]
    Persistent,
    #[value(name = "persistentRecursive", alias = "persistent-recursive")]
    PersistentRecursive,
}

#[derive(Args, Debug, Clone)]
pub struct AddWatchArgs {
    pub path: String,
    #[arg(short = 'm', value_enum, default_value_t = WatchModeArg::PersistentRecursive)]
    pub mode: WatchModeArg,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct RemoveWatchesArgs {
    pub path: String,
    /// Child watches.
    #[arg(short = 'c')]
    pub children: bool,
    /// Data watches.
    #[arg(short = 'd')]
    pub data: bool,
    /// Every watch (the default).
    #[arg(short = 'a')]
    pub any: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Also print the Stat.
    #[arg(short = 's')]
    pub stat: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct TreeArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Levels below the path to draw.
    #[arg(long)]
    pub depth: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct FindArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Node names matching this glob (`*`, `?`, `[ab]`, `{x,y}`).
    #[arg(long)]
    pub name: Option<String>,
    /// Nodes whose data matches this regular expression.
    #[arg(long)]
    pub data: Option<String>,
    /// Only ephemeral nodes.
    #[arg(long)]
    pub ephemeral: bool,
    /// Levels below the path to search.
    #[arg(long)]
    pub depth: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct GrepArgs {
    /// A regular expression.
    pub pattern: String,
    #[arg(default_value = "/")]
    pub path: String,
    /// Ignore case.
    #[arg(short = 'i')]
    pub ignore_case: bool,
    /// Only the paths of matching nodes.
    #[arg(short = 'l')]
    pub paths_only: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct DuArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Print subtrees down to this many levels below the path.
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Every node under the path too.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[arg(default_value = "/")]
    pub path: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralPolicy {
    /// Leave them out (their owners will register them again).
    Skip,
    /// Create them as persistent nodes.
    Persistent,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The export file (`-` for stdin).
    pub file: String,
    /// Where the exported root goes (default: where it came from).
    #[arg(long)]
    pub to: Option<String>,
    /// Replace the data and ACL of nodes that exist already.
    #[arg(long)]
    pub overwrite: bool,
    /// What to do with nodes that were ephemeral at the source.
    #[arg(long, value_enum, default_value_t = EphemeralPolicy::Skip)]
    pub ephemerals: EphemeralPolicy,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    pub left: String,
    pub right: String,
    /// The server of the right-hand path (default: the same as --server).
    #[arg(long, value_name = "HOST:PORT[/CHROOT]")]
    pub server2: Option<String>,
    /// Ignore ACL differences.
    #[arg(long)]
    pub ignore_acl: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ServicesArgs {
    #[command(subcommand)]
    pub show: Option<ServicesCommand>,
    /// Only providers and consumers of this application.
    #[arg(long)]
    pub app: Option<String>,
    /// Only interfaces matching this glob.
    #[arg(long)]
    pub interface: Option<String>,
    /// Dubbo's root node.
    #[arg(long, default_value = "/dubbo")]
    pub root: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ServicesCommand {
    /// One interface with every parameter of every URL.
    Show { interface: String },
}

#[derive(Args, Debug, Clone)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct FourArgs {
    /// `ruok`, `srvr`, `stat`, `mntr`, `cons`, `dump`, `wchs`, `envi`, `conf`, ...
    pub word: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ShellArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct BrowseArgs {
    /// The node to start at.
    #[arg(default_value = "/")]
    pub path: String,
    #[command(flatten)]
    pub common: Common,
}
