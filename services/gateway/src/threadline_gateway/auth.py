"""Who is calling: a JWT (HS256, RS256, or any key of a JWKS) or an API key, turned into a tenant and roles.

With ``GATEWAY_AUTH=required`` the tenant comes only from the credential, never from anything else
the client sends. With ``GATEWAY_AUTH=none`` (the embedded default) no credential is read and every
caller is ``GATEWAY_DEFAULT_TENANT``; the gateway says so loudly when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.websockets import WebSocket
from threadline.ids import is_tenant_id

from threadline_gateway import apikeys
from threadline_gateway.apikeys import ApiKeyStore
from threadline_gateway.errors import ApiError
from threadline_gateway.jwks import JwkSet
from threadline_gateway.settings import GatewaySettings

REALM = "threadline"
WS_BEARER_PROTOCOL = "bearer"
# Close code for a WebSocket refused at the handshake (4000-4999 are the application's own).
WS_UNAUTHENTICATED = 4001
WS_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True)
class Principal:
    """The caller as the rest of the gateway sees it; ``subject`` names the credential for limits and logs."""

    tenant_id: str
    subject: str
    kind: Literal["anonymous", "jwt", "api_key"]
    roles: tuple[str, ...] = ()
    user_id: str | None = None  # a JWT's subject: the person, where an API key names only a service


class Unauthenticated(ApiError):
    """401 with the RFC 6750 challenge, so clients know to (re)authenticate."""

    def __init__(self, message: str, *, invalid: bool) -> None:
        challenge = f'Bearer realm="{REALM}"'
        if invalid:
            challenge += f', error="invalid_token", error_description="{message}"'
        super().__init__(
            401, "invalid_token" if invalid else "unauthenticated", message, headers={"WWW-Authenticate": challenge}
        )


def _public_key(value: str) -> Any:
    """PEM text, or a path to a PEM file; loaded now so a bad key stops the gateway at start, not per request."""
    pem = value if "-----BEGIN" in value else Path(value).read_text()
    return load_pem_public_key(pem.encode())


class Authenticator:
    def __init__(self, settings: GatewaySettings, keys: ApiKeyStore | None) -> None:
        self.required = settings.auth == "required"
        self.settings = settings
        self.keys = keys
        self.static_keys = apikeys.parse_static(settings.api_keys)
        # One key per algorithm: a token's header picks its algorithm, and only the key made for it verifies it,
        # so neither alg=none nor an RS256 public key passed off as an HS256 secret gets through.
        self.jwt_keys: dict[str, Any] = {}
        if settings.jwt_secret:
            self.jwt_keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key:
            self.jwt_keys["RS256"] = _public_key(settings.jwt_public_key)
        # Tokens that name a key id ("kid") are verified by that key of the JWKS, which rotates.
        self.jwks = JwkSet(settings.jwt_jwks, settings.jwt_jwks_refresh_s) if settings.jwt_jwks else None
        if self.required and not (self.jwt_keys or self.jwks or self.static_keys or keys):
            raise ValueError(
                "GATEWAY_AUTH=required, but nothing can authenticate: set GATEWAY_JWT_SECRET, "
                "GATEWAY_JWT_PUBLIC_KEY, GATEWAY_JWT_JWKS, GATEWAY_API_KEYS or DATABASE_URL"
            )
        self.anonymous = Principal(settings.default_tenant, "anonymous", "anonymous")

    async def start(self) -> None:
        if self.jwks is not None:
            await self.jwks.start()

    async def close(self) -> None:
        if self.jwks is not None:
            await self.jwks.close()

    async def authenticate(self, credential: str | None) -> Principal:
        if not self.required:
            return self.anonymous
        if not credential:
            raise Unauthenticated("Authentication required: send a bearer token or an X-API-Key header.", invalid=False)
        if apikeys.looks_like_key(credential):
            return await self._api_key(credential)
        return await self._jwt(credential)

    async def _api_key(self, key: str) -> Principal:
        found = self.static_keys.get(apikeys.digest(key))
        if found is None and self.keys is not None:
            found = await self.keys.find(key)
        if found is None:
            raise Unauthenticated("The API key is not valid.", invalid=True)
        return Principal(found.tenant_id, f"key:{found.id}", "api_key", found.roles)

    async def _jwt(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            named, kid = header.get("alg"), header.get("kid")
            algorithm = named if isinstance(named, str) else ""
            key = await self._jwks_key(kid, algorithm) if self.jwks and isinstance(kid, str) else None
            key = key or self.jwt_keys.get(algorithm)
            if key is None:
                raise Unauthenticated(f"Tokens signed with {named!s:.16} are not accepted.", invalid=True)
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_s,
                options={"require": ["exp"], "verify_aud": self.settings.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The token has expired.", invalid=True) from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("The token is not meant for this audience.", invalid=True) from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("The token's issuer is not trusted.", invalid=True) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The token has no {exc.claim!r} claim.", invalid=True) from exc
        except jwt.PyJWTError as exc:  # bad signature, malformed, immature: nothing a client should act on in detail
            raise Unauthenticated("The token is not valid.", invalid=True) from exc
        tenant = claims.get(self.settings.jwt_tenant_claim)
        if not isinstance(tenant, str) or not is_tenant_id(tenant):
            claim = self.settings.jwt_tenant_claim
            raise Unauthenticated(f"The token names no valid tenant in {claim!r}.", invalid=True)
        roles = claims.get("roles")
        roles = tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        subject = claims.get("sub")
        user_id = subject if isinstance(subject, str) and subject else None
        return Principal(tenant, f"jwt:{subject or ''}", "jwt", roles, user_id)

    async def _jwks_key(self, kid: str, algorithm: str) -> Any:
        """The JWKS key ``kid`` names, if it verifies ``algorithm``; a key id the set lacks is refused."""
        assert self.jwks is not None
        found = await self.jwks.key(kid)
        if found is None:
            raise Unauthenticated(f"The token's signing key {kid!r:.40} is not known.", invalid=True)
        if found.algorithm_name != algorithm:
            raise Unauthenticated(f"Key {kid!r:.40} does not sign {algorithm!s:.16} tokens.", invalid=True)
        return found.key


def websocket_credential(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(credential, subprotocol to accept with) from the handshake.

    Browsers cannot set headers on a WebSocket, so besides ``Authorization`` and ``X-API-Key`` the
    credential may come as ``?token=`` or as the subprotocol list ``["bearer", <token>]``.
    """
    protocols = list(websocket.scope.get("subprotocols") or [])
    if WS_BEARER_PROTOCOL in protocols:
        others = [p for p in protocols if p != WS_BEARER_PROTOCOL]
        return (others[0] if others else None), WS_BEARER_PROTOCOL
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    return websocket.headers.get("x-api-key") or websocket.query_params.get("token"), None
