//! `delete`: deletes znodes prefilled for it (`--ops` of them, or `--keys`
//! with `--duration`); verified by the folder ending up with exactly the
//! undeleted rest. The warm-up, if any, deletes keys too.

use std::sync::Arc;

use anyhow::{bail, Result};
use canopy_protocol::{DeleteRequest, Request};
use rand::rngs::SmallRng;

use super::{key_path, Ctx};
use crate::driver::{self, Expect, Op, OpSource};
use crate::payload::payload;
use crate::report::Summary;
use crate::tree;

struct Deletes {
    dir: String,
    count: u64,
}

impl OpSource for Deletes {
    fn op(&self, n: u64, _rng: &mut SmallRng) -> Option<Op> {
        (n < self.count).then(|| Op {
            request: Request::Delete(DeleteRequest {
                path: key_path(&self.dir, n),
                version: -1,
            }),
            expect: Expect::Ok,
            kind: 0,
        })
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let count = match args.duration {
        Some(_) => args.keys,
        None => args.ops,
    };
    let creates = (0..count)
        .map(|k| {
            tree::create(
                key_path(&ctx.dir, k),
                Some(payload(k, 0, args.data_size)),
                0,
            )
        })
        .collect();
    tree::pipeline_ok(ctx.servers(), 4, args.io_timeout(), creates, &[]).await?;

    let source = Arc::new(Deletes {
        dir: ctx.dir.clone(),
        count,
    });
    let load = driver::run(&ctx.spec("delete"), source).await?;
    let mut summary = Summary::from_load(
        "delete",
        ctx.servers(),
        args.sessions,
        args.outstanding,
        &load,
    );
    let deleted = load.ok_by_kind_total[0];
    let mut conn = ctx.conn().await?;
    let left = tree::stat(&mut conn, &ctx.dir)
        .await?
        .map(|s| s.num_children as u64)
        .unwrap_or(0);
    let _ = conn.close().await;
    if left + deleted != count {
        bail!("{count} prefilled, {deleted} deletes succeeded, but {left} remain");
    }
    summary.extra("znodes_deleted", deleted as f64);
    summary.verified = true;
    Ok(summary)
}
