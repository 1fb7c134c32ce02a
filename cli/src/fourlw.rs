//! stub
use crate::args::*;
use crate::context::Ctx;
use crate::error::CliResult;
pub async fn sessions(_ctx: &mut Ctx, _a: &SessionsArgs) -> CliResult<()> { Ok(()) }
pub async fn four(_ctx: &mut Ctx, _a: &FourArgs) -> CliResult<()> { Ok(()) }
