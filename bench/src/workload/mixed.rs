//! `mixed`: `--read-pct` getData, the rest setData, on one key space.

use anyhow::Result;

use super::{keyspace, Ctx};
use crate::report::Summary;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    keyspace::run(ctx, "mixed", ctx.args.read_pct).await
}
