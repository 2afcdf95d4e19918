"""Keys that rotate: a token is verified by the JWKS key its ``kid`` names, with several keys live at
once, and the gateway follows a rotation served by a real HTTP server without a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from threadline_gateway.app import create_app
from threadline_gateway.settings import GatewaySettings

from tests.gateway import auth_helpers as creds


class JwksServer:
    """An issuer's JWKS endpoint: serves whatever keys the test publishes, counting reads."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.reads = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.reads += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, *keys: tuple[Any, str]) -> None:
        self.keys = [jwk(private, kid) for private, kid in keys]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def jwk(private_key: Any, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return public | {"kid": kid, "use": "sig", "alg": "RS256"}


def signed(private_key: Any, kid: str) -> dict[str, str]:
    return creds.bearer(jwt.encode(creds.claims(), private_key, algorithm="RS256", headers={"kid": kid}))


def authenticated(gateway: TestClient, headers: dict[str, str]) -> bool:
    """Whether the gateway let the credential in: a run nobody has is a 404 past authentication, a 401 before."""
    status = gateway.get("/api/v1/runs/no-such-run", headers=headers).status_code
    assert status in (401, 404), status
    return status == 404


def eventually(check: Callable[[], bool], within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def issuer() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, Any, Any]:
    return creds.rsa_pair()[0], creds.rsa_pair()[0], creds.rsa_pair()[0]


def test_a_new_key_is_taken_on_its_first_token_and_both_keys_work_meanwhile(
    make_gateway: Callable[..., TestClient], issuer: JwksServer, rsa_keys: tuple[Any, Any, Any]
) -> None:
    old, new, _ = rsa_keys
    issuer.publish((old, "2026-11"))
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_JWKS=issuer.url)
    assert authenticated(gateway, signed(old, "2026-11"))

    issuer.publish((old, "2026-11"), (new, "2026-12"))
    # The periodic refresh is 5 minutes away: only the unknown key id can make the gateway read the set again.
    assert eventually(lambda: authenticated(gateway, signed(new, "2026-12")))
    assert authenticated(gateway, signed(old, "2026-11"))
    reads = issuer.reads
    for _ in range(5):  # a burst of made-up key ids costs the issuer at most one read
        assert not authenticated(gateway, signed(new, "made-up"))
    assert issuer.reads <= reads + 1


def test_a_key_dropped_from_the_set_stops_verifying_and_an_outage_keeps_the_keys(
    make_gateway: Callable[..., TestClient], issuer: JwksServer, rsa_keys: tuple[Any, Any, Any]
) -> None:
    old, new, _ = rsa_keys
    issuer.publish((old, "a"), (new, "b"))
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_JWKS=issuer.url, GATEWAY_JWT_JWKS_REFRESH_S="0.3")
    assert authenticated(gateway, signed(old, "a")) and authenticated(gateway, signed(new, "b"))

    issuer.publish((new, "b"))
    assert eventually(lambda: not authenticated(gateway, signed(old, "a")))
    assert authenticated(gateway, signed(new, "b"))

    issuer.stop()  # the issuer goes away: what the gateway knew still verifies
    time.sleep(1.0)
    assert authenticated(gateway, signed(new, "b"))


def test_a_token_cannot_choose_another_algorithm_or_a_key_not_in_the_set(
    make_gateway: Callable[..., TestClient], issuer: JwksServer, rsa_keys: tuple[Any, Any, Any]
) -> None:
    key, _, stranger = rsa_keys
    issuer.publish((key, "a"))
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_JWKS=issuer.url)

    refused = gateway.get("/api/v1/runs/x", headers=signed(stranger, "a"))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    unknown = gateway.get("/api/v1/runs/x", headers=signed(key, "z"))
    assert unknown.status_code == 401 and "not known" in unknown.json()["error"]["message"]
    # The published modulus passed off as an HMAC secret: the key verifies only RS256.
    public_pem = creds.rsa_pair()[1]
    forged = jwt.encode(creds.claims(), "x" * 32 + public_pem[:8], algorithm="HS256", headers={"kid": "a"})
    assert not authenticated(gateway, creds.bearer(forged))


def test_a_jwks_file_is_read_at_start_and_a_bad_one_stops_the_gateway(
    make_gateway: Callable[..., TestClient], tmp_path: Path, rsa_keys: tuple[Any, Any, Any]
) -> None:
    key = rsa_keys[0]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(key, "file-key")]}))
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_JWKS=str(path))
    assert authenticated(gateway, signed(key, "file-key"))

    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "shared"}]}))
    with pytest.raises(ValueError, match="no asymmetric signing key"):
        create_app(GatewaySettings(GATEWAY_AUTH="required", GATEWAY_JWT_JWKS=str(path)))
