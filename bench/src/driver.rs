//! The closed-loop load engine behind create, get, set, mixed, delete,
//! children, multi and mem.
//!
//! Each session keeps `outstanding` requests in flight: it encodes as many as
//! the window allows into one buffer, writes them with one call, reads
//! whatever replies have arrived with one call and refills the window. Reply
//! order is the request order on a ZooKeeper session, so in-flight requests
//! sit in a FIFO and a reply must match the oldest one's xid. Time is read
//! once per batch, not per request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use canopy_protocol::{OpCode, OpResult, Request, Response};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::conn::{Conn, Reply};
use crate::payload;
use crate::procfs::{self, Sample};
use crate::progress::Progress;
use crate::stats::Recorder;

/// What a successful reply must look like.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Any successful reply.
    Ok,
    /// getData: a payload of `len` bytes for `key`.
    Data { key: u64, len: usize },
    /// getChildren: exactly this many children.
    Children(usize),
    /// multi: this many results, all successful.
    Multi(usize),
}

/// One operation: the request, its check, and its kind (an index into
/// [`OpSource::kinds`], for per-kind counts such as reads vs writes).
pub struct Op {
    pub request: Request,
    pub expect: Expect,
    pub kind: usize,
}

/// Produces the operations of a workload.
pub trait OpSource: Send + Sync + 'static {
    /// Operation number `n` (unique across sessions, from 0), or `None` when
    /// the workload has nothing more to do.
    fn op(&self, n: u64, rng: &mut SmallRng) -> Option<Op>;
    /// Names of the operation kinds.
    fn kinds(&self) -> &'static [&'static str] {
        &["op"]
    }
}

/// How long the measured phase lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Ops(u64),
    Time(Duration),
}

/// Settings of one closed-loop run.
pub struct LoadSpec {
    pub servers: Vec<String>,
    pub sessions: usize,
    pub outstanding: usize,
    pub budget: Budget,
    pub warmup: Duration,
    pub session_timeout_ms: u32,
    pub io_timeout: Duration,
    pub server_pids: Vec<u32>,
    pub progress: bool,
    pub label: String,
}

/// What a closed-loop run measured.
pub struct LoadResult {
    /// Latencies and errors of measured operations (errors of warm-up ones too).
    pub rec: Recorder,
    /// Successful operations per kind, warm-up included (for verification).
    pub ok_by_kind_total: Vec<u64>,
    /// Successful measured operations per kind.
    pub ok_by_kind: Vec<u64>,
    /// From the end of the warm-up to the last measured reply.
    pub elapsed: Duration,
    /// Server CPU and memory at the start and end of the measured phase.
    pub server: Option<(Sample, Sample)>,
    /// This process's CPU at the start and end of the measured phase.
    pub own: Option<(Sample, Sample)>,
}

impl LoadResult {
    pub fn ops_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rec.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// State the sessions share; touched once per operation (a relaxed atomic).
struct Shared {
    next_op: AtomicU64,
    /// Measured operations still to issue (`Budget::Ops`).
    remaining: AtomicI64,
    measure_from: Instant,
    measure_until: Option<Instant>,
    completed: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Whether another operation may be issued now, and if it is measured.
    fn take(&self, now: Instant) -> Option<bool> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if now < self.measure_from {
            return Some(false);
        }
        match self.measure_until {
            Some(until) => (now < until).then_some(true),
            None => (self.remaining.fetch_sub(1, Ordering::Relaxed) > 0).then_some(true),
        }
    }
}

struct Pending {
    xid: i32,
    sent: Instant,
    op: OpCode,
    expect: Expect,
    kind: usize,
    measured: bool,
}

struct SessionResult {
    rec: Recorder,
    ok_total: Vec<u64>,
    ok_measured: Vec<u64>,
    last_done: Option<Instant>,
}

/// Connects `spec.sessions` sessions, then runs the workload on all of them.
pub async fn run(spec: &LoadSpec, source: Arc<dyn OpSource>) -> Result<LoadResult> {
    let conns = connect_all(
        &spec.servers,
        spec.sessions,
        spec.session_timeout_ms,
        spec.io_timeout,
    )
    .await?;
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let shared = Arc::new(Shared {
        next_op: AtomicU64::new(0),
        remaining: AtomicI64::new(match spec.budget {
            Budget::Ops(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Budget::Time(_) => i64::MAX,
        }),
        measure_from,
        measure_until: match spec.budget {
            Budget::Time(d) => Some(measure_from + d),
            Budget::Ops(_) => None,
        },
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let progress = Progress::start(
        spec.progress,
        &spec.label,
        match spec.budget {
            Budget::Ops(n) => Some(n),
            Budget::Time(_) => None,
        },
        spec.warmup
            + match spec.budget {
                Budget::Time(d) => d,
                Budget::Ops(_) => Duration::ZERO,
            },
    );

    // Sample CPU when the measured phase begins (now, without a warm-up).
    let pids = spec.server_pids.clone();
    let first_sample = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        (procfs::sample(&pids), procfs::own())
    });

    let mut handles = Vec::with_capacity(conns.len());
    for (i, conn) in conns.into_iter().enumerate() {
        let source = Arc::clone(&source);
        let shared = Arc::clone(&shared);
        let outstanding = spec.outstanding;
        let io_timeout = spec.io_timeout;
        handles.push(tokio::spawn(async move {
            session_loop(conn, source, shared, outstanding, io_timeout, i as u64).await
        }));
    }
    let progress_task = progress.map(|p| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                p.update(shared.completed.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            p.finish();
        })
    });

    let kinds = source.kinds().len();
    let mut rec = Recorder::default();
    let mut ok_total = vec![0; kinds];
    let mut ok_measured = vec![0; kinds];
    let mut last_done: Option<Instant> = None;
    let mut failure = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(r)) => {
                rec.merge(&r.rec);
                add(&mut ok_total, &r.ok_total);
                add(&mut ok_measured, &r.ok_measured);
                last_done = last_done.max(r.last_done);
            }
            Ok(Err(e)) => {
                // Stop the other sessions early: the run has failed.
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(anyhow!("session task failed: {e}"));
            }
        }
    }
    let end = (procfs::sample(&spec.server_pids), procfs::own());
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(task) = progress_task {
        let _ = task.await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (server_start, own_start) = first_sample.await.unwrap_or((None, None));
    let elapsed = last_done
        .map(|t| t.saturating_duration_since(measure_from))
        .unwrap_or_default();
    Ok(LoadResult {
        rec,
        ok_by_kind_total: ok_total,
        ok_by_kind: ok_measured,
        elapsed,
        server: server_start.zip(end.0),
        own: own_start.zip(end.1),
    })
}

fn add(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Opens `n` sessions spread round robin over `servers`, a few at a time.
pub async fn connect_all(
    servers: &[String],
    n: usize,
    session_timeout_ms: u32,
    io_timeout: Duration,
) -> Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    let mut next = 0;
    // Bounded concurrency: thousands of simultaneous handshakes only measure
    // the listen backlog.
    const PARALLEL: usize = 64;
    let mut slots: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    while next < n || !pending.is_empty() {
        while next < n && pending.len() < PARALLEL {
            let addr = servers[next % servers.len()].clone();
            let i = next;
            pending.spawn(async move {
                (
                    i,
                    Conn::connect(&addr, session_timeout_ms, io_timeout).await,
                )
            });
            next += 1;
        }
        if let Some(joined) = pending.join_next().await {
            let (i, conn) = joined.context("connect task failed")?;
            slots[i] = Some(conn?);
        }
    }
    conns.extend(slots.into_iter().flatten());
    Ok(conns)
}

async fn session_loop(
    mut conn: Conn,
    source: Arc<dyn OpSource>,
    shared: Arc<Shared>,
    outstanding: usize,
    io_timeout: Duration,
    seed: u64,
) -> Result<SessionResult> {
    let kinds = source.kinds().len();
    let mut rng = SmallRng::seed_from_u64(0x5eed_0000 + seed);
    let mut inflight: VecDeque<Pending> = VecDeque::with_capacity(outstanding);
    let mut result = SessionResult {
        rec: Recorder::default(),
        ok_total: vec![0; kinds],
        ok_measured: vec![0; kinds],
        last_done: None,
    };
    let mut exhausted = false;
    loop {
        if !exhausted && inflight.len() < outstanding {
            let now = Instant::now();
            while inflight.len() < outstanding {
                let Some(measured) = shared.take(now) else {
                    exhausted = true;
                    break;
                };
                let n = shared.next_op.fetch_add(1, Ordering::Relaxed);
                let Some(op) = source.op(n, &mut rng) else {
                    exhausted = true;
                    break;
                };
                let xid = conn.push(&op.request);
                inflight.push_back(Pending {
                    xid,
                    sent: now,
                    op: op.request.op_code(),
                    expect: op.expect,
                    kind: op.kind,
                    measured,
                });
            }
            conn.flush().await?;
        }
        if inflight.is_empty() {
            break;
        }
        if !conn.read_some(io_timeout).await? {
            bail!(
                "{} requests unanswered for {:?}",
                inflight.len(),
                io_timeout
            );
        }
        let now = Instant::now();
        let mut done = 0;
        while let Some(reply) = conn.next_reply()? {
            if reply.is_notification() || reply.is_ping() {
                continue;
            }
            let pending = inflight
                .pop_front()
                .ok_or_else(|| anyhow!("reply xid {} to no request", reply.header.xid))?;
            if reply.header.xid != pending.xid {
                bail!(
                    "reply xid {} out of order (expected {})",
                    reply.header.xid,
                    pending.xid
                );
            }
            done += 1;
            if reply.header.err != 0 {
                result.rec.error(reply.header.err);
                continue;
            }
            verify(&reply, &pending)?;
            result.ok_total[pending.kind] += 1;
            if pending.measured {
                result
                    .rec
                    .record(now.saturating_duration_since(pending.sent));
                result.ok_measured[pending.kind] += 1;
                result.last_done = Some(now);
            }
        }
        shared.completed.fetch_add(done, Ordering::Relaxed);
    }
    // Close politely so the server frees the session now, not at expiry.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    Ok(result)
}

/// Checks a successful reply against what the request must have produced.
fn verify(reply: &Reply, pending: &Pending) -> Result<()> {
    match pending.expect {
        Expect::Ok => Ok(()),
        Expect::Data { key, len } => match reply.decode(pending.op)? {
            Response::GetData(r) => {
                let data = r.data.unwrap_or_default();
                if payload::matches(&data, key, len) {
                    Ok(())
                } else {
                    bail!(
                        "key {key}: read back {} bytes that are not its data",
                        data.len()
                    )
                }
            }
            other => bail!("unexpected reply {other:?}"),
        },
        // Only the count is read: decoding every name would cost the bench
        // more CPU than the server spends listing them.
        Expect::Children(n) => {
            let count = reply
                .body
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match count {
                Some(c) if c as usize == n && reply.body.len() >= 4 + 4 * n => Ok(()),
                other => bail!("getChildren returned {other:?} children, expected {n}"),
            }
        }
        Expect::Multi(n) => match reply.decode(pending.op)? {
            Response::Multi(r) => {
                if r.results.len() != n {
                    bail!("multi returned {} results, expected {n}", r.results.len());
                }
                if let Some(OpResult::Error { err }) = r
                    .results
                    .iter()
                    .find(|r| matches!(r, OpResult::Error { .. }))
                {
                    bail!("multi op failed: {}", crate::conn::error_name(*err));
                }
                Ok(())
            }
            other => bail!("unexpected reply {other:?}"),
        },
    }
}
