"""TLS on the secure client port, SASL DIGEST-MD5, x509 identities and
enforced authentication, with kazoo and with ZooKeeper's own Java client.

Each server here is private (it needs settings the shared one does not
have): Canopy gets them from a TOML file, the reference ZooKeeper 3.8 from
the equivalent zoo.cfg/JAAS settings (see security_support.py), so every
test runs against both targets.
"""

import os
import shutil
import socket
import struct
import subprocess
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from conftest import EVENT_TIMEOUT, wait_until
from security_support import APPS, STORE_PASSWORD, jaas_file, make_pki, start_secured

SASL_USERS = {"app-a": "a-secret", "app-b": "b-secret"}
JAVA = shutil.which("java")


@pytest.fixture(scope="module")
def pki():
    made = make_pki()
    yield made
    made.remove()


@pytest.fixture(scope="module")
def secured(pki):
    """Secure port with client certificates required, plain port, SASL users."""
    srv = start_secured(pki, client_auth="need", sasl_users=SASL_USERS)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def enforced(pki):
    """As `secured`, and every connection must authenticate by digest, sasl
    or a client certificate before anything else."""
    srv = start_secured(pki, client_auth="need", sasl_users=SASL_USERS,
                        enforce_schemes=["digest", "sasl", "x509"])
    yield srv
    srv.stop()


@pytest.fixture
def clients():
    made = []

    def make(hosts, start=True, timeout=4.0, start_timeout=EVENT_TIMEOUT, **kwargs):
        c = KazooClient(hosts=hosts, timeout=timeout, **kwargs)
        made.append(c)
        if start:
            c.start(timeout=start_timeout)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def tls_options(pki, app="app-a"):
    options = {"use_ssl": True, "verify_certs": True, "ca": pki.path("ca.pem")}
    if app:
        options.update(certfile=pki.path(f"{app}.pem"), keyfile=pki.path(f"{app}.key"))
    return options


def sasl_options(user, password):
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": user, "password": password}}


def unique(prefix):
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


# -- raw protocol, to see exactly what the server sends --------------------

def _frame(body):
    return struct.pack(">i", len(body)) + body


def _read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack(">i", head)[0])


def raw_session(port):
    """A socket with a new session attached (ConnectRequest, then its response)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT)
    connect = struct.pack(">iqiq", 0, 0, 4000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    sock.sendall(_frame(connect))
    response = _read_frame(sock)
    assert response is not None and len(response) >= 20
    session_id = struct.unpack(">q", response[8:16])[0]
    assert session_id != 0
    return sock


def get_data_request(xid, path):
    encoded = path.encode()
    return _frame(struct.pack(">ii", xid, 4) + struct.pack(">i", len(encoded)) + encoded + b"\0")


# -- TLS --------------------------------------------------------------------

def test_kazoo_over_tls_with_a_client_certificate(secured, pki, clients):
    tls = clients(secured.secure_hosts, **tls_options(pki))
    plain = clients(secured.hosts)
    path = unique("tls")
    tls.create(path, b"over tls")
    # Both ports serve the same tree at once.
    assert plain.get(path)[0] == b"over tls"
    plain.set(path, b"over plain")
    assert tls.get(path)[0] == b"over plain"
    tls.delete(path)


def test_tls_refuses_clients_without_a_trusted_certificate(secured, pki, clients):
    # No certificate at all while the server needs one.
    no_cert = clients(secured.secure_hosts, start=False, **tls_options(pki, app=None))
    with pytest.raises(Exception):
        no_cert.start(timeout=3)
    # A certificate from a CA the server does not trust.
    rogue = clients(secured.secure_hosts, start=False, use_ssl=True, verify_certs=True,
                    ca=pki.path("ca.pem"), certfile=pki.path("rogue.pem"),
                    keyfile=pki.path("rogue.key"))
    with pytest.raises(Exception):
        rogue.start(timeout=3)
    # Plain ZooKeeper protocol on the TLS port gets no session.
    with socket.create_connection(("127.0.0.1", secured.secure_port), timeout=5) as sock:
        connect = struct.pack(">iqiq", 0, 0, 4000, 0) + struct.pack(">i", 16) + b"\0" * 17
        sock.sendall(_frame(connect))
        try:
            reply = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        # Whatever comes back is a TLS alert or nothing, never a session.
        assert len(reply) < 20 or reply[:1] == b"\x15"


def test_client_certificate_subject_is_an_x509_identity(secured, pki, clients):
    dn_a = APPS["app-a"][1]
    admin = clients(secured.secure_hosts, **tls_options(pki, "app-a"))
    other = clients(secured.secure_hosts, **tls_options(pki, "app-b"))
    path = unique("x509")
    admin.create(path, b"a", acl=[ACL(Permissions.ALL, Id("x509", dn_a)),
                                  ACL(Permissions.READ, Id("world", "anyone"))])
    assert other.get(path)[0] == b"a"
    with pytest.raises(NoAuthError):
        other.set(path, b"b")
    admin.set(path, b"a2")
    # The `auth` scheme expands to the certificate's identity.
    child = admin.create(path + "/c", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acl, _ = admin.get_acls(child)
    assert [(a.id.scheme, a.id.id) for a in acl] == [("x509", dn_a)]


# -- SASL DIGEST-MD5 --------------------------------------------------------

def test_kazoo_sasl_digest_md5(secured, clients):
    pytest.importorskip("puresasl")
    a = clients(secured.hosts, **sasl_options("app-a", SASL_USERS["app-a"]))
    b = clients(secured.hosts, **sasl_options("app-b", SASL_USERS["app-b"]))
    path = unique("sasl")
    a.create(path, b"mine", acl=[ACL(Permissions.ALL, Id("sasl", "app-a"))])
    assert a.get(path)[0] == b"mine"
    with pytest.raises(NoAuthError):
        b.get(path)
    with pytest.raises(NoAuthError):
        b.set(path, b"theirs")
    with pytest.raises(NoAuthError):
        b.set_acls(path, [ACL(Permissions.ALL, Id("sasl", "app-b"))])
    assert a.get(path)[0] == b"mine"
    a.delete(path)


def test_kazoo_sasl_with_a_wrong_password_is_refused(secured, clients):
    pytest.importorskip("puresasl")
    for user, password in [("app-a", "not-the-password"), ("nobody", "x")]:
        c = clients(secured.hosts, start=False, **sasl_options(user, password))
        # kazoo reports CONNECTED at the handshake, before SASL; the refused
        # SASL response then makes it give up (AUTH_FAILED).
        try:
            c.start(timeout=3)
        except Exception:
            pass
        wait_until(lambda: not c.connected, what="the refused client to stop")
        with pytest.raises(Exception):
            c.get("/")
    if secured.kind == "canopy":
        assert "SASL authentication failed" in secured.log()


def test_sasl_over_tls_gives_both_identities(secured, pki, clients):
    pytest.importorskip("puresasl")
    c = clients(secured.secure_hosts, **tls_options(pki, "app-b"),
                **sasl_options("app-a", SASL_USERS["app-a"]))
    path = unique("both")
    c.create(path, acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acl, _ = c.get_acls(path)
    assert sorted((a.id.scheme, a.id.id) for a in acl) == [
        ("sasl", "app-a"), ("x509", APPS["app-b"][1])]


# -- the Java client ---------------------------------------------------------

def java_cli(hosts, command, java_props, timeout=90):
    if not JAVA:
        pytest.skip("java is not installed")
    from zkref import zkcli_command

    proc = subprocess.run(
        zkcli_command(hosts, *command, java_props=java_props),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        env={**os.environ, "ZOO_LOG_DIR": "/tmp"})
    return proc.stdout


def netty_tls_props(pki, app):
    return [
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        "-Dzookeeper.client.secure=true",
        f"-Dzookeeper.ssl.keyStore.location={pki.path(app + '.p12')}",
        f"-Dzookeeper.ssl.keyStore.password={STORE_PASSWORD}",
        "-Dzookeeper.ssl.keyStore.type=PKCS12",
        f"-Dzookeeper.ssl.trustStore.location={pki.path('ca.pem')}",
        "-Dzookeeper.ssl.trustStore.type=PEM",
    ]


def test_java_client_over_netty_tls(secured, pki, clients):
    path = unique("java-tls")
    clients(secured.hosts).create(path, b"seen by java")
    out = java_cli(secured.secure_hosts, ["get", path], netty_tls_props(pki, "app-a"))
    assert "seen by java" in out, out
    out = java_cli(secured.secure_hosts, ["whoami"], netty_tls_props(pki, "app-b"))
    assert f"x509: {APPS['app-b'][1]}" in out, out


def test_java_client_sasl_digest_md5(secured, tmp_path):
    jaas = jaas_file(str(tmp_path), client=("app-a", SASL_USERS["app-a"]))
    out = java_cli(secured.hosts, ["whoami"], [f"-Djava.security.auth.login.config={jaas}"])
    assert "sasl: app-a" in out, out


def test_java_client_sasl_with_a_wrong_password_fails(secured, tmp_path):
    jaas = jaas_file(str(tmp_path), client=("app-a", "wrong"))
    out = java_cli(secured.hosts, ["whoami"], [f"-Djava.security.auth.login.config={jaas}"])
    assert "sasl: app-a" not in out
    assert "AUTH_FAILED" in out or "AuthFailed" in out or "authentication failed" in out.lower(), out


# -- enforced authentication --------------------------------------------------

def test_enforced_auth_answers_unauthenticated_requests_and_closes(enforced):
    sock = raw_session(enforced.port)
    with sock:
        sock.sendall(get_data_request(7, "/"))
        reply = _read_frame(sock)
        # ZooKeeper 3.7+: header only, xid echoed, zxid 0,
        # SessionClosedRequireSaslAuth (-124); then the connection is closed.
        assert reply is not None and len(reply) == 16
        assert struct.unpack(">iqi", reply) == (7, 0, -124)
        assert _read_frame(sock) is None


def test_enforced_auth_lets_authenticated_clients_in(enforced, pki, clients):
    # digest via addauth (kazoo sends it right after the handshake)
    digest = clients(enforced.hosts, auth_data=[("digest", "ops:ops-secret")])
    path = unique("enforced")
    digest.create(path, b"ok")
    # a TLS client certificate alone (the x509 scheme)
    assert clients(enforced.secure_hosts, **tls_options(pki)).get(path)[0] == b"ok"
    # SASL
    pytest.importorskip("puresasl")
    sasl = clients(enforced.hosts, **sasl_options("app-b", SASL_USERS["app-b"]))
    assert sasl.get(path)[0] == b"ok"


def test_enforced_auth_refuses_a_plain_kazoo_client(enforced, clients):
    c = clients(enforced.hosts, start=False)
    # The handshake gets through (kazoo reports CONNECTED); the first request
    # does not, and the connection is closed.
    with pytest.raises(Exception):
        c.start(timeout=2)
        c.get("/")


def test_enforced_auth_with_a_failed_sasl_login_is_closed(enforced):
    """The wire answer to a bad DIGEST-MD5 response under enforcement."""
    sock = raw_session(enforced.port)
    with sock:
        token = b""
        sasl = struct.pack(">ii", 1, 102) + struct.pack(">i", len(token)) + token
        sock.sendall(_frame(sasl))
        reply = _read_frame(sock)
        assert struct.unpack(">iqi", reply[:16]) == (1, 0, 0)
        assert b"realm=\"zk-sasl-md5\"" in reply[20:]
        bogus = b'username="app-a",nonce="x",nc=00000001,cnonce="y",' \
                b'digest-uri="zookeeper/zk-sasl-md5",response=0123,qop=auth'
        sock.sendall(_frame(struct.pack(">ii", 2, 102) + struct.pack(">i", len(bogus)) + bogus))
        reply = _read_frame(sock)
        xid, zxid, err = struct.unpack(">iqi", reply[:16])
        assert (xid, err) == (2, -124)
        assert _read_frame(sock) is None


def test_java_client_under_enforcement(enforced, tmp_path):
    jaas = jaas_file(str(tmp_path), client=("app-b", SASL_USERS["app-b"]))
    out = java_cli(enforced.hosts, ["whoami"], [f"-Djava.security.auth.login.config={jaas}"])
    assert "sasl: app-b" in out, out
    assert "ip: 127.0.0.1" in out, out
    # Without credentials the Java client's first request is refused: its
    # whoami comes back with no identities at all (ZooKeeper 3.8 prints the
    # same), and the connection is closed.
    out = java_cli(enforced.hosts, ["whoami"], ["-Dzookeeper.sasl.client=false"])
    assert "Auth scheme: User" in out, out
    assert "ip: 127.0.0.1" not in out and "sasl:" not in out, out
