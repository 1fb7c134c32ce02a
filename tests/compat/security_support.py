"""Test certificates and secured servers for test_security.py.

Certificates are made at test time with the openssl CLI in a temp dir
(throwaway keys, never committed): a CA, a server certificate for
127.0.0.1/localhost, client certificates for two applications, and a
client certificate from a second CA the server does not trust.  Java gets
its keys as PKCS#12 key stores and trusts the CA's PEM file (ZooKeeper 3.8's
PEM trust store type).

``start_secured(...)`` starts a private server of the selected target with
a secure client port and/or SASL users and/or enforced authentication:
Canopy through a TOML config file, the reference ZooKeeper 3.8 through the
equivalent zoo.cfg settings (Netty connection factory, ssl.*,
secureClientPort, X509 and SASL auth providers, a JAAS file, enforce.auth.*).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import HOST, TARGET, TICK_MS, ZK_JAVA_PROPS, CanopyServer, free_port

STORE_PASSWORD = "changeit"
# Subjects as openssl takes them (first RDN first) and as Java's
# X500Principal.getName() prints them (RFC 2253: last RDN first): the x509
# identity ZooKeeper and Canopy give a client.
APPS = {
    "app-a": ("/C=US/O=Canopy/OU=Registry/CN=app-a", "CN=app-a,OU=Registry,O=Canopy,C=US"),
    "app-b": ("/C=US/O=Canopy/OU=Registry/CN=app-b", "CN=app-b,OU=Registry,O=Canopy,C=US"),
}


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Pki:
    """Paths of the generated material, by name."""

    def __init__(self, root):
        self.root = root

    def path(self, name):
        return os.path.join(self.root, name)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


def make_pki() -> Pki:
    if not shutil.which("openssl"):
        pytest.skip("the openssl CLI is needed to make test certificates")
    root = tempfile.mkdtemp(prefix="compat-pki-")
    pki = Pki(root)

    def ca(name, subject):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", subject, "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=root)

    def leaf(name, subject, ca_name, extensions):
        with open(os.path.join(root, f"{name}.ext"), "w") as f:
            f.write(extensions)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=root)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem",
                 "-CAkey", f"{ca_name}.key", "-CAcreateserial", "-days", "2",
                 "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=root)
        # PKCS#12 key store for Java.
        _openssl("pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key",
                 "-out", f"{name}.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=root)

    ca("ca", "/O=Canopy Test/CN=Canopy Test CA")
    ca("rogue-ca", "/O=Elsewhere/CN=Untrusted CA")
    leaf("server", "/O=Canopy Test/CN=localhost", "ca",
         "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
         "extendedKeyUsage=serverAuth,clientAuth\n"
         "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client_ext = ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                  "extendedKeyUsage=clientAuth\n")
    for app, (subject, _dn) in APPS.items():
        leaf(app, subject, "ca", client_ext)
    leaf("rogue", "/O=Elsewhere/CN=intruder", "rogue-ca", client_ext)
    return pki


def jaas_file(directory, server_users=None, client=None):
    """A JAAS file with a Server section (user_<name>="password") and/or a
    Client section (the Java client's DigestLoginModule login)."""
    parts = []
    if server_users:
        users = "\n".join(f'    user_{u}="{p}"' for u, p in server_users.items())
        parts.append("Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
                     f"{users};\n}};\n")
    if client:
        user, password = client
        parts.append("Client {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
                     f'    username="{user}"\n    password="{password}";\n}};\n')
    fd, path = tempfile.mkstemp(prefix="jaas-", suffix=".conf", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write("".join(parts))
    return path


class SecuredServer:
    """A private server; ``port`` is plain, ``secure_port`` TLS (or None)."""

    def __init__(self, kind, impl, port, secure_port, workdir):
        self.kind = kind
        self._workdir = workdir
        self._impl = impl
        self.host = HOST
        self.port = port
        self.secure_port = secure_port
        self.hosts = f"{HOST}:{port}"
        self.secure_hosts = f"{HOST}:{secure_port}" if secure_port else None

    def log(self):
        if self.kind == "canopy":
            return "".join(self._impl.output)
        with open(self._impl.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self._impl.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _toml_str(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_secured(pki=None, client_auth="need", sasl_users=None, enforce_schemes=None):
    """Start a private server of the selected target; see the module doc."""
    workdir = tempfile.mkdtemp(prefix="compat-secured-")
    secure_port = free_port() if pki else None
    jaas = jaas_file(workdir, server_users=sasl_users) if sasl_users else None
    if TARGET == "zookeeper":
        from zkref import ZkReference

        cfg = {
            "authProvider.sasl": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
        }
        props = list(ZK_JAVA_PROPS)
        if pki:
            cfg.update({
                "secureClientPort": str(secure_port),
                "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
                "ssl.keyStore.location": pki.path("server.p12"),
                "ssl.keyStore.password": STORE_PASSWORD,
                "ssl.keyStore.type": "PKCS12",
                "ssl.trustStore.location": pki.path("ca.pem"),
                "ssl.trustStore.type": "PEM",
                "ssl.clientAuth": client_auth,
                "authProvider.x509": "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            })
        if enforce_schemes:
            cfg["enforce.auth.enabled"] = "true"
            cfg["enforce.auth.schemes"] = ",".join(enforce_schemes)
        if jaas:
            props.append(f"-Djava.security.auth.login.config={jaas}")
        impl = ZkReference(tick_ms=TICK_MS, extra_cfg=cfg, java_props=props)
        impl.start()
        return SecuredServer("zookeeper", impl, impl.port, secure_port, workdir)

    binary = os.environ.get("CANOPY_BIN")
    if not binary:
        pytest.exit("set CANOPY_BIN=/path/to/canopy (or COMPAT_TARGET=zookeeper)", 2)
    lines = []
    if enforce_schemes:
        lines.append("enforce_auth_enabled = true")
        lines.append("enforce_auth_schemes = [" + ", ".join(map(_toml_str, enforce_schemes)) + "]")
    if pki:
        lines += ["[tls]",
                  f"cert_file = {_toml_str(pki.path('server.pem'))}",
                  f"key_file = {_toml_str(pki.path('server.key'))}",
                  f"ca_file = {_toml_str(pki.path('ca.pem'))}",
                  f"client_auth = {_toml_str(client_auth)}"]
    if jaas:
        lines += ["[sasl]", f"jaas_file = {_toml_str(jaas)}"]
    config_path = os.path.join(workdir, "canopy.toml")
    with open(config_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    extra = ["--config", config_path]
    if secure_port:
        extra += ["--secure-port", str(secure_port)]
    impl = CanopyServer(binary, TICK_MS, extra_args=extra).start()
    return SecuredServer("canopy", impl, impl.port, secure_port, workdir)
