"""Credentials for tests: real HS256/RS256 tokens from PyJWT, and hand-made bad ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SECRET = "test-secret-that-is-long-enough-for-hs256"


def rsa_pair() -> tuple[Any, str]:
    """(private key, public key PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem.decode()


def claims(tenant: str = "acme", ttl: float = 3600, **extra: Any) -> dict[str, Any]:
    return {"sub": "user-1", "tenant_id": tenant, "exp": int(time.time() + ttl), **extra}


def hs256(secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(claims(**kwargs), secret, algorithm="HS256")


def rs256(private_key: Any, **kwargs: Any) -> str:
    return jwt.encode(claims(**kwargs), private_key, algorithm="RS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(**kwargs: Any) -> str:
    """alg=none: a token anyone can write."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims(**kwargs)).encode())}."


def hs256_with_public_key(public_pem: str, **kwargs: Any) -> str:
    """The classic confusion attack: HS256 'signed' with the server's RS256 public key as the secret."""
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims(**kwargs)).encode())}"
    )
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
