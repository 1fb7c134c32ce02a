"""kazoo: ACLs, digest authentication, ip ACLs and ACL errors."""

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.protocol.serialization import Create
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)


def test_digest_acl_requires_auth(make_client, base):
    owner = make_client()
    owner.add_auth("digest", "alice:secret")
    acl = make_digest_acl("alice", "secret", all=True)
    path = owner.create(f"{base}/private", b"data", acl=[acl])
    assert owner.get(path)[0] == b"data"

    stranger = make_client()
    with pytest.raises(NoAuthError):
        stranger.get(path)
    with pytest.raises(NoAuthError):
        stranger.set(path, b"x")
    with pytest.raises(NoAuthError):
        stranger.get_children(path)
    with pytest.raises(NoAuthError):
        stranger.create(f"{path}/child")
    # exists() is not ACL-checked.
    assert stranger.exists(path).dataLength == 4

    stranger.add_auth("digest", "alice:wrong")  # wrong password: no match
    with pytest.raises(NoAuthError):
        stranger.get(path)
    stranger.add_auth("digest", "alice:secret")  # a session may hold several
    assert stranger.get(path)[0] == b"data"


def test_digest_id_is_user_colon_base64_sha1(zk, base):
    acl = make_digest_acl("bob", "pw", read=True)
    path = zk.create(f"{base}/n", acl=[acl])
    # getACL itself needs READ or ADMIN (since ZooKeeper 3.4.14/3.5.5).
    with pytest.raises(NoAuthError):
        zk.get_acls(path)
    zk.add_auth("digest", "bob:pw")
    # With READ but not ADMIN, ZooKeeper redacts digest hashes to "user:x".
    acls, stat = zk.get_acls(path)
    assert acls == [ACL(Permissions.READ, Id("digest", "bob:x"))]
    assert stat.aversion == 0

    # With ADMIN the stored id comes back: "user:" + base64(sha1("user:pw")).
    admin = make_digest_acl("bob", "pw", read=True, admin=True)
    path2 = zk.create(f"{base}/m", acl=[admin])
    acls, _ = zk.get_acls(path2)
    assert acls == [ACL(Permissions.READ | Permissions.ADMIN,
                        Id("digest", make_digest_acl_credential("bob", "pw")))]
    assert acls[0].id.id == "bob:" + "ikIaKsbtGweaHnb/jKn7OHqbunM="


def test_auth_scheme_acl_uses_session_identities(make_client, base):
    zk = make_client()
    zk.add_auth("digest", "carol:pw")
    # "auth" means: every identity this session authenticated as.
    path = zk.create(f"{base}/n", acl=[make_acl("auth", "", all=True)])
    acls, _ = zk.get_acls(path)
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("carol", "pw")))]
    # Without any authenticated identity "auth" is an invalid ACL.
    anonymous = make_client()
    with pytest.raises(InvalidACLError):
        anonymous.create(f"{base}/m", acl=[make_acl("auth", "", all=True)])


def test_world_read_only(make_client, base):
    zk = make_client()
    path = zk.create(f"{base}/ro", b"v", acl=READ_ACL_UNSAFE)
    assert zk.get(path)[0] == b"v"
    assert zk.get_children(path) == []
    with pytest.raises(NoAuthError):
        zk.set(path, b"w")
    with pytest.raises(NoAuthError):
        zk.create(f"{path}/kid")
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE)  # needs ADMIN
    # Deleting the node itself is governed by the *parent's* ACL.
    zk.delete(path)
    assert zk.exists(path) is None


def test_create_without_delete_permission(zk, base):
    parent = zk.create(f"{base}/p", acl=[make_acl("world", "anyone", read=True, create=True)])
    zk.create(f"{parent}/kid")
    with pytest.raises(NoAuthError):
        zk.delete(f"{parent}/kid")  # parent lacks DELETE


def test_get_and_set_acls_with_version(zk, base):
    path = zk.create(f"{base}/n")
    acls, stat = zk.get_acls(path)
    assert acls == list(OPEN_ACL_UNSAFE) and stat.aversion == 0

    new = [make_acl("world", "anyone", read=True, write=True, admin=True)]
    stat = zk.set_acls(path, new, version=0)
    assert stat.aversion == 1 and stat.version == 0  # data version untouched
    assert zk.get_acls(path)[0] == new
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    assert zk.set_acls(path, READ_ACL_UNSAFE, version=-1).aversion == 2
    # Now without ADMIN: the permission check comes before the version check.
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    assert zk.get_acls(path)[1].aversion == 2


def _raw_create(zk, path, acl):
    # kazoo replaces an empty ACL list by its default, so go raw.
    result = zk.handler.async_result()
    zk._call(Create(path, b"", acl, 0), result)
    return result.get(timeout=10)


def test_invalid_acls(zk, base):
    with pytest.raises(InvalidACLError):
        _raw_create(zk, f"{base}/empty", [])
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/bad", acl=[make_acl("nosuchscheme", "x", all=True)])
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/badip", acl=[make_acl("ip", "not-an-ip", all=True)])
    path = zk.create(f"{base}/n")
    with pytest.raises(InvalidACLError):
        zk.set_acls(path, [])
    assert zk.get_children(base) == ["n"]


def test_ip_acl(zk, base):
    mine = zk.create(f"{base}/mine", b"ok", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert zk.get(mine)[0] == b"ok"
    subnet = zk.create(f"{base}/subnet", b"ok", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert zk.get(subnet)[0] == b"ok"
    other = zk.create(f"{base}/other", b"no", acl=[make_acl("ip", "10.1.2.3", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(other)


def test_unknown_auth_scheme_fails_session(make_client):
    zk = make_client()
    with pytest.raises(AuthFailedError):
        zk.add_auth("nosuchscheme", "whatever")
