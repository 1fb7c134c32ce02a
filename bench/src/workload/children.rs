//! `children`: getChildren on random wide parents (`--parents` of them with
//! `--width` children each); every reply must list exactly `--width` names.

use std::sync::Arc;

use anyhow::Result;
use canopy_protocol::{GetChildrenRequest, Request};
use rand::rngs::SmallRng;
use rand::Rng;

use super::Ctx;
use crate::driver::{self, Expect, Op, OpSource};
use crate::report::Summary;
use crate::tree;

struct ListChildren {
    dir: String,
    parents: u64,
    width: u64,
}

fn parent_path(dir: &str, p: u64) -> String {
    format!("{dir}/p{p:05}")
}

impl OpSource for ListChildren {
    fn op(&self, _n: u64, rng: &mut SmallRng) -> Option<Op> {
        let p = rng.gen_range(0..self.parents);
        Some(Op {
            request: Request::GetChildren(GetChildrenRequest {
                path: parent_path(&self.dir, p),
                watch: false,
            }),
            expect: Expect::Children(self.width as usize),
            kind: 0,
        })
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let parents: Vec<_> = (0..args.parents)
        .map(|p| tree::create(parent_path(&ctx.dir, p), None, 0))
        .collect();
    tree::pipeline_ok(ctx.servers(), 1, args.io_timeout(), parents, &[]).await?;
    let mut kids = Vec::new();
    for p in 0..args.parents {
        for c in 0..args.width {
            // Names as long as a typical service instance id.
            let path = format!("{}/instance-{c:08}", parent_path(&ctx.dir, p));
            kids.push(tree::create(path, None, 0));
        }
    }
    tree::pipeline_ok(ctx.servers(), 4, args.io_timeout(), kids, &[]).await?;

    let source = Arc::new(ListChildren {
        dir: ctx.dir.clone(),
        parents: args.parents,
        width: args.width,
    });
    let load = driver::run(&ctx.spec("children"), source).await?;
    let mut summary = Summary::from_load(
        "children",
        ctx.servers(),
        args.sessions,
        args.outstanding,
        &load,
    );
    summary.extra("width", args.width as f64);
    summary.verified = true;
    Ok(summary)
}
