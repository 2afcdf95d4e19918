"""Erasure through the gateway, against a real memory service: a person forgets themselves, an
admin a user or the whole tenant, nobody else anyone. What the memory service removes (every
table, Redis, the NATS event) is tests/memory/test_erasure.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from threadline_gateway import apikeys

from tests.gateway import auth_helpers as creds


def test_a_person_erases_themselves_and_an_admin_the_tenant(
    make_gateway: Callable[..., TestClient], memory_target: str
) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    key = apikeys.generate()[1]
    gateway = make_gateway(
        GATEWAY_AUTH="required",
        GATEWAY_JWT_SECRET=creds.SECRET,
        GATEWAY_API_KEYS=f"{tenant}:{apikeys.digest(key).hex()}",
        MEMORY_TARGET=memory_target,
    )
    ada, bob = (creds.bearer(creds.hs256(tenant=tenant, sub=user)) for user in ("ada", "bob"))
    admin = creds.bearer(creds.hs256(tenant=tenant, sub="root", roles=["admin"]))
    threads = {
        user: [
            gateway.post("/api/v1/threads", json={"metadata": {"user_id": user}}, headers=ada).json()["thread_id"]
            for _ in range(count)
        ]
        for user, count in (("ada", 2), ("bob", 1))
    }

    for who, body in [(bob, {"user_id": "ada"}), ({"X-API-Key": key}, {}), (ada, {"user_id": "bob"})]:
        refused = gateway.post("/api/v1/erasure", json=body, headers=who)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
    assert all(gateway.get(f"/api/v1/threads/{t}", headers=ada).status_code == 200 for t in threads["ada"])

    erased = gateway.post("/api/v1/erasure", json={}, headers=ada)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"user_id": "ada", "threads": 2, "store_items": 0}
    assert [gateway.get(f"/api/v1/threads/{t}", headers=ada).status_code for t in threads["ada"]] == [404, 404]
    assert gateway.get(f"/api/v1/threads/{threads['bob'][0]}", headers=bob).status_code == 200

    assert gateway.post("/api/v1/erasure", json={}, headers=admin).json() == {
        "user_id": None,
        "threads": 1,
        "store_items": 0,
    }
    assert gateway.get(f"/api/v1/threads/{threads['bob'][0]}", headers=bob).status_code == 404
