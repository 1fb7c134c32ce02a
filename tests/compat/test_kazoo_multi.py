"""kazoo: multi-op transactions (opcode 14) and their exact result lists."""

import threading

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType

from conftest import EVENT_TIMEOUT, wait_until


def _types(results):
    return [type(r) for r in results]


def test_successful_transaction_results(zk, base):
    zk.create(f"{base}/old", b"o")
    zk.create(f"{base}/gone")
    t = zk.transaction()
    t.create(f"{base}/new", b"n")
    t.create(f"{base}/seq-", sequence=True)
    t.set_data(f"{base}/old", b"o2", version=0)
    t.check(f"{base}/old", 1)  # sees the set_data above (version now 1)
    t.delete(f"{base}/gone")
    results = t.commit()

    # create -> path, setData -> Stat, check -> True, delete -> True.
    assert results[0] == f"{base}/new"
    assert results[1] == f"{base}/seq-0000000003"  # counts /new just before
    assert results[2].version == 1 and results[2].dataLength == 2
    assert results[3:] == [True, True]
    assert zk.get(f"{base}/old")[0] == b"o2"
    assert zk.exists(f"{base}/gone") is None

    # Everything in one multi shares a single zxid.
    new = zk.exists(f"{base}/new")
    assert new.czxid == zk.exists(results[1]).czxid == results[2].mzxid


def test_ops_see_earlier_ops_of_the_same_transaction(zk, base):
    t = zk.transaction()
    t.create(f"{base}/a")
    t.create(f"{base}/a/b", b"x")
    t.delete(f"{base}/a/b")
    t.create(f"{base}/a/b", b"y")
    assert t.commit() == [f"{base}/a", f"{base}/a/b", True, f"{base}/a/b"]
    assert zk.get(f"{base}/a/b")[0] == b"y"


def test_failed_transaction_applies_nothing(zk, base):
    zk.create(f"{base}/x", b"1")
    t = zk.transaction()
    t.create(f"{base}/y")
    t.set_data(f"{base}/x", b"2")
    t.check(f"{base}/x", 7)  # wrong version: this op fails
    t.create(f"{base}/z")
    t.delete(f"{base}/x")
    results = t.commit()
    # Ops before the failure report OK (kazoo: RolledBackError), the failing
    # op its own error, the ops after it RuntimeInconsistency.
    assert _types(results) == [
        RolledBackError, RolledBackError, BadVersionError,
        RuntimeInconsistency, RuntimeInconsistency,
    ]
    assert sorted(zk.get_children(base)) == ["x"]
    data, stat = zk.get(f"{base}/x")
    assert data == b"1" and stat.version == 0
    assert zk.exists(base).cversion == 1  # no trace of the create of /y


def test_transaction_error_kinds(zk, base):
    zk.create(f"{base}/exists")
    zk.create(f"{base}/full/kid", makepath=True)
    cases = [
        (lambda t: t.create(f"{base}/exists"), NodeExistsError),
        (lambda t: t.delete(f"{base}/missing"), NoNodeError),
        (lambda t: t.delete(f"{base}/full"), NotEmptyError),
        (lambda t: t.set_data(f"{base}/exists", b"", version=3), BadVersionError),
        (lambda t: t.check(f"{base}/missing", 0), NoNodeError),
    ]
    for add_failing_op, error in cases:
        t = zk.transaction()
        add_failing_op(t)
        t.create(f"{base}/after")
        assert _types(t.commit()) == [error, RuntimeInconsistency]
    assert sorted(zk.get_children(base)) == ["exists", "full"]


def test_transaction_fires_watches(make_client, base):
    writer, watcher = make_client(), make_client()
    writer.create(f"{base}/w", b"0")
    fired = []
    done = threading.Event()

    def on_event(event):
        fired.append((event.type, event.path))
        if len(fired) == 2:
            done.set()

    watcher.get(f"{base}/w", watch=on_event)
    watcher.get_children(base, watch=on_event)
    t = writer.transaction()
    t.set_data(f"{base}/w", b"1")
    t.create(f"{base}/c")
    t.commit()
    assert done.wait(EVENT_TIMEOUT)
    assert sorted(fired) == sorted([(EventType.CHANGED, f"{base}/w"), (EventType.CHILD, base)])


def test_failed_transaction_fires_no_watches(make_client, base):
    writer, watcher = make_client(), make_client()
    writer.create(f"{base}/w", b"0")
    fired = []
    watcher.get(f"{base}/w", watch=fired.append)
    t = writer.transaction()
    t.set_data(f"{base}/w", b"1")
    t.check(f"{base}/w", 99)
    t.commit()
    # A later real change fires the (still armed) watch exactly once.
    done = threading.Event()
    watcher.exists(f"{base}/marker", watch=lambda e: done.set())
    writer.create(f"{base}/marker")
    assert done.wait(EVENT_TIMEOUT)
    assert fired == []
    writer.set(f"{base}/w", b"2")
    wait_until(lambda: fired, what="the data watch")
    assert [(e.type, e.path) for e in fired] == [(EventType.CHANGED, f"{base}/w")]
