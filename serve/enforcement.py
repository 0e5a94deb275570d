"""Enforcement: block lists that the pipeline obeys, and step-up challenges (TOTP).

A ``block`` decision is enforced, not only returned: the transaction's account, card and device
go on the block list with the reason and an expiry, and later transactions from any of them are
blocked before the model is asked. An investigator lifts a block; a ring-level action blocks
every member account of a ring at once. Every change is appended to a log (JSON lines) that is
replayed on start, so blocks survive a restart.

A ``step_up`` decision opens a challenge: the gateway asks the customer for the code of their
authenticator app and posts it back; the challenge passes when the code is valid for the
account's enrolled TOTP secret (RFC 6238, ``pyotp``), within its lifetime and attempts.

>>> from datetime import datetime, timedelta, timezone
>>> t0 = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
>>> blocks = BlockList(clock=lambda: t0)
>>> _ = blocks.block("account", "acc_1", reason="model score 0.97", by="model")
>>> blocks.blocked([("account", "acc_1"), ("card", "c9")]).id
'acc_1'
>>> blocks.lift("account", "acc_1", by="analyst_7")
True
>>> blocks.blocked([("account", "acc_1")]) is None
True
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyotp

from ingest.errors import RingfenceError

KINDS: Final = ("account", "card", "device")
DEFAULT_TTL: Final = timedelta(days=7)
CHALLENGE_TTL: Final = timedelta(minutes=5)
MAX_ATTEMPTS: Final = 5

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EnforcementError(RingfenceError):
    """A block or challenge operation cannot be done."""


@dataclass(frozen=True, slots=True)
class Block:
    """One entry of the block list."""

    kind: str
    id: str
    reason: str
    by: str
    created_at: datetime
    expires_at: datetime
    txn_id: str | None = None
    ring_id: str | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def active(self, now: datetime) -> bool:
        """Whether it blocks at ``now``."""
        return self.lifted_at is None and now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO times)."""
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()
        }


class BlockList:
    """Blocked accounts, cards and devices, with reasons, expiries and a replayable log.

    Args:
        folder: where the log lives (``blocks.jsonl``); None keeps it in memory only.
        clock: the time, injected.
    """

    def __init__(self, folder: Path | None = None, *, clock: Clock = _utcnow) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], Block] = {}
        self._lock = threading.Lock()
        self._log = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "blocks.jsonl"
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        self._apply(json.loads(line))
            self._log = path.open("a", encoding="utf-8")

    def _apply(self, rec: dict[str, Any]) -> None:
        fields: dict[str, Any] = {
            k: (datetime.fromisoformat(v) if k.endswith("_at") and v else v)
            for k, v in rec["block"].items()
        }
        block = Block(**fields)
        self._entries[(block.kind, block.id)] = block

    def _write(self, action: str, block: Block) -> None:
        self._entries[(block.kind, block.id)] = block
        if self._log is not None:
            self._log.write(json.dumps({"action": action, "block": block.to_dict()}) + "\n")
            self._log.flush()

    def block(
        self,
        kind: str,
        entity_id: str,
        *,
        reason: str,
        by: str,
        ttl: timedelta = DEFAULT_TTL,
        txn_id: str | None = None,
        ring_id: str | None = None,
    ) -> Block:
        """Block an account, card or device for ``ttl`` (extends an active block's expiry)."""
        if kind not in KINDS:
            raise EnforcementError(f"kind: expected one of {KINDS}, got {kind!r}")
        if not entity_id:
            raise EnforcementError("id: must not be empty")
        now = self._clock()
        with self._lock:
            old = self._entries.get((kind, entity_id))
            expires = now + ttl
            if old is not None and old.active(now) and old.expires_at > expires:
                return old
            block = Block(kind, entity_id, reason, by, now, expires, txn_id, ring_id)
            self._write("block", block)
            return block

    def block_ring(self, ring_id: str, accounts: Iterable[str], *, reason: str, by: str) -> int:
        """Block every member account of a ring in one operation; returns how many."""
        n = 0
        for account in sorted(set(accounts)):
            self.block("account", account, reason=reason, by=by, ring_id=ring_id)
            n += 1
        return n

    def lift(self, kind: str, entity_id: str, *, by: str) -> bool:
        """Lift an active block; False when there was none."""
        now = self._clock()
        with self._lock:
            old = self._entries.get((kind, entity_id))
            if old is None or not old.active(now):
                return False
            self._write("lift", replace(old, lifted_at=now, lifted_by=by))
            return True

    def blocked(self, entities: Iterable[tuple[str, str | None]]) -> Block | None:
        """The first active block among ``(kind, id)`` pairs, if any."""
        now = self._clock()
        entries = self._entries
        for kind, entity_id in entities:
            if entity_id is not None:
                got = entries.get((kind, entity_id))
                if got is not None and got.active(now):
                    return got
        return None

    def active(self) -> list[Block]:
        """Every active block, newest first."""
        now = self._clock()
        return sorted(
            (b for b in self._entries.values() if b.active(now)),
            key=lambda b: b.created_at,
            reverse=True,
        )

    def close(self) -> None:
        """Close the log."""
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(slots=True)
class Challenge:
    """A step-up challenge for one transaction."""

    id: str
    account_id: str
    txn_id: str
    created_at: datetime
    attempts: int = 0
    passed: bool = False


class Challenges:
    """TOTP enrolment per account, and step-up challenges.

    Args:
        clock: the time, injected.
        ttl: how long a challenge may be answered.
        max_attempts: wrong codes allowed before the challenge fails for good.
    """

    def __init__(
        self,
        *,
        clock: Clock = _utcnow,
        ttl: timedelta = CHALLENGE_TTL,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_attempts
        self._secrets: dict[str, str] = {}
        self._open: dict[str, Challenge] = {}
        self._lock = threading.Lock()

    def enrol(self, account_id: str, secret: str | None = None) -> str:
        """Enrol an account (a new random secret unless given); returns the base32 secret."""
        secret = secret or pyotp.random_base32()
        with self._lock:
            self._secrets[account_id] = secret
        return secret

    def open(self, account_id: str, txn_id: str) -> Challenge:
        """Open a challenge for a transaction of an enrolled account."""
        if account_id not in self._secrets:
            raise EnforcementError(f"account {account_id!r} has no MFA enrolment")
        ch = Challenge(secrets.token_urlsafe(16), account_id, txn_id, self._clock())
        with self._lock:
            self._open[ch.id] = ch
        return ch

    def verify(self, challenge_id: str, code: str) -> Challenge:
        """Check a code; the challenge says whether it passed (an error when it cannot be used)."""
        now = self._clock()
        with self._lock:
            ch = self._open.get(challenge_id)
            if ch is None:
                raise EnforcementError("challenge: unknown")
            if ch.passed:
                raise EnforcementError("challenge: already passed")
            if now - ch.created_at > self._ttl:
                raise EnforcementError("challenge: expired")
            if ch.attempts >= self._max:
                raise EnforcementError("challenge: too many attempts")
            ch.attempts += 1
            totp = pyotp.TOTP(self._secrets[ch.account_id])
            ch.passed = bool(code.isdigit() and totp.verify(code, for_time=now, valid_window=1))
            return ch

    def enrolled(self, account_id: str) -> bool:
        """Whether the account can be challenged."""
        return account_id in self._secrets
