#!/usr/bin/env python3
"""Canopy and Apache ZooKeeper 3.8 side by side, measured by `canopy-bench`.

Builds Canopy (release), installs ZooKeeper from the Debian package if it is
missing, starts both on free loopback ports with equivalent settings (tickTime
2000, fsync on: ZooKeeper forceSync=yes with -Xmx2g; Canopy --fsync true when
the binary has the flag), and runs every case against each in alternation
(the order flips every round) for --rounds rounds; the serial cases run as
short slices alternating between the servers (see SERIAL_SLICES). Before each
run the dirty pages are written out and both servers are left to go idle.
Both servers are started fresh every round and the `mem` case runs first, so
resident memory per znode is measured on an otherwise empty server.

Prints a markdown table of medians and the Canopy/ZooKeeper ratio per figure
and, with --write, puts it into BENCHMARKS.md between the markers
<!-- bench-table:start --> and <!-- bench-table:end -->.

    python3 scripts/bench-compare.py --rounds 3 --write
    python3 scripts/bench-compare.py --quick          # a minute, for trying it out

Only the standard library is used (and tests/support/zkref.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import mmap
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import zkref  # noqa: E402

TICK_MS = 2000
# The largest session timeout either server grants (both default to 20
# ticks). Raised equally on both so that the detached providers of the big
# register case need few keep-alive resumes: those reconnects are an
# artefact of the open-file limit, not part of a registry's load. Sessions
# that ask for less (every other case) get what they ask for.
MAX_SESSION_TIMEOUT_MS = 600_000
# Where the server log of a failed Canopy run is copied.
FAILURE_LOGS = os.path.join(tempfile.gettempdir(), "canopy-bench-failures")

# The serial cases (one request in flight) run as this many short slices per
# round, alternating between the servers, and each server's slices are
# merged into one histogram. Their p99 is a fraction of a millisecond, mostly
# one fsync, and this VM's disk latency drifts by half from one minute to the
# next: one 10 s window per server let that drift, not the servers, decide
# the ratio. Interleaved, both servers see the same minutes.
SERIAL_SLICES = 5

# (case, workload, flags, figures). A figure is (label, json path, lower is better).
THROUGHPUT = [
    ("ops/s", "ops_per_s", False),
    ("p50 ms", "latency_ms.p50", True),
    ("p99 ms", "latency_ms.p99", True),
    ("server CPU us/op", "server_cpu_us_per_op", True),
    ("bench CPU us/op", "bench_cpu_us_per_op", True),
]
DURABLE = THROUGHPUT[:4]
SERIAL = [
    ("ops/s", "ops_per_s", False),
    ("p50 ms", "latency_ms.p50", True),
    ("p99 ms", "latency_ms.p99", True),
    ("server CPU us/op", "server_cpu_us_per_op", True),
]


REGISTER = [
    ("registrations/s", "ops_per_s", False),
    ("notify p50 ms", "latency_ms.p50", True),
    ("notify p99 ms", "latency_ms.p99", True),
    ("server CPU us/registration", "server_cpu_us_per_op", True),
]


def cases(quick: bool, providers: int, consumers: int, mem_znodes: int,
          big_providers: int = 0, big_consumers: int = 1000) -> List[tuple]:
    d = "2" if quick else "10"
    w = "0.5" if quick else "2"
    load = ["--sessions", "16", "--outstanding", "256", "--duration", d, "--warmup", w]
    # Per slice (see SERIAL_SLICES): a fifth of the phase, a shorter warm-up.
    serial = ["--sessions", "1", "--outstanding", "1",
              "--duration", str(float(d) / SERIAL_SLICES), "--warmup", str(float(w) / 2)]
    return [
        ("mem", "mem", ["--ops", str(mem_znodes), "--keep"],
         [("B/znode (RSS total)", "extra.rss_per_znode_bytes", True),
          ("B/znode (RSS growth)", "extra.rss_growth_per_znode_bytes", True),
          ("creates/s", "ops_per_s", False)]),
        ("restart with the mem znodes", "restart", [],
         [("seconds until serving", "restart_s", True),
          # ZooKeeper's newest snapshot is fuzzy and may predate the last writes.
          ("newest snapshot MB", "snapshot_mb", True)]),
        ("create", "create", load, THROUGHPUT),
        ("get", "get", load, THROUGHPUT),
        ("set", "set", load, THROUGHPUT),
        ("mixed 90% reads", "mixed", load + ["--read-pct", "90"], THROUGHPUT),
        ("delete", "delete", ["--sessions", "16", "--outstanding", "256",
                              "--ops", "20000" if quick else "100000"], THROUGHPUT),
        ("children (10 x 100)", "children", load, THROUGHPUT),
        ("multi (10 creates)", "multi", load, THROUGHPUT),
        ("create serial", "create", serial, SERIAL),
        # One session with 16 and 256 requests in flight: the durable-write
        # matrix (fsync on both) of the durability issue.
        ("create 1 session x 16", "create", one_session(16, d, w), DURABLE),
        ("create 1 session x 256", "create", one_session(256, d, w), DURABLE),
        ("set 1 session x 16", "set", one_session(16, d, w), DURABLE),
        ("set 1 session x 256", "set", one_session(256, d, w), DURABLE),
        ("get serial", "get", serial, SERIAL),
        ("set serial", "set", serial, SERIAL),
        (f"register {providers} providers / {consumers} consumers", "register",
         ["--providers", str(providers), "--consumers", str(consumers)], REGISTER),
        ("churn 200 providers / 100 consumers", "churn",
         ["--providers", "200", "--consumers", "100", "--churn-seconds", d],
         [("changes/s", "ops_per_s", False),
          ("notify p99 ms", "latency_ms.p99", True)]),
        ("expire (timeout 4 s)", "expire",
         ["--expire-sessions", "20", "--session-timeout", "4000"],
         [("median x timeout", "extra.timeout_multiple_median", True),
          ("max x timeout", "extra.timeout_multiple_max", True),
          ("max ms past timeout", "extra.max_ms_past_timeout", True)]),
    ] + ([] if big_providers <= 0 else [
        # More sessions than the 20,000 open files a process may have here:
        # providers drop their connections once registered (sessions live on;
        # see BENCHMARKS.md). The session timeout is MAX_SESSION_TIMEOUT_MS,
        # granted by both servers, so that few keep-alive resumes are needed:
        # at ZooKeeper's default cap (40 s) the resumes, 2,000 reconnects/s
        # at 20,000 sessions, starved behind the consumers' re-listings and
        # sessions expired. Opt-in (--big-providers): one run takes minutes.
        (f"register {big_providers} providers / {big_consumers} consumers, detached", "register",
         ["--providers", str(big_providers), "--consumers", str(big_consumers),
          "--provider-detach", "--session-timeout", str(MAX_SESSION_TIMEOUT_MS),
          "--io-timeout", "300"],
         REGISTER + [("bench CPU share of a core", "extra.bench_cpu_share", True)]),
    ])


def one_session(outstanding: int, duration: str, warmup: str) -> List[str]:
    return ["--sessions", "1", "--outstanding", str(outstanding), "--duration", duration,
            "--warmup", warmup]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def get_path(obj: dict, path: str) -> Optional[float]:
    for part in path.split("."):
        if not isinstance(obj, dict) or obj.get(part) is None:
            return None
        obj = obj[part]
    return float(obj)


# -- servers -----------------------------------------------------------------

class Canopy:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.proc: Optional[subprocess.Popen] = None
        self.dir = ""
        self.port = 0

    def start(self, keep_data: bool = False) -> "Canopy":
        if not keep_data:
            self.dir = tempfile.mkdtemp(prefix="canopy-bench-")
        argv = [self.binary, "serve", "--port", "0", "--bind", "127.0.0.1",
                "--data-dir", os.path.join(self.dir, "data"), "--tick-time", str(TICK_MS)]
        help_text = subprocess.run([self.binary, "serve", "--help"], capture_output=True,
                                   text=True).stdout
        if "--fsync" in help_text:
            argv += ["--fsync", "true"]
        if "--admin-port" in help_text:
            # No admin server; no per-address cap (hundreds of sessions
            # come from 127.0.0.1).
            argv += ["--admin-port", "0", "--max-client-cnxns", "0"]
        if "--max-session-timeout" in help_text:
            argv += ["--max-session-timeout", str(MAX_SESSION_TIMEOUT_MS)]
        if "--max-children-per-node" in help_text:
            # ZooKeeper has no cap on children; a 10 s create run at 100k/s
            # would pass Canopy's default of 1,000,000 under one parent.
            argv += ["--max-children-per-node", "0"]
        self.log_path = os.path.join(self.dir, "server.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path, "r", errors="replace") as f:
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("canopy did not start; see " + self.log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL, keeping the data folder, as a crash would."""
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start(keep_data=True)

    def snapshot_bytes(self) -> int:
        data = os.path.join(self.dir, "data")
        snaps = sorted(f for f in os.listdir(data) if f.startswith("snapshot.") and not f.endswith(".tmp"))
        return os.path.getsize(os.path.join(data, snaps[-1])) if snaps else 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def keep_server_log(server, label: str) -> None:
    """Copies a Canopy server's log out of its folder (deleted at the end of the round) after
    a failed run, so that the failure can be looked into."""
    path = getattr(server, "log_path", "")
    if not path or not os.path.exists(path):
        return
    os.makedirs(FAILURE_LOGS, exist_ok=True)
    kept = os.path.join(FAILURE_LOGS, re.sub(r"[^A-Za-z0-9.-]+", "_", label) + ".log")
    shutil.copyfile(path, kept)
    log(f"   server log kept: {kept}")


class ZooKeeper:
    def __init__(self) -> None:
        self.zk: Optional[zkref.ZkReference] = None

    def start(self) -> "ZooKeeper":
        self.zk = zkref.ZkReference(
            tick_ms=TICK_MS,
            extra_cfg={"forceSync": "yes", "maxSessionTimeout": str(MAX_SESSION_TIMEOUT_MS)},
            # zkref starts the JVM with -Xmx256m; the later flag wins.
            java_props=["-Xmx2g"],
        ).start()
        return self

    @property
    def port(self) -> int:
        return self.zk.port

    @property
    def pid(self) -> int:
        return self.zk.pid

    def restart(self) -> None:
        """SIGKILL, then start again on the same port and data."""
        self.zk.kill()
        self.zk.startup_timeout = 600
        self.zk.start()

    def snapshot_bytes(self) -> int:
        data = os.path.join(self.zk.data_dir, "version-2")
        snaps = [os.path.join(data, f) for f in os.listdir(data) if f.startswith("snapshot.")]
        # ZooKeeper names snapshots by zxid in hex without padding.
        return os.path.getsize(max(snaps, key=lambda f: int(f.rsplit(".", 1)[1], 16))) if snaps else 0

    def stop(self) -> None:
        if self.zk:
            self.zk.stop()
        self.zk = None


# -- running the bench -------------------------------------------------------

def node_count(server) -> int:
    """The server's znode count from `srvr` (0 while it does not answer)."""
    try:
        out = four_letter_word(server.port, "srvr")
    except OSError:
        return 0
    m = re.search(r"Node count: (\d+)", out)
    return int(m.group(1)) if m else 0


def four_letter_word(port: int, word: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        s.sendall(word.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


def measure_restart(server) -> dict:
    """Kills the server with SIGKILL and starts it on the same data; the
    time until it answers with every znode back is the restart time."""
    before = node_count(server)
    snapshot_mb = server.snapshot_bytes() / 1e6
    started = time.monotonic()
    server.restart()
    deadline = started + 600
    while node_count(server) < before:
        if time.monotonic() > deadline:
            return {"failure": f"only {node_count(server)} of {before} znodes after a restart"}
        time.sleep(0.02)
    return {"restart_s": time.monotonic() - started, "snapshot_mb": snapshot_mb,
            "extra": {"znodes": before}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(servers, timeout_s: float = 30.0) -> None:
    """Lets the machine calm down before a measured run: writes every dirty
    page to disk (so that neither server's fsyncs queue behind the other's
    leftover writeback) and waits, up to `timeout_s`, until no server uses
    more than 5% of a core (a snapshot or a clean-up still running)."""
    os.sync()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            before = [cpu_seconds(server.pid) for server in servers]
            time.sleep(0.5)
            used = [cpu_seconds(server.pid) - b for server, b in zip(servers, before)]
        except OSError:
            return
        if max(used) < 0.025:
            return


def run_bench(bench: str, server, workload: str, flags: List[str], procs: int = 1) -> dict:
    """Runs one workload; with procs > 1 that many bench processes run at
    once (sessions split between them) and their ops/s are added up."""
    if workload == "restart":
        return measure_restart(server)
    if procs > 1:
        flags = with_flag(flags, "--sessions", str(16 // procs))
    argv = [bench, "--server", f"127.0.0.1:{server.port}", "--server-pid", str(server.pid),
            "--no-progress", "--quiet", workload, *flags]
    running = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(procs)]
    results = []
    for p in running:
        out, err = p.communicate(timeout=3600)
        lines = [l for l in out.splitlines() if l.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"failure": err.strip()[-500:]}
        if p.returncode != 0 and not result.get("failure"):
            result["failure"] = f"exit {p.returncode}: {err.strip()[-500:]}"
        results.append(result)
    if procs == 1:
        return results[0]
    total = dict(results[0])
    total["ops_per_s"] = sum(r.get("ops_per_s") or 0 for r in results)
    total["failure"] = next((r["failure"] for r in results if r.get("failure")), None)
    return total


def is_interleaved(case: str) -> bool:
    return case.endswith(" serial")


def run_interleaved(bench: str, servers: list, workload: str, flags: List[str],
                    slices: int) -> Dict[str, dict]:
    """Runs `slices` short runs per server, alternating servers (and which
    goes first), and merges each server's runs into one result. Writing
    workloads also get a slice of the disk alone after each pair (under the
    name "disk"; see `disk_floor`)."""
    runs: Dict[str, List[dict]] = {name: [] for name, _ in servers}
    seconds = float(flags[flags.index("--duration") + 1])
    for i in range(slices):
        for name, server in (servers if i % 2 == 0 else list(reversed(servers))):
            settle([s for _n, s in servers])
            runs[name].append(run_bench(bench, server, workload, flags + ["--histogram"]))
        if workload in WRITING_WORKLOADS:
            settle([s for _n, s in servers])
            runs.setdefault("disk", []).append(disk_floor(seconds))
    return {name: merge_runs(rs) for name, rs in runs.items()}


# The serial workloads whose every request waits for the log on disk.
WRITING_WORKLOADS = ("create", "set")
# About the size of one create record in Canopy's log for the bench's paths.
FLOOR_RECORD_BYTES = 150


def disk_floor(seconds: float) -> dict:
    """What one durable append costs the disk alone, with no server: a
    FLOOR_RECORD_BYTES record appended to a zeroed file with a direct write
    of the 4 KiB block it ends in, then fdatasync, in a loop for `seconds`
    (Canopy's log does the same per serial write; see src/storage/direct.rs).
    Run between the servers' serial slices, it shows how much of their
    latency is the disk's, in the same minutes. In the shape of a bench
    result with a histogram, for `merge_runs`."""
    block = 4096
    # Blocks are rewritten as the appends wrap around: the same to the disk
    # as zeros written ahead, and a small file is quick to zero each slice.
    size = 1 << 20
    folder = tempfile.mkdtemp(prefix="canopy-bench-disk-")
    path = os.path.join(folder, "floor")
    try:
        with open(path, "wb") as f:
            f.write(bytes(size))
            f.flush()
            os.fsync(f.fileno())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError:
            # No direct I/O here (tmpfs): through the page cache.
            fd = os.open(path, os.O_WRONLY)
        counts: Dict[int, int] = {}
        appended = 0
        # Direct I/O wants block-aligned memory: an anonymous map is.
        with mmap.mmap(-1, block) as buf:
            buf.write(b"r" * block)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                offset = (appended % size) // block * block
                t = time.perf_counter_ns()
                os.pwrite(fd, buf, offset)
                os.fdatasync(fd)
                micros = (time.perf_counter_ns() - t) // 1000
                counts[micros] = counts.get(micros, 0) + 1
                appended += FLOOR_RECORD_BYTES
            duration = time.monotonic() - started
        os.close(fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ops = sum(counts.values())
    return {"ops": ops, "duration_s": duration, "ops_per_s": ops / duration,
            "latency_histogram_us": sorted(counts.items()), "server_cpu_us_per_op": None}


def merge_runs(runs: List[dict]) -> dict:
    """One result from several runs of the same workload: operations and
    time added up, server CPU weighted by operations, latency percentiles
    from the merged histograms."""
    failed = next((r for r in runs if r.get("failure") or "latency_histogram_us" not in r), None)
    if failed is not None:
        return failed if failed.get("failure") else dict(failed, failure="no histogram")
    ops = sum(r["ops"] for r in runs)
    seconds = sum(r["duration_s"] for r in runs)
    counts: Dict[int, int] = {}
    for r in runs:
        for micros, n in r["latency_histogram_us"]:
            counts[micros] = counts.get(micros, 0) + n
    cpu = [r.get("server_cpu_us_per_op") for r in runs]
    return {
        "ops": ops,
        "duration_s": seconds,
        "ops_per_s": ops / seconds if seconds else None,
        "latency_ms": latency_from_histogram(counts),
        "server_cpu_us_per_op": (sum(c * r["ops"] for c, r in zip(cpu, runs)) / ops
                                 if ops and None not in cpu else None),
        "extra": {"slices": len(runs)},
        "failure": None,
    }


def latency_from_histogram(counts: Dict[int, int]) -> dict:
    """Percentiles in ms from {microseconds: count}, as the bench computes
    them: the lowest value with at least ceil(q x total) samples at or
    below it."""
    values = sorted(counts)
    total = sum(counts.values())
    if not total:
        return {}

    def at(q: float) -> float:
        wanted = max(1, math.ceil(q * total))
        seen = 0
        for v in values:
            seen += counts[v]
            if seen >= wanted:
                return v / 1000.0
        return values[-1] / 1000.0

    mean = sum(v * n for v, n in counts.items()) / total / 1000.0
    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": values[-1] / 1000.0, "mean": mean}


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    disk = subprocess.run(["df", "-h", "--output=source,fstype,size", tempfile.gettempdir()],
                          capture_output=True, text=True).stdout.strip().splitlines()[-1:]
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1048576:.1f} GiB memory, "
            f"temp dir on {' '.join(disk[0].split()) if disk else '?'}; {platform.platform()}")


def fmt(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def table(results: Dict[Tuple[str, str], List[dict]], plan: List[tuple], rounds: int) -> str:
    rows = ["| case | figure | Canopy | ZooKeeper | Canopy / ZooKeeper |",
            "|---|---|---:|---:|---:|"]
    for case, _workload, _flags, figures in plan:
        for label, path, _lower in figures:
            med = {}
            for name in ("canopy", "zookeeper"):
                values = [v for v in (get_path(r, path) for r in results.get((case, name), [])
                                      if not r.get("failure")) if v is not None]
                med[name] = statistics.median(values) if values else None
            c, z = med["canopy"], med["zookeeper"]
            ratio = f"{c / z:.2f}" if c is not None and z else "-"
            rows.append(f"| {case} | {label} | {fmt(c)} | {fmt(z)} | {ratio} |")
    failures = [f"- {case} on {name}: {r['failure']}"
                for (case, name), rs in results.items() for r in rs if r.get("failure")]
    text = "\n".join(rows)
    floors = []
    for case, _workload, _flags, _figures in plan:
        disk = [r["latency_ms"] for r in results.get((case, "disk"), []) if not r.get("failure")]
        if disk:
            p50 = statistics.median(d["p50"] for d in disk)
            p99 = statistics.median(d["p99"] for d in disk)
            floors.append(f"- {case}: p50 {fmt(p50)} ms, p99 {fmt(p99)} ms")
    if floors:
        text += ("\n\nThe disk alone, between the serial slices of the same minutes (one direct "
                 "4 KiB write + fdatasync per append, no server; medians):\n" + "\n".join(floors))
    if failures:
        text += "\n\nFailed runs (left out of the medians):\n" + "\n".join(failures)
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2 s phases, 100k znodes for mem")
    p.add_argument("--providers", type=int, default=2000)
    p.add_argument("--consumers", type=int, default=100)
    p.add_argument("--big-providers", type=int, default=0,
                   help="providers of the detached register case (0: not run)")
    p.add_argument("--big-consumers", type=int, default=1000)
    p.add_argument("--mem-znodes", type=int, default=None, help="1,000,000 by default")
    p.add_argument("--only", default="", help="comma-separated case names to run (prefixes)")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = p.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        log("== building canopy and canopy-bench (release)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "canopy", "-p", "canopy-bench"],
                       cwd=ROOT, check=True)
    canopy_bin = os.environ.get("CANOPY_BIN", os.path.join(target, "release", "canopy"))
    bench_bin = os.environ.get("CANOPY_BENCH_BIN", os.path.join(target, "release", "canopy-bench"))

    if not zkref.zookeeper_available():
        log("== installing Apache ZooKeeper (Debian packages zookeeper, default-jre-headless)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(sudo + ["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "zookeeper", "default-jre-headless"],
                       check=True, env=env)

    mem_znodes = args.mem_znodes or (100_000 if args.quick else 1_000_000)
    plan = cases(args.quick, args.providers, args.consumers, mem_znodes,
                 args.big_providers, args.big_consumers)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        plan = [c for c in plan if any(c[0].startswith(w) for w in wanted)]
    # Evidence that the load generator is not the limit: the same get load
    # from two bench processes (8 sessions each) instead of one.
    two_procs = not args.only or any("get" in w for w in args.only.split(","))

    results: Dict[Tuple[str, str], List[dict]] = {}
    extra_plan = []
    if two_procs:
        extra_plan.append(("get, 2 bench processes", "get",
                           plan_flags(plan, "get"), [("ops/s", "ops_per_s", False)]))
    for rnd in range(args.rounds):
        servers = [("canopy", Canopy(canopy_bin)), ("zookeeper", ZooKeeper())]
        if rnd % 2:
            servers.reverse()
        for _name, server in servers:
            server.start()
        try:
            for case, workload, flags, _figures in plan + extra_plan:
                if is_interleaved(case):
                    log(f"== round {rnd + 1}/{args.rounds}: {case}, {SERIAL_SLICES} slices "
                        "per server, interleaved")
                    merged = run_interleaved(bench_bin, servers, workload, flags, SERIAL_SLICES)
                    for name, r in merged.items():
                        if r.get("failure"):
                            log(f"   FAILED on {name}: {r['failure']}")
                            keep_server_log(dict(servers)[name], f"{rnd + 1}-{case}-{name}")
                        results.setdefault((case, name), []).append(r)
                    continue
                for name, server in servers:
                    log(f"== round {rnd + 1}/{args.rounds}: {case} on {name}")
                    procs = 2 if case.endswith("2 bench processes") else 1
                    settle([s for _n, s in servers])
                    r = run_bench(bench_bin, server, workload, flags, procs)
                    if r.get("failure"):
                        log(f"   FAILED: {r['failure']}")
                        keep_server_log(server, f"{rnd + 1}-{case}-{name}")
                    results.setdefault((case, name), []).append(r)
        finally:
            for _name, server in servers:
                server.stop()

    command = "python3 scripts/bench-compare.py " + " ".join(sys.argv[1:])
    header = (f"Measured {datetime.date.today().isoformat()} on {machine()}.\n\n"
              f"Command: `{command}` ({args.rounds} rounds, medians; servers fresh every round, "
              f"ZooKeeper 3.8 forceSync=yes -Xmx2g, Canopy release build, both tickTime {TICK_MS}).\n")
    text = header + "\n" + table(results, plan + extra_plan, args.rounds) + "\n"
    print(text)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        with open(path) as f:
            doc = f.read()
        start, end = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
        if start in doc and end in doc:
            doc = doc[: doc.index(start) + len(start)] + "\n" + text + doc[doc.index(end):]
        else:
            doc += f"\n{start}\n{text}{end}\n"
        with open(path, "w") as f:
            f.write(doc)
        log(f"== wrote {path}")
    return 0


def plan_flags(plan: List[tuple], case: str) -> List[str]:
    for c, _w, flags, _f in plan:
        if c == case:
            return list(flags)
    return ["--sessions", "16", "--outstanding", "256", "--duration", "10", "--warmup", "2"]


def with_flag(flags: List[str], name: str, value: str) -> List[str]:
    """`flags` with `name`'s value replaced (or appended)."""
    out = list(flags)
    if name in out:
        out[out.index(name) + 1] = value
    else:
        out += [name, value]
    return out


if __name__ == "__main__":
    sys.exit(main())
