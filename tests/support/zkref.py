#!/usr/bin/env python3
"""Start and stop a reference Apache ZooKeeper server (the Debian 3.8.0 jars).

This module is the single place where Canopy's tests learn how to run the
real ZooKeeper: as a server to compare against, and as a Java client
(``zkCli.sh`` / our own Java programs) to point at either server.

Only the Python standard library is used.

Library use::

    import sys; sys.path.insert(0, "tests/support")
    from zkref import ZkReference, four_letter_word, java_classpath

    with ZkReference(tick_ms=200) as zk:
        print(zk.port, zk.pid, zk.connect_string)   # 127.0.0.1:<port>
        assert four_letter_word(zk.port, "ruok") == "imok"
        out = zk.zkcli("create", "/x", "hello")        # runs zkCli.sh

Command line::

    python3 tests/support/zkref.py --tick 200

prints the client port on the first line of stdout (then flushes) and keeps
the server running until it gets SIGINT/SIGTERM; the server is stopped and
its temporary directory removed on the way out.

The server is always bound to 127.0.0.1 on a free port, the AdminServer
(Jetty, normally on port 8080) is disabled, all four-letter words are
whitelisted unless asked otherwise, and ``zookeeper.extendedTypesEnabled`` is
set so that TTL nodes can be created.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Sequence

__all__ = [
    "JAVA_DIR",
    "ZKCLI",
    "ZkReference",
    "ZkReferenceError",
    "free_port",
    "four_letter_word",
    "java_classpath",
    "zkcli_command",
    "zookeeper_available",
]

#: Directory holding the Debian ZooKeeper jars and their dependencies.
JAVA_DIR = os.environ.get("ZKREF_JAVA_DIR", "/usr/share/java")

#: The Debian zkCli.sh wrapper (may be absent on other systems).
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

#: Java executable.
JAVA = os.environ.get("ZKREF_JAVA", shutil.which("java") or "/usr/bin/java")

# zookeeper.jar's manifest Class-Path already lists its runtime dependencies
# (zookeeper-jute, netty, jetty, slf4j-api, commons-*, ...).  We list them
# explicitly anyway so the classpath also works for javac, which does not
# follow manifest Class-Path entries for every tool, and we add an SLF4J
# binding so that log output goes to stderr instead of being dropped.
_ZK_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
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
    "jetty9-client.jar",
    "jetty9-http.jar",
    "jetty9-io.jar",
    "jetty9-security.jar",
    "jetty9-server.jar",
    "jetty9-servlet.jar",
    "jetty9-util.jar",
    "jline.jar",
)

_LOG_BINDINGS = {
    "simple": "slf4j-simple.jar",  # logs to stderr
    "nop": "slf4j-nop.jar",  # discards everything
    "none": None,
}


class ZkReferenceError(RuntimeError):
    """The reference server could not be started (or is not installed)."""


def java_classpath(extra: Iterable[str] = (), logging: str = "simple") -> str:
    """Return a ``java -cp`` string for the ZooKeeper 3.8 client and server.

    ``extra`` entries (directories or jars) are put first.  ``logging``
    chooses the SLF4J binding: ``"simple"`` (stderr), ``"nop"`` (silent) or
    ``"none"`` (no binding; SLF4J then prints one warning and is silent).
    Jars that are not installed are skipped.
    """
    if logging not in _LOG_BINDINGS:
        raise ValueError(f"logging must be one of {sorted(_LOG_BINDINGS)}")
    jars = list(_ZK_JARS)
    binding = _LOG_BINDINGS[logging]
    if binding:
        jars.append(binding)
    entries = list(extra)
    for jar in jars:
        path = os.path.join(JAVA_DIR, jar)
        if os.path.exists(path):
            entries.append(path)
    return os.pathsep.join(entries)


def zookeeper_available() -> bool:
    """True if java and the ZooKeeper jars are installed (use to skip tests)."""
    return os.path.exists(os.path.join(JAVA_DIR, "zookeeper.jar")) and bool(
        shutil.which(JAVA) or os.path.exists(JAVA)
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently free TCP port on ``host``.

    There is an unavoidable small race between closing the probe socket and
    the server binding the port; :class:`ZkReference` retries on failure.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def four_letter_word(
    port: int, word: str, host: str = "127.0.0.1", timeout: float = 5.0
) -> str:
    """Send a four-letter word (``ruok``, ``srvr``, ``mntr``...) and return
    the complete answer (the server closes the connection when done).

    The answer is decoded as UTF-8 (with replacement) and returned verbatim,
    trailing newline included.
    """
    return four_letter_word_bytes(port, word, host, timeout).decode(
        "utf-8", "replace"
    )


def four_letter_word_bytes(
    port: int, word: str, host: str = "127.0.0.1", timeout: float = 5.0
) -> bytes:
    """Like :func:`four_letter_word` but returns the raw bytes."""
    data = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return bytes(data)


def zkcli_command(server: str, *args: str, java_props: Sequence[str] = ()) -> List[str]:
    """argv running the ZooKeeper CLI against ``server`` ("127.0.0.1:PORT").

    With ``args`` the CLI runs that one command and exits, e.g.
    ``zkcli_command("127.0.0.1:2181", "get", "/a")``.  Without ``args`` it is
    interactive (reads commands from stdin; jline is not installed on Debian,
    so input is read line by line).

    This is equivalent to ``/usr/share/zookeeper/bin/zkCli.sh -server
    <server> <args...>`` (:data:`ZKCLI`, which also works and prints the
    same), but calls ``java ... org.apache.zookeeper.ZooKeeperMain``
    directly with our classpath so it does not depend on the wrapper and
    /etc/zookeeper/conf.
    """
    return [
        JAVA,
        *java_props,
        "-cp",
        java_classpath(logging="nop"),
        "org.apache.zookeeper.ZooKeeperMain",
        "-server",
        server,
        *args,
    ]


class ZkReference:
    """A standalone Apache ZooKeeper 3.8 server in a temporary directory.

    Parameters:
        tick_ms: ``tickTime`` (session timeouts are negotiated between
            2*tick and 20*tick).
        whitelist: value of ``4lw.commands.whitelist`` (``"*"`` = all).
        extra_cfg: more ``key: value`` lines for zoo.cfg (override ours).
        java_props: more ``-Dkey=value`` JVM options.
        startup_timeout: seconds to wait for ``ruok`` -> ``imok``.
        keep_dir: don't delete the temp dir on stop (for debugging).
        port: a fixed client port (default: a free one, picked on start).
        base_dir: a fixed directory for zoo.cfg, data and log (default: a
            new temp dir).  A directory given here is never deleted.

    Restarting: :meth:`kill` SIGKILLs the server and keeps its port and
    directory; :meth:`start` then brings it back on the same port with the
    same data (snapshot + transaction log), as after a crash.

    Attributes (valid once started): ``port``, ``pid``, ``host``,
    ``connect_string``, ``base_dir``, ``data_dir``, ``cfg_path``,
    ``log_path`` (server stdout+stderr).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        tick_ms: int = 2000,
        whitelist: str = "*",
        extra_cfg: Optional[Dict[str, str]] = None,
        java_props: Sequence[str] = (),
        startup_timeout: float = 60.0,
        keep_dir: bool = False,
        port: Optional[int] = None,
        base_dir: Optional[str] = None,
    ) -> None:
        self.tick_ms = int(tick_ms)
        self.whitelist = whitelist
        self.extra_cfg = dict(extra_cfg or {})
        self.java_props = list(java_props)
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.port: Optional[int] = port
        self.base_dir: Optional[str] = base_dir
        # Only a directory we created ourselves is removed by stop().
        self._own_dir = base_dir is None
        self.data_dir: Optional[str] = None
        self.cfg_path: Optional[str] = None
        self.log_path: Optional[str] = None
        self._proc: Optional[subprocess.Popen] = None
        self._log_file = None

    # -- properties --------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc else None

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "ZkReference":
        """Start the server and block until it answers ``imok``."""
        if self._proc is not None:
            raise ZkReferenceError("already started")
        if not zookeeper_available():
            raise ZkReferenceError(f"ZooKeeper jars not found in {JAVA_DIR}")
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix="zkref-")
            self._own_dir = True
        self.data_dir = os.path.join(self.base_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.cfg_path = os.path.join(self.base_dir, "zoo.cfg")
        self.log_path = os.path.join(self.base_dir, "server.log")
        atexit.register(self.stop)
        # A port fixed by the caller, or kept by kill() for a restart, is
        # reused as is; otherwise each attempt picks a free one.
        fixed_port = self.port
        last_error = None
        for _attempt in range(5):  # retry in case the free port got taken
            self.port = fixed_port or free_port(self.host)
            self._write_cfg()
            try:
                self._spawn_and_wait()
                return self
            except ZkReferenceError as e:
                last_error = e
                self._kill()
        self.stop()
        raise ZkReferenceError(f"could not start ZooKeeper: {last_error}")

    def kill(self) -> None:
        """SIGKILL the server, as in a crash: no shutdown, no final snapshot.

        The port and the directory are kept, so :meth:`start` restarts the
        server on the same port from the same data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temp dir."""
        self._kill()
        if self.base_dir and self._own_dir and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self) -> "ZkReference":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------
    def four_letter_word(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word to this server (see module function)."""
        return four_letter_word(self.port, word, self.host, timeout)

    def zkcli(self, *args: str, timeout: float = 60.0, input: Optional[str] = None):
        """Run the ZooKeeper CLI (``zkCli.sh -server host:port args...``)
        against this server; returns ``subprocess.CompletedProcess`` with
        text stdout/stderr."""
        return subprocess.run(
            zkcli_command(self.connect_string, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def server_log(self) -> str:
        """Everything the server printed so far."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    # -- internals ---------------------------------------------------------
    def _write_cfg(self) -> None:
        cfg = {
            "tickTime": str(self.tick_ms),
            "dataDir": self.data_dir,
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "maxClientCnxns": "0",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": self.whitelist,
            "standaloneEnabled": "true",
        }
        cfg.update(self.extra_cfg)
        with open(self.cfg_path, "w") as f:
            for k, v in cfg.items():
                f.write(f"{k}={v}\n")

    def _spawn_and_wait(self) -> None:
        argv = [
            JAVA,
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Xmx256m",
            *self.java_props,
            "-cp",
            java_classpath(logging="simple"),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            self.cfg_path,
        ]
        self._log_file = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            start_new_session=True,  # don't get the terminal's ^C twice
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ZkReferenceError(
                    f"server exited with {self._proc.returncode}; log tail:\n"
                    + self.server_log()[-2000:]
                )
            try:
                if four_letter_word(self.port, "ruok", self.host, 1.0) == "imok":
                    self._wait_serving(deadline)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ZkReferenceError("timed out waiting for imok")

    def _wait_serving(self, deadline: float) -> None:
        # ``ruok`` answers ``imok`` as soon as the listener is up, a moment
        # before the ZooKeeperServer itself is running (client sessions and
        # most words would still get "This ZooKeeper instance is not
        # currently serving requests").  Poll ``srvr``: ZooKeeper always adds
        # it to the whitelist (zkServer.sh depends on it).
        while time.monotonic() < deadline:
            try:
                if "Mode:" in four_letter_word(self.port, "srvr", self.host, 1.0):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise ZkReferenceError("timed out waiting for the server to serve")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tick", type=int, default=2000, help="tickTime in ms (2000)")
    p.add_argument(
        "--whitelist", default="*", help="4lw.commands.whitelist value ('*')"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir (prints its path)"
    )
    p.add_argument(
        "--print-classpath",
        action="store_true",
        help="print the Java classpath for the ZooKeeper jars and exit",
    )
    args = p.parse_args(argv)
    if args.print_classpath:
        print(java_classpath())
        return 0

    zk = ZkReference(tick_ms=args.tick, whitelist=args.whitelist, keep_dir=args.keep)

    def _on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        zk.start()
        print(zk.port, flush=True)
        print(
            f"zkref: pid {zk.pid} dir {zk.base_dir} log {zk.log_path}",
            file=sys.stderr,
            flush=True,
        )
        while zk.running():
            time.sleep(0.5)
        print("zkref: server exited", file=sys.stderr)
        return 1
    finally:
        zk.stop()


if __name__ == "__main__":
    sys.exit(_main())
