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

import msgspec

from ingest.errors import FieldError, RecordRejected
from ingest.events import EVENT_CLASSES, EVENT_TYPES, FIELDS, MAX_RECORD_BYTES, FieldSpec, Geo
from ingest.reference import COUNTRIES, CURRENCY_EXPONENTS

Clock = Callable[[], datetime]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


_RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_TAGS = {f'"{name}"'.encode(): name for name in EVENT_TYPES}
_decode_any = msgspec.json.decode


class _Fallback(Exception):
    """The fast path is not sure; take the full path (control flow, never escapes)."""


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
        self._compiled = {name: self._compile(name) for name in FIELDS}
        self._classes = EVENT_CLASSES
        self._decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_CLASSES.items()}
        self._id_fields = {
            name: tuple(s.name for s in specs if s.kind == "id") for name, specs in FIELDS.items()
        }
        self._ip_fields = {
            name: tuple(s.name for s in specs if s.kind == "ip") for name, specs in FIELDS.items()
        }
        self._known = {
            name: frozenset(s.name for s in specs) | {"event_type"}
            for name, specs in FIELDS.items()
        }
        self.fast_hits = 0
        self.slow_calls = 0

    def refresh_clock(self) -> None:
        """Re-read the clock (long-running ingest calls this between batches)."""
        self._latest = self._now() + self.limits.max_future

    def validate(self, record: Mapping[str, Any], *, event_type: str | None = None) -> Any:
        """Validate ``record`` into an event of ``event_type`` (or of its own ``event_type``).

        Raises:
            RecordRejected: with one :class:`FieldError` per bad field.
        """
        event_type = self._resolve(record, event_type)
        compiled = self._compiled[event_type]
        if type(record) is dict:
            # fast path: msgspec builds and type-checks the Struct in C; any doubt, full path
            try:
                fields = record
                if "extra" in record:  # not the Struct's field: an unknown one, kept in extra
                    fields = dict(record)
                    del fields["extra"]
                event = msgspec.convert(fields, self._classes[event_type])
                known = self._known[event_type]
                if not known.issuperset(record):  # unknown fields, in the record's order
                    event.extra = {k: v for k, v in record.items() if k not in known}
                self._check_decoded(event, event_type)
                self.fast_hits += 1
                return event
            except (msgspec.ValidationError, _Fallback):
                pass
        self.slow_calls += 1
        return compiled(record)

    def validate_full(self, record: Mapping[str, Any], *, event_type: str | None = None) -> Any:
        """The full validator alone: the authority the fast paths are held to."""
        return self._compiled[self._resolve(record, event_type)](record)

    def _resolve(self, record: Mapping[str, Any], event_type: str | None) -> str:
        """The record's event type: the one expected here, or the one it declares."""
        declared = record.get("event_type")
        if declared == "":
            declared = None
        if declared is not None and declared != event_type:
            known = type(declared) is str and declared in self._compiled
            if event_type is None and known:
                event_type = declared
            else:
                if not known:
                    reason = (
                        f"unknown event type {str(declared)[:40]!r}; "
                        f"expected one of {list(EVENT_TYPES)}"
                    )
                else:
                    reason = f"expected {event_type!r} here, got {declared!r}"
                raise RecordRejected([FieldError("event_type", reason)])
        elif event_type is None:
            raise RecordRejected([FieldError("event_type", "required field is missing")])
        if event_type not in self._compiled:
            reason = f"unknown event type {event_type!r}; expected one of {list(EVENT_TYPES)}"
            raise RecordRejected([FieldError("event_type", reason)])
        return event_type

    def validate_json(self, raw: bytes, *, event_type: str | None = None) -> Any:
        """Parse and validate one JSON record; same verdict as ``validate(parse(raw))``.

        The fast path decodes straight into the event Struct (types, lengths, enumerations
        and ranges checked while parsing) and then checks what the Struct's annotations cannot
        say. Any doubt (a failed check, a lenient form such as an integer id or ``"true"``, a
        field named ``extra``) sends the record down the full path, which gives the verdict and
        every reason. So the fast path only ever accepts what the full path accepts, unchanged.

        Raises:
            RecordRejected: unparseable or invalid, with one FieldError per problem.
        """
        if len(raw) <= MAX_RECORD_BYTES:
            try:
                keys = _RAW_OBJECT.decode(raw)
                declared = keys.get("event_type")
                if declared is not None:
                    declared_type = _TAGS.get(bytes(declared))
                    if declared_type is None or (event_type not in (None, declared_type)):
                        raise _Fallback
                    event_type = declared_type
                if event_type is None or "extra" in keys:
                    raise _Fallback
                event = self._decoders[event_type].decode(raw)
                unknown = keys.keys() - self._known[event_type]
                if unknown:
                    event.extra = {k: _decode_any(keys[k]) for k in unknown}
                self._check_decoded(event, event_type)
                self.fast_hits += 1
                return event
            except (msgspec.DecodeError, _Fallback, KeyError):
                pass
        self.slow_calls += 1
        from ingest.sources import parse_json_record  # the full path's parser

        record, error = parse_json_record(raw)
        if error is not None:
            raise error
        return self.validate_full(record, event_type=event_type)  # type: ignore[arg-type]

    def _check_decoded(self, event: Any, event_type: str) -> None:
        """What the Struct's annotations do not check; raise _Fallback on any doubt."""
        for name in self._id_fields[event_type]:
            v = getattr(event, name)
            if v is not None and not (v.isprintable() and v[0] != " " and v[-1] != " "):
                raise _Fallback
        for name in self._ip_fields[event_type]:
            v = getattr(event, name)
            if v is not None:
                try:
                    socket.inet_pton(socket.AF_INET6 if ":" in v else socket.AF_INET, v)
                except (OSError, ValueError):
                    raise _Fallback from None
        ts = event.timestamp
        if not self.limits.earliest <= ts <= self._latest:
            raise _Fallback
        if event_type == "transaction":
            amount = event.amount
            if not amount.is_finite() or not 0 < amount <= self.limits.max_amount:
                raise _Fallback
            exponent = amount.as_tuple().exponent
            if exponent > 0 or -exponent > CURRENCY_EXPONENTS[event.currency]:
                raise _Fallback

    def _compile(self, event_type: str) -> Callable[[Mapping[str, Any]], Any]:
        """Generate a straight-line validator for one event type.

        Like ``dataclasses`` generating ``__init__``: one local per field, the common valid case
        of each kind checked inline, anything else (and every error) through the per-kind method
        below. Runs about twice as fast as a loop over the field declarations.
        """
        specs = FIELDS[event_type]
        env: dict[str, Any] = {
            "cls": EVENT_CLASSES[event_type],
            "FieldError": FieldError,
            "RecordRejected": RecordRejected,
            "CURRENCIES": CURRENCY_EXPONENTS,
            "KNOWN": frozenset(s.name for s in specs) | {"event_type"},
        }
        lines = ["def validate(record):", "    errors = None", "    present = 0"]

        def slow(i: int, spec: FieldSpec, target: str) -> list[str]:
            env[f"spec{i}"] = spec
            env[f"check{i}"] = self._checks[spec.kind]
            return [
                "        try:",
                f"            {target} = check{i}(spec{i}, v)",
                "        except ValueError as exc:",
                "            if errors is None:",
                "                errors = []",
                f"            errors.append(FieldError({spec.name!r}, str(exc)))",
            ]

        amount_index = None
        for i, spec in enumerate(specs):
            var = f"f_{spec.name}"
            lines.append(f"    {var} = None")
            lines.append(f"    v = record.get({spec.name!r})")
            lines.append('    if v is not None and v != "":')
            lines.append("        present += 1")
            if spec.kind == "amount":
                amount_index = i
                env[f"spec{i}"] = spec
                lines.append(f"        {var} = v")
            elif spec.kind in ("id", "text"):
                cond = f"type(v) is str and len(v) <= {spec.max_length}"
                if spec.kind == "id":
                    cond += ' and v.isprintable() and v[0] != " " and v[-1] != " "'
                lines.append(f"        if {cond}:")
                lines.append(f"            {var} = v")
                lines.append("        else:")
                lines.extend("    " + ln for ln in slow(i, spec, var))
            elif spec.kind in ("enum", "currency"):
                env[f"choices{i}"] = (
                    frozenset(spec.choices) if spec.kind == "enum" else CURRENCY_EXPONENTS
                )
                lines.append(f"        if type(v) is str and v in choices{i}:")
                lines.append(f"            {var} = v")
                lines.append("        else:")
                lines.extend("    " + ln for ln in slow(i, spec, var))
            elif spec.kind == "bool":
                lines.append("        if type(v) is bool:")
                lines.append(f"            {var} = v")
                lines.append("        else:")
                lines.extend("    " + ln for ln in slow(i, spec, var))
            else:
                lines.extend(slow(i, spec, var))
            if spec.required:
                lines.append("    else:")
                lines.append("        if errors is None:")
                lines.append("            errors = []")
                lines.append(
                    f"        errors.append(FieldError({spec.name!r}, 'required field is missing'))"
                )
        if amount_index is not None:
            env["check_amount"] = self._amount
            lines += [
                "    if f_amount is not None:",
                "        try:",
                "            f_amount = check_amount(None, f_amount, f_currency)",
                "        except ValueError as exc:",
                "            f_amount = None",
                "            if errors is None:",
                "                errors = []",
                "            errors.append(FieldError('amount', str(exc)))",
            ]
        lines += [
            "    if errors is not None:",
            "        raise RecordRejected(errors)",
            "    extra = {}",
            "    if len(record) > present + ('event_type' in record):",
            "        extra = {k: x for k, x in record.items() if k not in KNOWN}",
            "    return cls(" + ", ".join(f"{s.name}=f_{s.name}" for s in specs) + ", extra=extra)",
        ]
        exec(compile("\n".join(lines), f"<validate {event_type}>", "exec"), env)  # noqa: S102
        return env["validate"]  # type: ignore[no-any-return]

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
