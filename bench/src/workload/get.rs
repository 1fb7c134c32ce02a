//! `get`: getData on random keys of a prefilled key space; every reply's data
//! is checked against the key it was read from.

use anyhow::Result;

use super::{keyspace, Ctx};
use crate::report::Summary;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    keyspace::run(ctx, "get", 100).await
}
