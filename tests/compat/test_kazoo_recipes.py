"""kazoo recipes: Lock, Election, Barrier, DoubleBarrier, Counter, Queue,
LockingQueue, Party, TreeCache.  Each relies on ephemeral-sequential nodes,
child/data watches and ordering guarantees of the server."""

import queue
import threading
import time

from kazoo.recipe.cache import TreeCache, TreeEvent

from conftest import EVENT_TIMEOUT, wait_until


def test_lock_mutual_exclusion(make_client, base):
    clients = [make_client() for _ in range(3)]
    holders = []
    inside = threading.Lock()
    overlap = []

    def worker(client, name):
        lock = client.Lock(f"{base}/lock", identifier=name)
        for _ in range(3):
            with lock:
                if not inside.acquire(blocking=False):
                    overlap.append(name)
                    continue
                holders.append(name)
                time.sleep(0.02)
                inside.release()

    threads = [threading.Thread(target=worker, args=(c, f"w{i}")) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert overlap == []
    assert sorted(holders) == sorted([f"w{i}" for i in range(3)] * 3)
    assert clients[0].get_children(f"{base}/lock") == []  # all released


def test_lock_contenders_and_blocking(make_client, base):
    a, b = make_client(), make_client()
    lock_a = a.Lock(f"{base}/lock", "alice")
    lock_b = b.Lock(f"{base}/lock", "bob")
    assert lock_a.acquire(timeout=EVENT_TIMEOUT)
    assert lock_b.acquire(blocking=False) is False
    got = threading.Event()

    def wait_for_lock():
        if lock_b.acquire(timeout=EVENT_TIMEOUT):
            got.set()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    wait_until(lambda: len(lock_a.contenders()) == 2, what="bob to queue up")
    assert lock_a.contenders() == ["alice", "bob"]
    assert not got.is_set()
    lock_a.release()  # bob's watch on alice's node fires -> bob gets it
    assert got.wait(EVENT_TIMEOUT)
    t.join(EVENT_TIMEOUT)
    assert lock_b.contenders() == ["bob"]
    lock_b.release()


def test_lock_released_when_holder_session_closes(make_client, base):
    a, b = make_client(), make_client()
    assert a.Lock(f"{base}/lock", "a").acquire(timeout=EVENT_TIMEOUT)
    lock_b = b.Lock(f"{base}/lock", "b")
    results = queue.Queue()
    threading.Thread(target=lambda: results.put(lock_b.acquire(timeout=EVENT_TIMEOUT))).start()
    wait_until(lambda: len(lock_b.contenders()) == 2, what="b to queue up")
    a.stop()  # ephemeral lock node disappears with the session
    assert results.get(timeout=EVENT_TIMEOUT) is True
    lock_b.release()


def test_election(make_client, base):
    a, b = make_client(), make_client()
    leaders = queue.Queue()
    stop_a = threading.Event()

    def lead(name, stop):
        leaders.put(name)
        stop.wait(EVENT_TIMEOUT)

    election_a = a.Election(f"{base}/election", "a")
    election_b = b.Election(f"{base}/election", "b")
    stop_b = threading.Event()
    ta = threading.Thread(target=election_a.run, args=(lead, "a", stop_a), daemon=True)
    ta.start()
    assert leaders.get(timeout=EVENT_TIMEOUT) == "a"
    tb = threading.Thread(target=election_b.run, args=(lead, "b", stop_b), daemon=True)
    tb.start()
    wait_until(lambda: len(election_a.contenders()) == 2, what="b to join")
    assert election_a.contenders() == ["a", "b"]
    assert leaders.empty()
    stop_a.set()  # a's leadership ends -> b takes over
    assert leaders.get(timeout=EVENT_TIMEOUT) == "b"
    assert election_b.contenders() == ["b"]
    stop_b.set()
    ta.join(EVENT_TIMEOUT)
    tb.join(EVENT_TIMEOUT)
    assert not ta.is_alive() and not tb.is_alive()


def test_barrier(make_client, base):
    a, b = make_client(), make_client()
    barrier = a.Barrier(f"{base}/barrier")
    barrier.create()
    passed = threading.Event()
    threading.Thread(target=lambda: b.Barrier(f"{base}/barrier").wait(EVENT_TIMEOUT) and passed.set()).start()
    assert not passed.wait(0.5)  # blocked while the barrier node exists
    barrier.remove()
    assert passed.wait(EVENT_TIMEOUT)


def test_double_barrier(make_client, base):
    n = 3
    clients = [make_client() for _ in range(n)]
    entered, left = [], []
    errors = []

    def member(i, client):
        try:
            db = client.DoubleBarrier(f"{base}/db", n)
            db.enter()
            entered.append((i, time.monotonic()))
            db.leave()
            left.append((i, time.monotonic()))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = []
    for i, c in enumerate(clients):
        t = threading.Thread(target=member, args=(i, c))
        t.start()
        threads.append(t)
        if i < n - 1:
            time.sleep(0.3)
            assert entered == []  # nobody enters before all n arrive
    for t in threads:
        t.join(EVENT_TIMEOUT * 2)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert sorted(i for i, _ in entered) == list(range(n))
    assert sorted(i for i, _ in left) == list(range(n))
    # Everybody entered before anybody was done leaving.
    assert max(t for _, t in entered) <= min(t for _, t in left)


def test_counter(make_client, base):
    a, b = make_client(), make_client()
    ca, cb = a.Counter(f"{base}/counter"), b.Counter(f"{base}/counter")
    for _ in range(10):
        ca += 1
        cb += 2
    assert ca.value == cb.value == 30
    cb -= 5
    assert ca.value == 25
    fc = a.Counter(f"{base}/fcounter", default=0.5)
    fc += 0.25
    assert fc.value == 0.75


def test_queue_fifo_and_priority(make_client, base):
    producer, consumer = make_client(), make_client()
    q = producer.Queue(f"{base}/q")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=1)  # lower number = earlier
    assert len(q) == 4
    cq = consumer.Queue(f"{base}/q")
    assert [cq.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert cq.get() is None


def test_locking_queue(make_client, base):
    producer, consumer = make_client(), make_client()
    q = producer.LockingQueue(f"{base}/lq")
    q.put(b"a")
    q.put_all([b"b", b"c"])
    cq = consumer.LockingQueue(f"{base}/lq")
    assert cq.get(EVENT_TIMEOUT) == b"a"
    assert cq.holds_lock()
    assert cq.consume() is True
    assert cq.get(EVENT_TIMEOUT) == b"b"
    assert cq.release() is True  # give it back unconsumed
    assert cq.get(EVENT_TIMEOUT) == b"b"
    assert cq.consume()
    assert len(cq) == 1
    # A blocking get is woken by a put from another client.
    got = queue.Queue()
    assert cq.get(EVENT_TIMEOUT) == b"c" and cq.consume()
    threading.Thread(target=lambda: got.put(cq.get(EVENT_TIMEOUT))).start()
    time.sleep(0.2)
    q.put(b"late")
    assert got.get(timeout=EVENT_TIMEOUT) == b"late"
    assert cq.consume()


def test_party(make_client, base):
    a, b = make_client(), make_client()
    pa = a.Party(f"{base}/party", "alice")
    pb = b.ShallowParty(f"{base}/shallow", "bob")
    pa.join()
    b.Party(f"{base}/party", "bob").join()
    assert sorted(pa) == ["alice", "bob"] and len(pa) == 2
    pb.join()
    assert list(a.ShallowParty(f"{base}/shallow")) == ["bob"]
    b.stop()  # members are ephemeral
    assert list(pa) == ["alice"]
    assert len(a.ShallowParty(f"{base}/shallow")) == 0
    pa.leave()
    assert len(pa) == 0


def test_tree_cache(make_client, base):
    zk = make_client()
    root = zk.create(f"{base}/tree", b"r")
    zk.create(f"{root}/a", b"1")
    events = queue.Queue()
    cache = TreeCache(zk, root)
    cache.listen(lambda ev: events.put(ev))
    cache.start()

    def collect_until(event_type):
        seen = []
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                ev = events.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append((ev.event_type, ev.event_data.path if ev.event_data else None))
            if ev.event_type == event_type:
                return seen
        raise AssertionError(f"no {event_type} event; saw {seen}")

    initial = collect_until(TreeEvent.INITIALIZED)
    assert sorted(p for t, p in initial if t == TreeEvent.NODE_ADDED) == [root, f"{root}/a"]
    assert cache.get_data(f"{root}/a").data == b"1"

    zk.create(f"{root}/a/deep", b"2")
    assert collect_until(TreeEvent.NODE_ADDED)[-1] == (TreeEvent.NODE_ADDED, f"{root}/a/deep")
    zk.set(f"{root}/a", b"1b")
    assert collect_until(TreeEvent.NODE_UPDATED)[-1] == (TreeEvent.NODE_UPDATED, f"{root}/a")
    assert cache.get_data(f"{root}/a").data == b"1b"
    zk.delete(f"{root}/a", recursive=True)  # deletes /a/deep, then /a
    removed = collect_until(TreeEvent.NODE_REMOVED)
    if removed[-1][1] != f"{root}/a":
        removed += collect_until(TreeEvent.NODE_REMOVED)
    assert [p for t, p in removed if t == TreeEvent.NODE_REMOVED] == [
        f"{root}/a/deep", f"{root}/a"]
    assert cache.get_children(root) == frozenset()
    assert cache.get_data(f"{root}/a") is None
    cache.close()
