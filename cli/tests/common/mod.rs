//! Shared helpers for the CLI's integration tests: real servers (Canopy, or
//! Apache ZooKeeper 3.8 when `CLIENT_TEST_TARGET=zookeeper`) on free loopback
//! ports, and the real `canopy` binary run against them.
//!
//! Each server runs under a tiny `sh` wrapper that reads its stdin: the test
//! process holds the write end, so when the test process exits (passed,
//! failed or aborted) the wrapper sees EOF and kills the server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use canopy_client::Client;

/// Bound on any single wait in a test: catches hangs, measures nothing.
pub const WAIT: Duration = Duration::from_secs(30);

/// The servers' tick: sessions are clamped to [2, 20] ticks = [400 ms, 4 s].
pub const TICK_MS: u64 = 200;

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

pub struct TestServer {
    pub addr: SocketAddr,
    pub target: Target,
    _lifeline: Mutex<ChildStdin>,
    _wrapper: Mutex<Child>,
}

impl TestServer {
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static SECOND: OnceLock<TestServer> = OnceLock::new();

/// The server under test (started on first use).
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(|| start_with_retries(target()))
}

/// A second, independent Canopy server: the other side of copies and diffs.
pub fn second_server() -> &'static TestServer {
    SECOND.get_or_init(|| start_with_retries(Target::Canopy))
}

fn start_with_retries(target: Target) -> TestServer {
    let mut last = String::new();
    for _ in 0..3 {
        match start(target) {
            Ok(server) => return server,
            Err(e) => last = e,
        }
    }
    panic!("could not start the {target:?} test server: {last}");
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace")
        .to_path_buf()
}

/// The `canopy` binary: `CANOPY_BIN`, else the workspace's debug build.
pub fn canopy_bin() -> PathBuf {
    let bin = std::env::var("CANOPY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_dir().join("target/debug/canopy"));
    assert!(
        bin.exists(),
        "no canopy binary at {} (set CANOPY_BIN or build the workspace)",
        bin.display()
    );
    bin
}

/// `--admin-port 0` when this build of `canopy serve` has an admin HTTP
/// server (its default port would clash between test servers).
fn admin_off_flags() -> Vec<String> {
    let help = Command::new(canopy_bin())
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if help.contains("--admin-port") {
        vec!["--admin-port".into(), "0".into()]
    } else {
        Vec::new()
    }
}

fn server_command(target: Target, port: u16, dir: &std::path::Path) -> Vec<String> {
    match target {
        Target::Canopy => [
            vec![
                canopy_bin().display().to_string(),
                "serve".into(),
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--data-dir".into(),
                dir.join("data").display().to_string(),
                "--tick-time".into(),
                TICK_MS.to_string(),
                "--four-letter-words".into(),
                "*".into(),
            ],
            admin_off_flags(),
        ]
        .concat(),
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
        .prefix("canopy-cli-test-")
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

/// What one run of the `canopy` binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        &self.stdout
    }

    /// Asserts a failure with exactly this one line on stderr.
    pub fn fails_with(&self, line: &str) {
        assert_ne!(self.code, 0, "command should have failed: {self:?}");
        assert_eq!(self.stderr.trim_end(), line, "{self:?}");
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{self:?}");
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `canopy <args> --server <the test server>`.
pub fn cli(args: &[&str]) -> Run {
    cli_at(&server().connect_string(), args)
}

/// Runs `canopy <args> --server <server>` with a bound on its run time.
pub fn cli_at(server: &str, args: &[&str]) -> Run {
    cli_with_stdin(server, args, "")
}

pub fn cli_with_stdin(server: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(canopy_bin())
        .args(args)
        .args(["--server", server])
        .env_remove("CANOPY_SERVER")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn canopy");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let (done_tx, done_rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(WAIT) {
        Ok(Ok(output)) => Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).to_string(),
        },
        Ok(Err(e)) => panic!("canopy {args:?}: {e}"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("canopy {args:?} did not finish within {WAIT:?}");
        }
    }
}

/// A `canopy` command left running (watch, get -w): waits until it has
/// printed `ready` on stderr, so the test can act on the server.
pub struct Background {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Background {
    pub fn start(args: &[&str], ready: &str) -> Background {
        let mut child = Command::new(canopy_bin())
            .args(args)
            .args(["--server", &server().connect_string()])
            .env_remove("CANOPY_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn canopy");
        let (out_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match err_rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    panic!("canopy {args:?} never printed {ready:?}");
                }
            }
        }
        Background { child, stdout }
    }

    /// The next line on stdout.
    pub fn line(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no output line within {WAIT:?}"))
    }

    /// Waits for the process to exit by itself and returns its code.
    pub fn wait(mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the background command did not exit");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the test server, for setting up and checking state.
pub async fn connect() -> Client {
    connect_to(&server().connect_string()).await
}

pub async fn connect_to(connect_string: &str) -> Client {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(4))
        .request_timeout(Some(WAIT))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {connect_string}: {e}"))
}

/// Runs the blocking `canopy` command off the async test's threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}
