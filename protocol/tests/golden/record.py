#!/usr/bin/env python3
"""Recording TCP proxy for ZooKeeper client<->server traffic (stdlib only).

Listens on a free 127.0.0.1 port, forwards every accepted connection to the
upstream server and writes each length-prefixed frame, in each direction,
to a text file (one file per connection):

    # recorded from Apache ZooKeeper 3.8.0: Java client <-> standalone server
    # scenario: <name>
    > 0000002c...   client -> server frame, lowercase hex, length prefix included
    < 00000024...   server -> client frame
    # ...           comment (step notes sent by the driver)

A frame is recorded the moment its last byte is read, *before* that byte is
forwarded, so a reply can never appear above the request that caused it.
Bytes are forwarded as soon as they are read (no buffering delay).

Control channel: a second listening port takes newline-terminated text
commands (one connection may send many; each command is answered with one
line, ``ok ...`` or ``err ...``):

    label NAME        connections accepted from now on are recorded to
                      NAME.txt (NAME-2.txt, NAME-3.txt... if NAME is reused)
    note TEXT         append "# TEXT" to the file of every open connection
    note@NAME TEXT    append "# TEXT" to the open connection(s) labelled NAME
    cut NAME          abruptly close both sides of open connection(s) NAME
    hold              refuse new connections (accept, then close at once,
                      nothing recorded) until "release"
    release           accept and proxy connections again
    open              answer "ok <n>" with the number of open connections
    wait NAME SECS    wait until no connection labelled NAME is open
    quit              stop the proxy (finishes open files)

Usage:
    record.py --upstream 127.0.0.1:2181 --out DIR [--ports-file F]

On start it prints "PORT CONTROL_PORT" on one line of stdout (and writes it
to --ports-file if given).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from typing import Dict, List, Optional

HEADER = "# recorded from Apache ZooKeeper 3.8.0: Java client <-> standalone server"
HOST = "127.0.0.1"


class Recording:
    """One proxied connection and its frame file."""

    def __init__(self, label: str, path: str, client: socket.socket):
        self.label = label
        self.path = path
        self.client = client
        self.server: Optional[socket.socket] = None
        self.lock = threading.Lock()
        self.file = open(path, "w", encoding="ascii", newline="\n")
        self.file.write(f"{HEADER}\n# scenario: {label}\n")
        self.file.flush()
        self.closed = False
        self.done = threading.Event()
        self._directions_left = 2

    def line(self, text: str) -> None:
        with self.lock:
            if not self.file.closed:
                self.file.write(text + "\n")
                self.file.flush()

    def note(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line(f"# {part}")

    def cut(self) -> None:
        for s in (self.client, self.server):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def direction_finished(self) -> None:
        with self.lock:
            self._directions_left -= 1
            last = self._directions_left == 0
        if last:
            for s in (self.client, self.server):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            with self.lock:
                self.file.close()
            self.closed = True
            self.done.set()


class Proxy:
    def __init__(self, upstream: tuple, out_dir: str):
        self.upstream = upstream
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.label = "unlabelled"
        self.used: Dict[str, int] = {}
        self.open: List[Recording] = []
        self.holding = False
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.control = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.control.bind((HOST, 0))
        self.control.listen(8)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    @property
    def control_port(self) -> int:
        return self.control.getsockname()[1]

    # -- data path ---------------------------------------------------------
    def _file_for(self, label: str) -> str:
        n = self.used.get(label, 0) + 1
        self.used[label] = n
        stem = label if n == 1 else f"{label}-{n}"
        return os.path.join(self.out_dir, stem + ".txt")

    def accept_loop(self) -> None:
        self.listener.settimeout(0.2)  # so that stop() is noticed
        while not self.stopping.is_set():
            try:
                client, _addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.lock:
                if self.holding:
                    client.close()
                    continue
                label = self.label
                rec = Recording(label, self._file_for(label), client)
                self.open.append(rec)
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError as e:
                rec.note(f"upstream connect failed: {e}")
                client.close()
                rec.direction_finished()
                rec.direction_finished()
                self._forget(rec)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rec.server = server
            threading.Thread(
                target=self.pump, args=(rec, client, server, ">"), daemon=True
            ).start()
            threading.Thread(
                target=self.pump, args=(rec, server, client, "<"), daemon=True
            ).start()

    def _forget(self, rec: Recording) -> None:
        with self.lock:
            if rec in self.open:
                self.open.remove(rec)

    def pump(self, rec: Recording, src: socket.socket, dst: socket.socket, arrow: str):
        buf = bytearray()
        try:
            while True:
                try:
                    chunk = src.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
                # record every frame completed by this chunk, then forward
                while len(buf) >= 4:
                    length = int.from_bytes(buf[:4], "big", signed=True)
                    if length < 0 or length > (64 << 20):
                        rec.line(f"# unframed bytes ({arrow}): {bytes(buf).hex()}")
                        buf.clear()
                        break
                    if len(buf) < 4 + length:
                        break
                    rec.line(f"{arrow} {bytes(buf[:4 + length]).hex()}")
                    del buf[: 4 + length]
                try:
                    dst.sendall(chunk)
                except OSError:
                    break
        finally:
            if buf:
                rec.line(f"# incomplete frame at close ({arrow}): {bytes(buf).hex()}")
            rec.line(f"# {'client' if arrow == '>' else 'server'} closed its side")
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            rec.direction_finished()
            if rec.closed:
                self._forget(rec)

    # -- control -----------------------------------------------------------
    def control_loop(self) -> None:
        self.control.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.control.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self.serve_control, args=(conn,), daemon=True).start()

    def serve_control(self, conn: socket.socket) -> None:
        f = conn.makefile("rw", encoding="utf-8", newline="\n")
        try:
            for line in f:
                line = line.rstrip("\r\n")
                try:
                    reply = self.command(line)
                except Exception as e:  # report, keep serving
                    reply = f"err {e}"
                f.write(reply + "\n")
                f.flush()
                if line == "quit":
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def _open_with(self, label: Optional[str]) -> List[Recording]:
        with self.lock:
            return [r for r in self.open if label is None or r.label == label]

    def command(self, line: str) -> str:
        cmd, _, arg = line.partition(" ")
        if cmd == "label":
            with self.lock:
                self.label = arg.strip()
            return "ok"
        if cmd == "note" or cmd.startswith("note@"):
            target = cmd[5:] if cmd.startswith("note@") else None
            recs = self._open_with(target)
            for r in recs:
                r.note(arg)
            return f"ok {len(recs)}"
        if cmd == "cut":
            recs = self._open_with(arg.strip())
            for r in recs:
                r.note("proxy: cutting this connection now")
                r.cut()
            for r in recs:
                r.done.wait(5)
            return f"ok {len(recs)}"
        if cmd == "hold":
            with self.lock:
                self.holding = True
            return "ok"
        if cmd == "release":
            with self.lock:
                self.holding = False
            return "ok"
        if cmd == "open":
            return f"ok {len(self._open_with(None))}"
        if cmd == "wait":
            name, _, secs = arg.partition(" ")
            deadline = time.monotonic() + float(secs or 10)
            while time.monotonic() < deadline:
                if not self._open_with(name):
                    return "ok"
                time.sleep(0.02)
            return "err still open"
        if cmd == "quit":
            self.stop()
            return "ok"
        return f"err unknown command {cmd!r}"

    def stop(self) -> None:
        self.stopping.set()
        for s in (self.listener, self.control):
            try:
                s.close()
            except OSError:
                pass
        for r in self._open_with(None):
            r.cut()
        for r in self._open_with(None):
            r.done.wait(5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="ZooKeeper frame-recording proxy")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the real server")
    p.add_argument("--out", required=True, help="directory for the .txt files")
    p.add_argument("--ports-file", help="also write 'PORT CONTROL_PORT' here")
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = Proxy((host or HOST, int(port)), args.out)
    ports = f"{proxy.port} {proxy.control_port}"
    if args.ports_file:
        tmp = args.ports_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ports + "\n")
        os.replace(tmp, args.ports_file)
    print(ports, flush=True)
    threading.Thread(target=proxy.control_loop, daemon=True).start()
    try:
        proxy.accept_loop()
    except KeyboardInterrupt:
        proxy.stop()
    # let the pumps finish their files
    for r in proxy._open_with(None):
        r.done.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
