#!/usr/bin/env python3
"""Writes seed inputs for the decoder targets: a valid request frame of every
opcode (as ZooKeeper's jute encodes them), a few handshakes, and byte streams
of whole frames for the frame codec. Run once; `cargo fuzz cmin` then keeps
what adds coverage. Usage: python3 fuzz/seed_corpus.py (from the repo root).
"""

import hashlib
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    return i32(-1) if b is None else i32(len(b)) + b


def ustr(s):
    return buf(None if s is None else s.encode())


def vec(items):
    return i32(len(items)) + b"".join(items)


def acl(perms, scheme, ident):
    return i32(perms) + ustr(scheme) + ustr(ident)


OPEN = vec([acl(31, "world", "anyone")])


def create(path, data=b"x", flags=0):
    return ustr(path) + buf(data) + OPEN + i32(flags)


def create_ttl(path, flags=5, ttl=1000):
    return create(path, b"t", flags) + i64(ttl)


def multi(ops):
    out = b""
    for op, body in ops:
        out += i32(op) + boolean(False) + i32(-1) + body
    return out + i32(-1) + boolean(True) + i32(-1)


REQUESTS = {
    "create": (1, create("/a")),
    "create_ephemeral_sequential": (1, create("/a/e-", flags=3)),
    "delete": (2, ustr("/a") + i32(-1)),
    "exists": (3, ustr("/a") + boolean(True)),
    "get_data": (4, ustr("/a") + boolean(True)),
    "set_data": (5, ustr("/a") + buf(b"new") + i32(0)),
    "get_acl": (6, ustr("/a")),
    "set_acl": (7, ustr("/a") + vec([acl(1, "digest", "u:hash"), acl(31, "auth", "")]) + i32(-1)),
    "get_children": (8, ustr("/") + boolean(False)),
    "sync": (9, ustr("/")),
    "ping": (11, b""),
    "get_children2": (12, ustr("/") + boolean(True)),
    "check": (13, ustr("/a") + i32(3)),
    "multi": (14, multi([(1, create("/m")), (5, ustr("/m") + buf(None) + i32(-1)),
                         (13, ustr("/m") + i32(1)), (2, ustr("/m") + i32(-1)),
                         (19, create("/c", flags=4)), (21, create_ttl("/t"))])),
    "create2": (15, create("/a", None, 2)),
    "reconfig": (16, ustr(None) + ustr(None) + ustr("server.1=127.0.0.1:2888:3888") + i64(-1)),
    "check_watches": (17, ustr("/a") + i32(1)),
    "remove_watches": (18, ustr("/a") + i32(3)),
    "create_container": (19, create("/c", flags=4)),
    "delete_container": (20, b"/c"),
    "create_ttl": (21, create_ttl("/t", 6, 60000)),
    "multi_read": (22, multi([(8, ustr("/") + boolean(False)), (4, ustr("/a") + boolean(True))])),
    "auth": (100, i32(0) + ustr("digest") + buf(b"alice:secret")),
    "set_watches": (101, i64(5) + vec([ustr("/a")]) + vec([ustr("/b")]) + vec([ustr("/")])),
    "sasl": (102, buf(b"token")),
    "get_ephemerals": (103, ustr("/")),
    "get_all_children_number": (104, ustr("/")),
    "set_watches2": (105, i64(5) + vec([ustr("/a")]) + vec([ustr("/b")]) + vec([ustr("/")])
                     + vec([ustr("/p")]) + vec([ustr("/r")])),
    "add_watch": (106, ustr("/a") + i32(1)),
    "whoami": (107, b""),
    "create_session": (-10, i32(30000)),
    "close_session": (-11, b""),
}


def connect(read_only=True, session=0):
    body = i32(0) + i64(0) + i32(30000) + i64(session) + buf(bytes(16))
    return body + (boolean(False) if read_only else b"")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    frames = []
    for name, (op, body) in REQUESTS.items():
        frame = i32(7) + i32(op) + body
        write("request_decoder", name, frame)
        frames.append(frame)
    write("request_decoder", "connect", connect())
    write("request_decoder", "connect_old_client", connect(read_only=False, session=0x1234))

    # Frame codec: max frame (0xffff = server default), chunk size, stream.
    stream = b"".join(i32(len(f)) + f for f in frames)
    write("frame_decoder", "all_ops", b"\xff\xff\x07" + stream)
    write("frame_decoder", "small_max", b"\x00\x20\x01" + stream[:200])
    write("frame_decoder", "negative", b"\x00\x20\x03" + i32(1) + b"x" + i32(-5))
    write("frame_decoder", "too_large", b"\x00\x10\x02" + i32(17) + bytes(17))
    write("frame_decoder", "partial", b"\xff\xff\x05" + i32(100) + b"abc")
    print("seeds written under", ROOT, hashlib.sha1(stream).hexdigest()[:8])


if __name__ == "__main__":
    main()
