//! `multi`: transactions of `--multi-size` creates each; every result must
//! succeed and the folder must end with exactly that many znodes per multi.

use std::sync::Arc;

use anyhow::{bail, Result};
use canopy_protocol::{Acl, CreateRequest, MultiOp, MultiRequest, Request};
use rand::rngs::SmallRng;

use super::Ctx;
use crate::driver::{self, Expect, Op, OpSource};
use crate::payload::payload;
use crate::report::Summary;
use crate::tree;

struct Multis {
    dir: String,
    size: usize,
    per_multi: usize,
}

impl OpSource for Multis {
    fn op(&self, n: u64, _rng: &mut SmallRng) -> Option<Op> {
        let ops = (0..self.per_multi)
            .map(|j| {
                MultiOp::Create(CreateRequest {
                    path: format!("{}/m{n:010}-{j:03}", self.dir),
                    data: Some(payload(n, j as u64, self.size)),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                })
            })
            .collect();
        Some(Op {
            request: Request::Multi(MultiRequest { ops }),
            expect: Expect::Multi(self.per_multi),
            kind: 0,
        })
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let source = Arc::new(Multis {
        dir: ctx.dir.clone(),
        size: args.data_size,
        per_multi: args.multi_size,
    });
    let load = driver::run(&ctx.spec("multi"), source).await?;
    let mut summary = Summary::from_load(
        "multi",
        ctx.servers(),
        args.sessions,
        args.outstanding,
        &load,
    );
    let expected = load.ok_by_kind_total[0] * args.multi_size as u64;
    let mut conn = ctx.conn().await?;
    let present = tree::stat(&mut conn, &ctx.dir)
        .await?
        .map(|s| s.num_children as u64)
        .unwrap_or(0);
    let _ = conn.close().await;
    if present != expected {
        bail!("multis created {expected} znodes but {present} are present");
    }
    summary.extra("znodes_per_s", summary.ops_per_s * args.multi_size as f64);
    summary.extra("multi_size", args.multi_size as f64);
    summary.verified = true;
    Ok(summary)
}
