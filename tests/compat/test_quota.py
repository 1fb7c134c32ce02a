"""Quotas as ZooKeeper 3.7+ keeps them: zkCli's ``setquota`` / ``listquota``
write and read ``/zookeeper/quota/<path>/zookeeper_limits`` and
``zookeeper_stats``; the server keeps the stats current; with enforcement on
(``zookeeper.enforceQuota`` / ``--enforce-quota true``) a create or setData
past a hard limit fails with QuotaExceeded (-125), a soft limit only logs.

Each test starts its own server with enforcement on, against Canopy and the
reference ZooKeeper alike.
"""

import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

from conftest import start_server
from test_zkcli import run_cli


@pytest.fixture(scope="module")
def qserver():
    server = start_server(canopy_args=["--enforce-quota", "true"],
                          zk_props=["-Dzookeeper.enforceQuota=true"])
    yield server
    server.stop()


@pytest.fixture
def qzk(qserver):
    client = KazooClient(hosts=qserver.hosts, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def stats_of(zk, root):
    data, stat = zk.get(f"/zookeeper/quota{root}/zookeeper_stats")
    fields = dict(pair.split("=") for pair in data.decode().split(","))
    return {k: int(v) for k, v in fields.items()}, stat


def test_setquota_listquota_and_the_hard_count_limit(qserver, qzk):
    root = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(root, b"abc")
    qzk.create(f"{root}/a", b"12345")
    r = run_cli(qserver, [f"setquota -N 4 {root}", f"listquota {root}"])
    listing = "\n".join(r[1])
    # The limits node holds what zkCli 3.8 wrote, verbatim (its own odd
    # format: "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=4").
    quota_line = next(line for line in r[1] if line.startswith(f"Output quota for {root} "))
    assert "countHardLimit=4" in quota_line
    # The server counted the subtree when the stats node was created.
    assert f"Output stat for {root} count=2,bytes=8" in listing

    qzk.create(f"{root}/b")
    qzk.create(f"{root}/c", b"xy")
    stats, stat = stats_of(qzk, root)
    assert stats == {"count": 4, "bytes": 10}
    # The server changes the stats node's data, not its version.
    assert stat.version == 0 and stat.dataLength == len("count=4,bytes=10")

    with pytest.raises(QuotaExceededError):
        qzk.create(f"{root}/d")
    with pytest.raises(QuotaExceededError):
        qzk.create(f"{root}/a/deeper")
    assert not qzk.exists(f"{root}/d")
    # A setData changes no count: the count limit does not stop it.
    qzk.set(f"{root}/a", b"1234567")
    assert stats_of(qzk, root)[0] == {"count": 4, "bytes": 12}

    # Deleting makes room again.
    qzk.delete(f"{root}/b")
    assert stats_of(qzk, root)[0] == {"count": 3, "bytes": 12}
    qzk.create(f"{root}/d")
    assert stats_of(qzk, root)[0] == {"count": 4, "bytes": 12}


def test_hard_byte_limit_and_soft_limits(qserver, qzk):
    root = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(root)
    soft = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(soft)
    run_cli(qserver, [f"setquota -B 10 {root}", f"setquota -n 2 {soft}"])

    qzk.create(f"{root}/x", b"123456")
    with pytest.raises(QuotaExceededError):
        qzk.create(f"{root}/y", b"12345")
    with pytest.raises(QuotaExceededError):
        qzk.set(f"{root}/x", b"12345678901")
    # Shrinking is always allowed; then the rest fits.
    qzk.set(f"{root}/x", b"1")
    qzk.create(f"{root}/y", b"123456789")
    assert stats_of(qzk, root)[0] == {"count": 3, "bytes": 10}

    # Soft limits are only logged.
    for name in "abc":
        qzk.create(f"{soft}/{name}", b"123")
    assert stats_of(qzk, soft)[0] == {"count": 4, "bytes": 9}


def test_delquota_lifts_the_limit(qserver, qzk):
    root = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(root)
    run_cli(qserver, [f"setquota -N 1 {root}"])
    with pytest.raises(QuotaExceededError):
        qzk.create(f"{root}/a")
    r = run_cli(qserver, [f"delquota {root}", f"listquota {root}"])
    assert not qzk.exists(f"/zookeeper/quota{root}/zookeeper_limits")
    qzk.create(f"{root}/a")
    qzk.create(f"{root}/b")
    assert sorted(qzk.get_children(root)) == ["a", "b"]
    assert any("quota for" in line.lower() or "quota" in line.lower() for line in r[1]) or r[1] == []


def test_quota_check_comes_after_existence_and_before_version(qserver, qzk):
    root = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(root)
    qzk.create(f"{root}/a", b"1")
    run_cli(qserver, [f"setquota -N 2 {root}"])
    other = f"/q-{uuid.uuid4().hex[:8]}"
    qzk.create(other, b"1")
    run_cli(qserver, [f"setquota -B 2 {other}"])
    # The count is full: an existing path is still NodeExists, a missing
    # parent still NoNode.
    from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
    with pytest.raises(NodeExistsError):
        qzk.create(f"{root}/a")
    with pytest.raises(NoNodeError):
        qzk.create(f"{root}/missing/child")
    # A setData past the byte limit with a wrong version: the quota speaks first.
    with pytest.raises(QuotaExceededError):
        qzk.set(other, b"123", version=7)
    with pytest.raises(BadVersionError):
        qzk.set(other, b"12", version=7)
