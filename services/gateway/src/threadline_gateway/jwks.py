"""JWT signing keys from a JWKS (a URL or a file), kept fresh in the background, so keys rotate without a restart.

An issuer rotates by publishing the new key beside the old one, signing with the new one, and
dropping the old one once its tokens have expired. The gateway follows: it reads the set again
every ``GATEWAY_JWT_JWKS_REFRESH_S``, and at once (at most every few seconds) when a token names a
key id it has not seen, so the first token signed with a new key is not refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import jwt
import structlog

log = structlog.get_logger("threadline.gateway")

# A token naming an unknown key id reads the set again, but no more often than this: a flood of
# tokens with made-up key ids must not become a flood of requests to the issuer.
_MISS_REFRESH_S = 5.0


class JwksError(ValueError):
    """The JWKS could not be read or holds no usable signing key."""


def parse(text: str) -> dict[str, jwt.PyJWK]:
    """Key id -> key, for the asymmetric signing keys of a JWKS document.

    Keys without a ``kid`` cannot be chosen by a token, and symmetric (``oct``) keys would be a
    shared secret published in a document: both are left out. Each key verifies only the one
    algorithm it names (or its type implies), so a token cannot pick a weaker one.
    """
    try:
        keys = jwt.PyJWKSet.from_json(text).keys
    except (jwt.PyJWKSetError, ValueError) as exc:
        raise JwksError(f"not a JWKS with a usable key: {exc}") from exc
    found = {
        key.key_id: key for key in keys if key.key_id and key.key_type != "oct" and key.public_key_use in (None, "sig")
    }
    if not found:
        raise JwksError("the JWKS holds no asymmetric signing key with a 'kid'")
    return found


class JwkSet:
    """The keys of ``source``: an ``http(s)://`` URL, or a path to a JWKS file."""

    def __init__(self, source: str, refresh_s: float, timeout_s: float = 5.0) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.keys: dict[str, jwt.PyJWK] = {}
        self._is_url = source.startswith(("http://", "https://"))
        self._last_read = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        if not self._is_url:  # a bad file stops the gateway at start, like a bad PEM key
            self.keys = parse(self._read_file())

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.timeout_s) if self._is_url else None
        if self._is_url:
            await self.refresh()  # an issuer down at start is logged; tokens wait for the next refresh
        self._task = asyncio.create_task(self._refresh_forever(), name="jwks-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``, reading the set again first if it is new and the set is not just read."""
        if kid not in self.keys and time.monotonic() - self._last_read >= _MISS_REFRESH_S:
            async with self._lock:  # concurrent misses share one read
                if kid not in self.keys and time.monotonic() - self._last_read >= _MISS_REFRESH_S:
                    await self.refresh()
        return self.keys.get(kid)

    async def refresh(self) -> None:
        """Read the set again; on failure keep the keys already known (an issuer's outage is not ours)."""
        self._last_read = time.monotonic()
        try:
            text = await self._fetch() if self._is_url else await asyncio.to_thread(self._read_file)
            keys = parse(text)
        except (JwksError, httpx.HTTPError, OSError) as exc:
            log.warning("jwks not refreshed, keeping the keys known", source=self.source, error=str(exc))
            return
        if keys.keys() != self.keys.keys():
            log.info("jwks keys changed", source=self.source, key_ids=sorted(keys))
        self.keys = keys

    async def _fetch(self) -> str:
        assert self._http is not None  # set by start()
        response = await self._http.get(self.source, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.text

    def _read_file(self) -> str:
        try:
            return Path(self.source).read_text()
        except OSError as exc:
            raise JwksError(f"cannot read {self.source}: {exc.strerror}") from exc

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()
