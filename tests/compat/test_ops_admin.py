"""Canopy's admin API seen by a real client (kazoo): forcing a session off
through ``DELETE /v1/sessions/{id}`` is an expiry for its client (kazoo goes
to LOST) and fires other clients' watches. Canopy only: ZooKeeper has no
``/v1`` API."""

import json
import threading
import urllib.request

import pytest
from kazoo.client import KazooClient, KazooState

from conftest import EVENT_TIMEOUT, HOST, TARGET, TICK_MS, CanopyServer, free_port

pytestmark = pytest.mark.skipif(TARGET == "zookeeper", reason="Canopy's own admin API")


@pytest.fixture
def admin_server():
    import os

    admin_port = free_port()
    impl = CanopyServer(os.environ["CANOPY_BIN"], TICK_MS,
                        extra_args=["--admin-port", str(admin_port)]).start()
    yield impl, f"http://{HOST}:{admin_port}"
    impl.stop()


def call(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def started(port):
    client = KazooClient(hosts=f"{HOST}:{port}", timeout=4.0)
    client.start(timeout=EVENT_TIMEOUT)
    return client


def test_forced_removal_is_an_expiry_for_kazoo(admin_server):
    impl, admin = admin_server
    owner, watcher = started(impl.port), started(impl.port)
    try:
        lost = threading.Event()
        owner.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
        owner.ensure_path("/registry/svc")
        owner.create("/registry/svc/provider-1", b"addr", ephemeral=True)

        deleted, children = threading.Event(), threading.Event()
        watcher.exists("/registry/svc/provider-1", watch=lambda e: deleted.set())
        watcher.get_children("/registry/svc", watch=lambda e: children.set())

        session_hex = f"0x{owner.client_id[0]:x}"
        status, listed = call(f"{admin}/v1/sessions")
        assert status == 200
        assert session_hex in [s["id"] for s in listed["sessions"]]

        status, body = call(f"{admin}/v1/sessions/{session_hex}", method="DELETE")
        assert status == 200 and body["ephemerals_removed"] == 1

        assert deleted.wait(EVENT_TIMEOUT), "the watcher's exists watch fired"
        assert children.wait(EVENT_TIMEOUT), "the watcher's child watch fired"
        assert watcher.exists("/registry/svc/provider-1") is None
        assert lost.wait(EVENT_TIMEOUT), "kazoo saw its session expire (LOST)"

        status, monitor = call(f"{admin}/commands/monitor")
        assert monitor["command"] == "monitor" and monitor["error"] is None
        assert monitor["ephemerals_count"] == 0
    finally:
        for client in (owner, watcher):
            client.stop()
            client.close()
