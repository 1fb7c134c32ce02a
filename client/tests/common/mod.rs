//! Shared helpers for the client's integration tests: one real server per
//! test binary (Canopy or Apache ZooKeeper 3.8, chosen by
//! `CLIENT_TEST_TARGET`), unique paths so tests can share it, and a loopback
//! TCP proxy that can cut connections and refuse new ones.
//!
//! The server runs under a tiny `sh` wrapper that reads its stdin: the test
//! process holds the write end, so whenever the test process exits (passed,
//! failed or aborted) the wrapper sees EOF and kills the server. No server is
//! ever left behind.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use canopy_client::{Client, SessionState, StateStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bound on any single wait in a test: catches hangs, measures nothing.
pub const WAIT: Duration = Duration::from_secs(15);

/// The servers' tick: sessions are clamped to [2, 20] ticks = [400 ms, 4 s].
pub const TICK_MS: u64 = 200;

/// A session timeout that survives a reconnect comfortably.
pub const LONG_SESSION: Duration = Duration::from_secs(4);

/// A session timeout short enough to wait out in a test.
pub const SHORT_SESSION: Duration = Duration::from_millis(1200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Canopy,
    ZooKeeper,
}

pub fn target() -> Target {
    match std::env::var("CLIENT_TEST_TARGET").as_deref() {
        Ok("zookeeper") | Ok("zk") => Target::ZooKeeper,
        Ok("canopy") | Err(_) => Target::Canopy,
        Ok(other) => panic!("CLIENT_TEST_TARGET must be canopy or zookeeper, not {other:?}"),
    }
}

/// The server of this test binary.
pub struct TestServer {
    pub addr: SocketAddr,
    pub target: Target,
    /// Closing this (at process exit) stops the server.
    _lifeline: Mutex<ChildStdin>,
    _wrapper: Mutex<Child>,
}

impl TestServer {
    /// `127.0.0.1:port`.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }
}

static SERVER: OnceLock<TestServer> = OnceLock::new();

/// Starts the server on first use; later calls return the same one.
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        let target = target();
        let mut last = String::new();
        for _ in 0..3 {
            match start(target) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start the {target:?} test server: {last}");
    })
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the client crate sits in the workspace")
        .to_path_buf()
}

/// The command line of the server (without the wrapper).
fn server_command(target: Target, port: u16, dir: &std::path::Path) -> Vec<String> {
    match target {
        Target::Canopy => {
            let bin = std::env::var("CANOPY_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_dir().join("target/debug/canopy"));
            assert!(
                bin.exists(),
                "no Canopy binary at {} (set CANOPY_BIN or build the workspace)",
                bin.display()
            );
            vec![
                bin.display().to_string(),
                "serve".into(),
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--data-dir".into(),
                dir.join("data").display().to_string(),
                "--tick-time".into(),
                TICK_MS.to_string(),
                // No admin server; no per-address cap (the reference runs
                // with maxClientCnxns=0 too).
                "--admin-port".into(),
                "0".into(),
                "--max-client-cnxns".into(),
                "0".into(),
            ]
        }
        Target::ZooKeeper => {
            let java_dir = std::env::var("ZKREF_JAVA_DIR").unwrap_or("/usr/share/java".into());
            let jars = [
                "zookeeper.jar",
                "zookeeper-jute.jar",
                "slf4j-api.jar",
                "slf4j-nop.jar",
                "commons-cli.jar",
                "commons-io.jar",
                "jackson-annotations.jar",
                "jackson-core.jar",
                "jackson-databind.jar",
                "metrics-core.jar",
                "netty-buffer.jar",
                "netty-codec.jar",
                "netty-common.jar",
                "netty-handler.jar",
                "netty-resolver.jar",
                "netty-transport.jar",
                "netty-transport-native-epoll.jar",
                "netty-transport-native-unix-common.jar",
                "snappy-java.jar",
            ];
            let classpath: Vec<String> = jars
                .iter()
                .map(|j| format!("{java_dir}/{j}"))
                .filter(|p| std::path::Path::new(p).exists())
                .collect();
            let cfg = dir.join("zoo.cfg");
            let data = dir.join("data");
            std::fs::create_dir_all(&data).expect("zk data dir");
            std::fs::write(
                &cfg,
                format!(
                    "tickTime={TICK_MS}\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                     maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n\
                     standaloneEnabled=true\n",
                    data.display()
                ),
            )
            .expect("zoo.cfg");
            vec![
                "java".into(),
                "-Dzookeeper.extendedTypesEnabled=true".into(),
                "-Dzookeeper.admin.enableServer=false".into(),
                "-Xmx256m".into(),
                "-cp".into(),
                classpath.join(":"),
                "org.apache.zookeeper.server.ZooKeeperServerMain".into(),
                cfg.display().to_string(),
            ]
        }
    }
}

fn start(target: Target) -> Result<TestServer, String> {
    let dir = tempfile::Builder::new()
        .prefix("canopy-client-test-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let port = free_port();
    let argv = server_command(target, port, &dir);
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    // `read` returns at EOF on stdin, i.e. when this test process is gone.
    let script = r#"dir="$1"; shift; "$@" </dev/null & pid=$!; read _ignored; kill $pid 2>/dev/null; wait $pid; rm -rf "$dir""#;
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&dir)
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("spawn {argv:?}: {e}"))?;
    let lifeline = wrapper.stdin.take().ok_or("no stdin")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = wrapper.try_wait() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("server exited with {status}: {log}"));
        }
        if four_letter_word(addr, "srvr").is_some_and(|answer| answer.contains("Mode")) {
            return Ok(TestServer {
                addr,
                target,
                _lifeline: Mutex::new(lifeline),
                _wrapper: Mutex::new(wrapper),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = wrapper.kill();
    Err("the server did not start serving within 60 s".into())
}

fn four_letter_word(addr: SocketAddr, word: &str) -> Option<String> {
    let mut stream = StdStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A path no other test uses: `/<name>-<pid>-<n>`.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "/{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client of the test server with a long session.
pub async fn connect() -> Client {
    connect_to(&server().connect_string(), LONG_SESSION).await
}

pub async fn connect_to(connect_string: &str, session: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(session)
        .request_timeout(Some(WAIT))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {connect_string}: {e}"))
}

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the stream reports `wanted`, returning the states seen before.
pub async fn wait_for_state(states: &mut StateStream, wanted: SessionState) -> Vec<SessionState> {
    within(&format!("state {wanted:?}"), async {
        let mut seen = Vec::new();
        loop {
            match states.next_state().await {
                Some(state) if state == wanted => return seen,
                Some(state) => seen.push(state),
                None => panic!("state stream ended before {wanted:?}; saw {seen:?}"),
            }
        }
    })
    .await
}

/// Polls `check` until it returns `Some`, within [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// A loopback TCP proxy in front of a server. It can cut every connection
/// it carries (the client sees a dropped TCP connection, the server sees
/// the client vanish) and refuse new ones (a dead host).
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: JoinHandle<()>,
}

struct ProxyShared {
    target: SocketAddr,
    blocked: AtomicBool,
    links: Mutex<Vec<JoinHandle<()>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(ProxyShared {
            target,
            blocked: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every connection currently carried.
    pub fn cut(&self) {
        for link in self.shared.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// While blocked, new connections are accepted and closed at once.
    pub fn set_blocked(&self, blocked: bool) {
        self.shared.blocked.store(blocked, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if shared.blocked.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let target = shared.target;
        let link = tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        let mut links = shared.links.lock().expect("links");
        links.retain(|l| !l.is_finished());
        links.push(link);
    }
}
