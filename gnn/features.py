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

This file is plain Python and runs as is; ``make native`` also compiles it with Cython (the type
annotations on the state classes become C fields), which halves the cost of a transaction's
features. Both run the same source and give the same bits (``tests/gnn/test_features.py``);
:func:`compiled` says which one was imported.

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import cython
import numpy as np

if cython.compiled:  # C's functions, called directly
    from cython.cimports.libc.math import asin, atan2, cos, exp, log1p, sin, sqrt
else:  # the same functions as Python calls them (cython's shadow wraps them: slower)
    from math import asin, atan2, cos, exp, log1p, sin, sqrt

from gnn.native import warn_if_stale
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

_SPANS: Final = tuple(span for _, span in WINDOWS)
assert len(_SPANS) == 3, "_Velocity keeps three windows"
_RADIANS: Final = math.pi / 180.0
"""Degrees to radians, as :func:`math.radians` multiplies."""
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
_COMPACT: Final = 64
"""Expired window items are dropped in one go once at least this many (and half) have gone."""
_OBSERVE_EDGES: Final = 256
"""Edges the ring detector indexes at a time between two ring updates (see ``ring_every``):
the updates themselves then only link and materialise, a shorter pause."""


@cython.cclass
class _Velocity:
    """Counts and sums of amounts over the :data:`WINDOWS` (1 min, 1 h, 24 h) of one entity.

    One list of (time, amount) serves every window: each reads the suffix still inside it, from
    its own head, so a transaction is stored once, not once per window.
    """

    times: list
    amounts: list
    heads: cython.Py_ssize_t[3]
    sums: cython.double[3]

    def __init__(self) -> None:
        self.times = []
        self.amounts = []
        self.heads = [0, 0, 0]
        self.sums = [0.0, 0.0, 0.0]

    @cython.cfunc
    def read_add(self, ts: float, amount: float, x: list, pos: cython.Py_ssize_t) -> None:
        """Write each window's count and sum before ``ts`` into ``x`` from ``pos``, then add."""
        times: list = self.times
        amounts: list = self.amounts
        n: cython.Py_ssize_t = len(times)
        w: cython.Py_ssize_t
        for w in range(3):
            head: cython.Py_ssize_t = self.heads[w]
            edge: float = ts - _SPANS[w]
            if head < n and cython.cast(cython.double, times[head]) <= edge:
                total: float = self.sums[w]
                while head < n and cython.cast(cython.double, times[head]) <= edge:
                    total -= cython.cast(cython.double, amounts[head])
                    head += 1
                self.heads[w] = head
                self.sums[w] = 0.0 if head == n else total
            x[pos + 2 * w] = log1p(n - head)
            x[pos + 2 * w + 1] = log1p(self.sums[w])
        times.append(ts)
        amounts.append(amount)
        for w in range(3):
            self.sums[w] += amount
        gone: cython.Py_ssize_t = self.heads[2]  # the longest window's head: the least expired
        if gone >= _COMPACT and 2 * gone >= n:
            del times[:gone]
            del amounts[:gone]
            for w in range(3):
                self.heads[w] -= gone


@cython.cclass
class _Window:
    """Count and sum of amounts over one sliding time window."""

    span: float
    total: float
    head: cython.Py_ssize_t
    times: list
    amounts: list

    def __init__(self, span: float) -> None:
        self.span = span
        self.total = 0.0
        self.head = 0
        self.times = []
        self.amounts = []

    @cython.cfunc
    def expire(self, ts: float) -> cython.Py_ssize_t:
        """Drop what fell out of the window at ``ts``; how many are left in it."""
        times: list = self.times
        amounts: list = self.amounts
        n: cython.Py_ssize_t = len(times)
        head: cython.Py_ssize_t = self.head
        edge: float = ts - self.span
        if head < n and cython.cast(cython.double, times[head]) <= edge:
            total: float = self.total
            while head < n and cython.cast(cython.double, times[head]) <= edge:
                total -= cython.cast(cython.double, amounts[head])
                head += 1
            self.total = 0.0 if head == n else total
            if head >= _COMPACT and 2 * head >= n:
                del times[:head]
                del amounts[:head]
                n -= head
                head = 0
            self.head = head
        return n - head

    @cython.cfunc
    def add(self, ts: float, amount: float) -> None:
        self.times.append(ts)
        self.amounts.append(amount)
        self.total += amount


@cython.cclass
class _Entity:
    """What is known about one entity (any kind)."""

    first: float
    n: cython.Py_ssize_t
    failed: cython.Py_ssize_t
    amount: float
    signal: float
    accounts: set
    velocity: _Velocity | None

    def __init__(self, ts: float) -> None:
        self.first = ts
        self.n = 0
        self.failed = 0
        self.amount = 0.0
        self.accounts = set()
        self.signal = 0.0
        self.velocity = None

    @cython.cfunc
    def features(self, ts: float, out: list) -> None:
        """Append this entity's :data:`ENTITY_FEATURES` as of ``ts`` to ``out``."""
        n: cython.Py_ssize_t = self.n
        out.append(log1p(len(self.accounts)))
        out.append(log1p(n))
        out.append(log1p(max(0.0, ts - self.first) / _DAY))
        out.append(self.failed / n if n else 0.0)
        out.append(log1p(self.amount / n) if n else 0.0)
        out.append(self.signal)


@cython.cclass
class _Account:
    """An account's own history."""

    amounts: list  # the last _HISTORY log-amounts, oldest at ``oldest`` once full
    oldest: cython.Py_ssize_t
    ranked: list  # the same amounts, sorted
    log_n: cython.Py_ssize_t
    log_sum: float
    log_sq: float
    log_max: float
    hour_x: float
    hour_y: float
    hour_n: cython.Py_ssize_t
    currency: object
    country: object
    devices: set
    ips: set
    merchants: set
    cards: set
    payees: set
    located: cython.bint
    geo_ts: float
    geo_lat: float
    geo_lon: float
    reset: float
    contact: float
    new_device_login: float
    declines: _Window
    failed_logins: _Window
    received: _Window

    def __init__(self) -> None:
        self.amounts = []
        self.oldest = 0
        self.ranked = []
        self.log_n = 0
        self.log_sum = 0.0
        self.log_sq = 0.0
        self.log_max = 0.0
        self.hour_x = 0.0
        self.hour_y = 0.0
        self.hour_n = 0
        self.currency = None
        self.country = None
        self.devices = set()
        self.ips = set()
        self.merchants = set()
        self.cards = set()
        self.payees = set()
        self.located = False
        self.geo_ts = self.geo_lat = self.geo_lon = 0.0
        self.reset = -math.inf
        self.contact = -math.inf
        self.new_device_login = -math.inf
        self.declines = _Window(_DAY)
        self.failed_logins = _Window(_DAY)
        self.received = _Window(_DAY)

    @cython.cfunc
    def remember(self, la: float) -> None:
        """Keep ``la`` among the last :data:`_HISTORY` log-amounts (sorted in ``ranked``)."""
        if len(self.amounts) < _HISTORY:
            self.amounts.append(la)
        else:
            del self.ranked[bisect.bisect_left(self.ranked, self.amounts[self.oldest])]
            self.amounts[self.oldest] = la
            self.oldest = (self.oldest + 1) % _HISTORY
        bisect.insort(self.ranked, la)

    @cython.cfunc
    def locate(self, event: Any, ts: float) -> tuple[float, float]:
        """Distance (log km) and speed (log km/h) from the last located event; move here."""
        geo = getattr(event, "geo", None)
        if geo is None:
            return 0.0, 0.0
        lat: float = geo.lat
        lon: float = geo.lon
        dist: float = 0.0
        speed: float = 0.0
        if self.located:
            dist = _km(self.geo_lat, self.geo_lon, lat, lon)
            speed = dist / max((ts - self.geo_ts) / 3600.0, 1 / 60)
        self.located = True
        self.geo_ts, self.geo_lat, self.geo_lon = ts, lat, lon
        return log1p(dist), log1p(speed)


@cython.cfunc
def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1: float = lat1 * _RADIANS
    p2: float = lat2 * _RADIANS
    dp: float = p2 - p1
    dl: float = (lon2 - lon1) * _RADIANS
    a: float = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 12742.0 * asin(min(1.0, sqrt(a)))


@cython.cfunc
def _decay(now: float, then: float) -> float:
    age: float = now - then
    return exp(-age / _DAY) if age < _RECENT else 0.0


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
        self._observed = False  # edges observed by the detector but not linked yet
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
            pending = self._pending
            pending.extend(edges_from_event(event))
            if self.events % self.ring_every == 0:
                self.flush_rings()
            elif len(pending) >= _OBSERVE_EDGES:  # indexed now, linked at the next flush
                self._detector.observe(pending)
                self._pending = []
                self._observed = True
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

    def rings_of(self, rows: Iterable[TxnRow | None]) -> dict[str, Any]:
        """The rings, as they stand now, of the accounts and payees of ``rows`` (None: none)."""
        return {a: self.ring_of(a) for r in rows if r is not None for a in r.entities[:2] if a}

    def ring(self, ring_id: str) -> Any:
        """A ring by id (None without the detector or such a ring)."""
        return self._detector.ring(ring_id) if self._detector is not None else None

    def flush_rings(self) -> None:
        """Give the ring detector the edges seen since its last update."""
        if self._detector is not None and (self._pending or self._observed):
            self._detector.update(self._pending)
            self._pending = []
            self._observed = False

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
            ent: _Entity = self._entity(kind, entity_id, ts)
            ent.accounts.add(account)
            ent.n += 1

    # -- events ----------------------------------------------------------------------------

    def _login(self, e: Any) -> None:
        ts: float = e.timestamp.timestamp()
        acc: _Account = self._account(e.account_id)
        me: _Entity = self._entity(0, e.account_id, ts)
        me.n += 1
        acc.locate(e, ts)
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
        ts: float = e.timestamp.timestamp()
        dev: _Entity = self._entity(2, e.device_id, ts)
        if e.emulator:
            dev.signal = 1.0
        if e.account_id is not None:
            dev.accounts.add(e.account_id)
            acc: _Account = self._account(e.account_id)
            acc.devices.add(e.device_id)

    def _account_event(self, e: Any) -> None:
        ts: float = e.timestamp.timestamp()
        acc: _Account = self._account(e.account_id)
        ent: _Entity = self._entity(0, e.account_id, ts)
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
        ts: float = e.timestamp.timestamp()
        x: list = [0.0] * len(TXN_FEATURES)  # a list: item writes cost a tenth of an array's
        ix = TXN_INDEX
        account_id = e.account_id
        acc: _Account = self._account(account_id)
        raw: float = float(e.amount)
        amount: float = raw * EUR_RATES.get(e.currency, 1.0)
        la: float = log1p(amount)
        x[ix["log_amount"]] = la
        if acc.log_n >= 2:
            mean: float = acc.log_sum / acc.log_n
            var: float = max(acc.log_sq / acc.log_n - mean * mean, 0.0)
            x[ix["amount_z"]] = max(-10.0, min(10.0, (la - mean) / sqrt(var + 0.01)))
        if acc.amounts:
            x[ix["amount_percentile"]] = bisect.bisect_right(acc.ranked, la) / len(acc.ranked)
            x[ix["amount_vs_max"]] = la - acc.log_max
        else:
            x[ix["amount_percentile"]] = 0.5
        x[ix["channel_" + e.channel]] = 1.0
        hour: float = (ts % _DAY) / 3600.0
        angle: float = 2 * math.pi * hour / 24
        hx: float = cos(angle)
        hy: float = sin(angle)
        x[ix["hour_sin"]] = hy
        x[ix["hour_cos"]] = hx
        if acc.hour_n >= 3:
            mx: float = acc.hour_x / acc.hour_n
            my: float = acc.hour_y / acc.hour_n
            habit: float = atan2(my, mx)
            diff: float = abs((angle - habit + math.pi) % (2 * math.pi) - math.pi)
            x[ix["hour_vs_habit"]] = diff / math.pi * math.hypot(mx, my)
        if acc.currency is not None and e.currency != acc.currency:
            x[ix["foreign_currency"]] = 1.0
        country = e.merchant_country
        if country is not None and acc.country is not None and country != acc.country:
            x[ix["country_mismatch"]] = 1.0
        x[ix["round_amount"]] = 1.0 if raw >= 50 and raw % 50 == 0 else 0.0
        x[ix["tiny_amount"]] = 1.0 if amount < 3.0 else 0.0

        # velocity, per account, card, device and IP: before this transaction
        card_id, device_id, ip = e.card_id, e.device_id, e.ip
        pos: cython.Py_ssize_t = ix["account_count_1m"]
        kind: cython.Py_ssize_t
        ent: _Entity
        for kind, key in enumerate((account_id, card_id, device_id, ip)):  # ENTITY_KINDS order
            if key is not None:
                ent = self._entity(kind, key, ts)
                if ent.velocity is None:
                    ent.velocity = _Velocity()
                ent.velocity.read_add(ts, amount, x, pos)
            pos += 2 * len(WINDOWS)

        failed: cython.bint = e.status in ("declined", "reversed")
        x[ix["account_declines_24h"]] = log1p(acc.declines.expire(ts))
        card: _Entity | None = None
        if card_id is not None:
            card = self._entity(1, card_id, ts)
            x[ix["card_declines"]] = log1p(card.failed)
        x[ix["new_device"]] = float(device_id is not None and device_id not in acc.devices)
        x[ix["new_ip"]] = float(ip is not None and ip not in acc.ips)
        merchant_id = e.merchant_id
        x[ix["new_merchant"]] = float(merchant_id is not None and merchant_id not in acc.merchants)
        x[ix["new_card"]] = float(card_id is not None and card_id not in acc.cards)
        payee = e.counterparty_account_id
        x[ix["new_payee"]] = float(payee is not None and payee not in acc.payees)
        x[ix["geo_distance"]], x[ix["geo_speed"]] = acc.locate(e, ts)

        ents = self._entities
        users: set
        for name, kind, key in (
            ("accounts_per_device", 2, device_id),
            ("accounts_per_ip", 3, ip),
            ("accounts_per_card", 1, card_id),
        ):
            if key is not None:
                got: _Entity | None = ents[kind].get(key)
                if got is None:
                    x[ix[name]] = log1p(1)
                else:
                    users = got.accounts
                    x[ix[name]] = log1p(len(users) + (account_id not in users))
        for ident, value in (("phone", e.phone), ("email", e.email)):
            if value is not None:
                users = self._shared[ident].setdefault(normalise(ident, value), set())
                users.add(account_id)
                x[ix[f"accounts_per_{ident}"]] = log1p(len(users))
        me: _Entity = self._entity(0, account_id, ts)
        x[ix["account_age"]] = log1p(max(0.0, ts - me.first) / _DAY)
        x[ix["recent_password_reset"]] = _decay(ts, acc.reset)
        x[ix["recent_contact_change"]] = _decay(ts, acc.contact)
        x[ix["failed_logins_24h"]] = log1p(acc.failed_logins.expire(ts))
        x[ix["new_device_login"]] = _decay(ts, acc.new_device_login)
        device: _Entity | None = None
        if device_id is not None:
            device = ents[2].get(device_id)
            x[ix["emulator"]] = device.signal if device is not None else 0.0
        det = self._detector
        if det is not None:
            ring = det.ring_of(account_id)
            if ring is not None:
                x[ix["ring_member"]] = 1.0
                x[ix["ring_risk"]] = ring.risk
                x[ix["ring_size"]] = log1p(len(ring.accounts))
                me.signal = ring.risk
            else:
                me.signal = 0.0
        payee_ent: _Entity | None = None
        payee_acc: _Account | None = None
        if payee is not None:
            payee_ent = self._entity(0, payee, ts)
            payee_acc = self._account(payee)
            x[ix["payee_payers"]] = log1p(len(payee_ent.accounts))
            x[ix["payee_age"]] = log1p(max(0.0, ts - payee_ent.first) / _DAY)
            if det is not None:
                ring = det.ring_of(payee)
                payee_ent.signal = ring.risk if ring is not None else 0.0
        acc.received.expire(ts)
        x[ix["received_24h"]] = log1p(acc.received.total)
        x[ix["has_card"]] = float(card_id is not None)
        x[ix["has_device"]] = float(device_id is not None)
        x[ix["has_ip"]] = float(ip is not None)
        x[ix["has_merchant"]] = float(merchant_id is not None)
        x[ix["has_payee"]] = float(payee is not None)

        # the entities, as of just before this transaction (RELATIONS order)
        entities = (account_id, payee, card_id, device_id, ip, merchant_id)
        resolved = (
            me,
            payee_ent,
            card,
            None if device_id is None else self._entity(2, device_id, ts),
            None if ip is None else self._entity(3, ip, ts),
            None if merchant_id is None else self._entity(4, merchant_id, ts),
        )
        flat: list = []
        for known in resolved:
            if known is None:
                flat.extend(_NO_ENTITY)
            else:
                ent = known
                ent.features(ts, flat)
        entity_x = _float32(flat).reshape(len(RELATIONS), len(ENTITY_FEATURES))

        # now fold this transaction in
        acc.remember(la)
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
                ent = known
                ent.n += 1
                ent.amount += amount
                if failed:
                    ent.failed += 1
                ent.accounts.add(account_id)
        if payee_acc is not None:
            payee_acc.received.expire(ts)
            payee_acc.received.add(ts, amount)
        if device_id is not None:
            acc.devices.add(device_id)
        if ip is not None:
            acc.ips.add(ip)
        if merchant_id is not None:
            acc.merchants.add(merchant_id)
        if card_id is not None:
            acc.cards.add(card_id)
        if payee is not None:
            acc.payees.add(payee)
        return TxnRow(e.txn_id, ts, _float32(x), entities, entity_x)


@cython.cfunc
def _float32(values: list) -> Any:
    """``np.array(values, dtype=np.float32)``; compiled, filled in a C loop (the same casts)."""
    if not cython.compiled:
        return np.array(values, dtype=np.float32)
    n: cython.Py_ssize_t = len(values)
    out = np.empty(n, dtype=np.float32)
    view: cython.float[::1] = out
    i: cython.Py_ssize_t
    for i in range(n):
        view[i] = cython.cast(cython.float, cython.cast(cython.double, values[i]))
    return out


def compiled() -> bool:
    """Whether this module runs compiled (``make native``) rather than from its source."""
    return bool(cython.compiled)


if cython.compiled:  # a build older than its source runs yesterday's code: say so
    warn_if_stale(__file__)
