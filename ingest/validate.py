r"""Validation of raw records into canonical events, with field-level reasons.

A :class:`Validator` turns a mapping (parsed JSON, a mapped CSV row, a SQL row...) into one of
the event dataclasses of :mod:`ingest.events`, or raises :class:`RecordRejected` listing every
field that is wrong and why. It is built from the field declarations, so the rules here and the
JSON Schema files are the same rules.

>>> from datetime import datetime, timezone
>>> v = Validator(now=lambda: datetime(2026, 11, 1, tzinfo=timezone.utc))
>>> txn = v.validate({"txn_id": "t1", "timestamp": "2026-10-31T10:00:00+01:00",
...     "source": "bank_a", "account_id": "a1", "amount": 12.5, "currency": "EUR",
...     "channel": "card_present", "loyalty_tier": "gold"}, event_type="transaction")
>>> txn.amount, txn.extra
(Decimal('12.5'), {'loyalty_tier': 'gold'})
>>> try:
...     v.validate({"txn_id": "t2", "timestamp": "2026-10-31T10:00:00",
...         "source": "bank_a", "account_id": "a1", "amount": -3, "currency": "XXX",
...         "channel": "card_present"}, event_type="transaction")
... except RecordRejected as e:
...     print(*e.errors, sep="\n")
timestamp: timezone offset required (naive timestamp '2026-10-31T10:00:00')
currency: unknown ISO 4217 currency 'XXX'
amount: must be > 0, got -3
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ingest.errors import FieldError, RecordRejected
from ingest.events import EVENT_CLASSES, EVENT_TYPES, FIELDS, FieldSpec, Geo
from ingest.reference import COUNTRIES, CURRENCY_EXPONENTS

Clock = Callable[[], datetime]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Limits:
    """Plausibility limits applied by the validator.

    Args:
        max_amount: the largest amount accepted in any currency; larger is rejected as absurd.
        max_future: how far past ``now`` a timestamp may lie (clock skew allowance).
        earliest: the oldest timestamp accepted.
    """

    max_amount: Decimal = Decimal("1000000000")
    max_future: timedelta = timedelta(hours=24)
    earliest: datetime = _EARLIEST


class Validator:
    """Validates mappings into canonical events.

    Args:
        now: the clock, injected (timestamps in the future beyond ``limits.max_future`` are
            rejected relative to it).
        limits: plausibility limits.
    """

    def __init__(self, *, now: Clock = _utcnow, limits: Limits | None = None) -> None:
        self._now = now
        self.limits = limits or Limits()
        self._latest = self._now() + self.limits.max_future
        self._max_amount_f = float(self.limits.max_amount)
        self._checks = {
            "id": self._id,
            "text": self._text,
            "timestamp": self._timestamp,
            "amount": self._amount,
            "currency": self._currency,
            "enum": self._enum,
            "bool": self._bool,
            "ip": self._ip,
            "geo": self._geo,
            "mcc": self._mcc,
            "country": self._country,
            "email": self._email,
            "phone": self._phone,
        }
        self._plans = {
            name: (
                {s.name: (s, self._checks[s.kind]) for s in specs},
                frozenset(s.name for s in specs if s.required),
                tuple(s.name for s in specs if s.required),
                EVENT_CLASSES[name],
            )
            for name, specs in FIELDS.items()
        }

    def refresh_clock(self) -> None:
        """Re-read the clock (long-running ingest calls this between batches)."""
        self._latest = self._now() + self.limits.max_future

    def validate(self, record: Mapping[str, Any], *, event_type: str | None = None) -> Any:
        """Validate ``record`` into an event of ``event_type`` (or of its own ``event_type``).

        Raises:
            RecordRejected: with one :class:`FieldError` per bad field.
        """
        declared = record.get("event_type")
        n_required = 0
        if event_type is None:
            event_type = declared
            if event_type is None:
                raise RecordRejected([FieldError("event_type", "required field is missing")])
        if declared is not None and declared != event_type:
            if declared not in EVENT_TYPES:
                reason = f"unknown event type {declared!r}; expected one of {list(EVENT_TYPES)}"
            else:
                reason = f"expected {event_type!r} here, got {declared!r}"
            raise RecordRejected([FieldError("event_type", reason)])
        try:
            fields, required, required_order, cls = self._plans[event_type]
        except KeyError:
            reason = f"unknown event type {event_type!r}; expected one of {list(EVENT_TYPES)}"
            raise RecordRejected([FieldError("event_type", reason)]) from None
        n_required = len(required)
        values: dict[str, Any] = {}
        errors: list[FieldError] | None = None
        extra: dict[str, Any] | None = None
        amount = None
        for name, raw in record.items():
            plan = fields.get(name)
            if plan is None:
                if name != "event_type":
                    if extra is None:
                        extra = {}
                    extra[name] = raw
                continue
            if raw is None or raw == "":
                continue
            if name == "amount":
                amount = raw  # checked last: it needs the currency's minor units
                continue
            try:
                values[name] = plan[1](plan[0], raw)
            except ValueError as exc:
                if errors is None:
                    errors = []
                errors.append(FieldError(name, str(exc)))
        if amount is not None:
            try:
                values["amount"] = self._amount(None, amount, values.get("currency"))
            except ValueError as exc:
                if errors is None:
                    errors = []
                errors.append(FieldError("amount", str(exc)))
        if len(values) < n_required or not required.issubset(values):
            bad = {e.field for e in errors} if errors else set()
            missing = [
                FieldError(f, "required field is missing")
                for f in required_order
                if f not in values and f not in bad
            ]
            errors = missing + (errors or [])
        if errors:
            raise RecordRejected(errors)
        if extra is not None:
            values["extra"] = extra
        return cls(**values)

    # -- per-kind checks: return the normalised value or raise ValueError(reason) --

    @staticmethod
    def _id(spec: FieldSpec, v: Any) -> str:
        if type(v) is int:
            return str(v)
        if type(v) is not str:
            raise ValueError(f"expected a string, got {type(v).__name__}")
        if len(v) > spec.max_length:
            raise ValueError(f"longer than {spec.max_length} characters ({len(v)})")
        if not v.isprintable() or v[0] == " " or v[-1] == " ":
            raise ValueError("contains control characters or surrounding spaces")
        return v

    @staticmethod
    def _text(spec: FieldSpec, v: Any) -> str:
        if type(v) is not str:
            raise ValueError(f"expected a string, got {type(v).__name__}")
        if len(v) > spec.max_length:
            raise ValueError(f"longer than {spec.max_length} characters ({len(v)})")
        return v

    def _timestamp(self, _spec: FieldSpec, v: Any) -> datetime:
        if type(v) is not str:
            raise ValueError(f"expected an RFC 3339 string, got {type(v).__name__}")
        try:
            ts = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {v[:40]!r}") from None
        if ts.tzinfo is None:
            raise ValueError(f"timezone offset required (naive timestamp {v[:40]!r})")
        if ts > self._latest:
            raise ValueError(f"{v!r} is more than {self.limits.max_future} in the future")
        if ts < self.limits.earliest:
            raise ValueError(f"{v!r} is before {self.limits.earliest.date()}")
        return ts

    def _amount(self, _spec: FieldSpec | None, v: Any, currency: str | None = None) -> Decimal:
        kind = type(v)
        if kind is float:
            if not math.isfinite(v):
                raise ValueError(f"must be a finite number, got {v}")
            text = repr(v)
            if "e" not in text and 0 < v <= self._max_amount_f:
                # fast path: a plain decimal literal in range; only the precision to check
                places = len(text.rstrip("0")) - text.index(".") - 1
                if currency is not None and places > CURRENCY_EXPONENTS[currency]:
                    allowed = CURRENCY_EXPONENTS[currency]
                    raise ValueError(f"{v} has more decimals than {currency} allows ({allowed})")
                return Decimal(text)
            d = Decimal(text)
        elif kind is int:
            d = Decimal(v)
        elif kind is str:
            try:
                d = Decimal(v.strip())
            except InvalidOperation:
                raise ValueError(f"not a decimal number: {v[:40]!r}") from None
            if not d.is_finite():
                raise ValueError(f"must be a finite number, got {v!r}")
        else:
            raise ValueError(f"expected a number or decimal string, got {kind.__name__}")
        if d <= 0:
            raise ValueError(f"must be > 0, got {v}")
        if d > self.limits.max_amount:
            raise ValueError(f"{v} exceeds the maximum plausible amount {self.limits.max_amount}")
        if currency is not None:
            allowed = CURRENCY_EXPONENTS[currency]
            if -d.as_tuple().exponent > allowed:  # type: ignore[operator]
                d = d.normalize()
                if -d.as_tuple().exponent > allowed:  # type: ignore[operator]
                    raise ValueError(f"{v} has more decimals than {currency} allows ({allowed})")
                if d.as_tuple().exponent > 0:  # type: ignore[operator]
                    d = d.quantize(Decimal(1))  # normalize() turns 1500 into 1.5E+3
        return d

    @staticmethod
    def _currency(_spec: FieldSpec, v: Any) -> str:
        if type(v) is not str:
            raise ValueError(f"expected a string, got {type(v).__name__}")
        if v not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown ISO 4217 currency {v[:16]!r}")
        return v

    @staticmethod
    def _enum(spec: FieldSpec, v: Any) -> str:
        if v not in spec.choices or type(v) is not str:
            raise ValueError(f"{str(v)[:40]!r} is not one of {list(spec.choices)}")
        return v  # type: ignore[no-any-return]

    @staticmethod
    def _bool(_spec: FieldSpec, v: Any) -> bool:
        if type(v) is bool:
            return v
        if type(v) is str and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise ValueError(f"expected true or false, got {str(v)[:40]!r}")

    @staticmethod
    def _ip(_spec: FieldSpec, v: Any) -> str:
        if type(v) is not str:
            raise ValueError(f"expected a string, got {type(v).__name__}")
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in v else socket.AF_INET, v)
        except (OSError, ValueError):
            raise ValueError(f"not a valid IPv4 or IPv6 address: {v[:48]!r}") from None
        return v

    def _geo(self, _spec: FieldSpec, v: Any) -> Geo:
        if type(v) is not dict:
            if not isinstance(v, Mapping):
                raise ValueError(
                    f"expected an object {{lat, lon, country}}, got {type(v).__name__}"
                )
            v = dict(v)
        lat = v.get("lat")
        lon = v.get("lon")
        if type(lat) is not float and type(lat) is not int:
            raise ValueError(f"lat: expected a number, got {type(lat).__name__}")
        if type(lon) is not float and type(lon) is not int:
            raise ValueError(f"lon: expected a number, got {type(lon).__name__}")
        if not -90.0 <= lat <= 90.0:  # also false for NaN
            raise ValueError(f"lat: {lat} is outside [-90, 90]")
        if not -180.0 <= lon <= 180.0:
            raise ValueError(f"lon: {lon} is outside [-180, 180]")
        country = v.get("country")
        if country is not None and country not in COUNTRIES:
            raise ValueError(f"unknown ISO 3166-1 alpha-2 country code {str(country)[:16]!r}")
        return Geo(float(lat), float(lon), country)

    @staticmethod
    def _mcc(_spec: FieldSpec, v: Any) -> str:
        if type(v) is int and 0 <= v <= 9999:
            return f"{v:04d}"
        if type(v) is str and len(v) == 4 and v.isdigit() and v.isascii():
            return v
        raise ValueError(f"expected a 4-digit merchant category code, got {str(v)[:16]!r}")

    @staticmethod
    def _country(_spec: FieldSpec, v: Any) -> str:
        if type(v) is not str or v not in COUNTRIES:
            raise ValueError(f"unknown ISO 3166-1 alpha-2 country code {str(v)[:16]!r}")
        return v

    @staticmethod
    def _email(_spec: FieldSpec, v: Any) -> str:
        if type(v) is not str or len(v) > 254 or not _EMAIL.match(v):
            raise ValueError(f"not an e-mail address: {str(v)[:64]!r}")
        return v

    @staticmethod
    def _phone(_spec: FieldSpec, v: Any) -> str:
        if type(v) is not str or not _PHONE.match(v):
            raise ValueError(f"not an E.164 phone number (+ and 7-15 digits): {str(v)[:24]!r}")
        return v
