"""Authentication with GATEWAY_AUTH=required: JWTs (HS256, RS256) and API keys decide the tenant."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from threadline_gateway import apikeys
from threadline_gateway.app import create_app
from threadline_gateway.settings import GatewaySettings

from tests.conftest import free_port
from tests.gateway import auth_helpers as creds
from tests.gateway.conftest import publish_events, run_events
from tests.gateway.test_multitask import _submitted

PRIVATE_KEY, PUBLIC_PEM = creds.rsa_pair()
OTHER_PRIVATE_KEY, _ = creds.rsa_pair()


@pytest.fixture
def secured(make_gateway: Callable[..., TestClient]) -> TestClient:
    return make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET, GATEWAY_JWT_PUBLIC_KEY=PUBLIC_PEM)


def start_run(gateway: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    reply = gateway.post("/api/v1/runs", json={"input": "Who am I?"}, headers=headers)
    assert reply.status_code == 202, reply.text
    return reply.json()


def assert_refused(reply, code: str, words: str) -> None:
    assert reply.status_code == 401, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert words in error["message"]
    assert reply.headers["www-authenticate"].startswith('Bearer realm="threadline"')


def test_no_credential_is_a_401_with_a_challenge(secured: TestClient) -> None:
    reply = secured.post("/api/v1/query", json={"input": "hi"})
    assert_refused(reply, "unauthenticated", "Authentication required")
    assert "error=" not in reply.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (creds.hs256(ttl=-120), "expired"),
        (creds.hs256(secret="not-the-server-secret-at-all-no-no"), "not valid"),
        (creds.unsigned(), "none"),
        (creds.rs256(OTHER_PRIVATE_KEY), "not valid"),
        (creds.hs256_with_public_key(PUBLIC_PEM), "not valid"),
        (creds.hs256(tenant="../etc"), "tenant"),
        (creds.hs256(tenant=None), "tenant"),
        ("not.a.jwt", "not valid"),
    ],
    ids=["expired", "forged", "alg-none", "wrong-rsa-key", "hs256-with-public-key", "bad-tenant", "no-tenant", "junk"],
)
def test_bad_tokens_are_refused(secured: TestClient, token: str, words: str) -> None:
    reply = secured.post("/api/v1/runs", json={"input": "hi"}, headers=creds.bearer(token))
    assert_refused(reply, "invalid_token", words)
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_a_token_without_exp_is_refused(secured: TestClient) -> None:
    import jwt

    token = jwt.encode({"sub": "u", "tenant_id": "acme"}, creds.SECRET, algorithm="HS256")
    assert_refused(secured.get("/api/v1/runs/x", headers=creds.bearer(token)), "invalid_token", "'exp'")


@pytest.mark.parametrize(
    "token", [creds.hs256(tenant="acme"), creds.rs256(PRIVATE_KEY, tenant="acme")], ids=["hs", "rs"]
)
def test_valid_tokens_act_for_their_tenant_only(secured: TestClient, nats_namespace: str, token: str) -> None:
    # A tenant header is not a credential: it must not move the run to another tenant.
    run = start_run(secured, {**creds.bearer(token), "X-Tenant-ID": "globex"})
    publish_events(nats_namespace, run["run_id"], run_events(run["run_id"], run["thread_id"]))

    assert secured.get(f"/api/v1/runs/{run['run_id']}", headers=creds.bearer(token)).status_code == 200
    joined = secured.get(f"/api/v1/runs/{run['run_id']}/wait", headers=creds.bearer(creds.hs256(tenant="acme")))
    assert joined.status_code == 200
    other = creds.bearer(creds.rs256(PRIVATE_KEY, tenant="globex"))
    for path in ("", "/wait", "/stream"):
        reply = secured.get(f"/api/v1/runs/{run['run_id']}{path}", headers=other)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json()["error"]["code"] == "not_found"


def test_issuer_and_audience_are_checked_when_configured(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(
        GATEWAY_AUTH="required",
        GATEWAY_JWT_SECRET=creds.SECRET,
        GATEWAY_JWT_ISSUER="https://idp.example",
        GATEWAY_JWT_AUDIENCE="threadline",
    )
    good = {"iss": "https://idp.example", "aud": "threadline"}
    assert (
        gateway.post("/api/v1/runs", json={"input": "x"}, headers=creds.bearer(creds.hs256(**good))).status_code == 202
    )
    for bad, words in (({**good, "iss": "https://evil.example"}, "issuer"), ({**good, "aud": "other"}, "audience")):
        reply = gateway.post("/api/v1/runs", json={"input": "x"}, headers=creds.bearer(creds.hs256(**bad)))
        assert_refused(reply, "invalid_token", words)
    assert_refused(
        gateway.post("/api/v1/runs", json={"input": "x"}, headers=creds.bearer(creds.hs256())), "invalid_token", "'iss'"
    )


def test_the_public_key_may_be_a_file(make_gateway: Callable[..., TestClient], tmp_path) -> None:
    path = tmp_path / "jwt.pem"
    path.write_text(PUBLIC_PEM)
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_PUBLIC_KEY=str(path))
    start_run(gateway, creds.bearer(creds.rs256(PRIVATE_KEY)))
    # Only RS256 is configured, so an HS256 token cannot be verified at all.
    assert_refused(
        gateway.post("/api/v1/runs", json={"input": "x"}, headers=creds.bearer(creds.hs256())), "invalid_token", "HS256"
    )


def test_static_api_keys(make_gateway: Callable[..., TestClient], nats_namespace: str) -> None:
    _, key = apikeys.generate()
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_API_KEYS=f"acme:{apikeys.digest(key).hex()}")
    run = start_run(gateway, {"X-API-Key": key})
    assert gateway.get(f"/api/v1/runs/{run['run_id']}", headers=creds.bearer(key)).status_code == 200
    _, stranger = apikeys.generate()
    assert_refused(
        gateway.get(f"/api/v1/runs/{run['run_id']}", headers={"X-API-Key": stranger}), "invalid_token", "API key"
    )


def _cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadline_gateway.apikeys", *args],
        env={**os.environ, "DATABASE_URL": database},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_api_keys_made_by_the_cli_work_until_revoked(make_gateway: Callable[..., TestClient], database: str) -> None:
    made = _cli(database, "create", "--tenant", "acme", "--name", "ci")
    assert made.returncode == 0, made.stderr
    fields = dict(line.split(": ", 1) for line in made.stdout.splitlines())
    key, key_id = fields["key"], fields["id"]
    assert key.startswith("tl_") and fields["tenant"] == "acme"

    gateway = make_gateway(GATEWAY_AUTH="required", DATABASE_URL=database)
    run = start_run(gateway, {"X-API-Key": key})
    listed = _cli(database, "list", "--tenant", "acme")
    assert key_id in listed.stdout and key not in listed.stdout and "active" in listed.stdout

    assert _cli(database, "revoke", key_id).returncode == 0
    assert_refused(gateway.get(f"/api/v1/runs/{run['run_id']}", headers={"X-API-Key": key}), "invalid_token", "API key")
    assert _cli(database, "revoke", key_id).returncode == 1  # already revoked: said so, not silently "done"
    # Only the hash is stored.
    import psycopg

    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT key_sha256 FROM gateway_api_keys WHERE id = %s", (key_id,)).fetchone()[0]
    assert bytes(stored) == apikeys.digest(key)


def test_the_cli_refuses_a_bad_tenant_and_a_missing_database(database: str) -> None:
    bad = _cli(database, "create", "--tenant", "no/slashes")
    assert bad.returncode == 2 and "not a valid tenant" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "threadline_gateway.apikeys", "list"],
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "DATABASE_URL" in missing.stderr


def test_a_database_that_is_down_is_a_503_for_api_keys(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(
        GATEWAY_AUTH="required",
        GATEWAY_JWT_SECRET=creds.SECRET,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        GATEWAY_DB_TIMEOUT_S=0.5,
    )
    _, key = apikeys.generate()
    reply = gateway.post("/api/v1/runs", json={"input": "x"}, headers={"X-API-Key": key})
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    # JWT callers do not need the database.
    start_run(gateway, creds.bearer(creds.hs256()))


def test_health_metrics_and_docs_need_no_credential(secured: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert secured.get(path).status_code == 200, path
    schemes = secured.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def test_required_auth_with_nothing_to_check_against_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="nothing can authenticate"):
        create_app(GatewaySettings(GATEWAY_AUTH="required"))


def _ws_closed_code(gateway: TestClient, url: str, **kwargs: Any) -> int:
    with gateway.websocket_connect(url, **kwargs) as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    return closed.value.code


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"headers": creds.bearer(creds.hs256(ttl=-120))},
        {"subprotocols": ["bearer", creds.unsigned()]},
        {"subprotocols": ["bearer"]},
    ],
    ids=["none", "expired-header", "alg-none-subprotocol", "empty-subprotocol"],
)
def test_a_websocket_without_a_valid_credential_is_closed_with_4001(secured: TestClient, kwargs: dict) -> None:
    assert _ws_closed_code(secured, "/api/v1/ws", **kwargs) == 4001
    assert _ws_closed_code(secured, f"/api/v1/ws?token={creds.hs256(secret='x' * 40)}") == 4001


def _ws_query(ws) -> dict[str, Any]:
    ws.send_json({"type": "query", "input": "hello", "ref": "q"})
    return ws.receive_json()


def test_a_websocket_authenticates_by_header_query_or_subprotocol(secured: TestClient) -> None:
    token = creds.rs256(PRIVATE_KEY, tenant="acme")
    with secured.websocket_connect("/api/v1/ws", headers=creds.bearer(token)) as ws:
        run_id = _ws_query(ws)["run_id"]
    with secured.websocket_connect(f"/api/v1/ws?token={token}") as ws:
        assert _ws_query(ws)["type"] == "accepted"
    with secured.websocket_connect("/api/v1/ws", subprotocols=["bearer", token]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        assert _ws_query(ws)["type"] == "accepted"
    # The run belongs to the token's tenant: another tenant cannot resume it, its owner can see it.
    other = creds.hs256(tenant="globex")
    with secured.websocket_connect("/api/v1/ws", subprotocols=["bearer", other]) as ws:
        ws.send_json({"type": "resume", "run_id": run_id, "ref": "r"})
        assert ws.receive_json()["error"]["code"] == "not_found"
    assert secured.get(f"/api/v1/runs/{run_id}", headers=creds.bearer(token)).status_code == 200


def test_with_auth_off_credentials_are_ignored_and_the_default_tenant_is_used(gateway: TestClient) -> None:
    run = start_run(gateway, creds.bearer(creds.unsigned(tenant="acme")))
    assert gateway.get(f"/api/v1/runs/{run['run_id']}").status_code == 200
    assert uuid.UUID(run["run_id"])


def test_a_token_s_subject_is_the_run_s_user_and_an_api_key_names_its_own(
    make_gateway: Callable[..., TestClient], nats_namespace: str
) -> None:
    key = apikeys.generate()[1]
    gateway = make_gateway(
        GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET, GATEWAY_API_KEYS=f"acme:{apikeys.digest(key).hex()}"
    )
    body = {"input": "Who am I?", "user_id": "mallory"}
    as_ada = gateway.post("/api/v1/runs", json=body, headers=creds.bearer(creds.hs256(sub="ada")))
    as_service = gateway.post("/api/v1/runs", json=body, headers={"X-API-Key": key})
    anonymous_user = gateway.post("/api/v1/runs", json={"input": "Who am I?"}, headers={"X-API-Key": key})

    sent = _submitted(nats_namespace)
    assert sent[as_ada.json()["run_id"]].metadata == {"user_id": "ada"}  # the token, not the body, says who
    assert sent[as_service.json()["run_id"]].metadata == {"user_id": "mallory"}
    assert sent[anonymous_user.json()["run_id"]].metadata == {}


def test_a_rotated_key_and_its_successor_both_work_during_the_overlap(
    make_gateway: Callable[..., TestClient], database: str
) -> None:
    made = dict(
        line.split(": ", 1)
        for line in _cli(database, "create", "--tenant", "acme", "--role", "admin").stdout.splitlines()
    )
    rotated = _cli(database, "rotate", made["id"], "--overlap-hours", "1")
    assert rotated.returncode == 0, rotated.stderr
    successor = dict(line.split(": ", 1) for line in rotated.stdout.splitlines())
    assert successor["replaces"] == made["id"] and successor["tenant"] == "acme"

    gateway = make_gateway(GATEWAY_AUTH="required", DATABASE_URL=database)
    start_run(gateway, {"X-API-Key": made["key"]})  # the old key, within its overlap
    start_run(gateway, {"X-API-Key": successor["key"]})
    listed = _cli(database, "list", "--tenant", "acme").stdout
    assert f"{made['id']}\tacme\t\tadmin\tactive until" in listed  # the successor keeps the roles too
    assert f"{successor['id']}\tacme\t\tadmin\tactive" in listed

    # Ending the overlap early: the old key stops at once, the successor goes on.
    assert _cli(database, "revoke", made["id"]).returncode == 0
    assert_refused(
        gateway.post("/api/v1/runs", json={"input": "x"}, headers={"X-API-Key": made["key"]}),
        "invalid_token",
        "API key",
    )
    start_run(gateway, {"X-API-Key": successor["key"]})
    assert _cli(database, "rotate", made["id"]).returncode == 1  # an ended key has no successor to make
