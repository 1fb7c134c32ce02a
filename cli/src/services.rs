//! stub
use crate::args::ServicesArgs;
use crate::context::Ctx;
use crate::error::CliResult;
pub async fn services(_ctx: &mut Ctx, _a: &ServicesArgs) -> CliResult<()> { Ok(()) }
