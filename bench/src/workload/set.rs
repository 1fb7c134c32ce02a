//! `set`: setData on random keys of a prefilled key space; verified by
//! reading every key back and adding up the versions.

use anyhow::Result;

use super::{keyspace, Ctx};
use crate::report::Summary;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    keyspace::run(ctx, "set", 0).await
}
