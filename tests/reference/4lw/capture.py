#!/usr/bin/env python3
"""Capture the reference four-letter-word answers of Apache ZooKeeper 3.8.

    python3 tests/reference/4lw/capture.py [OUTDIR]

Starts a reference server (tests/support/zkref.py, all words whitelisted),
connects two clients that leave ephemerals and watches behind, saves each
word's raw answer to OUTDIR/<word>.txt (default: this directory), then starts
a second server whose whitelist is only ``ruok`` and saves its answer to a
non-whitelisted word as OUTDIR/not-whitelisted.txt.

The two clients are a minimal jute encoder written here (connect, create,
getData/exists/getChildren with watch, addWatch); they are kept connected
while the words are captured.  ``crst`` and ``srst`` reset statistics, so
they are captured last.
"""

import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))

from zkref import ZkReference, four_letter_word_bytes  # noqa: E402

WORDS = [
    "ruok", "srvr", "stat", "conf", "cons", "envi", "mntr",
    "wchs", "wchc", "wchp", "dump", "isro", "dirs",
    # these reset counters: keep them last
    "crst", "srst",
]

# opcodes
CREATE, EXISTS, GET_DATA, GET_CHILDREN, ADD_WATCH = 1, 3, 4, 8, 106
EPHEMERAL, EPHEMERAL_SEQUENTIAL = 1, 3
PERSISTENT_RECURSIVE = 1


def _string(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _buffer(b):
    return struct.pack(">i", len(b)) + b


OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + _string("world") + _string("anyone")


class MiniClient:
    """Just enough of the client protocol to leave state on the server."""

    def __init__(self, port, timeout_ms=30000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + _buffer(bytes(16)) + b"\0"
        self._send(body)
        self.connect_response = self._recv()
        self.xid = 0

    def _send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def _recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed the connection")
            data += chunk
        return data

    def _recv(self):
        (n,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(n)

    def call(self, op, body):
        """Send a request and return its reply's err (skipping events)."""
        self.xid += 1
        self._send(struct.pack(">ii", self.xid, op) + body)
        while True:
            reply = self._recv()
            xid, _zxid, err = struct.unpack(">iqi", reply[:16])
            if xid == self.xid:
                return err

    def create(self, path, data=b"", flags=0):
        return self.call(CREATE, _string(path) + _buffer(data) + OPEN_ACL + struct.pack(">i", flags))

    def get_data(self, path, watch=True):
        return self.call(GET_DATA, _string(path) + (b"\1" if watch else b"\0"))

    def exists(self, path, watch=True):
        return self.call(EXISTS, _string(path) + (b"\1" if watch else b"\0"))

    def get_children(self, path, watch=True):
        return self.call(GET_CHILDREN, _string(path) + (b"\1" if watch else b"\0"))

    def add_watch(self, path, mode):
        return self.call(ADD_WATCH, _string(path) + struct.pack(">i", mode))

    def close(self):
        self.sock.close()


def capture(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with ZkReference(tick_ms=2000) as zk:
        a = MiniClient(zk.port)
        b = MiniClient(zk.port)
        a.create("/app", b"app")
        a.create("/app/lock", b"a-eph", EPHEMERAL)
        a.create("/app/member-", b"a-seq", EPHEMERAL_SEQUENTIAL)
        a.get_data("/app")
        a.exists("/app/missing")
        a.get_children("/app")
        b.create("/b-eph", b"b", EPHEMERAL)
        b.get_data("/app")
        b.exists("/app/lock")
        b.add_watch("/app", PERSISTENT_RECURSIVE)
        time.sleep(0.5)
        for word in WORDS:
            answer = four_letter_word_bytes(zk.port, word)
            with open(os.path.join(out_dir, f"{word}.txt"), "wb") as f:
                f.write(answer)
            print(f"{word}: {len(answer)} bytes")
        a.close()
        b.close()

    with ZkReference(tick_ms=2000, whitelist="ruok") as zk:
        answer = four_letter_word_bytes(zk.port, "stat")
        with open(os.path.join(out_dir, "not-whitelisted.txt"), "wb") as f:
            f.write(answer)
        print(f"stat with whitelist=ruok: {answer!r}")
        print(f"unknown word 'xyzw': {four_letter_word_bytes(zk.port, 'xyzw')!r}")


if __name__ == "__main__":
    capture(sys.argv[1] if len(sys.argv) > 1 else HERE)
