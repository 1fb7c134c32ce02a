"""Fixtures for the client-compatibility suite.

The server under test is chosen with ``COMPAT_TARGET``:

* ``COMPAT_TARGET=zookeeper``: the real Apache ZooKeeper 3.8 (Debian jars),
  started through ``tests/support/zkref.py`` (or a minimal built-in starter
  if that module is missing).
* anything else (default ``canopy``): the binary named by ``CANOPY_BIN``,
  started as ``$CANOPY_BIN serve --port P --data-dir D --tick-time 200``.

Both servers run with a 200 ms tick, so negotiated session timeouts are
bounded to [400 ms, 4000 ms].  One server is shared by the whole pytest
session; tests isolate themselves with the ``base`` fixture (a unique path).
Tests that need a private server call ``start_server()`` themselves;
tests that kill and restart a server use the ``restartable_server`` fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(os.path.dirname(HERE), "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kazoo_ext import ExtKazooClient  # noqa: E402

TICK_MS = 200
MIN_SESSION_TIMEOUT_MS = 2 * TICK_MS
MAX_SESSION_TIMEOUT_MS = 20 * TICK_MS
TARGET = os.environ.get("COMPAT_TARGET", "canopy").strip().lower() or "canopy"
HOST = "127.0.0.1"

# The reference server checks containers/TTL nodes every
# znode.container.checkIntervalMs (default 60 s!); make it 1 s so the
# "deleted within ~15 s" expectations hold for both servers.
ZK_JAVA_PROPS = ["-Dznode.container.checkIntervalMs=1000"]

# Generous bound for anything asynchronous (watch events, expiry, ...).
EVENT_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def four_letter_word(port: int, word: str, timeout: float = 5.0) -> str:
    data = bytearray()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace")


def wait_until(predicate, timeout=EVENT_TIMEOUT, interval=0.05, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


class _MiniZk:
    """Fallback reference-ZooKeeper starter (used only if zkref is missing)."""

    def __init__(self, tick_ms):
        self.tick_ms = tick_ms
        self.port = None
        self._proc = None
        self._dir = None

    def start(self):
        self._dir = tempfile.mkdtemp(prefix="compat-zk-")
        self.port = free_port()
        cfg = os.path.join(self._dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(
                f"tickTime={self.tick_ms}\ndataDir={self._dir}/data\n"
                f"clientPort={self.port}\nclientPortAddress={HOST}\n"
                "admin.enableServer=false\n4lw.commands.whitelist=*\n"
                "maxClientCnxns=0\n"
            )
        self._log = open(os.path.join(self._dir, "server.log"), "wb")
        self._proc = subprocess.Popen(
            ["java", "-Dzookeeper.extendedTypesEnabled=true", *ZK_JAVA_PROPS,
             "-Dzookeeper.admin.enableServer=false",
             "-cp", "/usr/share/java/zookeeper.jar",
             "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("ZooKeeper exited during startup")
            try:
                if "Mode:" in four_letter_word(self.port, "srvr", 1.0):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ZooKeeper did not start")

    def stop(self):
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)


class CanopyServer:
    """``$CANOPY_BIN serve`` on a free loopback port with a temp data dir."""

    def __init__(self, binary, tick_ms, extra_args=()):
        self.binary = binary
        self.tick_ms = tick_ms
        self.extra_args = list(extra_args)
        self.port = None
        self._proc = None
        self._dir = None
        self.output = []

    def start(self):
        self._dir = tempfile.mkdtemp(prefix="compat-canopy-")
        self.port = free_port()
        self._proc = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port),
             "--data-dir", os.path.join(self._dir, "data"),
             "--tick-time", str(self.tick_ms),
             # Same 1 s container/TTL check as the reference server gets.
             "--container-check-interval", "1000",
             # No connection cap, as the reference gets maxClientCnxns=0.
             "--max-client-cnxns", "0",
             "--bind", HOST, *self.extra_args,
             # No admin server unless the test asks for one.
             *([] if "--admin-port" in self.extra_args else ["--admin-port", "0"])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        listening = threading.Event()

        def pump():  # keep draining output so the server never blocks on it
            for raw in self._proc.stdout:
                line = raw.decode("utf-8", "replace")
                self.output.append(line)
                if "listening on " in line:
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 30
        while not listening.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "canopy did not start; output:\n" + "".join(self.output[-50:]))
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("canopy port never accepted connections")

    def stop(self):
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


class Server:
    """What tests see: kind, host, port, hosts string, and a stop()."""

    def __init__(self, kind, impl):
        self.kind = kind
        self._impl = impl
        self.host = HOST
        self.port = impl.port
        self.hosts = f"{HOST}:{impl.port}"

    def four_letter_word(self, word):
        return four_letter_word(self.port, word)

    def stop(self):
        self._impl.stop()


def start_server(tick_ms=TICK_MS, canopy_args=(), zk_props=()) -> Server:
    """Start a fresh server of the selected target kind; ``canopy_args`` are
    extra ``canopy serve`` flags, ``zk_props`` extra ZooKeeper JVM
    properties, for a setting both servers have (e.g. enforced quotas)."""
    if TARGET == "zookeeper":
        try:
            from zkref import ZkReference
            impl = ZkReference(tick_ms=tick_ms,
                               java_props=[*ZK_JAVA_PROPS, *zk_props])
            impl.start()
        except ImportError:
            impl = _MiniZk(tick_ms).start()
        return Server("zookeeper", impl)
    binary = os.environ.get("CANOPY_BIN")
    if not binary:
        pytest.exit("set CANOPY_BIN=/path/to/canopy (or COMPAT_TARGET=zookeeper)", 2)
    return Server("canopy", CanopyServer(binary, tick_ms, canopy_args).start())


class RestartableServer:
    """A private server of the selected target kind that can be killed with
    SIGKILL and started again on the SAME port from the SAME data directory
    (a crash and a restart).

    ``start()`` / ``kill()`` / ``start()`` ... / ``stop()`` (stop also removes
    the directory).  Canopy gets ``serve --port P --data-dir D``; ZooKeeper is
    ``zkref.ZkReference`` with a fixed port and directory (same java command
    line as the shared reference server; forceSync left at its default, yes).
    """

    def __init__(self, tick_ms=1000):
        self.kind = "zookeeper" if TARGET == "zookeeper" else "canopy"
        self.tick_ms = tick_ms
        self.host = HOST
        self.port = free_port()
        self.hosts = f"{HOST}:{self.port}"
        self.base_dir = tempfile.mkdtemp(prefix=f"compat-restart-{self.kind}-")
        self.starts = 0
        self._proc = None
        self._output = []  # canopy's output, all runs, with markers
        if self.kind == "zookeeper":
            from zkref import ZkReference
            self._zk = ZkReference(tick_ms=tick_ms, java_props=ZK_JAVA_PROPS,
                                   port=self.port, base_dir=self.base_dir)
        else:
            self._zk = None
            self.binary = os.environ.get("CANOPY_BIN")
            if not self.binary:
                pytest.exit("set CANOPY_BIN=/path/to/canopy (or COMPAT_TARGET=zookeeper)", 2)

    @property
    def pid(self):
        if self._zk is not None:
            return self._zk.pid
        return self._proc.pid if self._proc else None

    def start(self):
        self.starts += 1
        if self._zk is not None:
            self._zk.start()
            assert self._zk.port == self.port
            return self
        self._output.append(f"===== canopy start #{self.starts} =====\n")
        self._proc = proc = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--bind", HOST,
             "--data-dir", os.path.join(self.base_dir, "data"),
             "--tick-time", str(self.tick_ms),
             "--container-check-interval", "1000",
             # No admin server; no connection cap, as the reference gets
             # maxClientCnxns=0.
             "--admin-port", "0", "--max-client-cnxns", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        listening = threading.Event()

        def pump():  # keep draining output so the server never blocks on it
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                self._output.append(line)
                if "listening on " in line:
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 30
        while not listening.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("canopy did not start; output:\n" + self.log(50))
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("canopy port never accepted connections")

    def kill(self):
        """SIGKILL (no shutdown path at all); port and data dir are kept."""
        if self._zk is not None:
            self._zk.kill()
            return
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc is not None:
            self._output.append(f"===== killed (rc {proc.returncode}) =====\n")

    def stop(self):
        if self._zk is not None:
            self._zk.stop()
        else:
            self.kill()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log(self, lines=200):
        """The last ``lines`` lines the server printed (all runs)."""
        if self._zk is not None:
            text = self._zk.server_log().splitlines(keepends=True)
        else:
            text = list(self._output)
        return "".join(text[-lines:])


@pytest.fixture
def restartable_server():
    """Factory: ``restartable_server(tick_ms=1000)`` returns a started
    :class:`RestartableServer`; all are stopped after the test."""
    servers = []

    def make(tick_ms=1000):
        srv = RestartableServer(tick_ms)
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def server():
    srv = start_server()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


@pytest.fixture
def make_client(server):
    """Factory for started KazooClients; all are stopped after the test."""
    clients = []

    def make(hosts=None, timeout=4.0, start=True, ext=False, **kwargs):
        cls = ExtKazooClient if ext else KazooClient
        c = cls(hosts=hosts or server.hosts, timeout=timeout, **kwargs)
        clients.append(c)
        if start:
            c.start(timeout=EVENT_TIMEOUT)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(make_client):
    return make_client()


@pytest.fixture
def xzk(make_client):
    """A kazoo client extended with addWatch/containers/TTL (kazoo_ext)."""
    return make_client(ext=True)


@pytest.fixture
def base(zk, request):
    """A unique, existing, empty base path for this test."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    path = f"/compat-{name}-{uuid.uuid4().hex[:8]}"
    zk.create(path)
    return path
