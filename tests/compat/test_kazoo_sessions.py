"""kazoo: sessions, ephemeral nodes, session expiry, container and TTL nodes."""

import logging
import threading

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import BadArgumentsError, NoNodeError, SessionExpiredError
from kazoo.protocol.states import EventType

from conftest import (
    EVENT_TIMEOUT,
    MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS,
    wait_until,
)


class _NegotiatedTimeout(logging.Handler):
    """Captures the negotiated timeout kazoo logs (at BLATHER level) after
    the ConnectResponse; kazoo does not keep it anywhere else."""

    def __init__(self):
        super().__init__(level=1)
        self.values = []

    def emit(self, record):
        if record.msg.startswith("Session created"):
            self.values.append(record.args[2])


@pytest.mark.parametrize("requested,expected", [
    (100.0, MAX_SESSION_TIMEOUT_MS),  # above 20 ticks -> 20 ticks
    (0.05, MIN_SESSION_TIMEOUT_MS),   # below 2 ticks -> 2 ticks
    (1.0, 1000),                      # in range -> as asked
])
def test_negotiated_session_timeout_is_clamped(make_client, requested, expected):
    logger = logging.getLogger(f"compat.kazoo.{requested}")
    logger.setLevel(1)
    logger.propagate = False
    capture = _NegotiatedTimeout()
    logger.addHandler(capture)
    try:
        client = make_client(timeout=requested, logger=logger)
    finally:
        logger.removeHandler(capture)
    assert capture.values == [expected]
    session_id, passwd = client.client_id
    assert session_id != 0 and len(passwd) == 16


def test_session_ids_are_distinct(make_client):
    ids = {make_client().client_id[0] for _ in range(3)}
    assert len(ids) == 3


def test_ephemeral_owner_and_removal_on_close(make_client, base):
    owner = make_client()
    observer = make_client()
    path = owner.create(f"{base}/eph", b"x", ephemeral=True)
    stat = observer.exists(path)
    assert stat.ephemeralOwner == owner.client_id[0]
    assert observer.exists(base).ephemeralOwner == 0

    # closeSession is a transaction: once stop() returns, the ephemeral is
    # already gone for everybody.
    owner.stop()
    assert observer.exists(path) is None
    assert observer.get_children(base) == []


def test_reconnect_with_session_id_keeps_ephemerals(make_client, base):
    first = make_client()
    path = first.create(f"{base}/eph", ephemeral=True)
    session_id, passwd = first.client_id
    # A second connection presenting the same id+password resumes the session.
    second = make_client(client_id=(session_id, passwd))
    assert second.client_id[0] == session_id
    assert second.exists(path).ephemeralOwner == session_id


def test_session_expiry_via_second_connection(make_client, base):
    """kazoo's own trick: attach a second client to the session and close it.

    The first client is then told its session expired (state LOST), its
    ephemeral nodes are gone, and watches set by others fire."""
    victim = make_client()
    observer = make_client()
    path = victim.create(f"{base}/eph", ephemeral=True)

    lost = threading.Event()
    victim.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)

    deleted = threading.Event()
    events = []

    def watch(event):
        events.append(event)
        deleted.set()

    assert observer.exists(path, watch=watch) is not None

    # The victim's own one-shot watch is dropped when the session is lost;
    # kazoo reports a NONE-typed event to it.
    victim_events = []
    victim.get(f"{base}", watch=victim_events.append)

    intruder = make_client(client_id=victim.client_id)
    intruder.stop()  # closes the shared session

    assert deleted.wait(EVENT_TIMEOUT), "observer's exists() watch never fired"
    assert events[0].type == EventType.DELETED and events[0].path == path
    assert observer.exists(path) is None

    assert lost.wait(EVENT_TIMEOUT), "victim never saw its session expire"
    assert victim.state == KazooState.LOST
    wait_until(lambda: victim_events, what="victim's watch to be reset")
    assert victim_events[0].type == EventType.NONE
    # kazoo then opens a brand-new session by itself.
    wait_until(lambda: victim.connected, what="victim reconnecting")
    assert victim.exists(path) is None


def test_expired_session_cannot_be_resumed(make_client):
    # Once a session is closed/expired, presenting its id and password again
    # must not revive it: the server answers the ConnectRequest with a zero
    # timeout (session expired), and kazoo then opens a brand-new session.
    first = make_client()
    old_id = first.client_id
    path = first.create("/compat-resume-", ephemeral=True, sequence=True)
    first.stop()  # closeSession
    again = make_client(client_id=old_id)
    assert again.connected and again.client_id[0] != old_id[0]
    assert again.exists(path) is None


# --------------------------------------------------------------------------
# Containers (CreateMode.CONTAINER, opcode 19) and TTL nodes (opcode 21)
# --------------------------------------------------------------------------


def test_container_deleted_after_last_child_goes(xzk, base):
    path, stat = xzk.create_container(f"{base}/cont", b"c")
    # Containers are persistent for clients: ephemeralOwner reads 0.
    assert path == f"{base}/cont" and stat.ephemeralOwner == 0
    never_used, _ = xzk.create_container(f"{base}/never-used")
    xzk.create(f"{path}/child")
    gone = threading.Event()
    assert xzk.exists(path, watch=lambda e: gone.set()) is not None
    xzk.delete(f"{path}/child")
    # The server deletes it on its own some time later.
    wait_until(lambda: xzk.exists(path) is None, what="container to be removed")
    assert gone.wait(EVENT_TIMEOUT)  # deletion fires the exists() watch
    # A container that never had a child is not removed.
    assert xzk.exists(never_used) is not None


def test_container_with_children_is_kept(xzk, base):
    path, _ = xzk.create_container(f"{base}/cont")
    xzk.create(f"{path}/a")
    xzk.create(f"{path}/b")
    xzk.delete(f"{path}/a")
    # Still has /b: must survive (wait a little longer than the check period).
    xzk.sync(path)
    assert not _becomes_true(lambda: xzk.exists(path) is None, seconds=3)
    xzk.delete(f"{path}/b")
    wait_until(lambda: xzk.exists(path) is None, what="container removal")


def test_ttl_node_expires_when_childless(xzk, base):
    path, stat = xzk.create_ttl(f"{base}/ttl", b"t", ttl_ms=500)
    assert stat.ephemeralOwner == 0  # TTL is not exposed in the Stat
    assert xzk.get(path)[0] == b"t"
    wait_until(lambda: xzk.exists(path) is None, what="TTL node removal")


def test_ttl_node_with_child_is_kept(xzk, base):
    path, _ = xzk.create_ttl(f"{base}/ttl", ttl_ms=300)
    xzk.create(f"{path}/kid")
    assert not _becomes_true(lambda: xzk.exists(path) is None, seconds=3)
    xzk.delete(f"{path}/kid")
    wait_until(lambda: xzk.exists(path) is None, what="TTL node removal")


def test_ttl_sequential_and_invalid_ttl(xzk, base):
    path, _ = xzk.create_ttl(f"{base}/t-", ttl_ms=60000, sequence=True)
    assert path == f"{base}/t-0000000000"
    with pytest.raises(BadArgumentsError):
        xzk.create_ttl(f"{base}/zero", ttl_ms=0)  # TTL must be > 0
    with pytest.raises(NoNodeError):
        xzk.create_ttl(f"{base}/missing/x", ttl_ms=1000)


def _becomes_true(predicate, seconds):
    """True if predicate() becomes true within ``seconds`` (polling)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
