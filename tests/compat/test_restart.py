"""Durability across a crash: kill -9 the server, start it again on the same
port from the same data directory, and check with the real kazoo client that

1. sessions survive (same session id, CONNECTED and never LOST, ephemeral
   and persistent nodes intact), while a session whose client never comes
   back expires after its timeout, deleting its ephemeral node and firing
   the watches set on it;
2. every acknowledged write is there afterwards, with its data and Stat;
3. zxids go on growing past the restart and reconnecting clients (which
   present the last zxid they saw) are not refused.

Each test gets a private server (``restartable_server`` in conftest.py) with
tickTime 1000 ms, so a 10 s session timeout is within [2, 20] ticks.  The
same code runs against Canopy and against Apache ZooKeeper 3.8.
"""

import socket
import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.protocol.serialization import (
    Connect,
    Create,
    int_int_struct,
    int_struct,
    read_string,
    reply_header_struct,
)
from kazoo.protocol.states import EventType
from kazoo.security import OPEN_ACL_UNSAFE

from conftest import wait_until

SESSION_TIMEOUT = 10.0  # seconds; 10 ticks of the private servers' 1000 ms
RECONNECT_BOUND = 30.0  # server start (a JVM for ZooKeeper) + kazoo's retry
EXPIRY_BOUND = 40.0  # orphan session timeout (10 s) + slack
N_WRITES = 500

# kazoo reconnects by itself; this only caps its back-off between attempts
# at 0.5 s (the default doubles up to an hour), so that it notices the
# restarted server promptly instead of sleeping through several seconds.
FAST_RECONNECT = dict(max_tries=-1, delay=0.1, backoff=1.5, max_delay=0.5)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class StateLog:
    """Records every KazooState a client goes through, and lets a test wait
    for "connected again after having been suspended"."""

    def __init__(self, client):
        self.states = []
        self._lock = threading.Lock()
        self._reconnected = threading.Event()
        client.add_listener(self._listen)

    def _listen(self, state):
        with self._lock:
            self.states.append(state)
            if state == KazooState.CONNECTED and KazooState.SUSPENDED in self.states:
                self._reconnected.set()

    def wait_reconnected(self, client, srv, what):
        if not self._reconnected.wait(RECONNECT_BOUND):
            pytest.fail(
                f"{what}: kazoo did not get back to CONNECTED within "
                f"{RECONNECT_BOUND}s; states seen: {self.states}; "
                f"client state {client.state}\nserver log tail:\n{srv.log(60)}"
            )
        assert KazooState.LOST not in self.states, (
            f"{what}: session was LOST across the restart; states: {self.states}"
            f"\nserver log tail:\n{srv.log(60)}"
        )


class OrphanSession:
    """A session whose client disappears together with the server and never
    comes back.

    Why a plain socket: a KazooClient cannot be made to "vanish" robustly.
    It reconnects by itself after the restart (that is what test 1 checks
    for the surviving client), its stop() sends closeSession, and poking at
    its private connection thread/socket depends on kazoo internals and
    races with its own reconnect loop.  This class speaks the wire protocol
    over one socket, encoded with kazoo's own serializers (ConnectRequest,
    Create), and has no reconnect logic at all: once the server is killed
    the session has no client anywhere, exactly like a client process that
    crashed at the same moment.  Only a server-side expiry can end it.
    """

    def __init__(self, host, port, timeout_ms):
        self.sock = socket.create_connection((host, port), timeout=10)
        self._xid = 0
        self._send(Connect(0, 0, timeout_ms, 0, b"\x00" * 16, False).serialize())
        result, _ = Connect.deserialize(self._recv(), 0)
        assert result.time_out > 0, "orphan session refused"
        self.session_id = result.session_id
        self.timeout_ms = result.time_out

    def create(self, path, data, ephemeral):
        self._xid += 1
        flags = 1 if ephemeral else 0
        self._send(
            int_int_struct.pack(self._xid, Create.type)
            + Create(path, data, OPEN_ACL_UNSAFE, flags).serialize()
        )
        while True:
            body = self._recv()
            xid, zxid, err = reply_header_struct.unpack_from(body, 0)
            if xid == self._xid:
                break  # (anything else would be a notification: none expected)
        assert err == 0, f"orphan create({path}) failed with error {err}"
        created, _ = read_string(body, reply_header_struct.size)
        return created, zxid

    def close_socket(self):
        """Drop the TCP connection only (no closeSession is ever sent)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, payload):
        self.sock.sendall(int_struct.pack(len(payload)) + bytes(payload))

    def _recv(self):
        (length,) = int_struct.unpack(self._recv_exact(4))
        return self._recv_exact(length)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)


@pytest.fixture
def restart_client(restartable_server):
    """Factory for started KazooClients (10 s sessions, prompt reconnect);
    stopped before the private servers are (the fixture depends on them)."""
    clients = []

    def make(srv, **kwargs):
        c = KazooClient(hosts=srv.hosts, timeout=SESSION_TIMEOUT,
                        connection_retry=dict(FAST_RECONNECT), **kwargs)
        clients.append(c)
        c.start(timeout=RECONNECT_BOUND)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def crash_and_restart(srv):
    """SIGKILL the server and start it again at once on the same port and
    data dir; returns (seconds from kill to the restart command, seconds
    until the restarted server accepted connections)."""
    t0 = time.monotonic()
    srv.kill()
    t1 = time.monotonic()
    srv.start()
    return t1 - t0, time.monotonic() - t1


def zxids_of(stat):
    return (stat.czxid, stat.mzxid, stat.pzxid)


def report(what, **values):
    print(f"\n[{what}] " + " ".join(f"{k}={v}" for k, v in values.items()))


# --------------------------------------------------------------------------
# 1. sessions survive a crash; a client that never returns expires
# --------------------------------------------------------------------------


def test_sessions_survive_kill_and_restart(restartable_server, restart_client):
    srv = restartable_server(tick_ms=1000)
    zk = restart_client(srv)
    log = StateLog(zk)
    session_before = zk.client_id

    base = "/restart-sessions"
    zk.create(base)
    eph, eph_stat = zk.create(f"{base}/eph", b"ephemeral-data",
                              ephemeral=True, include_data=True)
    per, _ = zk.create(f"{base}/persistent", b"v0", include_data=True)
    per_stat = zk.set(per, b"persistent-data")  # version 1
    assert eph_stat.ephemeralOwner == session_before[0]

    orphan = OrphanSession(srv.host, srv.port, int(SESSION_TIMEOUT * 1000))
    try:
        orphan_path, _ = orphan.create(f"{base}/orphan", b"orphan-data", True)
        assert orphan.timeout_ms == int(SESSION_TIMEOUT * 1000)
        assert zk.exists(orphan_path).ephemeralOwner == orphan.session_id

        # Watch set BEFORE the crash.  kazoo does not re-register watches
        # after a reconnect (it never sends SetWatches): on the connection
        # loss it fires every pending watch once with a NONE event and drops
        # it.  Checked so the client side is known; the server-side watch is
        # the one set after the restart, below.
        before_events = []
        before_fired = threading.Event()

        def before_watch(event):
            before_events.append(event)
            before_fired.set()

        assert zk.exists(orphan_path, watch=before_watch) is not None

        kill_s, start_s = crash_and_restart(srv)
        restarted = time.monotonic()
        assert kill_s < 2.0  # the restart command follows the kill at once
        log.wait_reconnected(zk, srv, "surviving client")
        reconnect_s = time.monotonic() - restarted
        assert before_fired.wait(10), "kazoo did not reset the pre-crash watch"

        assert zk.state == KazooState.CONNECTED
        assert zk.client_id == session_before, "session id/password changed"

        data, stat = zk.get(eph)
        assert data == b"ephemeral-data"
        assert stat == eph_stat
        assert stat.ephemeralOwner == session_before[0]
        data, stat = zk.get(per)
        assert data == b"persistent-data"
        assert stat == per_stat and stat.version == 1

        # The orphan session was restored too: its node is still there (its
        # 10 s are counted from the restart) ...
        stat = zk.exists(orphan_path)
        assert stat is not None, (
            "orphan's ephemeral vanished right after the restart\n" + srv.log(60))
        assert stat.ephemeralOwner == orphan.session_id

        # ... and a watch set after the restart, on the resumed session.
        after_events = []
        after_fired = threading.Event()

        def after_watch(event):
            after_events.append(event)
            after_fired.set()

        assert zk.get(orphan_path, watch=after_watch)[0] == b"orphan-data"

        # Nobody ever speaks for the orphan session again: it must expire.
        wait_until(lambda: zk.exists(orphan_path) is None, timeout=EXPIRY_BOUND,
                   interval=0.2, what="orphan session's ephemeral to be deleted")
        expired_s = time.monotonic() - restarted

        assert after_fired.wait(10), "watch set after the restart never fired"
        assert [(e.type, e.path) for e in after_events] == [
            (EventType.DELETED, orphan_path)]
        assert [(e.type, e.path) for e in before_events] == [
            (EventType.NONE, None)]

        # The surviving session was kept alive all along.
        assert zk.client_id == session_before
        assert zk.exists(eph).ephemeralOwner == session_before[0]
        assert sorted(zk.get_children(base)) == ["eph", "persistent"]
        assert KazooState.LOST not in log.states, log.states
        report(srv.kind, kill_to_restart_s=f"{kill_s:.3f}",
               server_start_s=f"{start_s:.2f}", reconnect_s=f"{reconnect_s:.2f}",
               orphan_expired_after_restart_s=f"{expired_s:.1f}",
               states=[str(s) for s in log.states])
    finally:
        orphan.close_socket()


# --------------------------------------------------------------------------
# 2. every acknowledged write survives SIGKILL
# --------------------------------------------------------------------------


def test_acknowledged_writes_survive_sigkill(restartable_server, restart_client):
    srv = restartable_server(tick_ms=1000)
    zk = restart_client(srv)
    log = StateLog(zk)

    base = "/restart-writes"
    zk.create(base)
    n_nodes = 100
    expected = {}  # path -> (data, Stat returned by the acknowledged write)
    for i in range(N_WRITES):
        # creates first, then sets spread unevenly (versions 0..many)
        path = f"{base}/n{(i if i < n_nodes else i * i // 7) % n_nodes:03d}"
        data = f"write-{i}".encode() * (1 + i % 7)
        if i < n_nodes:
            _, stat = zk.create(path, data, include_data=True)
        else:
            stat = zk.set(path, data)
        expected[path] = (data, stat)
    seq_parent = f"{base}-seq"
    zk.create(seq_parent)
    seq = [zk.create(f"{seq_parent}/s-", sequence=True) for _ in range(3)]
    assert seq[-1] == f"{seq_parent}/s-0000000002"
    zk.delete(seq[-1])  # the counter (cversion) must not go back to 2
    parent = zk.exists(base)
    # The last write was acknowledged just now; crash immediately.
    kill_s, start_s = crash_and_restart(srv)
    log.wait_reconnected(zk, srv, "writer")

    missing = []
    for path, (data, stat) in sorted(expected.items()):
        got = zk.exists(path)
        if got is None:
            missing.append(f"{path}: gone (expected version {stat.version})")
            continue
        got_data, got_stat = zk.get(path)
        if got_data != data or got_stat != stat:
            missing.append(f"{path}: expected {data!r} {stat}, got {got_data!r} {got_stat}")
    assert not missing, (
        f"{len(missing)} acknowledged writes lost or changed, e.g.:\n"
        + "\n".join(missing[:10]) + "\nserver log tail:\n" + srv.log(60))
    assert zk.exists(base) == parent
    assert sorted(zk.get_children(base)) == sorted(p.rsplit("/", 1)[1] for p in expected)
    assert zk.create(f"{seq_parent}/s-", sequence=True) == f"{seq_parent}/s-0000000003"
    versions = sorted({s.version for _, s in expected.values()})
    report(srv.kind, writes=N_WRITES, nodes=n_nodes, versions=versions,
           kill_to_restart_s=f"{kill_s:.3f}", server_start_s=f"{start_s:.2f}")


# --------------------------------------------------------------------------
# 3. zxids go on past the restart; reconnecting clients are not refused
# --------------------------------------------------------------------------


def test_zxids_continue_after_restart(restartable_server, restart_client):
    srv = restartable_server(tick_ms=1000)
    zk = restart_client(srv)
    log = StateLog(zk)
    session = zk.client_id

    base = "/restart-zxids"
    seen = []
    _, stat = zk.create(base, include_data=True)
    seen += zxids_of(stat)
    for i in range(20):
        _, stat = zk.create(f"{base}/c{i}", b"x", include_data=True)
        seen += zxids_of(stat)
        seen += zxids_of(zk.set(f"{base}/c{i}", b"y"))
    seen += zxids_of(zk.exists(base))
    seen.append(zk.last_zxid)
    before = max(seen)
    # A second client that saw the newest zxid too, and will reconnect.
    other = restart_client(srv)
    other_log = StateLog(other)
    other.sync(base)
    assert other.exists(base).pzxid == zk.exists(base).pzxid

    crash_and_restart(srv)
    log.wait_reconnected(zk, srv, "client 1 after restart 1")
    other_log.wait_reconnected(other, srv, "client 2 after restart 1")
    assert zk.client_id == session

    _, first = zk.create(f"{base}/after-1", b"a", include_data=True)
    assert first.czxid == first.mzxid == first.pzxid
    assert first.czxid > before, (
        f"first zxid after the restart 0x{first.czxid:x} is not above the "
        f"largest seen before it 0x{before:x}\n" + srv.log(60))
    set_stat = other.set(f"{base}/c0", b"z")
    assert set_stat.mzxid > first.czxid
    assert set_stat.czxid < before  # created before the crash, kept its czxid
    after_first = max(set_stat.mzxid, zk.last_zxid, other.last_zxid)

    # Two more crashes with NO write in between, the second right after
    # the clients got back: they reconnect presenting the zxids they saw and
    # must not be refused, and zxids must still go on growing afterwards.
    for n in (2, 3):
        logs = [(StateLog(zk), zk, "client 1"), (StateLog(other), other, "client 2")]
        crash_and_restart(srv)
        for lg, c, name in logs:
            lg.wait_reconnected(c, srv, f"{name} after restart {n}")
            c.remove_listener(lg._listen)
    assert zk.client_id == session
    assert KazooState.LOST not in log.states + other_log.states

    _, second = zk.create(f"{base}/after-3", b"b", include_data=True)
    assert second.czxid > after_first, (
        f"zxid 0x{second.czxid:x} after restarts 2+3 is not above "
        f"0x{after_first:x} seen before them\n" + srv.log(60))

    # A brand-new client connecting with the newest zxid is accepted as well.
    fresh = KazooClient(hosts=srv.hosts, timeout=SESSION_TIMEOUT)
    fresh.last_zxid = second.czxid
    try:
        fresh.start(timeout=RECONNECT_BOUND)
        assert fresh.get(f"{base}/after-3")[0] == b"b"
    finally:
        fresh.stop()
        fresh.close()

    report(srv.kind, before=hex(before), first_after=hex(first.czxid),
           after_restarts_2_3=hex(second.czxid),
           epochs=[before >> 32, first.czxid >> 32, second.czxid >> 32])


# --------------------------------------------------------------------------
# 4. a session closed before the crash stays closed
# --------------------------------------------------------------------------


def test_closed_session_stays_closed_after_restart(restartable_server, restart_client):
    srv = restartable_server(tick_ms=1000)
    zk = restart_client(srv)
    gone = restart_client(srv)
    path = gone.create("/restart-closed-eph", b"e", ephemeral=True)
    old_id = gone.client_id
    gone.stop()  # closeSession: acknowledged, so it is a durable transaction
    assert zk.exists(path) is None

    crash_and_restart(srv)
    wait_until(lambda: zk.connected, timeout=30, what="client reconnecting")
    assert zk.exists(path) is None, "closed session's ephemeral came back"
    # Presenting the closed session's id+password again must not revive it.
    again = restart_client(srv, client_id=old_id)
    assert again.client_id[0] != old_id[0]
    assert again.exists(path) is None
