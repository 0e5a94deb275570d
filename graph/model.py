"""The entity graph's model: node kinds, edge kinds, and how an event becomes edge updates.

Nodes are ``(kind, id)`` pairs. Every edge starts at an account::

    account -USES_DEVICE->  device      transactions, logins, device and account events
    account -FROM_IP->      ip          transactions, logins, account events
    account -HAS_CARD->     card        transactions
    account -HAS_EMAIL->    email       transactions, e-mail changes
    account -HAS_PHONE->    phone       transactions, phone changes
    account -HAS_ADDRESS->  address     transactions (billing address), address changes
    account -PAYS->         merchant    transactions with a merchant (amounts summed)
    account -TRANSFERS_TO-> account     transfers to a counterparty (amounts summed)

An edge is aggregated: ``first_seen``, ``last_seen`` (epoch seconds), ``times``, ``failures``
(failed logins, declined payments) and ``amount`` (sum, money edges only). Updating an edge with
the same event twice counts it twice: callers feed each event once (the bus guarantees it).

Identifiers are normalised so that the same e-mail written twice is one node: e-mails lower-cased,
addresses lower-cased with runs of spaces and commas collapsed.

>>> from datetime import datetime, timezone
>>> from decimal import Decimal
>>> from ingest.events import Transaction
>>> txn = Transaction(txn_id="t1", timestamp=datetime(2026, 10, 1, tzinfo=timezone.utc),
...     source="b", account_id="acc_1", amount=Decimal("9.50"), currency="EUR",
...     channel="card_not_present", card_id="tok_9", merchant_id="mer_3", device_id="dev_7",
...     email="Ann@Example.com")
>>> for u in edges_from_event(txn):
...     print(u.rel, u.dst_kind, u.dst_id, u.amount)
USES_DEVICE device dev_7 0.0
HAS_CARD card tok_9 0.0
HAS_EMAIL email ann@example.com 0.0
PAYS merchant mer_3 9.5
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

NODE_KINDS: Final = ("account", "card", "device", "ip", "merchant", "email", "phone", "address")

REL_TARGET: Final = {
    "USES_DEVICE": "device",
    "FROM_IP": "ip",
    "HAS_CARD": "card",
    "HAS_EMAIL": "email",
    "HAS_PHONE": "phone",
    "HAS_ADDRESS": "address",
    "PAYS": "merchant",
    "TRANSFERS_TO": "account",
}
"""Each edge kind and the kind of node it points to (it always starts at an account)."""

IDENTIFIER_RELS: Final = (
    "USES_DEVICE",
    "FROM_IP",
    "HAS_CARD",
    "HAS_EMAIL",
    "HAS_PHONE",
    "HAS_ADDRESS",
)
"""Edges to identifiers that honest people rarely share: the ones that tie rings together."""

MONEY_RELS: Final = ("PAYS", "TRANSFERS_TO")


class Node(NamedTuple):
    """A node of the entity graph."""

    kind: str
    id: str


class EdgeUpdate(NamedTuple):
    """One observation of an edge: ``account -rel-> (dst_kind, dst_id)`` at ``ts``.

    Attributes:
        rel: the edge kind, a key of ``REL_TARGET``.
        src_id: the account the edge starts at.
        dst_kind: the kind of the target node.
        dst_id: the target node's id.
        ts: when, in seconds since the epoch (UTC).
        amount: money moved (``PAYS``, ``TRANSFERS_TO``), else 0.
        failed: a failed login or a declined or reversed payment.
    """

    rel: str
    src_id: str
    dst_kind: str
    dst_id: str
    ts: float
    amount: float = 0.0
    failed: bool = False


_edge: Final = tuple.__new__

_CHANGED: Final = {"email_changed": "email", "phone_changed": "phone", "address_changed": "address"}

_SPACES = re.compile(r"[\s,]+")


def normalise(kind: str, value: str) -> str:
    """The node id for an identifier value of a given kind.

    >>> normalise("address", " 12  High St,, Leeds ")
    '12 high st leeds'
    """
    if kind == "email":
        return value.strip().lower()
    if kind == "address":
        return _SPACES.sub(" ", value.strip().lower()).strip()
    return value


def edges_from_event(event: Any) -> list[EdgeUpdate]:
    """The edge updates one canonical event makes (pure: no I/O, no state).

    Built with ``tuple.__new__`` (``_edge``), not through the named tuple's ``__new__``, a
    Python-level call: this runs for every event of the stream.
    """
    account = getattr(event, "account_id", None)
    if account is None:
        return []
    ts = event.timestamp.timestamp()
    et = event.event_type
    failed = False
    if et == "login":
        failed = not event.success
    elif et == "transaction":
        failed = event.status in ("declined", "reversed")
    out: list[EdgeUpdate] = []
    device = getattr(event, "device_id", None)
    if device is not None:
        out.append(_edge(EdgeUpdate, ("USES_DEVICE", account, "device", device, ts, 0.0, failed)))
    ip = getattr(event, "ip", None)
    if ip is not None:
        out.append(_edge(EdgeUpdate, ("FROM_IP", account, "ip", ip, ts, 0.0, failed)))
    if et == "transaction":
        if event.card_id is not None:
            out.append(
                _edge(EdgeUpdate, ("HAS_CARD", account, "card", event.card_id, ts, 0.0, failed))
            )
        for rel, kind, value in (
            ("HAS_EMAIL", "email", event.email),
            ("HAS_PHONE", "phone", event.phone),
            ("HAS_ADDRESS", "address", event.billing_address),
        ):
            if value is not None:
                out.append(
                    _edge(EdgeUpdate, (rel, account, kind, normalise(kind, value), ts, 0.0, failed))
                )
        amount = float(event.amount)
        if event.merchant_id is not None:
            out.append(
                _edge(
                    EdgeUpdate, ("PAYS", account, "merchant", event.merchant_id, ts, amount, failed)
                )
            )
        if event.counterparty_account_id is not None:
            payee = event.counterparty_account_id
            out.append(
                _edge(EdgeUpdate, ("TRANSFERS_TO", account, "account", payee, ts, amount, failed))
            )
    elif et == "account_event" and event.new_value is not None:
        changed = _CHANGED.get(event.kind)
        if changed is not None:
            rel = f"HAS_{changed.upper()}"
            value = normalise(changed, event.new_value)
            out.append(_edge(EdgeUpdate, (rel, account, changed, value, ts, 0.0, False)))
    return out
