//! `canopy-cli`: the tree browser behind `canopy ls|get|tree|export|browse|...`.
//!
//! It speaks to any ZooKeeper-compatible server through `canopy-client`.
//!
//! # Layout
//! - [`args`]: the commands and flags (clap); the `canopy` binary flattens
//!   [`CliCommand`] into its own subcommands.
//! - [`context`]: the session a command runs in.
//! - [`zkcli`]: the commands zkCli.sh has, with its output.
//! - [`explore`]: tree, find, grep, du, watch.
//! - [`transfer`]: export, import, diff.
//! - [`services`]: the Dubbo registry view.
//! - [`fourlw`]: four-letter words and the sessions view built on them.
//! - [`shell`]: the line-oriented prompt; [`browse`]: the full-screen browser.
//! - [`render`]: Stat, data and ACL formats; [`walk`]: reading subtrees.

use std::process::ExitCode;

pub mod args;
pub mod browse;
pub mod context;
pub mod error;
pub mod explore;
pub mod fourlw;
pub mod render;
pub mod services;
pub mod shell;
pub mod transfer;
pub mod walk;
pub mod zkcli;

pub use args::CliCommand;
use context::Ctx;
pub use error::{CliError, CliResult};

/// Prints a line to stdout, quietly giving up if stdout is closed
/// (`canopy export / | head`).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like [`say!`] without the newline.
#[macro_export]
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints a JSON value, pretty, to stdout.
pub fn emit_json(value: &serde_json::Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `diff` found differences (exit status 1, as diff(1)).
    Differs,
}

/// Runs one command of the `canopy` binary and returns its exit status:
/// 0 done, 1 error (one line on stderr) or differences found by `diff`,
/// 2 an error in `diff` (as diff(1)).
pub fn run(command: CliCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ctx = Ctx::new(command.common(), false);
    let result = match &command {
        CliCommand::Shell(_) => shell::run(&runtime, ctx).map(|()| Outcome::Done),
        CliCommand::Browse(args) => browse::run(&runtime, ctx, &args.path).map(|()| Outcome::Done),
        _ => runtime.block_on(async {
            let result = execute(&command, &mut ctx).await;
            ctx.close().await;
            result
        }),
    };
    // Do not wait for tasks still blocked on the network (a pending watch).
    runtime.shutdown_background();
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Differs) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            if matches!(command, CliCommand::Diff(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs one command in `ctx` (the shell calls this for every line).
pub async fn execute(command: &CliCommand, ctx: &mut Ctx) -> CliResult<Outcome> {
    use CliCommand::*;
    let done = |r: CliResult<()>| r.map(|()| Outcome::Done);
    match command {
        Ls(a) => done(zkcli::ls(ctx, a).await),
        Get(a) => done(zkcli::get(ctx, a).await),
        Stat(a) => done(zkcli::stat(ctx, a).await),
        Set(a) => done(zkcli::set(ctx, a).await),
        Create(a) => done(zkcli::create(ctx, a).await),
        Delete(a) => done(zkcli::delete(ctx, a).await),
        DeleteAll(a) => done(zkcli::deleteall(ctx, a).await),
        GetAcl(a) => done(zkcli::get_acl(ctx, a).await),
        SetAcl(a) => done(zkcli::set_acl(ctx, a).await),
        AddAuth(a) => done(zkcli::add_auth(ctx, a).await),
        Sync(a) => done(zkcli::sync(ctx, a).await),
        GetEphemerals(a) => done(zkcli::get_ephemerals(ctx, a).await),
        GetAllChildrenNumber(a) => done(zkcli::get_all_children_number(ctx, a).await),
        AddWatch(a) => done(zkcli::add_watch(ctx, a).await),
        RemoveWatches(a) => done(zkcli::remove_watches(ctx, a).await),
        WhoAmI(a) => done(zkcli::who_am_i(ctx, a).await),
        Config(a) => done(zkcli::config(ctx, a).await),
        Tree(a) => done(explore::tree(ctx, a).await),
        Find(a) => done(explore::find(ctx, a).await),
        Grep(a) => done(explore::grep(ctx, a).await),
        Du(a) => done(explore::du(ctx, a).await),
        Watch(a) => done(explore::watch(ctx, a).await),
        Export(a) => done(transfer::export(ctx, a).await),
        Import(a) => done(transfer::import(ctx, a).await),
        Diff(a) => transfer::diff(ctx, a).await,
        Services(a) => done(services::services(ctx, a).await),
        Sessions(a) => done(fourlw::sessions(ctx, a).await),
        Four(a) => done(fourlw::four(ctx, a).await),
        Shell(_) | Browse(_) => Err(CliError::new(
            "shell and browse cannot run inside the shell",
        )),
    }
}
