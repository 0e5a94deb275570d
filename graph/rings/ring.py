"""A ring as the detector reports it, and how its typology and risk follow from its evidence.

The typology is the first of these that the evidence supports, so it can always be explained
in one sentence:

1. ``round_tripping``: money went round a cycle of accounts.
2. ``mule_network``: money fanned into an account and out again within hours (a mule star), or
   passed through two accounts in a row (a layering chain).
3. ``card_testing``: the ring is tied by identifiers and most of its accounts had several tiny
   payments (at most ``small_payment``) declined.
4. ``collusive_merchant``: an account paid money back to several accounts that each paid one
   merchant repeatedly, some of it refunded (a kickback).
5. ``account_takeover``: the ring is tied by identifiers that most of its accounts took up late,
   after using other identifiers of the same kind (a new device, a changed e-mail or phone).
6. ``synthetic_identity``: the ring is tied by personal identifiers (phone, e-mail, card) from
   the start.
7. ``unknown``: none of these.

``impossible_travel`` is a valid typology for callers but the detector does not assign it: see
``docs/rings.md``.

The risk score combines the evidence items as independent signals,
``1 - prod(1 - w_i)``, with the weights in ``EVIDENCE_WEIGHTS`` and ``KIND_WEIGHTS``.

>>> ev = [{"type": "cycle", "accounts": ["a", "b", "c"], "amount": 2500.0, "span_h": 30.0}]
>>> assess(ev, {}, personal_kinds=("phone",))
('round_tripping', 0.6, ['money went round a cycle of 3 accounts (2500.0 each hop) in 30.0 h'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ingest.typologies import TYPOLOGIES as FRAUD_TYPOLOGIES

TYPOLOGIES: Final = (*FRAUD_TYPOLOGIES, "unknown")
"""What a ring can resemble: a known typology, or ``unknown``."""

EVIDENCE_WEIGHTS: Final = {
    "cycle": 0.6,
    "mule_star": 0.5,
    "layering": 0.35,
    "kickback": 0.5,
    "collector": 0.25,
    "card_tests": 0.3,
    "late_identifiers": 0.3,
}
"""How much one evidence item of each type adds to the risk (as an independent signal)."""

KIND_WEIGHTS: Final = {
    "card": 0.4,
    "phone": 0.35,
    "email": 0.3,
    "device": 0.25,
    "address": 0.15,
    "ip": 0.1,
}
"""How much one identifier shared by ring members adds to the risk, by kind."""


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What the detector knows about one ring account, beyond the ring's links.

    Args:
        small_payments: declined payments of at most ``small_payment`` (card tests).
        late_identifiers: ring identifiers the account took up after using another identifier
            of the same kind for at least ``takeover_gap_s``.
    """

    small_payments: int = 0
    late_identifiers: int = 0


@dataclass(frozen=True, slots=True)
class Ring:
    """A group of accounts tied together by shared identifiers or money patterns.

    Args:
        id: stable id: kept as the ring grows, and when rings merge the oldest id survives.
        accounts: member accounts, sorted.
        entities: the identifiers that tie members together, as ``(kind, id)``, sorted.
        evidence: why: one small dict per finding (``type`` and details), strongest first.
        risk: in ``[0, 1]``; higher means more evidence of organised fraud.
        typology: the fraud typology the evidence most resembles (see ``TYPOLOGIES``).
        first_seen: earliest evidence, epoch seconds (UTC).
        last_seen: latest evidence, epoch seconds (UTC).
        reasons: the evidence in words, for investigators.
        core: members linked by ring-forming evidence (the others joined by sharing the ring's
            identifiers).
    """

    id: str
    accounts: list[str]
    entities: list[tuple[str, str]]
    evidence: list[dict[str, Any]]
    risk: float
    typology: str
    first_seen: float
    last_seen: float
    reasons: list[str] = field(default_factory=list)
    core: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Ring({self.id}, {self.typology}, accounts={len(self.accounts)}, risk={self.risk:.2f})"
        )

    @property
    def size(self) -> int:
        """How many accounts the ring has."""
        return len(self.accounts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view; times as RFC 3339 strings in UTC."""
        return {
            "id": self.id,
            "typology": self.typology,
            "risk": self.risk,
            "size": len(self.accounts),
            "accounts": list(self.accounts),
            "core": list(self.core),
            "entities": [{"kind": k, "id": i} for k, i in self.entities],
            "evidence": [dict(e) for e in self.evidence],
            "reasons": list(self.reasons),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }

    def signature(self) -> tuple[Any, ...]:
        """What a caller would see change: members, identifiers, evidence, typology, risk."""
        keys = tuple(sorted(str(e.get("key", e.get("id", ""))) for e in self.evidence))
        return (tuple(self.accounts), tuple(self.entities), keys, self.typology, self.risk)


def evidence_weight(e: dict[str, Any]) -> float:
    """How much one evidence item adds to a ring's risk (see the module docstring)."""
    if e["type"] == "shared_identifier":
        return KIND_WEIGHTS.get(e["kind"], 0.1)
    return EVIDENCE_WEIGHTS.get(e["type"], 0.0)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _identifier_reason(e: dict[str, Any]) -> str:
    return f"{len(e['accounts'])} accounts share {e['kind']} {e['id']}"


def _describe(e: dict[str, Any]) -> str:
    t = e["type"]
    if t == "cycle":
        return (
            f"money went round a cycle of {len(e['accounts'])} accounts "
            f"({e['amount']} each hop) in {e['span_h']} h"
        )
    if t == "mule_star":
        return (
            f"{e['account']} received {e['received']} from {len(e['senders'])} senders and "
            f"passed {e['sent']} on to {len(e['receivers'])} accounts within hours"
        )
    if t == "layering":
        a, b = e["chain"]
        return f"money passed through {a} and then {b} within hours"
    if t == "kickback":
        return (
            f"{e['account']} paid {e['amount']} back to {len(e['receivers'])} accounts that "
            f"each paid merchant {e['merchant']} repeatedly, some of it refunded"
        )
    if t == "collector":
        return f"{e['account']} collected {e['amount']} from {len(e['senders'])} ring members"
    if t == "shared_identifier":
        return _identifier_reason(e)
    return str(t)


def assess(
    evidence: list[dict[str, Any]],
    facts: dict[str, MemberFacts],
    *,
    personal_kinds: tuple[str, ...],
    min_card_tests: int = 2,
) -> tuple[str, float, list[str]]:
    """The typology, risk and reasons a ring's evidence supports.

    Args:
        evidence: the ring's evidence items (``type`` and details).
        facts: per core account, what else is known about it.
        personal_kinds: identifier kinds that normally belong to one person.
        min_card_tests: declined tiny payments that make an account look card-tested.
    """
    types = {e["type"] for e in evidence}
    shared = [e for e in evidence if e["type"] == "shared_identifier"]
    n = max(1, len(facts))
    tested = sum(1 for f in facts.values() if f.small_payments >= min_card_tests)
    late = sum(1 for f in facts.values() if f.late_identifiers > 0)
    reasons = [_describe(e) for e in evidence]
    weights = [evidence_weight(e) for e in evidence]
    if "cycle" in types:
        typology = "round_tripping"
    elif types & {"mule_star", "layering"}:
        typology = "mule_network"
    elif "kickback" in types:
        typology = "collusive_merchant"
    elif shared and 2 * tested >= n:
        typology = "card_testing"
        weights.append(EVIDENCE_WEIGHTS["card_tests"])
        reasons.append(f"{tested} of {n} accounts had {min_card_tests}+ tiny payments declined")
    elif shared and 2 * late >= n:
        typology = "account_takeover"
        weights.append(EVIDENCE_WEIGHTS["late_identifiers"])
        reasons.append(f"{late} of {n} accounts took up the shared identifiers late")
    elif any(e["kind"] in personal_kinds for e in shared):
        typology = "synthetic_identity"
    else:
        typology = "unknown"
    keep = 1.0
    for w in weights:
        keep *= 1.0 - w
    return typology, round(min(1.0 - keep, 0.999), 3), reasons
