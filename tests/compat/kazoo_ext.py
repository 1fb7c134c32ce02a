"""Small kazoo extension for ZooKeeper 3.5/3.6 requests that no released
kazoo (up to 2.11.0, the latest on PyPI) sends itself:

* ``addWatch`` (opcode 106) -- persistent and persistent-recursive watches,
* ``removeWatches`` (opcode 18, WatcherType ANY) -- ``remove_all_watches``,
* ``createContainer`` (opcode 19) -- container nodes,
* ``createTTL`` (opcode 21) -- TTL nodes.

Everything else (connection, session handshake, framing, pings, the watch
event reader, exceptions) is kazoo's own code.  The request bodies follow
ZooKeeper's jute definitions (zookeeper.jute): AddWatchRequest {path, mode},
RemoveWatchesRequest {path, type}, CreateRequest/CreateTTLRequest {path,
data, acl, flags[, ttl]} answered by Create2Response {path, stat}.

Events for persistent watches are delivered by wrapping kazoo's
``ConnectionHandler._read_watch_event``: kazoo still pops its one-shot
watchers as usual; we additionally hand every event to the persistent
watchers registered for the event's path (PERSISTENT: the exact path, all
event types; PERSISTENT_RECURSIVE: the path and all descendants, any event
but NodeChildrenChanged, which ZooKeeper never sends to recursive watches).
Each client also records every raw notification in ``client.raw_events``
as ``(type, path)`` so tests can check exactly what the server delivered.
"""

from __future__ import annotations

import threading
from collections import defaultdict, namedtuple

from kazoo.client import KazooClient
from kazoo.protocol.serialization import (
    Create2,
    Watch,
    int_struct,
    long_struct,
    write_string,
)
from kazoo.protocol.states import EVENT_TYPE_MAP, Callback, WatchedEvent
from kazoo.security import OPEN_ACL_UNSAFE


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class WatcherType:
    CHILDREN = 1
    DATA = 2
    ANY = 3


# CreateMode flag values (org.apache.zookeeper.CreateMode)
CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self):
        return bytearray(write_string(self.path) + int_struct.pack(self.mode))

    @classmethod
    def deserialize(cls, buffer, offset):
        return True


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    type = 18

    def serialize(self):
        return bytearray(write_string(self.path) + int_struct.pack(self.watcher_type))

    @classmethod
    def deserialize(cls, buffer, offset):
        return True


class CreateContainer(Create2):
    """Same body as Create2 (flags must be CONTAINER); opcode 19."""

    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        body = Create2(self.path, self.data, self.acl, self.flags).serialize()
        body.extend(long_struct.pack(self.ttl))
        return body

    deserialize = Create2.deserialize


class ExtKazooClient(KazooClient):
    """KazooClient plus add_watch / remove_all_watches / create_container /
    create_ttl, and a log of raw watch notifications."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._persistent = defaultdict(list)
        self._persistent_recursive = defaultdict(list)
        self.raw_events = []
        self._raw_lock = threading.Lock()
        conn = self._connection
        original = conn._read_watch_event

        def read_watch_event(buffer, offset):
            watch, _ = Watch.deserialize(buffer, offset)
            with self._raw_lock:
                self.raw_events.append((EVENT_TYPE_MAP.get(watch.type), watch.path))
            self._dispatch_persistent(watch)
            return original(buffer, offset)

        conn._read_watch_event = read_watch_event

    # -- persistent watch dispatch (runs on kazoo's reader thread) ---------
    def _dispatch_persistent(self, watch):
        if self._stopped.is_set() or watch.type not in EVENT_TYPE_MAP:
            return
        path = watch.path
        watchers = list(self._persistent.get(path, ()))
        if EVENT_TYPE_MAP[watch.type] != "CHILD":
            candidates = {"/"}
            parts = path.split("/")
            for i in range(2, len(parts) + 1):
                candidates.add("/".join(parts[:i]))
            for cand in candidates:
                watchers.extend(self._persistent_recursive.get(cand, ()))
        ev = WatchedEvent(EVENT_TYPE_MAP[watch.type], self._state, path)
        for w in watchers:
            self.handler.dispatch_callback(Callback("watch", w, (ev,)))

    # -- requests ----------------------------------------------------------
    def _request(self, request):
        result = self.handler.async_result()
        self._call(request, result)
        return result.get()

    def add_watch(self, path, func, mode):
        """ZooKeeper.addWatch(path, watcher, mode)."""
        table = (self._persistent if mode == AddWatchMode.PERSISTENT
                 else self._persistent_recursive)
        table[path].append(func)
        try:
            self._request(AddWatch(path, mode))
        except Exception:
            table[path].remove(func)
            raise

    def remove_all_watches(self, path, watcher_type=WatcherType.ANY):
        """ZooKeeper.removeAllWatches(path, type, local=false)."""
        self._request(RemoveWatches(path, watcher_type))
        if watcher_type in (WatcherType.ANY, WatcherType.DATA):
            self._data_watchers.pop(path, None)
        if watcher_type in (WatcherType.ANY, WatcherType.CHILDREN):
            self._child_watchers.pop(path, None)
        if watcher_type == WatcherType.ANY:
            self._persistent.pop(path, None)
            self._persistent_recursive.pop(path, None)

    def create_container(self, path, value=b"", acl=None):
        """Create a container node; returns (path, ZnodeStat)."""
        return self._request(
            CreateContainer(path, value, acl or OPEN_ACL_UNSAFE, CONTAINER))

    def create_ttl(self, path, value=b"", ttl_ms=1000, sequence=False, acl=None):
        """Create a TTL node; returns (path, ZnodeStat)."""
        flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
        return self._request(
            CreateTTL(path, value, acl or OPEN_ACL_UNSAFE, flags, ttl_ms))
