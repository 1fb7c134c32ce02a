"""The Apache Dubbo ZooKeeper-registry layout, driven with kazoo.

/dubbo/<interface>/providers/<url-encoded provider URL>   (ephemeral)
/dubbo/<interface>/consumers/<url-encoded consumer URL>   (ephemeral)

Consumers keep a child watch on .../providers, re-armed after each event
(kazoo's ChildrenWatch does exactly that).  Providers run in separate
processes; one is SIGKILLed so its session is never closed and its node must
disappear only when the server expires the session.
"""

import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

from conftest import EVENT_TIMEOUT

INTERFACE = "org.apache.dubbo.demo.DemoService"
PROVIDER_TIMEOUT_S = 4.0  # the maximum the server grants (20 ticks)

PROVIDER_SCRIPT = r"""
import sys, time
from kazoo.client import KazooClient
hosts, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
zk = KazooClient(hosts=hosts, timeout=timeout)
zk.start(timeout=15)
zk.ensure_path(path.rsplit("/", 1)[0])
zk.create(path, b"", ephemeral=True)
created = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
print("READY %d %.6f" % (zk.client_id[0], created), flush=True)
for line in sys.stdin:  # "stop" -> graceful close; EOF/kill -> nothing
    if line.strip() == "stop":
        zk.stop()
        print("STOPPED", flush=True)
        break
else:
    time.sleep(3600)
"""


def provider_url(port, app):
    url = (f"dubbo://127.0.0.1:{port}/{INTERFACE}?anyhost=true&application={app}"
           f"&interface={INTERFACE}&methods=sayHello,sayHelloAsync&side=provider"
           f"&version=1.0.0&timestamp=1700000000000")
    return quote(url, safe="")


def start_provider(server, path):
    proc = subprocess.Popen(
        [sys.executable, "-c", PROVIDER_SCRIPT, server.hosts, path, str(PROVIDER_TIMEOUT_S)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("READY "), f"provider failed to start: {line!r}"
    _, session, created = line.split()
    return proc, int(session), float(created)


def test_dubbo_provider_consumer_flow(server, make_client):
    root = f"/dubbo-{uuid.uuid4().hex[:8]}/{INTERFACE}"
    providers, consumers = f"{root}/providers", f"{root}/consumers"
    consumer = make_client()
    consumer.ensure_path(providers)
    consumer.ensure_path(consumers)
    consumer_url = quote(f"consumer://127.0.0.1/{INTERFACE}?application=demo-consumer"
                         f"&category=consumers&side=consumer&version=1.0.0", safe="")
    consumer.create(f"{consumers}/{consumer_url}", ephemeral=True)

    updates = queue.Queue()
    consumer.ChildrenWatch(providers)(
        lambda children: updates.put((time.monotonic(), sorted(children))))
    assert updates.get(timeout=EVENT_TIMEOUT)[1] == []

    def next_update():
        return updates.get(timeout=EVENT_TIMEOUT)

    procs = []
    try:
        # 1. A provider registers: the consumer's child watch reports it.
        name_a = provider_url(20880, "demo-provider")
        proc_a, session_a, created = start_provider(server, f"{providers}/{name_a}")
        procs.append(proc_a)
        when, children = next_update()
        delay = when - created
        print(f"\nprovider-added notification delay: {delay * 1000:.1f} ms")
        assert delay < 10.0  # generous bound; real value is milliseconds
        assert children == [name_a]  # URL-encoded name kept byte for byte
        assert "%3A%2F%2F127.0.0.1%3A20880%2F" in children[0]
        assert consumer.exists(f"{providers}/{name_a}").ephemeralOwner == session_a

        # 2. A second provider registers, then leaves gracefully.
        name_b = provider_url(20881, "demo-provider-2")
        proc_b, _, _ = start_provider(server, f"{providers}/{name_b}")
        procs.append(proc_b)
        assert next_update()[1] == sorted([name_a, name_b])
        t_stop = time.monotonic()
        proc_b.stdin.write("stop\n")
        proc_b.stdin.flush()
        when, children = next_update()
        print(f"graceful provider removal seen after {(when - t_stop) * 1000:.0f} ms")
        assert children == [name_a]

        # 3. Provider A is SIGKILLed: its TCP connection drops but the
        # session lives on until the server expires it after its timeout.
        os.kill(proc_a.pid, signal.SIGKILL)
        proc_a.wait(EVENT_TIMEOUT)
        t_kill = time.monotonic()
        time.sleep(0.5)  # well below the 4 s session timeout
        assert consumer.exists(f"{providers}/{name_a}") is not None, \
            "ephemeral removed on disconnect; must wait for session expiry"
        when, children = updates.get(timeout=PROVIDER_TIMEOUT_S * 3 + EVENT_TIMEOUT)
        print(f"killed provider removed {(when - t_kill):.2f} s after SIGKILL "
              f"(session timeout {PROVIDER_TIMEOUT_S:.0f} s)")
        assert children == []
        assert consumer.exists(f"{providers}/{name_a}") is None

        # The consumer's own registration is untouched.
        assert consumer.get_children(consumers) == [consumer_url]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
