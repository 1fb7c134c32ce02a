//! `canopy-hostile`: the full-size hardening load tests (issue 8), run by
//! `scripts/load-harden.sh` against a separate `canopy serve` process whose
//! pid is given, so its peak memory can be read from `/proc`.
//!
//! Every scenario runs a well-behaved probe client meanwhile (getData of a
//! small node in a closed loop with a 5 ms pause) and reports its latency,
//! the server's resident memory at the start and at the end, and its peak
//! (`VmHWM`, which covers the server's whole life: the script starts a fresh
//! server for each scenario).
//!
//! - `baseline`: the probe alone, on an idle server.
//! - `idle`: opens N sessions (pinging as clients do) and holds them.
//! - `hot-watch`: N sessions, each with W watches (a persistent watch on the
//!   hot node and W-1 exists watches on quiet nodes); one more session with
//!   the same watches that pipelines big reads and never reads a byte; the hot
//!   node is set S times; every session but the silent one must see all S
//!   events. The silent one is held back (the server stops running its reads
//!   while half its outbound bound is queued) and must, once it reads, either
//!   get every reply it asked for or find its connection closed (cut off when
//!   events passed the bound, or its session expired meanwhile).
//! - `malformed`: F connections, each sending one malformed frame (garbage
//!   where the handshake goes, an oversized length, or a truncated request
//!   after a good handshake); each must be closed by the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes};
use canopy_protocol::{
    Acl, AddWatchRequest, ConnectRequest, CreateRequest, EventType, ExistsRequest, GetDataRequest,
    Jute, Request, SetDataRequest,
};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::Conn;
use crate::stats::Recorder;

const IO_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "canopy-hostile",
    about = "Hardening load tests against a Canopy server"
)]
pub struct HostileArgs {
    /// The server's client address.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub server: String,
    /// The server's pid, for its memory figures.
    #[arg(long)]
    pub server_pid: u32,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand)]
pub enum Scenario {
    /// The probe alone for a while.
    Baseline {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Many idle sessions, held for a while.
    Idle {
        #[arg(long, default_value_t = 19_000)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        hold_seconds: u64,
    },
    /// Many watchers on one hot node and one client that reads nothing.
    HotWatch {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        #[arg(long, default_value_t = 10)]
        watches: usize,
        #[arg(long, default_value_t = 1_000)]
        sets: usize,
        /// Reads of a 512 KiB node the silent client pipelines.
        #[arg(long, default_value_t = 100)]
        silent_reads: usize,
    },
    /// Many connections, each sending one malformed frame.
    Malformed {
        #[arg(long, default_value_t = 100_000)]
        frames: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

/// Server memory from `/proc/<pid>/status`, in MiB: (VmRSS, VmHWM).
fn server_memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name}"))?;
        let kb: f64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The well-behaved client: getData of `/probe-<n>` in a closed loop until
/// `stop`, with a short pause between requests.
async fn probe(addr: String, stop: Arc<AtomicBool>) -> Result<Recorder> {
    let mut conn = Conn::connect(&addr, 30_000, IO_TIMEOUT).await?;
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let path = format!(
        "/probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    let create = Request::Create(CreateRequest {
        path: path.clone(),
        data: Some(Bytes::from_static(b"probe")),
        acl: Acl::open_unsafe(),
        flags: 1, // ephemeral
    });
    conn.call(&create).await?;
    let get = Request::GetData(GetDataRequest { path, watch: false });
    let mut recorder = Recorder::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let (err, _) = conn.call(&get).await?;
        if err == 0 {
            recorder.record(started.elapsed());
        } else {
            recorder.error(err);
        }
        conn.events.clear();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(recorder)
}

/// Runs the probe while `work` runs; returns the work's result and the
/// probe's latencies.
async fn with_probe<T>(
    addr: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, Recorder)> {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe(addr.to_string(), stop.clone()));
    // Let the probe connect before the load starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let result = work.await;
    stop.store(true, Ordering::Relaxed);
    let recorder = probe.await.context("probe task")??;
    Ok((result?, recorder))
}

fn print_probe(label: &str, recorder: &Recorder) {
    let l = recorder.latency();
    println!(
        "{label}: probe getData n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms errors={}",
        recorder.samples(),
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        recorder.error_total()
    );
}

pub fn main_with_args(args: HostileArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: HostileArgs) -> Result<()> {
    let (rss_start, _) = server_memory(args.server_pid)?;
    let started = Instant::now();
    let label;
    let recorder = match args.scenario {
        Scenario::Baseline { seconds } => {
            label = "baseline";
            let (_, recorder) = with_probe(&args.server, async {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                Ok(())
            })
            .await?;
            recorder
        }
        Scenario::Idle {
            connections,
            hold_seconds,
        } => {
            label = "idle";
            let (held, recorder) = with_probe(
                &args.server,
                idle(&args.server, args.server_pid, connections, hold_seconds),
            )
            .await?;
            println!("idle: {held} sessions opened and held for {hold_seconds}s");
            recorder
        }
        Scenario::HotWatch {
            sessions,
            watches,
            sets,
            silent_reads,
        } => {
            label = "hot-watch";
            let (_, recorder) = with_probe(
                &args.server,
                hot_watch(
                    &args.server,
                    args.server_pid,
                    sessions,
                    watches,
                    sets,
                    silent_reads,
                ),
            )
            .await?;
            recorder
        }
        Scenario::Malformed {
            frames,
            concurrency,
        } => {
            label = "malformed";
            let (_, recorder) = with_probe(
                &args.server,
                malformed(&args.server, args.server_pid, frames, concurrency),
            )
            .await?;
            recorder
        }
    };
    let (rss_end, peak) = server_memory(args.server_pid)?;
    print_probe(label, &recorder);
    println!(
        "{label}: server RSS start={rss_start:.1}MiB end={rss_end:.1}MiB peak(VmHWM)={peak:.1}MiB; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens `count` sessions, each kept alive by its own task's pings, and
/// holds them. Returns how many were open at the end.
async fn idle(addr: &str, pid: u32, count: usize, hold_seconds: u64) -> Result<usize> {
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(count);
    let opening = Instant::now();
    // Open in waves so the accept queue is not overrun.
    for wave in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut opened = Vec::new();
        for _ in wave {
            let addr = addr.to_string();
            opened.push(async move { Conn::connect(&addr, 30_000, IO_TIMEOUT).await });
        }
        for conn in futures_join(opened).await {
            let mut conn = conn?;
            let stop = stop.clone();
            let alive = alive.clone();
            alive.fetch_add(1, Ordering::Relaxed);
            tasks.push(tokio::spawn(async move {
                // As ZooKeeper's client: a ping after a third of the
                // session timeout without traffic. Checks for the end once a
                // second.
                let ping_every = Duration::from_millis(conn.timeout_ms as u64 / 3);
                let mut last_ping = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if last_ping.elapsed() < ping_every || stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    last_ping = Instant::now();
                    if conn.call(&Request::Ping).await.is_err() {
                        alive.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                }
            }));
        }
    }
    let (rss, _) = server_memory(pid)?;
    println!(
        "idle: {} sessions open after {:.1}s, server RSS {rss:.1}MiB",
        alive.load(Ordering::Relaxed),
        opening.elapsed().as_secs_f64()
    );
    // A second probe for the holding time alone (the outer one also covers
    // the opening of the sessions).
    let probe_stop = Arc::new(AtomicBool::new(false));
    let holding = tokio::spawn(probe(addr.to_string(), probe_stop.clone()));
    tokio::time::sleep(Duration::from_secs(hold_seconds)).await;
    probe_stop.store(true, Ordering::Relaxed);
    print_probe("idle, while held only", &holding.await??);
    let held = alive.load(Ordering::Relaxed) as usize;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if held != count {
        bail!("only {held} of {count} sessions were still alive");
    }
    Ok(held)
}

/// Awaits futures concurrently (a tiny join_all without another dependency).
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task panicked"));
    }
    out
}

fn watch_requests(watches: usize) -> Vec<Request> {
    let mut requests = vec![Request::AddWatch(AddWatchRequest {
        path: "/hostile/hot".into(),
        mode: 0,
    })];
    for i in 1..watches {
        requests.push(Request::Exists(ExistsRequest {
            path: format!("/hostile/quiet-{i}"),
            watch: true,
        }));
    }
    requests
}

async fn hot_watch(
    addr: &str,
    pid: u32,
    sessions: usize,
    watches: usize,
    sets: usize,
    silent_reads: usize,
) -> Result<()> {
    let mut admin = Conn::connect(addr, 30_000, IO_TIMEOUT).await?;
    for (path, data) in [
        ("/hostile", Bytes::new()),
        ("/hostile/hot", Bytes::from_static(b"0")),
        ("/hostile/big", Bytes::from(vec![b'b'; 512 * 1024])),
    ] {
        let create = Request::Create(CreateRequest {
            path: path.into(),
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        let (err, _) = admin.call(&create).await?;
        if err != 0 && err != -110 {
            bail!("creating {path}: error {err}");
        }
    }

    // The watchers: set up in waves, each pipelining its watch requests.
    let setup = Instant::now();
    let mut watchers = Vec::with_capacity(sessions);
    for wave in (0..sessions).collect::<Vec<_>>().chunks(500) {
        let mut pending = Vec::new();
        for _ in wave {
            let addr = addr.to_string();
            pending.push(async move {
                let mut conn = Conn::connect(&addr, 40_000, IO_TIMEOUT).await?;
                for request in watch_requests(watches) {
                    conn.push(&request);
                }
                conn.flush().await?;
                for _ in 0..watches {
                    conn.next_reply_wait().await?;
                }
                Ok::<Conn, anyhow::Error>(conn)
            });
        }
        for conn in futures_join(pending).await {
            watchers.push(conn?);
        }
    }
    let (rss_setup, _) = server_memory(pid)?;
    println!(
        "hot-watch: {sessions} sessions x {watches} watches set up in {:.1}s, server RSS {rss_setup:.1}MiB",
        setup.elapsed().as_secs_f64()
    );

    // The silent client: a 4 KiB receive buffer, the same watches, then big
    // reads it never takes off the socket.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut silent = socket.connect(addr.parse()?).await?;
    let mut out = Vec::new();
    frame_into(&mut out, |buf| {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 40_000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        }
        .encode(buf)
    });
    let mut xid = 1;
    for request in watch_requests(watches) {
        frame_into(&mut out, |buf| request.encode_frame(xid, buf));
        xid += 1;
    }
    let big = Request::GetData(GetDataRequest {
        path: "/hostile/big".into(),
        watch: false,
    });
    for _ in 0..silent_reads {
        frame_into(&mut out, |buf| big.encode_frame(xid, buf));
        xid += 1;
    }
    // The server may cut the connection before all of this is written.
    let _ = tokio::time::timeout(Duration::from_secs(30), silent.write_all(&out)).await;

    // The receivers count NodeDataChanged events of the hot node.
    let received = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::with_capacity(sessions);
    for mut conn in watchers {
        let received = received.clone();
        receivers.push(tokio::spawn(async move {
            let mut seen = 0;
            // Pings keep the session alive, as any client's would.
            let ping_every = Duration::from_millis(conn.timeout_ms as u64 / 3);
            let mut last_sent = Instant::now();
            let mut quiet_since = Instant::now();
            while seen < sets {
                while let Some(reply) = conn.next_reply()? {
                    if reply.is_notification() {
                        let event = reply.event()?;
                        if event.path == "/hostile/hot"
                            && event.event_type == EventType::NodeDataChanged as i32
                        {
                            seen += 1;
                        }
                    }
                }
                if seen >= sets {
                    break;
                }
                if last_sent.elapsed() >= ping_every {
                    conn.push_ping();
                    conn.flush().await?;
                    last_sent = Instant::now();
                }
                let wait = ping_every.saturating_sub(last_sent.elapsed());
                if conn.read_some(wait.max(Duration::from_millis(10))).await? {
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() > IO_TIMEOUT {
                    bail!("no event for {IO_TIMEOUT:?} after {seen}");
                }
            }
            received.fetch_add(seen as u64, Ordering::Relaxed);
            Ok::<Conn, anyhow::Error>(conn)
        }));
    }

    // The writer, measured too.
    let mut writer_latency = Recorder::default();
    let load = Instant::now();
    for i in 0..sets {
        let set = Request::SetData(SetDataRequest {
            path: "/hostile/hot".into(),
            data: Some(Bytes::from(i.to_string())),
            version: -1,
        });
        let started = Instant::now();
        let (err, _) = admin.call(&set).await?;
        if err != 0 {
            bail!("setData failed: {err}");
        }
        writer_latency.record(started.elapsed());
        admin.events.clear();
    }
    let mut failed = 0;
    let mut kept = Vec::new();
    for receiver in receivers {
        match receiver.await? {
            Ok(conn) => kept.push(conn),
            Err(e) => {
                failed += 1;
                if failed < 5 {
                    eprintln!("receiver failed: {e:#}");
                }
            }
        }
    }
    let total = received.load(Ordering::Relaxed);
    let l = writer_latency.latency();
    println!(
        "hot-watch: {sets} sets in {:.1}s, writer setData p50={:.3}ms p99={:.3}ms max={:.3}ms",
        load.elapsed().as_secs_f64(),
        l.p50,
        l.p99,
        l.max
    );
    println!(
        "hot-watch: events received {total} of {} ({} sessions complete, {failed} failed)",
        (sessions * sets) as u64,
        kept.len()
    );

    // The silent client now reads: what is left in its socket, then the end.
    let mut silent_bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await {
            Ok(Ok(0)) => break "closed (EOF)".to_string(),
            Ok(Ok(n)) => silent_bytes += n as u64,
            Ok(Err(e)) => break format!("reset ({e})"),
            Err(_) => break "STILL OPEN".to_string(),
        }
    };
    let asked = (silent_reads * 512 * 1024) as u64;
    println!(
        "hot-watch: silent client {ended} after receiving {silent_bytes} bytes of the {asked} it asked for"
    );
    // Still open is right only for a client that was held back and then got
    // everything once it read.
    let silent_ok = ended != "STILL OPEN" || silent_bytes >= asked;
    if total != (sessions * sets) as u64 || failed > 0 || !silent_ok {
        bail!("hot-watch failed its checks");
    }
    Ok(())
}

/// Appends a length-prefixed frame.
fn frame_into(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.put_i32(0);
    write(out);
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// One connection, one malformed frame; Ok if the server closed it.
async fn one_malformed(addr: &str, kind: usize) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut out = Vec::new();
    match kind % 10 {
        // A truncated create after a good handshake (a session each).
        0 => {
            frame_into(&mut out, |buf| {
                ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: 0,
                    timeout: 4_000,
                    session_id: 0,
                    passwd: Bytes::from_static(&[0; 16]),
                    read_only: Some(false),
                }
                .encode(buf)
            });
            let mut create = Vec::new();
            Request::Create(CreateRequest {
                path: "/hostile/x".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            })
            .encode_frame(1, &mut create);
            create.truncate(create.len() - 6);
            frame_into(&mut out, |buf| buf.extend_from_slice(&create));
        }
        // A length far past the frame limit.
        1..=3 => out.extend_from_slice(&0x7fff_0000_i32.to_be_bytes()),
        // Garbage where the ConnectRequest goes.
        _ => frame_into(&mut out, |buf| buf.extend_from_slice(&[0xab; 24])),
    }
    let _ = stream.write_all(&out).await;
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => bail!("the server did not close a malformed connection"),
        }
    }
}

async fn malformed(addr: &str, pid: u32, frames: usize, concurrency: usize) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let failures = failures.clone();
        let addr = addr.to_string();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= frames {
                    return;
                }
                if let Err(e) = one_malformed(&addr, i).await {
                    if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("malformed #{i}: {e:#}");
                    }
                }
            }
        }));
    }
    // Server memory at every tenth of the run, to show it stays flat.
    let started = Instant::now();
    let mut marks = Vec::new();
    let mut next_mark = frames / 10;
    while workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = next.load(Ordering::Relaxed) as usize;
        if done >= next_mark && next_mark <= frames {
            marks.push(format!("{}k:{:.1}", done / 1000, server_memory(pid)?.0));
            next_mark += frames / 10;
        }
    }
    for worker in workers {
        worker.await?;
    }
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "malformed: {frames} connections in {:.1}s, {failed} not closed by the server; server RSS MiB by progress: {}",
        started.elapsed().as_secs_f64(),
        marks.join(" ")
    );
    if failed > 0 {
        bail!("{failed} malformed connections were not closed");
    }
    Ok(())
}
