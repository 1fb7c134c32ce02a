"""kazoo: one-shot watches, DataWatch/ChildrenWatch recipes, persistent and
persistent-recursive watches (addWatch), removeWatches."""

import queue
import threading

import pytest
from kazoo.exceptions import NoWatcherError
from kazoo.protocol.states import EventType

from conftest import EVENT_TIMEOUT, wait_until
from kazoo_ext import AddWatchMode, WatcherType


class Events:
    """Thread-safe event collector usable as a kazoo watch callback."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def next(self, timeout=EVENT_TIMEOUT):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s") from None

    def pairs(self, n):
        return [(e.type, e.path) for e in (self.next() for _ in range(n))]

    def empty(self):
        return self.q.empty()


def flush(zk, base=None):
    """Return once every notification caused by earlier writes of *this*
    session has been handled by kazoo: ZooKeeper delivers watch events in
    order, so we fire one more watch (on a node outside every test's base
    path) and wait for it."""
    marker = zk.create("/compat-flush-", ephemeral=True, sequence=True)
    done = threading.Event()
    zk.exists(marker, watch=lambda e: done.set())
    zk.delete(marker)
    assert done.wait(EVENT_TIMEOUT)


# --------------------------------------------------------------------------
# One-shot watches
# --------------------------------------------------------------------------


def test_get_watch_fires_changed_once(zk, base):
    path = zk.create(f"{base}/d", b"1")
    ev = Events()
    zk.get(path, watch=ev)
    zk.set(path, b"2")
    e = ev.next()
    assert (e.type, e.path) == (EventType.CHANGED, path)
    zk.set(path, b"3")  # the watch was consumed: no second event
    flush(zk, base)
    assert ev.empty()


def test_exists_watch_on_missing_node_fires_created(zk, base):
    path = f"{base}/later"
    ev = Events()
    assert zk.exists(path, watch=ev) is None  # watch set even on NoNode
    zk.create(path)
    assert ev.pairs(1) == [(EventType.CREATED, path)]


def test_exists_and_get_watch_fire_deleted(zk, base):
    path = zk.create(f"{base}/d")
    ev_exists, ev_get = Events(), Events()
    zk.exists(path, watch=ev_exists)
    zk.get(path, watch=ev_get)
    zk.delete(path)
    assert ev_exists.pairs(1) == [(EventType.DELETED, path)]
    assert ev_get.pairs(1) == [(EventType.DELETED, path)]


def test_children_watch_fires_child_for_create_and_delete_only(zk, base):
    ev = Events()
    assert zk.get_children(base, watch=ev) == []
    zk.create(f"{base}/c")
    assert ev.pairs(1) == [(EventType.CHILD, base)]  # path is the parent

    zk.get_children(base, watch=ev)
    zk.set(f"{base}/c", b"data")  # child's data change: not a child event
    zk.set(base, b"parent data")  # parent's data change: not a child event
    flush(zk, base)
    assert ev.empty()
    zk.delete(f"{base}/c")
    assert ev.pairs(1) == [(EventType.CHILD, base)]


def test_children_watch_on_deleted_node_fires_deleted(zk, base):
    path = zk.create(f"{base}/p")
    ev = Events()
    zk.get_children(path, watch=ev)
    zk.delete(path)
    assert ev.pairs(1) == [(EventType.DELETED, path)]


def test_watch_fires_for_change_made_by_other_client(make_client, base):
    a, b = make_client(), make_client()
    path = a.create(f"{base}/shared", b"v1")
    ev = Events()
    a.get(path, watch=ev)
    b.set(path, b"v2")
    assert ev.pairs(1) == [(EventType.CHANGED, path)]
    assert a.get(path)[0] == b"v2"


def test_notification_precedes_reply_to_own_write(xzk, base):
    # ZooKeeper sends a session its watch notification before the reply to
    # the write that triggered it: once set() returns, kazoo's reader thread
    # has already seen the event.
    path = xzk.create(f"{base}/n", b"0")
    xzk.get(path, watch=lambda e: None)
    xzk.raw_events.clear()
    xzk.set(path, b"1")
    assert xzk.raw_events == [(EventType.CHANGED, path)]


def test_one_event_per_watch_type_for_multiple_registrations(xzk, base):
    # The same path watched by exists() and get() is one data watch on the
    # server: a single CHANGED notification reaches the client.
    path = xzk.create(f"{base}/n")
    ev = Events()
    xzk.exists(path, watch=ev)
    xzk.get(path, watch=ev)
    xzk.get_children(path, watch=ev)
    xzk.raw_events.clear()
    xzk.set(path, b"x")
    flush(xzk, base)
    assert [r for r in xzk.raw_events if r[1] == path] == [(EventType.CHANGED, path)]


# --------------------------------------------------------------------------
# kazoo recipes built on watches
# --------------------------------------------------------------------------


def test_data_watch_recipe(zk, base):
    path = f"{base}/dw"
    seen = queue.Queue()

    @zk.DataWatch(path)
    def watcher(data, stat, event=None):
        seen.put((data, stat.version if stat else None,
                  event.type if event else None))

    assert seen.get(timeout=EVENT_TIMEOUT) == (None, None, None)  # missing
    zk.create(path, b"a")
    assert seen.get(timeout=EVENT_TIMEOUT) == (b"a", 0, EventType.CREATED)
    zk.set(path, b"b")
    assert seen.get(timeout=EVENT_TIMEOUT) == (b"b", 1, EventType.CHANGED)
    zk.delete(path)
    assert seen.get(timeout=EVENT_TIMEOUT) == (None, None, EventType.DELETED)


def test_children_watch_recipe(zk, base):
    seen = queue.Queue()
    zk.ChildrenWatch(base)(lambda children: seen.put(sorted(children)))
    assert seen.get(timeout=EVENT_TIMEOUT) == []
    zk.create(f"{base}/a")
    assert seen.get(timeout=EVENT_TIMEOUT) == ["a"]
    zk.create(f"{base}/b")
    assert seen.get(timeout=EVENT_TIMEOUT) == ["a", "b"]
    zk.delete(f"{base}/a")
    assert seen.get(timeout=EVENT_TIMEOUT) == ["b"]


# --------------------------------------------------------------------------
# Persistent watches (ZooKeeper 3.6+ addWatch)
# --------------------------------------------------------------------------


def test_persistent_watch_event_sequence(xzk, base):
    path = f"{base}/p"
    ev = Events()
    xzk.add_watch(path, ev, AddWatchMode.PERSISTENT)  # node need not exist
    xzk.create(path, b"0")
    xzk.set(path, b"1")
    xzk.create(f"{path}/c")
    xzk.set(f"{path}/c", b"x")  # grandchild data: not reported
    xzk.create(f"{path}/c/g")  # grandchild create: not reported
    xzk.delete(f"{path}/c/g")
    xzk.delete(f"{path}/c")
    xzk.delete(path)
    xzk.create(path)  # still armed after NodeDeleted
    assert ev.pairs(6) == [
        (EventType.CREATED, path),
        (EventType.CHANGED, path),
        (EventType.CHILD, path),
        (EventType.CHILD, path),
        (EventType.DELETED, path),
        (EventType.CREATED, path),
    ]
    flush(xzk, base)
    assert ev.empty()


def test_persistent_recursive_watch_event_sequence(xzk, base):
    root = f"{base}/r"
    xzk.create(root)
    ev = Events()
    xzk.add_watch(root, ev, AddWatchMode.PERSISTENT_RECURSIVE)
    xzk.raw_events.clear()
    xzk.create(f"{root}/a", b"1")
    xzk.create(f"{root}/a/b")
    xzk.set(f"{root}/a/b", b"2")
    xzk.set(root, b"3")
    xzk.delete(f"{root}/a/b")
    xzk.delete(f"{root}/a")
    xzk.create(f"{base}/r-sibling")  # not under /r (prefix is not enough)
    xzk.delete(f"{base}/r-sibling")
    expected = [
        (EventType.CREATED, f"{root}/a"),
        (EventType.CREATED, f"{root}/a/b"),
        (EventType.CHANGED, f"{root}/a/b"),
        (EventType.CHANGED, root),
        (EventType.DELETED, f"{root}/a/b"),
        (EventType.DELETED, f"{root}/a"),
    ]
    assert ev.pairs(6) == expected
    flush(xzk, base)
    assert ev.empty()
    # On the wire too: no NodeChildrenChanged for recursive watches.
    assert [r for r in xzk.raw_events if r[1].startswith(root)] == expected


def test_one_shot_then_persistent_watch_on_same_node(xzk, base):
    # A one-shot data watch, then a persistent watch on the same node: the
    # server sends one notification per change (watches are per session),
    # and the persistent watch keeps firing.
    path = xzk.create(f"{base}/n")
    persistent, once = Events(), Events()
    xzk.get(path, watch=once)
    xzk.add_watch(path, persistent, AddWatchMode.PERSISTENT)
    xzk.raw_events.clear()
    xzk.set(path, b"1")
    xzk.set(path, b"2")
    assert persistent.pairs(2) == [(EventType.CHANGED, path)] * 2
    assert once.pairs(1) == [(EventType.CHANGED, path)]
    flush(xzk)
    assert once.empty()
    assert [r for r in xzk.raw_events if r[1] == path] == [(EventType.CHANGED, path)] * 2


def test_persistent_then_one_shot_watch_on_same_node(xzk, base, server):
    # The other order differs between versions (ZOOKEEPER-4466, fixed in
    # 3.9.0): 3.8 keeps one watch mode per (session, path), so the later
    # one-shot watch *replaces* the persistent one, and after one event the
    # node is no longer watched at all.  3.9 keeps both.
    version = server.four_letter_word("srvr").split("Zookeeper version: ")[1]
    path = xzk.create(f"{base}/n")
    persistent, once = Events(), Events()
    xzk.add_watch(path, persistent, AddWatchMode.PERSISTENT)
    xzk.get(path, watch=once)
    xzk.raw_events.clear()
    xzk.set(path, b"1")
    xzk.set(path, b"2")
    assert once.pairs(1) == [(EventType.CHANGED, path)]
    flush(xzk)
    raw = [r for r in xzk.raw_events if r[1] == path]
    if version.startswith("3.8."):
        assert raw == [(EventType.CHANGED, path)]
    else:
        assert raw == [(EventType.CHANGED, path)] * 2
    assert once.empty()


def test_remove_all_watches(xzk, base):
    path = xzk.create(f"{base}/n")
    persistent, data = Events(), Events()
    xzk.add_watch(path, persistent, AddWatchMode.PERSISTENT)
    xzk.get(path, watch=data)
    xzk.remove_all_watches(path, WatcherType.ANY)
    xzk.raw_events.clear()
    xzk.set(path, b"1")
    xzk.create(f"{path}/kid")
    flush(xzk, base)
    assert persistent.empty() and data.empty()
    assert [r for r in xzk.raw_events if r[1] == path] == []
    # Nothing left to remove: the server answers NOWATCHER.
    with pytest.raises(NoWatcherError):
        xzk.remove_all_watches(path, WatcherType.ANY)


def test_remove_only_child_watches(xzk, base):
    path = xzk.create(f"{base}/n")
    data, child = Events(), Events()
    xzk.get(path, watch=data)
    xzk.get_children(path, watch=child)
    xzk.remove_all_watches(path, WatcherType.CHILDREN)
    xzk.create(f"{path}/kid")
    xzk.set(path, b"x")
    assert data.pairs(1) == [(EventType.CHANGED, path)]
    flush(xzk, base)
    assert child.empty()
    with pytest.raises(NoWatcherError):
        xzk.remove_all_watches(path, WatcherType.DATA)  # consumed already
