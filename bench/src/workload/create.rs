//! `create`: new persistent znodes of `--data-size` bytes, one per operation.
//! Verified by the folder's child count and by reading a sample back.

use std::sync::Arc;

use anyhow::{bail, Result};
use canopy_protocol::{GetDataRequest, Request, Response};
use rand::rngs::SmallRng;

use super::{key_path, Ctx};
use crate::driver::{self, Expect, Op, OpSource};
use crate::payload::{self, payload};
use crate::report::Summary;
use crate::tree;

/// Creates `<dir>/k<n>` for every operation number `n`.
pub struct Creates {
    pub dir: String,
    pub size: usize,
}

impl OpSource for Creates {
    fn op(&self, n: u64, _rng: &mut SmallRng) -> Option<Op> {
        Some(Op {
            request: tree::create(key_path(&self.dir, n), Some(payload(n, 0, self.size)), 0),
            expect: Expect::Ok,
            kind: 0,
        })
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let source = Arc::new(Creates {
        dir: ctx.dir.clone(),
        size: ctx.args.data_size,
    });
    let load = driver::run(&ctx.spec("create"), source).await?;
    let mut summary = Summary::from_load(
        "create",
        ctx.servers(),
        ctx.args.sessions,
        ctx.args.outstanding,
        &load,
    );
    let created = load.ok_by_kind_total[0];
    verify_created(ctx, &ctx.dir, created, ctx.args.data_size).await?;
    summary.extra("znodes_created", created as f64);
    summary.verified = true;
    Ok(summary)
}

/// Checks that `dir` has exactly `count` children and that up to 100 of the
/// keys `0..count` read back with their data.
pub async fn verify_created(ctx: &Ctx<'_>, dir: &str, count: u64, size: usize) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let present = tree::stat(&mut conn, dir)
        .await?
        .map(|s| s.num_children as u64)
        .unwrap_or(0);
    if present != count {
        bail!("{count} creates succeeded but {dir} has {present} children");
    }
    let step = (count / 100).max(1);
    let sample = (0..count).step_by(step as usize).map(|n| {
        Request::GetData(GetDataRequest {
            path: key_path(dir, n),
            watch: false,
        })
    });
    let mut bad = None;
    tree::pipeline(&mut conn, sample, |request, reply| {
        let Request::GetData(r) = request else {
            return Ok(());
        };
        let key = r
            .path
            .rsplit("/k")
            .next()
            .and_then(|k| k.parse::<u64>().ok());
        match (key, reply.decode(request.op_code())?) {
            (Some(key), Response::GetData(d))
                if reply.header.err == 0
                    && payload::matches(d.data.as_deref().unwrap_or_default(), key, size) => {}
            _ => {
                bad.get_or_insert(r.path.clone());
            }
        }
        Ok(())
    })
    .await?;
    let _ = conn.close().await;
    if let Some(path) = bad {
        bail!("{path} does not read back what was written");
    }
    Ok(())
}
