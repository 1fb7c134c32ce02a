"""kazoo: four-letter words, server_version() and sync()."""

import threading

from conftest import EVENT_TIMEOUT, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS, TICK_MS


def test_ruok(zk):
    assert zk.command(b"ruok") == "imok"


def test_srvr(zk, server, base):
    zk.set(base, b"bump")  # reply headers carry the zxid
    out = zk.command(b"srvr")
    assert out.startswith("Zookeeper version: ")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["Mode"] == "standalone"
    assert int(lines["Zxid"], 16) >= zk.last_zxid > 0
    assert int(lines["Node count"]) >= 2  # at least / and /zookeeper
    if server.kind == "canopy":
        assert lines["Zookeeper version"].startswith("3.9.")


def test_server_version_from_envi(zk, server):
    # kazoo parses "zookeeper.version=X.Y.Z-..." out of the envi reply.
    version = zk.server_version()
    assert len(version) == 3 and all(isinstance(v, int) for v in version)
    assert version[0] == 3 and version[1] >= 8
    if server.kind == "canopy":
        assert version[:2] == (3, 9)
    assert "Environment:" in zk.command(b"envi")


def test_conf_reports_tick_and_session_bounds(zk):
    conf = dict(
        line.split("=", 1) for line in zk.command(b"conf").splitlines() if "=" in line
    )
    assert int(conf["tickTime"]) == TICK_MS
    assert int(conf["minSessionTimeout"]) == MIN_SESSION_TIMEOUT_MS
    assert int(conf["maxSessionTimeout"]) == MAX_SESSION_TIMEOUT_MS


def test_mntr_and_isro(zk):
    assert zk.command(b"isro") == "rw"
    mntr = dict(
        line.split("\t", 1) for line in zk.command(b"mntr").splitlines() if "\t" in line
    )
    assert mntr["zk_server_state"] == "standalone"
    assert int(mntr["zk_znode_count"]) >= 2
    assert "zk_version" in mntr


def test_sync_then_read_sees_other_clients_write(make_client, base):
    writer, reader = make_client(), make_client()
    writer.create(f"{base}/s", b"v")
    reader.sync(f"{base}/s")  # sync returns the path, then reads are current
    assert reader.get(f"{base}/s")[0] == b"v"
    done = threading.Event()
    reader.sync_async(base).rawlink(lambda r: done.set())
    assert done.wait(EVENT_TIMEOUT)
