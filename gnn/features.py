"""Features: one definition, computed the same way offline (training) and online (serving).

:class:`FeatureState` keeps per-entity state and is fed canonical events in time order. For a
transaction it first computes the features from the state as it stands (everything strictly
before this transaction), then folds the transaction in: a feature never sees the future,
and the same object serves training (replaying a history) and scoring (live events).

Per transaction (:data:`TXN_FEATURES`): amount against the account's own history (z-score,
percentile), velocity windows (1 min / 1 h / 24 h counts and sums per account, card, device and
IP), time of day against habit, a new device / IP / merchant / card / payee for this account,
distance and speed from the account's last located event, currency and country mismatch,
identifier sharing (accounts per device, IP, card, phone, e-mail), account age, recent password
reset and contact change, failed logins, and ring membership and risk from the ring detector
(updated every ``ring_every`` events, so a transaction only sees rings found before it).

Per entity (:data:`ENTITY_FEATURES`, the same columns for every kind): how many accounts use it
(for an account: itself and the accounts that paid it),
how often it was seen, its age, its failure rate, its mean amount and one kind-specific signal
(ring risk for accounts, the emulator flag for devices).

Amounts are compared across currencies with fixed reference rates (:data:`EUR_RATES`): the
features need a scale, not a price.

>>> from datetime import datetime, timezone
>>> from decimal import Decimal
>>> from ingest.events import Transaction
>>> state = FeatureState()
>>> t = Transaction(txn_id="t1", timestamp=datetime(2026, 10, 1, 12, tzinfo=timezone.utc),
...                 source="bank", account_id="a1", amount=Decimal("20.00"), currency="EUR",
...                 channel="card_present", merchant_id="m1", device_id="d1")
>>> row = state.observe(t)
>>> round(float(row.x[TXN_INDEX["log_amount"]]), 4), int(row.x[TXN_INDEX["new_merchant"]])
(3.0445, 1)
>>> state.observe(t).x[TXN_INDEX["new_merchant"]]  # the same merchant again: not new
np.float32(0.0)
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from graph.model import edges_from_event, normalise
from graph.rings import RingDetector

ENTITY_KINDS: Final = ("account", "card", "device", "ip", "merchant")
RELATIONS: Final = (
    ("by", "account"),
    ("to", "account"),
    ("with", "card"),
    ("on", "device"),
    ("from", "ip"),
    ("at", "merchant"),
)
"""How a transaction links to entities: paid by an account, to an account (transfers), with a
card, on a device, from an IP, at a merchant."""

CHANNELS: Final = ("card_present", "card_not_present", "transfer", "atm", "wallet")
WINDOWS: Final = (("1m", 60.0), ("1h", 3600.0), ("24h", 86400.0))
VELOCITY_KINDS: Final = ("account", "card", "device", "ip")

EUR_RATES: Final = {
    "EUR": 1.0,
    "GBP": 1.17,
    "USD": 0.92,
    "JPY": 0.0062,
    "THB": 0.026,
    "AED": 0.25,
    "NGN": 0.00062,
    "BRL": 0.17,
    "VND": 0.000037,
    "IDR": 0.000058,
    "RON": 0.2,
    "MYR": 0.2,
    "PHP": 0.016,
    "CHF": 1.05,
    "SEK": 0.088,
    "PLN": 0.23,
    "CAD": 0.68,
    "AUD": 0.61,
}
"""Reference rates to euros, for scale only; an unknown currency counts at rate 1."""

_DAY: Final = 86400.0
_HISTORY: Final = 50
"""Amounts kept per account for the percentile feature."""
_RECENT: Final = 7 * _DAY
"""Contact changes and resets older than this no longer count."""


def _names() -> tuple[str, ...]:
    names = [
        "log_amount",
        "amount_z",
        "amount_percentile",
        "amount_vs_max",
        *(f"channel_{c}" for c in CHANNELS),
        "hour_sin",
        "hour_cos",
        "hour_vs_habit",
        "foreign_currency",
        "country_mismatch",
        "round_amount",
        "tiny_amount",
    ]
    for kind in VELOCITY_KINDS:
        for w, _ in WINDOWS:
            names += [f"{kind}_count_{w}", f"{kind}_sum_{w}"]
    names += [
        "account_declines_24h",
        "card_declines",
        "new_device",
        "new_ip",
        "new_merchant",
        "new_card",
        "new_payee",
        "geo_distance",
        "geo_speed",
        "accounts_per_device",
        "accounts_per_ip",
        "accounts_per_card",
        "accounts_per_phone",
        "accounts_per_email",
        "account_age",
        "recent_password_reset",
        "recent_contact_change",
        "failed_logins_24h",
        "new_device_login",
        "emulator",
        "ring_member",
        "ring_risk",
        "ring_size",
        "payee_payers",
        "payee_age",
        "received_24h",
        "has_card",
        "has_device",
        "has_ip",
        "has_merchant",
        "has_payee",
    ]
    return tuple(names)


TXN_FEATURES: Final = _names()
"""Names of the transaction feature columns, in order."""
TXN_INDEX: Final = {n: i for i, n in enumerate(TXN_FEATURES)}

ENTITY_FEATURES: Final = (
    "accounts",
    "events",
    "age",
    "failure_rate",
    "mean_amount",
    "signal",
)
"""Names of the entity feature columns (every kind), in order."""


@dataclass(slots=True)
class TxnRow:
    """The features of one transaction, as of just before it.

    Attributes:
        txn_id: the transaction.
        ts: its time (epoch seconds).
        x: the transaction's features, :data:`TXN_FEATURES` order.
        entities: per relation of :data:`RELATIONS`, the entity's id (None when absent).
        entity_x: per relation, the entity's features (zeros when absent).
    """

    txn_id: str
    ts: float
    x: np.ndarray
    entities: tuple[str | None, ...]
    entity_x: np.ndarray


_NO_ENTITY: Final = (0.0,) * len(ENTITY_FEATURES)


class _Entity:
    """What is known about one entity (any kind)."""

    __slots__ = ("accounts", "amount", "failed", "first", "n", "signal", "windows")

    def __init__(self, ts: float) -> None:
        self.first = ts
        self.n = 0
        self.failed = 0
        self.amount = 0.0
        self.accounts: set[str] = set()
        self.signal = 0.0
        self.windows: list[_Window] | None = None

    def features(self, ts: float) -> tuple[float, ...]:
        n = self.n
        return (
            math.log1p(len(self.accounts)),
            math.log1p(n),
            math.log1p(max(0.0, ts - self.first) / _DAY),
            self.failed / n if n else 0.0,
            math.log1p(self.amount / n) if n else 0.0,
            self.signal,
        )


class _Window:
    """Count and sum of amounts over a sliding time window."""

    __slots__ = ("count", "items", "span", "total")

    def __init__(self, span: float) -> None:
        self.span = span
        self.items: deque[tuple[float, float]] = deque()
        self.count = 0
        self.total = 0.0

    def expire(self, ts: float) -> None:
        items = self.items
        edge = ts - self.span
        while items and items[0][0] <= edge:
            _, amount = items.popleft()
            self.count -= 1
            self.total -= amount
        if not items:
            self.total = 0.0

    def add(self, ts: float, amount: float) -> None:
        self.items.append((ts, amount))
        self.count += 1
        self.total += amount


class _Account:
    """An account's own history."""

    __slots__ = (
        "amounts",
        "cards",
        "contact",
        "country",
        "currency",
        "declines",
        "devices",
        "failed_logins",
        "geo",
        "hour_n",
        "hour_x",
        "hour_y",
        "ips",
        "log_max",
        "log_n",
        "log_sq",
        "log_sum",
        "merchants",
        "new_device_login",
        "payees",
        "ranked",
        "received",
        "reset",
    )

    def __init__(self) -> None:
        self.amounts: deque[float] = deque(maxlen=_HISTORY)
        self.ranked: list[float] = []  # the same amounts, sorted
        self.log_n = 0
        self.log_sum = 0.0
        self.log_sq = 0.0
        self.log_max = 0.0
        self.hour_x = 0.0
        self.hour_y = 0.0
        self.hour_n = 0
        self.currency: str | None = None
        self.country: str | None = None
        self.devices: set[str] = set()
        self.ips: set[str] = set()
        self.merchants: set[str] = set()
        self.cards: set[str] = set()
        self.payees: set[str] = set()
        self.geo: tuple[float, float, float] | None = None  # ts, lat, lon
        self.reset = -math.inf
        self.contact = -math.inf
        self.new_device_login = -math.inf
        self.declines = _Window(_DAY)
        self.failed_logins = _Window(_DAY)
        self.received = _Window(_DAY)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742.0 * math.asin(min(1.0, math.sqrt(a)))


def _decay(now: float, then: float) -> float:
    age = now - then
    return math.exp(-age / _DAY) if age < _RECENT else 0.0


class FeatureState:
    """Per-entity state; :meth:`observe` turns events, in time order, into feature rows.

    Args:
        ring_every: events between two updates of the ring detector (its state lags by at
            most this many events, as it would in a pipeline that updates it per micro-batch).
        rings: whether to run the ring detector at all (ring features are 0 without it).
    """

    def __init__(self, *, ring_every: int = 2000, rings: bool = True) -> None:
        self.ring_every = ring_every
        self._accounts: dict[str, _Account] = {}
        self._entities: tuple[dict[str, _Entity], ...] = tuple({} for _ in ENTITY_KINDS)
        self._shared: dict[str, dict[str, set[str]]] = {"phone": {}, "email": {}}
        self._detector = RingDetector() if rings else None
        self._pending: list[Any] = []
        self.events = 0

    # -- input -----------------------------------------------------------------------------

    def observe(self, event: Any) -> TxnRow | None:
        """Fold one event in; for a transaction, return its features as of just before it."""
        self.events += 1
        et = event.event_type
        row = None
        if et == "transaction":
            row = self._transaction(event)
        elif et == "login":
            self._login(event)
        elif et == "device_event":
            self._device_event(event)
        elif et == "account_event":
            self._account_event(event)
        if self._detector is not None:  # after the features: the event does not see itself
            self._pending.extend(edges_from_event(event))
            if self.events % self.ring_every == 0:
                self.flush_rings()
        return row

    def observe_all(self, events: Iterable[Any]) -> list[TxnRow]:
        """:meth:`observe` each event; the transactions' rows."""
        out = []
        for e in events:
            row = self.observe(e)
            if row is not None:
                out.append(row)
        return out

    def ring_of(self, account_id: str) -> Any:
        """The ring the detector currently puts ``account_id`` in (None without one)."""
        return self._detector.ring_of(account_id) if self._detector is not None else None

    def ring(self, ring_id: str) -> Any:
        """A ring by id (None without the detector or such a ring)."""
        return self._detector.ring(ring_id) if self._detector is not None else None

    def flush_rings(self) -> None:
        """Give the ring detector the edges seen since its last update."""
        if self._detector is not None and self._pending:
            self._detector.update(self._pending)
            self._pending = []

    # -- helpers ---------------------------------------------------------------------------

    def _account(self, account_id: str) -> _Account:
        acc = self._accounts.get(account_id)
        if acc is None:
            acc = self._accounts[account_id] = _Account()
        return acc

    def _entity(self, kind: int, entity_id: str, ts: float) -> _Entity:
        table = self._entities[kind]
        ent = table.get(entity_id)
        if ent is None:
            ent = table[entity_id] = _Entity(ts)
        return ent

    def _see(self, kind: int, entity_id: str | None, account: str, ts: float) -> None:
        if entity_id is not None:
            ent = self._entity(kind, entity_id, ts)
            ent.accounts.add(account)
            ent.n += 1

    def _locate(self, acc: _Account, event: Any, ts: float) -> tuple[float, float]:
        geo = getattr(event, "geo", None)
        if geo is None:
            return 0.0, 0.0
        dist = speed = 0.0
        if acc.geo is not None:
            then, lat, lon = acc.geo
            dist = _km(lat, lon, geo.lat, geo.lon)
            speed = dist / max((ts - then) / 3600.0, 1 / 60)
        acc.geo = (ts, geo.lat, geo.lon)
        return math.log1p(dist), math.log1p(speed)

    # -- events ----------------------------------------------------------------------------

    def _login(self, e: Any) -> None:
        ts = e.timestamp.timestamp()
        acc = self._account(e.account_id)
        self._entity(0, e.account_id, ts).n += 1
        self._locate(acc, e, ts)
        if not e.success:
            acc.failed_logins.expire(ts)
            acc.failed_logins.add(ts, 1.0)
        elif e.device_id is not None and e.device_id not in acc.devices and acc.devices:
            acc.new_device_login = ts
        if e.device_id is not None:
            acc.devices.add(e.device_id)
            self._see(2, e.device_id, e.account_id, ts)
        if e.ip is not None:
            acc.ips.add(e.ip)
            self._see(3, e.ip, e.account_id, ts)

    def _device_event(self, e: Any) -> None:
        ts = e.timestamp.timestamp()
        dev = self._entity(2, e.device_id, ts)
        if e.emulator:
            dev.signal = 1.0
        if e.account_id is not None:
            dev.accounts.add(e.account_id)
            self._account(e.account_id).devices.add(e.device_id)

    def _account_event(self, e: Any) -> None:
        ts = e.timestamp.timestamp()
        acc = self._account(e.account_id)
        ent = self._entity(0, e.account_id, ts)
        if e.kind == "opened":
            ent.first = min(ent.first, ts)
        elif e.kind == "password_reset":
            acc.reset = ts
        elif e.kind in ("email_changed", "phone_changed", "address_changed"):
            acc.contact = ts
            kind = e.kind.split("_")[0]
            if kind in self._shared and e.new_value:
                users = self._shared[kind].setdefault(normalise(kind, e.new_value), set())
                users.add(e.account_id)

    def _transaction(self, e: Any) -> TxnRow:
        ts = e.timestamp.timestamp()
        x = [0.0] * len(TXN_FEATURES)  # a list: item writes cost a tenth of an array's
        ix = TXN_INDEX
        account_id = e.account_id
        acc = self._account(account_id)
        amount = float(e.amount) * EUR_RATES.get(e.currency, 1.0)
        la = math.log1p(amount)
        x[ix["log_amount"]] = la
        if acc.log_n >= 2:
            mean = acc.log_sum / acc.log_n
            var = max(acc.log_sq / acc.log_n - mean * mean, 0.0)
            x[ix["amount_z"]] = max(-10.0, min(10.0, (la - mean) / math.sqrt(var + 0.01)))
        if acc.amounts:
            x[ix["amount_percentile"]] = bisect.bisect_right(acc.ranked, la) / len(acc.ranked)
            x[ix["amount_vs_max"]] = la - acc.log_max
        else:
            x[ix["amount_percentile"]] = 0.5
        x[ix["channel_" + e.channel]] = 1.0
        hour = (ts % _DAY) / 3600.0
        angle = 2 * math.pi * hour / 24
        hx, hy = math.cos(angle), math.sin(angle)
        x[ix["hour_sin"]] = hy
        x[ix["hour_cos"]] = hx
        if acc.hour_n >= 3:
            mx, my = acc.hour_x / acc.hour_n, acc.hour_y / acc.hour_n
            habit = math.atan2(my, mx)
            diff = abs((angle - habit + math.pi) % (2 * math.pi) - math.pi)
            x[ix["hour_vs_habit"]] = diff / math.pi * math.hypot(mx, my)
        if acc.currency is not None and e.currency != acc.currency:
            x[ix["foreign_currency"]] = 1.0
        country = e.merchant_country
        if country is not None and acc.country is not None and country != acc.country:
            x[ix["country_mismatch"]] = 1.0
        raw = float(e.amount)
        x[ix["round_amount"]] = 1.0 if raw >= 50 and raw % 50 == 0 else 0.0
        x[ix["tiny_amount"]] = 1.0 if amount < 3.0 else 0.0

        # velocity, per account, card, device and IP: before this transaction
        keys = (account_id, e.card_id, e.device_id, e.ip)
        pos = ix["account_count_1m"]
        for kind, key in enumerate(keys):  # ENTITY_KINDS order
            if key is None:
                pos += 2 * len(WINDOWS)
                continue
            ent = self._entity(kind, key, ts)
            windows = ent.windows
            if windows is None:
                windows = ent.windows = [_Window(span) for _, span in WINDOWS]
            for w in windows:
                items = w.items
                if items and items[0][0] <= ts - w.span:
                    w.expire(ts)
                x[pos] = math.log1p(w.count)
                x[pos + 1] = math.log1p(w.total)
                pos += 2
                items.append((ts, amount))
                w.count += 1
                w.total += amount

        failed = e.status in ("declined", "reversed")
        acc.declines.expire(ts)
        x[ix["account_declines_24h"]] = math.log1p(acc.declines.count)
        card = None
        if e.card_id is not None:
            card = self._entity(1, e.card_id, ts)
            x[ix["card_declines"]] = math.log1p(card.failed)
        x[ix["new_device"]] = float(e.device_id is not None and e.device_id not in acc.devices)
        x[ix["new_ip"]] = float(e.ip is not None and e.ip not in acc.ips)
        x[ix["new_merchant"]] = float(
            e.merchant_id is not None and e.merchant_id not in acc.merchants
        )
        x[ix["new_card"]] = float(e.card_id is not None and e.card_id not in acc.cards)
        payee = e.counterparty_account_id
        x[ix["new_payee"]] = float(payee is not None and payee not in acc.payees)
        dist, speed = self._locate(acc, e, ts)
        x[ix["geo_distance"]] = dist
        x[ix["geo_speed"]] = speed

        ents = self._entities
        for name, kind, key in (
            ("accounts_per_device", 2, e.device_id),
            ("accounts_per_ip", 3, e.ip),
            ("accounts_per_card", 1, e.card_id),
        ):
            if key is not None:
                got = ents[kind].get(key)
                users = got.accounts if got is not None else ()
                x[ix[name]] = math.log1p(len(users) + (account_id not in users))
        for ident, value in (("phone", e.phone), ("email", e.email)):
            if value is not None:
                sharing = self._shared[ident].setdefault(normalise(ident, value), set())
                sharing.add(account_id)
                x[ix[f"accounts_per_{ident}"]] = math.log1p(len(sharing))
        me = self._entity(0, account_id, ts)
        x[ix["account_age"]] = math.log1p(max(0.0, ts - me.first) / _DAY)
        x[ix["recent_password_reset"]] = _decay(ts, acc.reset)
        x[ix["recent_contact_change"]] = _decay(ts, acc.contact)
        acc.failed_logins.expire(ts)
        x[ix["failed_logins_24h"]] = math.log1p(acc.failed_logins.count)
        x[ix["new_device_login"]] = _decay(ts, acc.new_device_login)
        if e.device_id is not None:
            dev = ents[2].get(e.device_id)
            x[ix["emulator"]] = dev.signal if dev is not None else 0.0
        det = self._detector
        if det is not None:
            ring = det.ring_of(account_id)
            if ring is not None:
                x[ix["ring_member"]] = 1.0
                x[ix["ring_risk"]] = ring.risk
                x[ix["ring_size"]] = math.log1p(len(ring.accounts))
                me.signal = ring.risk
            else:
                me.signal = 0.0
        payee_ent = None
        if payee is not None:
            payee_ent = self._entity(0, payee, ts)
            payee_acc = self._account(payee)
            x[ix["payee_payers"]] = math.log1p(len(payee_ent.accounts))
            x[ix["payee_age"]] = math.log1p(max(0.0, ts - payee_ent.first) / _DAY)
            if det is not None:
                ring = det.ring_of(payee)
                payee_ent.signal = ring.risk if ring is not None else 0.0
        acc.received.expire(ts)
        x[ix["received_24h"]] = math.log1p(acc.received.total)
        x[ix["has_card"]] = float(e.card_id is not None)
        x[ix["has_device"]] = float(e.device_id is not None)
        x[ix["has_ip"]] = float(e.ip is not None)
        x[ix["has_merchant"]] = float(e.merchant_id is not None)
        x[ix["has_payee"]] = float(payee is not None)

        # the entities, as of just before this transaction
        entities = (account_id, payee, e.card_id, e.device_id, e.ip, e.merchant_id)
        resolved: list[_Entity | None] = [me, payee_ent, card, None, None, None]
        for r, (kind, key) in enumerate(((2, e.device_id), (3, e.ip), (4, e.merchant_id))):
            if key is not None:
                resolved[3 + r] = self._entity(kind, key, ts)
        entity_x = np.array(
            [_NO_ENTITY if known is None else known.features(ts) for known in resolved],
            dtype=np.float32,
        )

        # now fold this transaction in
        if len(acc.amounts) == _HISTORY:
            del acc.ranked[bisect.bisect_left(acc.ranked, acc.amounts[0])]
        acc.amounts.append(la)
        bisect.insort(acc.ranked, la)
        acc.log_n += 1
        acc.log_sum += la
        acc.log_sq += la * la
        acc.log_max = max(acc.log_max, la) if acc.log_n > 1 else la
        acc.hour_x += hx
        acc.hour_y += hy
        acc.hour_n += 1
        if acc.currency is None:
            acc.currency = e.currency
        if acc.country is None and country is not None:
            acc.country = country
        if failed:
            acc.declines.add(ts, 1.0)
        for known in resolved:
            if known is not None:
                known.n += 1
                known.amount += amount
                if failed:
                    known.failed += 1
                known.accounts.add(account_id)
        if payee_ent is not None:
            payee_acc.received.expire(ts)
            payee_acc.received.add(ts, amount)
        if e.device_id is not None:
            acc.devices.add(e.device_id)
        if e.ip is not None:
            acc.ips.add(e.ip)
        if e.merchant_id is not None:
            acc.merchants.add(e.merchant_id)
        if e.card_id is not None:
            acc.cards.add(e.card_id)
        if payee is not None:
            acc.payees.add(payee)
        return TxnRow(e.txn_id, ts, np.array(x, dtype=np.float32), entities, entity_x)
