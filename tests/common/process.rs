//! A Canopy server as a separate process (the real binary), for tests that
//! kill it with SIGKILL and start it again on the same data folder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A running `canopy serve` process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Everything it has written to stderr so far.
    pub log: Arc<Mutex<String>>,
}

/// How a start went when the server did not come up.
#[derive(Debug)]
pub struct StartFailure {
    pub exit_code: Option<i32>,
    pub stderr: String,
}

impl ServerProcess {
    /// Starts `canopy serve` on a free loopback port with `data_dir`, plus
    /// `extra` flags, and waits for it to listen.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<ServerProcess, StartFailure> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args(["serve", "--port", "0", "--bind", "127.0.0.1", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            // No admin server unless the test asks for one (never 8080).
            .args(if extra.contains(&"--admin-port") {
                &[][..]
            } else {
                &["--admin-port", "0"][..]
            })
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the canopy binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found_tx, found_rx) = mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on ") {
                    let addr = line[at + "listening on ".len()..].trim().to_string();
                    let _ = found_tx.send(addr);
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match found_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(ServerProcess {
                child,
                addr: addr.parse().expect("listening address"),
                log,
            }),
            Err(_) => {
                // It exited (or never listened): collect what it said.
                let status = wait_with_bound(&mut child, Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(100));
                let stderr = log.lock().unwrap().clone();
                Err(StartFailure {
                    exit_code: status,
                    stderr,
                })
            }
        }
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `bound` for the process to exit; its exit code (None if
    /// it had to be killed or died of a signal).
    pub fn wait_exit(&mut self, bound: Duration) -> Option<i32> {
        wait_with_bound(&mut self.child, bound)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for a child to exit, killing it if it takes longer than `bound`.
fn wait_with_bound(child: &mut Child, bound: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().ok().and_then(|s| s.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
