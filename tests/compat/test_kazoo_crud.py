"""kazoo: create / get / set / delete, versions and Stat bookkeeping."""

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.serialization import Create
from kazoo.security import OPEN_ACL_UNSAFE


def test_create_get_set_delete_roundtrip(zk, base):
    path = zk.create(f"{base}/node", b"hello")
    assert path == f"{base}/node"  # create returns the actual path
    data, stat = zk.get(path)
    assert data == b"hello"
    assert stat.version == 0 and stat.dataLength == 5 and stat.numChildren == 0

    stat2 = zk.set(path, b"world!")  # setData returns the new Stat
    assert stat2.version == 1 and stat2.dataLength == 6
    assert zk.get(path) == (b"world!", stat2)

    zk.delete(path)
    assert zk.exists(path) is None  # exists() gives None, not an error
    with pytest.raises(NoNodeError):
        zk.get(path)


def test_new_node_stat_fields(zk, base):
    # A fresh node: czxid == mzxid == pzxid, ctime == mtime, all versions 0.
    path, stat = zk.create(f"{base}/n", b"abc", include_data=True)  # create2
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime and stat.ctime > 0
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 3 and stat.numChildren == 0
    assert zk.exists(path) == stat


def test_parent_stat_tracks_children(zk, base):
    parent = zk.exists(base)

    # Creating a child bumps the parent's cversion, numChildren and pzxid
    # (to the child's czxid); the parent's data version and mzxid stay.
    _, child = zk.create(f"{base}/c", include_data=True)
    p1 = zk.exists(base)
    assert p1.cversion == parent.cversion + 1
    assert p1.numChildren == 1
    assert p1.pzxid == child.czxid > parent.pzxid
    assert p1.mzxid == parent.mzxid and p1.version == parent.version
    assert child.czxid > parent.czxid

    # Changing the child's data does not touch the parent at all.
    cstat = zk.set(f"{base}/c", b"x")
    assert cstat.mzxid > cstat.czxid and cstat.czxid == child.czxid
    assert cstat.pzxid == child.pzxid  # no child change on the child itself
    assert zk.exists(base) == p1

    # Deleting the child bumps cversion again and moves pzxid to the
    # delete's zxid (which is newer than anything so far).
    zk.delete(f"{base}/c")
    p2 = zk.exists(base)
    assert p2.cversion == parent.cversion + 2
    assert p2.numChildren == 0
    assert p2.pzxid > cstat.mzxid
    assert p2.mzxid == parent.mzxid


def test_versions_conditional_set_and_delete(zk, base):
    path = zk.create(f"{base}/v", b"0")
    assert zk.set(path, b"1", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.set(path, b"2", version=0)  # stale version
    assert zk.set(path, b"2", version=-1).version == 2  # -1 = any version
    assert zk.get(path)[0] == b"2"
    with pytest.raises(BadVersionError):
        zk.delete(path, version=1)
    zk.delete(path, version=2)
    assert zk.exists(path) is None


def test_null_data_differs_from_empty_data(zk, base):
    # ZooKeeper keeps "no data" (null, length -1 on the wire) distinct from
    # an empty byte array; both report dataLength 0.
    zk.create(f"{base}/null", None)
    zk.create(f"{base}/empty", b"")
    data_null, stat_null = zk.get(f"{base}/null")
    data_empty, stat_empty = zk.get(f"{base}/empty")
    assert data_null is None and stat_null.dataLength == 0
    assert data_empty == b"" and stat_empty.dataLength == 0
    zk.set(f"{base}/empty", None)
    assert zk.get(f"{base}/empty")[0] is None


def test_large_value_roundtrip(zk, base):
    value = bytes(range(256)) * 2048  # 512 KiB, below the 1 MiB limit
    zk.create(f"{base}/big", value)
    data, stat = zk.get(f"{base}/big")
    assert data == value and stat.dataLength == len(value)


def test_get_children_and_include_data(zk, base):
    for name in ("b", "a", "c"):
        zk.create(f"{base}/{name}")
    assert sorted(zk.get_children(base)) == ["a", "b", "c"]
    children, stat = zk.get_children(base, include_data=True)  # getChildren2
    assert sorted(children) == ["a", "b", "c"]
    assert stat.numChildren == 3 and stat.cversion == 3
    assert zk.get_children(f"{base}/a") == []


def test_makepath_and_ensure_path(zk, base):
    deep = f"{base}/x/y/z"
    assert zk.create(deep, b"leaf", makepath=True) == deep
    assert zk.get(deep)[0] == b"leaf"
    assert zk.get(f"{base}/x/y")[0] == b""  # intermediate nodes are empty
    zk.ensure_path(f"{base}/x/y/z/w")  # idempotent, creates what's missing
    zk.ensure_path(f"{base}/x/y/z/w")
    assert zk.exists(f"{base}/x/y/z/w") is not None
    zk.delete(f"{base}/x", recursive=True)
    assert zk.exists(f"{base}/x") is None


def test_error_codes(zk, base):
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child")  # parent does not exist
    with pytest.raises(NoNodeError):
        zk.set(f"{base}/missing", b"x")
    with pytest.raises(NoNodeError):
        zk.delete(f"{base}/missing")
    with pytest.raises(NoNodeError):
        zk.get_children(f"{base}/missing")

    zk.create(f"{base}/dup")
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/dup")

    zk.create(f"{base}/dup/kid")
    with pytest.raises(NotEmptyError):
        zk.delete(f"{base}/dup")

    zk.create(f"{base}/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{base}/eph/kid")


def _raw_create(zk, path):
    # kazoo normalises some paths itself, so send the raw Create request to
    # make sure it is the *server* that validates the path.
    result = zk.handler.async_result()
    zk._call(Create(path, b"", OPEN_ACL_UNSAFE, 0), result)
    return result.get(timeout=10)


@pytest.mark.parametrize(
    "suffix",
    ["/", "/.", "/..", "/x\u0000y"],
    ids=["trailing-slash", "dot", "dotdot", "nul"],
)
def test_server_rejects_invalid_paths(zk, base, suffix):
    # PathUtils.validatePath: BadArguments when the parent exists.
    with pytest.raises(BadArgumentsError):
        _raw_create(zk, base + suffix)
    assert zk.get_children(base) == []


@pytest.mark.parametrize("suffix", ["//x", "/./x", "/../x"])
def test_invalid_path_with_missing_parent_is_no_node(zk, base, suffix):
    # ZooKeeper looks the parent up (everything before the last '/') before
    # validating the whole path, so these report NoNode, not BadArguments.
    with pytest.raises(NoNodeError):
        _raw_create(zk, base + suffix)
    assert zk.get_children(base) == []


def test_sequential_suffix_counts_child_creations(zk, base):
    # ZooKeeper stores a per-parent counter of child *creations* and uses it
    # as the 10-digit suffix.  The cversion it reports is derived from it as
    # 2 * creations - numChildren (DataNode.copyStat), i.e. creations plus
    # deletions.  So deletes bump the visible cversion but not the suffix.
    first = zk.create(f"{base}/seq-", sequence=True)
    assert first == f"{base}/seq-0000000000"
    zk.create(f"{base}/plain")
    zk.delete(f"{base}/plain")
    zk.delete(first)
    stat = zk.exists(base)
    assert (stat.cversion, stat.numChildren) == (4, 0)  # 2 creates + 2 deletes
    assert zk.create(f"{base}/seq-", sequence=True) == f"{base}/seq-0000000002"

    # Three more plain creates and deletes: suffix goes on from 3 + 3.
    for i in range(3):
        zk.create(f"{base}/p{i}")
    for i in range(3):
        zk.delete(f"{base}/p{i}")
    stat = zk.exists(base)
    assert (stat.cversion, stat.numChildren) == (11, 1)
    created = (stat.cversion + stat.numChildren) // 2
    assert created == 6
    # A sequential name may be just the suffix under the parent.
    assert zk.create(f"{base}/", sequence=True) == f"{base}/0000000006"
    # Ephemeral-sequential nodes share the same counter.
    eph = zk.create(f"{base}/e-", ephemeral=True, sequence=True)
    assert eph == f"{base}/e-0000000007"
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]
    assert sorted(zk.get_children(base)) == [
        "0000000006", "e-0000000007", "seq-0000000002"]


def test_zxids_increase_across_writes(zk, base):
    zxids = []
    for i in range(5):
        _, stat = zk.create(f"{base}/n{i}", include_data=True)
        zxids.append(stat.czxid)
    assert zxids == sorted(zxids) and len(set(zxids)) == 5
    stat = zk.set(f"{base}/n0", b"later")
    assert stat.mzxid > zxids[-1]
    assert zk.last_zxid >= stat.mzxid  # reply headers carry the zxid too
