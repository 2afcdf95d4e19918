"""The chat page is served from the package, works under the gateway's CSP, and needs no credential to load."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient


def test_the_page_and_its_files_are_served(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_SECRET="s" * 40)
    home = gateway.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/chat"

    page = gateway.get("/chat")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Under that policy inline code would not run, and no CDN may be named.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    assert not re.search(r"https?://", page.text)
    sources = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(sources) == ["/static/chat.css", "/static/chat.js"]
    for source in sources:
        assert gateway.get(source).status_code == 200
    assert gateway.get("/static/../settings.py").status_code == 404


def test_the_page_is_not_in_the_api_document(gateway: TestClient) -> None:
    paths = gateway.get("/openapi.json").json()["paths"]
    assert "/chat" not in paths and "/" not in paths
