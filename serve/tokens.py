"""Client-credential tokens for gateways: JWTs signed by Ringfence, with scopes and key rotation.

An operator mints a token per gateway (``ringfence token issue --client NAME --scope score``);
the gateway sends it as ``Authorization: Bearer <token>``. A token names its client (``sub``),
its scopes (``scope``, space-separated), when it was issued and when it expires, and, in its
header, the id of the key that signed it (``kid``). Signing is HMAC-SHA256 with keys from the
settings (``RINGFENCE_JWT_KEYS``: ``kid=secret`` pairs, comma-separated; the first signs new
tokens, every listed key verifies). Rotation: add a new key first in the list, re-issue tokens,
then drop the old key; tokens it signed stop working at once.

Verification pins the algorithm (a token claiming ``none`` or another algorithm is refused),
requires every claim, checks issuer, expiry (with a small clock leeway) and not-before, and
raises :class:`TokenInvalid` (HTTP 401) or :class:`ScopeMissing` (HTTP 403).

>>> from datetime import datetime, timezone
>>> keys = SigningKeys.parse("k1=" + "s" * 32)
>>> now = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
>>> token = issue(keys, client="gw_paynova", scopes=["score"], ttl_s=600, now=now)
>>> verify(keys, token, scope="score", now=now).client
'gw_paynova'
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import jwt

from ingest.errors import RingfenceError

ALGORITHM: Final = "HS256"
ISSUER: Final = "ringfence"
SCOPES: Final = ("score", "explain", "investigate", "admin")
"""What a token may be allowed to do."""
MIN_SECRET_BYTES: Final = 32
LEEWAY_S: Final = 30
MAX_TTL_S: Final = 90 * 86400


class TokenError(RingfenceError):
    """A token cannot be issued or is not accepted."""


class TokenInvalid(TokenError):
    """Missing, malformed, badly signed, expired or from an unknown key (HTTP 401)."""


class ScopeMissing(TokenError):
    """A valid token without the scope the operation needs (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """Key id -> secret; the first key signs."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> SigningKeys:
        """From ``kid=secret,kid2=secret2`` (secrets of at least 32 bytes)."""
        pairs = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kid, sep, secret = part.partition("=")
            if not sep or not kid.strip():
                raise TokenError("jwt keys: expected kid=secret pairs separated by commas")
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise TokenError(
                    f"jwt keys: the secret of key {kid.strip()!r} is shorter than "
                    f"{MIN_SECRET_BYTES} bytes (make one with `ringfence token keygen`)"
                )
            pairs.append((kid.strip(), secret.encode()))
        if not pairs:
            raise TokenError("jwt keys: none configured (set RINGFENCE_JWT_KEYS)")
        if len({k for k, _ in pairs}) != len(pairs):
            raise TokenError("jwt keys: a key id is listed twice")
        return cls(tuple(pairs))

    @property
    def active(self) -> tuple[str, bytes]:
        """The key that signs new tokens."""
        return self.keys[0]

    def secret(self, kid: str) -> bytes | None:
        """The secret of key ``kid``, if it is still listed."""
        return next((s for k, s in self.keys if k == kid), None)

    def __repr__(self) -> str:  # never show secrets
        return f"SigningKeys(kids={[k for k, _ in self.keys]})"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    client: str
    scopes: frozenset[str]
    expires: datetime
    token_id: str
    kid: str


def new_key() -> str:
    """A fresh ``kid=secret`` entry for ``RINGFENCE_JWT_KEYS``."""
    return f"k{datetime.now(UTC):%Y%m%d%H%M%S}={secrets.token_urlsafe(48)}"


def issue(
    keys: SigningKeys,
    *,
    client: str,
    scopes: Sequence[str],
    ttl_s: int,
    now: datetime,
) -> str:
    """A signed token for ``client`` with ``scopes``, valid ``ttl_s`` seconds from ``now``."""
    if not client or len(client) > 128:
        raise TokenError("client: must be 1 to 128 characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise TokenError(f"scope: expected some of {SCOPES}, got {list(scopes)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise TokenError(f"ttl: must be between 1 s and {MAX_TTL_S} s, got {ttl_s}")
    if now.tzinfo is None:
        raise TokenError("now: must be timezone-aware")
    kid, secret = keys.active
    claims = {
        "iss": ISSUER,
        "sub": client,
        "scope": " ".join(sorted(set(scopes))),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})


def verify(keys: SigningKeys, token: str, *, scope: str, now: datetime) -> Claims:
    """The claims of ``token`` if it is valid now and carries ``scope``.

    Raises:
        TokenInvalid: the token is not acceptable (reason in the message, no secrets).
        ScopeMissing: the token is valid but lacks ``scope``.
    """
    return _admit(_signed(keys, token), scope, now)


@dataclass(frozen=True, slots=True)
class _Signed:
    """A token whose signature, algorithm, issuer and claims were checked (not yet its times)."""

    claims: Claims
    not_before: float
    expires: float


def _signed(keys: SigningKeys, token: str) -> _Signed:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"token: malformed ({exc})") from None
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"token: algorithm {header.get('alg')!r} is not accepted")
    kid = header.get("kid")
    secret = keys.secret(kid) if isinstance(kid, str) else None
    if secret is None or not isinstance(kid, str):
        raise TokenInvalid(f"token: signed by an unknown or retired key {kid!r}")
    try:
        # the clock is injected: pyjwt would compare times with its own, so they are checked
        # in _admit against ``now``
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "nbf", "iss", "sub", "scope", "jti"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"token: {exc}") from None
    return _Signed(
        Claims(
            client=str(claims["sub"]),
            scopes=frozenset(str(claims["scope"]).split()),
            expires=datetime.fromtimestamp(claims["exp"], UTC),
            token_id=str(claims["jti"]),
            kid=kid,
        ),
        float(claims["nbf"]),
        float(claims["exp"]),
    )


def _admit(signed: _Signed, scope: str, now: datetime) -> Claims:
    t = now.timestamp()
    if t > signed.expires + LEEWAY_S:
        raise TokenInvalid("token: expired")
    if t < signed.not_before - LEEWAY_S:
        raise TokenInvalid("token: not valid yet")
    claims = signed.claims
    if scope not in claims.scopes:
        raise ScopeMissing(f"token: client {claims.client!r} lacks the scope {scope!r}")
    return claims


class Verifier:
    """:func:`verify` for a server: a token's signature is checked once, its times every call.

    A gateway sends the same token thousands of times a second; the HMAC and JSON decoding of
    a token already seen are skipped (its expiry, not-before and scope are checked on every
    call against ``now``). Only tokens that passed the signature check are kept, at most
    ``size`` of them (the oldest go first). The keys are fixed for a verifier's life: a key
    retired by a restart with new keys takes its tokens with it.
    """

    def __init__(self, keys: SigningKeys, *, size: int = 4096) -> None:
        self.keys = keys
        self._size = size
        self._seen: dict[str, _Signed] = {}

    def verify(self, token: str, *, scope: str, now: datetime) -> Claims:
        """As :func:`verify`."""
        signed = self._seen.get(token)
        if signed is None:
            signed = _signed(self.keys, token)
            if len(self._seen) >= self._size:
                del self._seen[next(iter(self._seen))]
            self._seen[token] = signed
        return _admit(signed, scope, now)
