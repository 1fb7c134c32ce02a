//! stub
use crate::context::Ctx;
use crate::error::CliResult;
pub fn run(_rt: &tokio::runtime::Runtime, _ctx: Ctx, _path: &str) -> CliResult<()> { Ok(()) }
