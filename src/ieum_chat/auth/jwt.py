"""Verify the auth service's JWTs: ``sub`` is the user's UUID and ``exp`` is required.

Only the configured algorithms are accepted, and never ``none`` (the settings refuse it, and
PyJWT is always called with an explicit algorithm list, so a token cannot choose its own).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
import jwt.types

from ieum_chat.config import Settings
from ieum_chat.errors import AuthError

__all__ = ["Principal", "TokenVerifier", "bearer_token", "issue_token"]

_ASYMMETRIC_PREFIXES = ("RS", "ES", "PS", "Ed")
# RFC 7519 §2: a NumericDate is a JSON number of seconds since the epoch. Past 9999-12-31
# a date cannot be rendered, a float loses the second, and an expiry timer cannot be armed.
MAX_NUMERIC_DATE = 253_402_300_799
_TIME_CLAIMS = ("exp", "nbf", "iat")
# Tokens verified lately, by their text: a device sends the same token with every request
# until it refreshes it, and checking its signature again was a tenth of a REST request's
# time. A hit checks the expiry again; nbf and iat, checked once, cannot become false. The
# newest VERIFIED_MAX are kept, each for VERIFIED_SECONDS at most, so a key a JWKS drops
# stops being honoured within that time, as PyJWKClient's own cache of the set allows.
VERIFIED_MAX = 256
VERIFIED_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for, and until when (epoch seconds)."""

    user_id: uuid.UUID
    expires_at: float


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <jwt>`` value; a bare token is accepted too
    (hand-typed STOMP frames often carry just the JWT)."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() == "bearer":
        return None
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip() or None
    return value or None


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway
        self._jwks: jwt.PyJWKClient | None = None
        self._key: Any
        if settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True)
            self._key = None
        elif settings.jwt_public_key:
            self._key = settings.jwt_public_key
        else:
            self._key = settings.jwt_secret
            self._algorithms = [
                a for a in self._algorithms if not a.startswith(_ASYMMETRIC_PREFIXES)
            ]
            if not self._algorithms:
                raise ValueError("a shared secret verifies only HS* algorithms")

        # token -> (principal, monotonic time it is kept until), least recently used first
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str | None, *, now: float | None = None) -> Principal:
        """Return the principal, or raise :class:`AuthError` saying (in English) what was wrong.
        ``now``: a clock to check the expiry against as well as the real one."""
        if not token:
            raise AuthError("missing token")
        clock = time.monotonic()
        verified = self._verified.get(token)
        if verified is not None and verified[1] > clock:
            self._verified.move_to_end(token)
            principal = verified[0]
        else:
            principal = self._decode(token)
            self._verified[token] = (principal, clock + VERIFIED_SECONDS)
            self._verified.move_to_end(token)
            if len(self._verified) > VERIFIED_MAX:
                self._verified.popitem(last=False)
        for at in (time.time(), now):
            if at is not None and principal.expires_at + self._leeway <= at:
                raise AuthError("token expired")
        return principal

    def _decode(self, token: str) -> Principal:
        """The principal of a token whose signature, algorithm, audience, issuer and dates
        hold now; AuthError otherwise."""
        options: jwt.types.Options = {"require": ["exp", "sub"]}
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise AuthError("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"missing claim {exc.claim!r}") from None
        except (jwt.PyJWTError, ValueError):
            raise AuthError("malformed token") from None
        for name in _TIME_CLAIMS:
            if name in claims and not _numeric_date(claims[name]):
                raise AuthError(f"{name!r} is not a date from 1970 to 9999")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError:
            raise AuthError("'sub' is not a user id") from None
        return Principal(user_id=user_id, expires_at=float(claims["exp"]))


def _numeric_date(value: object) -> bool:
    """A JSON number (not a boolean, not a string of digits) in the range we can act on."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_NUMERIC_DATE


def issue_token(
    settings: Settings,
    user_id: uuid.UUID,
    *,
    ttl: float = 3600.0,
    now: float | None = None,
) -> str:
    """A token signed with the shared secret (development, tests and the CLI)."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": str(user_id), "iat": int(issued), "exp": int(issued + ttl)}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    algorithm = next((a for a in settings.jwt_algorithms if a.startswith("HS")), "HS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
