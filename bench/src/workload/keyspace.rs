//! The key space behind `get`, `set` and `mixed`: `--keys` znodes prefilled
//! with checkable payloads, read and written at random.
//!
//! Every setData increments its znode's version by exactly one, so after the
//! run the versions of all keys must add up to the number of successful sets:
//! a server that acknowledges a write and loses it cannot pass.

use std::sync::Arc;

use anyhow::{bail, Result};
use canopy_protocol::{ErrorCode, GetDataRequest, Request, Response, SetDataRequest};
use rand::rngs::SmallRng;
use rand::Rng;

use super::{key_path, Ctx};
use crate::driver::{self, Expect, Op, OpSource};
use crate::payload::{self, payload};
use crate::report::Summary;
use crate::tree;

/// Operation kinds of [`KeyOps`].
pub const GET: usize = 0;
pub const SET: usize = 1;

/// Random getData / setData on keys `0..keys`.
pub struct KeyOps {
    pub dir: String,
    pub keys: u64,
    pub size: usize,
    /// Percentage of getData.
    pub read_pct: u8,
}

impl OpSource for KeyOps {
    fn op(&self, n: u64, rng: &mut SmallRng) -> Option<Op> {
        let key = rng.gen_range(0..self.keys);
        let path = key_path(&self.dir, key);
        let read =
            self.read_pct >= 100 || (self.read_pct > 0 && rng.gen_range(0..100) < self.read_pct);
        Some(if read {
            Op {
                request: Request::GetData(GetDataRequest { path, watch: false }),
                expect: Expect::Data {
                    key,
                    len: self.size,
                },
                kind: GET,
            }
        } else {
            Op {
                request: Request::SetData(SetDataRequest {
                    path,
                    data: Some(payload(key, n + 1, self.size)),
                    version: -1,
                }),
                expect: Expect::Ok,
                kind: SET,
            }
        })
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["get", "set"]
    }
}

/// Prefills, runs `read_pct` reads on the key space, verifies.
pub async fn run(ctx: &Ctx<'_>, name: &str, read_pct: u8) -> Result<Summary> {
    let args = ctx.args;
    let creates = (0..args.keys)
        .map(|k| {
            tree::create(
                key_path(&ctx.dir, k),
                Some(payload(k, 0, args.data_size)),
                0,
            )
        })
        .collect();
    tree::pipeline_ok(ctx.servers(), 4, args.io_timeout(), creates, &[]).await?;

    let source = Arc::new(KeyOps {
        dir: ctx.dir.clone(),
        keys: args.keys,
        size: args.data_size,
        read_pct,
    });
    let load = driver::run(&ctx.spec(name), source).await?;
    let mut summary =
        Summary::from_load(name, ctx.servers(), args.sessions, args.outstanding, &load);
    let sets = load.ok_by_kind_total[SET];
    let versions = read_back(ctx, args.keys, args.data_size).await?;
    if versions != sets {
        bail!("{sets} sets succeeded but the keys' versions add up to {versions}");
    }
    summary.extra("gets", load.ok_by_kind[GET] as f64);
    summary.extra("sets", load.ok_by_kind[SET] as f64);
    summary.verified = true;
    Ok(summary)
}

/// Reads every key back, checks its data, and returns the sum of versions.
async fn read_back(ctx: &Ctx<'_>, keys: u64, size: usize) -> Result<u64> {
    let mut conn = ctx.conn().await?;
    let reads = (0..keys).map(|k| {
        Request::GetData(GetDataRequest {
            path: key_path(&ctx.dir, k),
            watch: false,
        })
    });
    let mut versions = 0u64;
    let mut key = 0u64;
    let mut bad: Option<String> = None;
    tree::pipeline(&mut conn, reads, |request, reply| {
        let k = key;
        key += 1;
        if reply.header.err != 0 {
            bad.get_or_insert(format!(
                "key {k}: {:?}",
                ErrorCode::from_i32(reply.header.err)
            ));
            return Ok(());
        }
        match reply.decode(request.op_code())? {
            Response::GetData(d) => {
                versions += d.stat.version.max(0) as u64;
                if !payload::matches(&d.data.unwrap_or_default(), k, size) {
                    bad.get_or_insert(format!("key {k}: data is not its payload"));
                }
            }
            other => bail!("unexpected reply {other:?}"),
        }
        Ok(())
    })
    .await?;
    let _ = conn.close().await;
    match bad {
        Some(why) => bail!("read-back failed: {why}"),
        None => Ok(versions),
    }
}
