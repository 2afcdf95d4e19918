"""API keys: made here, shown once, stored only as their SHA-256.

A key is ``tl_<id>_<secret>``: the id names the key in logs and for revocation without revealing
it, the 32-byte secret makes it unguessable. A fast hash is enough for a secret of that entropy
(there is no dictionary to try), and it lets a request find its key by one indexed lookup.

CLI (with DATABASE_URL set)::

    python -m threadline_gateway.apikeys create --tenant acme [--name ci] [--role admin]
    python -m threadline_gateway.apikeys list [--tenant acme]
    python -m threadline_gateway.apikeys revoke <id>
    python -m threadline_gateway.apikeys rotate <id> [--overlap-hours 24]   # a new key; the old one ends later
    python -m threadline_gateway.apikeys static --tenant acme   # no database: a GATEWAY_API_KEYS entry
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from threadline.ids import is_tenant_id

from threadline_gateway.db import Database
from threadline_gateway.errors import ApiError

PREFIX = "tl_"
_KEY_RE = re.compile(r"^tl_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str = ""
    roles: tuple[str, ...] = ()
    created_at: datetime | None = None
    # In the future for a key being rotated out: it works until then.
    revoked_at: datetime | None = field(default=None, compare=False)


def generate() -> tuple[str, str]:
    """(key id, the whole key); the key is shown to its owner once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def parse_static(spec: str) -> dict[bytes, ApiKey]:
    """``tenant:sha256hex,...`` (GATEWAY_API_KEYS) as digest -> key; raises ValueError naming a bad entry."""
    keys: dict[bytes, ApiKey] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        tenant, _, hex_digest = entry.partition(":")
        if not is_tenant_id(tenant) or not re.fullmatch(r"[0-9a-f]{64}", hex_digest):
            raise ValueError(f"GATEWAY_API_KEYS entry {entry[:24]!r}... is not tenant:sha256-hex")
        keys[bytes.fromhex(hex_digest)] = ApiKey(id="static-" + hex_digest[:12], tenant_id=tenant)
    return keys


class ApiKeyStore:
    """Keys in PostgreSQL (``gateway_api_keys``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def find(self, key: str) -> ApiKey | None:
        """The live key with this value, or None (unknown, malformed or revoked)."""
        if not _KEY_RE.match(key):
            return None
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT id, tenant_id, name, roles FROM gateway_api_keys"
                " WHERE key_sha256 = %s AND (revoked_at IS NULL OR revoked_at > now())",
                (digest(key),),
            )
            row = await cur.fetchone()
        return ApiKey(id=row[0], tenant_id=row[1], name=row[2], roles=tuple(row[3])) if row else None

    async def create(self, tenant_id: str, name: str = "", roles: tuple[str, ...] = ()) -> tuple[ApiKey, str]:
        if not is_tenant_id(tenant_id):
            raise ValueError(f"tenant {tenant_id!r} is not a valid tenant id")
        key_id, key = generate()
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO gateway_api_keys (id, key_sha256, tenant_id, name, roles) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING created_at",
                (key_id, digest(key), tenant_id, name, list(roles)),
            )
            row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING yields the row it inserted
        return ApiKey(key_id, tenant_id, name, roles, row[0]), key

    async def revoke(self, key_id: str) -> bool:
        """End the key now (also one being rotated out); False if it has already ended."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway_api_keys SET revoked_at = now()"
                " WHERE id = %s AND (revoked_at IS NULL OR revoked_at > now())",
                (key_id,),
            )
            return cur.rowcount == 1

    async def rotate(self, key_id: str, overlap: timedelta) -> tuple[ApiKey, str] | None:
        """A new key with the old one's tenant, name and roles; the old one keeps working for ``overlap``,
        long enough to roll the new one out to every client. None if ``key_id`` is not a live key."""
        key_id_new, key = generate()
        async with self.db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                # Never later than an end already set: rotating twice does not prolong the old key.
                "UPDATE gateway_api_keys SET revoked_at = LEAST(COALESCE(revoked_at, 'infinity'), now() + %s)"
                " WHERE id = %s AND (revoked_at IS NULL OR revoked_at > now())"
                " RETURNING tenant_id, name, roles",
                (overlap, key_id),
            )
            old = await cur.fetchone()
            if old is None:
                return None
            cur = await conn.execute(
                "INSERT INTO gateway_api_keys (id, key_sha256, tenant_id, name, roles) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING created_at",
                (key_id_new, digest(key), old[0], old[1], old[2]),
            )
            row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING yields the row it inserted
        return ApiKey(key_id_new, old[0], old[1], tuple(old[2]), row[0]), key

    async def list(self, tenant_id: str | None = None) -> list[ApiKey]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT id, tenant_id, name, roles, created_at, revoked_at FROM gateway_api_keys"
                " WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s ORDER BY created_at",
                {"tenant": tenant_id},
            )
            return [ApiKey(r[0], r[1], r[2], tuple(r[3]), r[4], r[5]) for r in await cur.fetchall()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m threadline_gateway.apikeys", description="Manage API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key in PostgreSQL and print it (shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--role", action="append", default=[], dest="roles")
    listing = sub.add_parser("list", help="list keys (never their values)")
    listing.add_argument("--tenant")
    revoke = sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id")
    rotate = sub.add_parser("rotate", help="make a successor key; the old one keeps working for the overlap")
    rotate.add_argument("id")
    rotate.add_argument("--overlap-hours", type=float, default=24.0, help="how long the old key still works")
    static = sub.add_parser("static", help="make a key for GATEWAY_API_KEYS, without a database")
    static.add_argument("--tenant", required=True)
    return parser


async def _run(args: argparse.Namespace, database_url: str | None) -> int:
    if args.command == "static":
        if not is_tenant_id(args.tenant):
            print(f"error: tenant {args.tenant!r} is not a valid tenant id", file=sys.stderr)
            return 2
        _, key = generate()
        print(f"key: {key}\nGATEWAY_API_KEYS entry: {args.tenant}:{digest(key).hex()}")
        return 0
    if not database_url:
        print("error: DATABASE_URL is not set; keys are stored in PostgreSQL (or use `static`)", file=sys.stderr)
        return 2
    db = Database(database_url, timeout_s=10)
    store = ApiKeyStore(db)
    try:
        if args.command == "create":
            try:
                created, value = await store.create(args.tenant, args.name, tuple(args.roles))
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"id: {created.id}\ntenant: {created.tenant_id}\nkey: {value}")
            print("Keep the key now: it is stored only as a hash and cannot be shown again.", file=sys.stderr)
        elif args.command == "list":
            for listed in await store.list(args.tenant):
                print(f"{listed.id}\t{listed.tenant_id}\t{listed.name}\t{','.join(listed.roles)}\t{_state(listed)}")
        elif args.command == "rotate":
            if args.overlap_hours < 0:
                print("error: --overlap-hours must not be negative", file=sys.stderr)
                return 2
            rotated = await store.rotate(args.id, timedelta(hours=args.overlap_hours))
            if rotated is None:
                print(f"error: no active key {args.id!r}", file=sys.stderr)
                return 1
            successor, value = rotated
            print(f"id: {successor.id}\ntenant: {successor.tenant_id}\nkey: {value}\nreplaces: {args.id}")
            print(f"Key {args.id} keeps working for {args.overlap_hours:g} h; keep the new key now.", file=sys.stderr)
        elif not await store.revoke(args.id):
            print(f"error: no active key {args.id!r}", file=sys.stderr)
            return 1
        return 0
    except (psycopg.Error, OSError, ApiError) as exc:
        print(f"error: PostgreSQL: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.close()


def _state(key: ApiKey) -> str:
    if key.revoked_at is None:
        return "active"
    if key.revoked_at > datetime.now(key.revoked_at.tzinfo):
        return f"active until {key.revoked_at:%Y-%m-%d %H:%M %Z}"
    return f"revoked {key.revoked_at:%Y-%m-%d}"


def main(argv: list[str] | None = None) -> int:
    from threadline_gateway.settings import GatewaySettings

    args = _parser().parse_args(argv)
    return asyncio.run(_run(args, GatewaySettings().database_url))


if __name__ == "__main__":
    sys.exit(main())
