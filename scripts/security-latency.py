#!/usr/bin/env python3
"""Latency of sequential getData over the plain and the TLS port, and the
cost of setting up a connection and session (plain, TLS with a client
certificate, plain + SASL DIGEST-MD5),
with raw frames (no client library in the way), on loopback.

Usage: scripts/security-latency.py target/release/canopy   (N=5000 requests)
Run with the project venv (tests/compat helpers make the certificates)."""
import hashlib
import os
import re
import secrets
import socket
import ssl
import statistics
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat")); sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
os.environ["CANOPY_BIN"] = sys.argv[1]
import security_support as ss

N = int(os.environ.get("N", "5000"))
pki = ss.make_pki()
srv = ss.start_secured(pki, client_auth="need", sasl_users={"app": "pw"})

def frame(b): return struct.pack(">i", len(b)) + b
def recv_exact(s, n):
    data = b""
    while len(data) < n:
        c = s.recv(n - len(data))
        if not c: raise EOFError
        data += c
    return data
def recv_frame(s):
    return recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0])
CONNECT = frame(struct.pack(">iqiq", 0, 0, 4000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0")
def get_req(xid, path=b"/"):
    return frame(struct.pack(">ii", xid, 4) + struct.pack(">i", len(path)) + path + b"\0")

ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
ctx.load_cert_chain(pki.path("app-a.pem"), pki.path("app-a.key"))
def plain_sock():
    s = socket.create_connection(("127.0.0.1", srv.port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def tls_sock():
    s = socket.create_connection(("127.0.0.1", srv.secure_port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")

def session(make):
    s = make(); s.sendall(CONNECT); recv_frame(s); return s

def latency(make):
    s = session(make)
    for i in range(200): s.sendall(get_req(i + 1)); recv_frame(s)
    samples = []
    for i in range(N):
        t = time.perf_counter(); s.sendall(get_req(i + 1000)); recv_frame(s); samples.append(time.perf_counter() - t)
    s.close(); samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6

def setup(make, sasl=False, n=200):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        s = session(make)
        if sasl:
            s.sendall(frame(struct.pack(">ii", 1, 102) + struct.pack(">i", 0)))
            challenge = recv_frame(s)[20:]
            d = dict(re.findall(r'(\w[\w-]*)="?([^",]*)"?', challenge.decode()))
            cn = secrets.token_hex(8); uri = "zookeeper/zk-sasl-md5"
            ha1 = hashlib.md5(hashlib.md5(b"app:zk-sasl-md5:pw").digest() + f":{d['nonce']}:{cn}".encode()).hexdigest()
            ha2 = hashlib.md5(f"AUTHENTICATE:{uri}".encode()).hexdigest()
            resp = hashlib.md5(f"{ha1}:{d['nonce']}:00000001:{cn}:auth:{ha2}".encode()).hexdigest()
            tok = f'username="app",realm="zk-sasl-md5",nonce="{d["nonce"]}",nc=00000001,cnonce="{cn}",digest-uri="{uri}",response={resp},qop=auth'.encode()
            s.sendall(frame(struct.pack(">ii", 2, 102) + struct.pack(">i", len(tok)) + tok))
            r = recv_frame(s); assert struct.unpack(">iqi", r[:16])[2] == 0, r
        times.append(time.perf_counter() - t); s.close()
    times.sort()
    return statistics.median(times) * 1e3

print(f"getData / latency, {N} sequential requests, one connection (median / p99, microseconds):")
print("  plain port: %.0f / %.0f" % latency(plain_sock))
print("  TLS port:   %.0f / %.0f" % latency(tls_sock))
print("connection + new session, median of 200 (ms):")
print("  plain: %.2f" % setup(plain_sock))
print("  TLS (client certificate): %.2f" % setup(tls_sock))
print("  plain + SASL DIGEST-MD5: %.2f" % setup(plain_sock, sasl=True))
srv.stop()
pki.remove()
