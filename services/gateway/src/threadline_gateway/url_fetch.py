"""Documents fetched from a URL for the knowledge base: only from allowed hosts, and off unless some are set.

The gateway fetching what a caller names is a server-side request forgery risk, so it does so
only for the hosts in ``GATEWAY_URL_FETCH_HOSTS`` (every redirect checked again), within a size
and a time limit, and only for the document types an upload takes. Each refusal is the
client's error: 403 (fetching off, host not allowed), 413, 415, 422 (the URL, or what it
answered); what the other server does wrong is a 502, its slowness a 504.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urljoin, urlsplit

import httpx

from threadline_gateway.errors import ApiError

MAX_REDIRECTS = 3
_USER_AGENT = "threadline-gateway (knowledge-base fetch)"


@dataclass(frozen=True, slots=True)
class FetchedFile:
    url: str  # after redirects
    name: str  # the last segment of the URL's path, for the document's filename metadata
    content_type: str  # as the server declared it, without parameters
    charset: str | None
    data: bytes


def allowed_hosts(setting: str) -> frozenset[str]:
    """``GATEWAY_URL_FETCH_HOSTS`` as a set of lower-case host names; empty: fetching is off."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


def _check_url(url: str, hosts: frozenset[str]) -> None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ApiError(422, "invalid_url", f"{url[:200]!r} is not a URL.") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, "invalid_url", f"{url[:200]!r} is not an http or https URL.")
    if host not in hosts:
        raise ApiError(403, "host_not_allowed", f"The gateway does not fetch from {host!r} (GATEWAY_URL_FETCH_HOSTS).")


async def fetch(url: str, hosts: frozenset[str], *, max_bytes: int, timeout_s: float, types: set[str]) -> FetchedFile:
    """The file at ``url``, read up to ``max_bytes``; raises ApiError for every way it cannot be had."""
    if not hosts:
        raise ApiError(403, "url_fetch_disabled", "Fetching documents from URLs is off (GATEWAY_URL_FETCH_HOSTS).")
    try:
        async with asyncio.timeout(timeout_s):
            return await _fetch(url, hosts, max_bytes, timeout_s, types)
    except TimeoutError as exc:
        raise ApiError(504, "fetch_timeout", f"{url[:200]!r} did not answer within {timeout_s:g} s.") from exc


async def _fetch(url: str, hosts: frozenset[str], max_bytes: int, timeout_s: float, types: set[str]) -> FetchedFile:
    headers = {"User-Agent": _USER_AGENT, "Accept": ", ".join(sorted(types))}
    # Redirects by hand: each hop's host is checked against the allow-list before it is asked.
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_url(url, hosts)
            try:
                async with client.stream("GET", url, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    return await _read(url, response, max_bytes, types)
            except httpx.TimeoutException as exc:
                raise TimeoutError from exc
            except httpx.HTTPError as exc:
                raise ApiError(
                    502, "fetch_failed", f"{url[:200]!r} could not be fetched ({type(exc).__name__})."
                ) from exc
    raise ApiError(422, "fetch_failed", f"{url[:200]!r} redirects more than {MAX_REDIRECTS} times.")


async def _read(url: str, response: httpx.Response, max_bytes: int, types: set[str]) -> FetchedFile:
    if response.status_code >= 400:
        status = 502 if response.status_code >= 500 else 422
        raise ApiError(status, "fetch_failed", f"{url[:200]!r} answered HTTP {response.status_code}.")
    declared = response.headers.get("content-type", "")
    content_type = declared.split(";")[0].strip().lower()
    if content_type not in types:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{url[:200]!r} is {content_type or 'of no declared type'}; "
            "fetch text, Markdown, HTML, PDF or DOCX documents.",
        )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise _too_large(url, max_bytes)
    data = bytearray()
    async for part in response.aiter_bytes():
        data += part
        if len(data) > max_bytes:  # a server may send more than it declared, or declare nothing
            raise _too_large(url, max_bytes)
    return FetchedFile(
        url=url,
        name=PurePosixPath(urlsplit(url).path).name or (urlsplit(url).hostname or "document"),
        content_type=content_type,
        charset=response.charset_encoding,
        data=bytes(data),
    )


def _too_large(url: str, max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"{url[:200]!r} is larger than {max_bytes // 1024} KiB.")
