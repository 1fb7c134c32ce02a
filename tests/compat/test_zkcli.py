"""Apache ZooKeeper's own Java CLI (zkCli.sh, ZooKeeper 3.8 client) scripted
against the server under test.

To keep JVM start-ups few, each test feeds one script on stdin.  After every
command we add ``ls /__compat_cli_marker_N``: its error line ("Node does not
exist: ...") splits the output into one segment per command.  Watch events,
printed asynchronously by the CLI's event thread, are collected separately.
"""

import os
import re
import shutil
import subprocess
import uuid

import pytest
from kazoo.security import make_digest_acl_credential

from conftest import wait_until

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
MARKER = "/__compat_cli_marker_"
EVENT_RE = re.compile(r"WatchedEvent state:(\w+) type:(\w+) path:(\S+)")
NOISE = ("SLF4J:", "Connecting to ", "Welcome to ZooKeeper!", "JLine support is",
         "WATCHER::")


def cli_argv(server, *args):
    if os.path.exists(ZKCLI):
        return [ZKCLI, "-server", server.hosts, *args]
    try:
        from zkref import zkcli_command  # tests/support/zkref.py
    except ImportError:
        pytest.skip("zkCli.sh not installed")
    return zkcli_command(server.hosts, *args)


pytestmark = pytest.mark.skipif(
    not (os.path.exists(ZKCLI) or shutil.which("java")), reason="no ZooKeeper CLI")


class CliRun:
    def __init__(self, segments, events, raw):
        self.segments = segments  # one list of output lines per command
        self.events = events  # [(type, path)] in order of printing
        self.raw = raw

    def __getitem__(self, i):
        return self.segments[i]


def run_cli(server, commands, timeout=60):
    script = []
    for i, cmd in enumerate(commands):
        script += [cmd, f"ls {MARKER}{i}"]
    script.append("quit")
    proc = subprocess.run(
        cli_argv(server), input="\n".join(script) + "\n", text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        env={**os.environ, "ZOO_LOG_DIR": "/tmp"},
    )
    segments, events, current = [], [], []
    for line in proc.stdout.splitlines():
        m = EVENT_RE.search(line)
        if m:
            if m.group(2) != "None":
                events.append((m.group(2), m.group(3)))
            continue
        if not line.strip() or line.startswith(NOISE):
            continue
        if line == f"Node does not exist: {MARKER}{len(segments)}":
            segments.append(current)
            current = []
            continue
        current.append(line)
    assert len(segments) == len(commands), f"CLI output not understood:\n{proc.stdout}"
    return CliRun(segments, events, proc.stdout)


def parse_stat(lines):
    """'cZxid = 0x2' ... lines -> dict (ints for the numeric fields)."""
    stat = {}
    for line in lines:
        if " = " in line:
            key, value = line.split(" = ", 1)
            if key in ("ctime", "mtime"):
                stat[key] = value
            else:
                stat[key] = int(value, 16) if value.startswith("0x") else int(value)
    return stat


@pytest.fixture
def cbase(zk):
    path = f"/cli-{uuid.uuid4().hex[:10]}"
    return path


def test_cli_create_get_set_stat_delete(server, cbase, zk):
    r = run_cli(server, [
        f"create {cbase} hello",
        f"get {cbase}",
        f"set {cbase} world",
        f"get -s {cbase}",
        f"stat {cbase}",
        f"create {cbase}/nodata",
        f"get {cbase}/nodata",
        f"delete {cbase}/nodata",
        f"ls {cbase}",
    ])
    assert r[0] == [f"Created {cbase}"]
    assert r[1] == ["hello"]
    assert r[2] == []  # set prints nothing
    assert r[3][0] == "world"
    stat = parse_stat(r[3][1:])
    assert stat["dataVersion"] == 1 and stat["dataLength"] == 5
    assert stat["cZxid"] < stat["mZxid"] and stat["ephemeralOwner"] == 0
    assert parse_stat(r[4]) == stat  # stat == the stat part of get -s
    assert r[6] == ["null"]  # created without data -> null data
    assert r[8] == ["[]"]
    # And kazoo agrees with what the CLI did.
    data, kstat = zk.get(cbase)
    assert data == b"world" and kstat.version == 1
    assert kstat.czxid == stat["cZxid"] and kstat.mzxid == stat["mZxid"]
    assert kstat.cversion == 2 and kstat.numChildren == 0


def test_cli_ephemeral_and_sequential(server, cbase, zk):
    r = run_cli(server, [
        f"create {cbase}",
        f"create -e {cbase}/eph e",
        f"create -s {cbase}/seq- s",
        f"create -e -s {cbase}/eseq- x",
        f"stat {cbase}/eph",
        f"ls {cbase}",
    ])
    assert r[1] == [f"Created {cbase}/eph"]
    assert r[2] == [f"Created {cbase}/seq-0000000001"]
    assert r[3] == [f"Created {cbase}/eseq-0000000002"]
    owner = parse_stat(r[4])["ephemeralOwner"]
    assert owner != 0
    assert r[5] == [f"[eph, eseq-0000000002, seq-0000000001]"]
    # The CLI closed its session on quit: ephemerals are gone.
    assert sorted(zk.get_children(cbase)) == ["seq-0000000001"]


def test_cli_ls_variants(server, cbase):
    r = run_cli(server, [
        f"create {cbase}",
        f"create {cbase}/b",
        f"create {cbase}/a",
        f"create {cbase}/a/x",
        f"ls {cbase}",
        f"ls -s {cbase}",
        f"ls -R {cbase}",
        "ls /zookeeper",
    ])
    assert r[4] == ["[a, b]"]
    assert r[5][0] == "[a, b]"
    stat = parse_stat(r[5][1:])
    assert stat["numChildren"] == 2 and stat["cversion"] == 2
    assert r[6] == [cbase, f"{cbase}/a", f"{cbase}/b", f"{cbase}/a/x"]
    assert "quota" in r[7][0]


def test_cli_error_messages(server, cbase):
    r = run_cli(server, [
        f"create {cbase}",
        f"create {cbase}/kid v",
        f"create {cbase}",
        f"delete {cbase}",
        f"delete -v 5 {cbase}/kid",
        f"set -v 9 {cbase}/kid w",
        f"get {cbase}/missing",
        f"create {cbase}/missing/kid",
        f"create -e {cbase}/e",
        f"create {cbase}/e/kid",
    ])
    assert r[2] == [f"Node already exists: {cbase}"]
    assert r[3] == [f"Node not empty: {cbase}"]
    assert r[4] == [f"version No is not valid : {cbase}/kid"]
    assert r[5] == [f"version No is not valid : {cbase}/kid"]
    assert r[6] == [f"Node does not exist: {cbase}/missing"]
    assert r[7] == [f"Node does not exist: {cbase}/missing/kid"]
    assert r[9] == [f"Ephemerals cannot have children: {cbase}/e/kid"]


def test_cli_deleteall(server, cbase, zk):
    zk.create(f"{cbase}/a/b/c", makepath=True)
    zk.create(f"{cbase}/d")
    r = run_cli(server, [f"deleteall {cbase}", f"ls {cbase}"])
    assert r[0] == []
    assert r[1] == [f"Node does not exist: {cbase}"]
    assert zk.exists(cbase) is None


def test_cli_acls_addauth_whoami(server, cbase, zk):
    r = run_cli(server, [
        f"create {cbase} v",
        f"getAcl {cbase}",
        f"setAcl {cbase} world:anyone:r",
        f"getAcl {cbase}",
        f"set {cbase} w",
        "whoami",
        "addauth digest user1:pw1",
        "whoami",
        f"create {cbase}2 p",
        f"setAcl {cbase}2 auth:user1:pw1:cdrwa",
        f"getAcl {cbase}2",
        f"get {cbase}2",
        f"setAcl -v 7 {cbase}2 world:anyone:cdrwa",
    ])
    assert r[1] == ["'world,'anyone", ": cdrwa"]
    assert r[3] == ["'world,'anyone", ": r"]
    assert r[4] == [f"Insufficient permission : {cbase}"]
    assert r[5] == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert r[7] == ["Auth scheme: User", "ip: 127.0.0.1", "digest: user1"]
    # "auth" is stored as digest user:base64(sha1("user:password")).
    assert r[10] == ["'digest,'" + make_digest_acl_credential("user1", "pw1"), ": cdrwa"]
    assert r[11] == ["p"]
    assert r[12] == [f"version No is not valid : {cbase}2"]
    # Another (unauthenticated) client is locked out of the second node.
    from kazoo.exceptions import NoAuthError
    with pytest.raises(NoAuthError):
        zk.get(f"{cbase}2")
    zk.add_auth("digest", "user1:pw1")
    zk.delete(f"{cbase}2")


def test_cli_one_shot_and_persistent_watches(server, cbase):
    r = run_cli(server, [
        f"create {cbase}",
        f"get -w {cbase}",
        f"set {cbase} a",
        f"set {cbase} b",  # one-shot watch already used: no event
        f"ls -w {cbase}",
        f"create {cbase}/kid",
        f"addWatch -m PERSISTENT_RECURSIVE {cbase}",
        f"create {cbase}/kid/g",
        f"set {cbase}/kid/g x",
        f"delete {cbase}/kid/g",
        f"addWatch {cbase}/other",  # default mode: PERSISTENT_RECURSIVE
        "sync /",
    ])
    assert r[11] == ["Sync is OK"]
    assert r.events == [
        ("NodeDataChanged", cbase),
        ("NodeChildrenChanged", cbase),
        ("NodeCreated", f"{cbase}/kid/g"),
        ("NodeDataChanged", f"{cbase}/kid/g"),
        ("NodeDeleted", f"{cbase}/kid/g"),
    ]


def test_cli_container_and_ttl(server, cbase, zk):
    r = run_cli(server, [
        f"create {cbase}",
        f"create -c {cbase}/cont",
        f"create {cbase}/cont/kid",
        f"delete {cbase}/cont/kid",
        f"create -t 500 {cbase}/ttl data",
        f"stat {cbase}/ttl",
    ])
    assert r[1] == [f"Created {cbase}/cont"]
    assert r[4] == [f"Created {cbase}/ttl"]
    assert parse_stat(r[5])["ephemeralOwner"] == 0
    # The server removes both by itself.
    wait_until(lambda: zk.exists(f"{cbase}/cont") is None, what="container removal")
    wait_until(lambda: zk.exists(f"{cbase}/ttl") is None, what="TTL node removal")


def test_cli_single_command_mode(server, cbase, zk):
    zk.create(cbase, b"from-kazoo")
    proc = subprocess.run(cli_argv(server, "get", cbase), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                          env={**os.environ, "ZOO_LOG_DIR": "/tmp"})
    assert proc.returncode == 0
    lines = [l for l in proc.stdout.splitlines()
             if l.strip() and not l.startswith(NOISE) and not EVENT_RE.search(l)]
    assert lines == ["from-kazoo"]
