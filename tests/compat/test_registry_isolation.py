"""The registry layout of docs/security.md: each application has its own
credentials, and ACLs let it publish providers of its own services while
no other application can remove, change or shadow them.

Digest credentials (addauth) are used so the test runs on the shared server
of either target; the same ACLs work with `sasl:<user>` or
`x509:<subject DN>` ids (test_security.py checks those identities).
"""

import uuid

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential

from conftest import wait_until

CREDENTIALS = {"ops": "ops-secret", "app-a": "a-secret", "app-b": "b-secret"}


def digest_id(user):
    return Id("digest", make_digest_acl_credential(user, CREDENTIALS[user]))


def client_as(make_client, user):
    return make_client(auth_data=[("digest", f"{user}:{CREDENTIALS[user]}")])


WORLD_READ = ACL(Permissions.READ, Id("world", "anyone"))


def test_one_application_cannot_remove_another_applications_providers(make_client):
    root = f"/registry-{uuid.uuid4().hex[:8]}/dubbo"
    ops = client_as(make_client, "ops")
    app_a = client_as(make_client, "app-a")
    app_b = client_as(make_client, "app-b")
    consumer = make_client()  # no credentials at all

    # The operator lays out the tree: everything readable by anyone, the
    # registry root and each service node changed only by ops, and each
    # service's providers folder writable (create and delete) only by the
    # application that owns the service.
    ops_all = ACL(Permissions.ALL, digest_id("ops"))
    ops.create(root, acl=[ops_all, WORLD_READ], makepath=True)
    owners = {"com.example.AService": "app-a", "com.example.BService": "app-b"}
    for service, owner in owners.items():
        ops.create(f"{root}/{service}", acl=[ops_all, WORLD_READ])
        ops.create(f"{root}/{service}/providers", acl=[
            ops_all, WORLD_READ,
            ACL(Permissions.CREATE | Permissions.DELETE | Permissions.READ, digest_id(owner)),
        ])

    # Each application registers its provider: ephemeral, its own node ACL.
    b_providers = f"{root}/com.example.BService/providers"
    b_url = "dubbo%3A%2F%2F10.0.0.2%3A20880%2Fcom.example.BService"
    b_node = app_b.create(f"{b_providers}/{b_url}", b"b", ephemeral=True,
                          acl=[ACL(Permissions.ALL, digest_id("app-b")), WORLD_READ])
    a_providers = f"{root}/com.example.AService/providers"
    app_a.create(f"{a_providers}/dubbo%3A%2F%2F10.0.0.1%3A20880", ephemeral=True,
                 acl=[ACL(Permissions.ALL, digest_id("app-a")), WORLD_READ])

    # App A cannot remove B's provider, change it, take over its ACL, add a
    # fake provider beside it, or remove the folder that holds it.
    with pytest.raises(NoAuthError):
        app_a.delete(b_node)
    with pytest.raises(NoAuthError):
        app_a.set(b_node, b"hijacked")
    with pytest.raises(NoAuthError):
        app_a.set_acls(b_node, [ACL(Permissions.ALL, Id("world", "anyone"))])
    with pytest.raises(NoAuthError):
        app_a.create(f"{b_providers}/dubbo%3A%2F%2Fevil%3A1", ephemeral=True)
    with pytest.raises(NoAuthError):
        app_a.delete(f"{root}/com.example.BService")
    with pytest.raises(NoAuthError):
        app_a.delete(b_providers)
    # ... and so cannot B do any of it to A.
    a_node = f"{a_providers}/dubbo%3A%2F%2F10.0.0.1%3A20880"
    with pytest.raises(NoAuthError):
        app_b.delete(a_node)

    # Consumers, with no credentials, still discover everything.
    assert consumer.get_children(b_providers) == [b_url]
    assert consumer.get(b_node)[0] == b"b"
    assert consumer.get_children(a_providers) == ["dubbo%3A%2F%2F10.0.0.1%3A20880"]

    # B manages its own registration: unregisters and registers again ...
    app_b.delete(b_node)
    app_b.create(b_node, b"b2", ephemeral=True,
                 acl=[ACL(Permissions.ALL, digest_id("app-b")), WORLD_READ])
    assert consumer.get(b_node)[0] == b"b2"
    # ... and when B's session ends its provider goes, whatever the ACLs.
    app_b.stop()
    wait_until(lambda: consumer.exists(b_node) is None, what="B's provider to go")
    assert consumer.exists(a_node) is not None
