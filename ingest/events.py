"""Canonical events: the product's input contract.

Every source (Pulsar JSON, HTTP JSON, CSV, SQL rows, NoSQL documents, auth logs) is mapped to one
of four event types before anything else sees it::

    transaction     a payment, transfer, ATM withdrawal or wallet payment
    login           an authentication attempt on an account
    device_event    a device fingerprint observation
    account_event   a change to an account (opened, contact change, password reset, closed)

Each type is declared once, as a tuple of :class:`FieldSpec`. The validator
(:mod:`ingest.validate`), the JSON Schema files (``docs/schemas/``) and the field tables of
``docs/events.md`` are all derived from these declarations, so they cannot drift apart.

Domain objects are plain slotted dataclasses, not frozen (a frozen dataclass costs three times as
much to build, and ingest builds a hundred thousand a second): treat them as immutable. Fields a
source sends that the contract does not know are kept, in ``extra``, never rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import orjson

EVENT_TYPES: Final = ("transaction", "login", "device_event", "account_event")
CHANNELS: Final = ("card_present", "card_not_present", "transfer", "atm", "wallet")
ACCOUNT_EVENT_KINDS: Final = (
    "opened",
    "email_changed",
    "phone_changed",
    "address_changed",
    "password_reset",
    "closed",
)

MAX_RECORD_BYTES: Final = 64 * 1024
"""A raw record larger than this is rejected before it is parsed."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a canonical event.

    Args:
        name: the field's name in JSON and on the bus.
        kind: the value kind, one of ``id text timestamp amount currency enum bool ip geo mcc
            country email phone``; it selects the validator and the JSON Schema fragment.
        required: whether the field must be present and non-empty.
        doc: one sentence for the docs.
        choices: the allowed values of an ``enum`` field.
        max_length: the longest string accepted for ``id`` and ``text`` fields.
    """

    name: str
    kind: str
    required: bool
    doc: str
    choices: tuple[str, ...] = ()
    max_length: int = 128


def _f(name: str, kind: str, doc: str, *, required: bool = False, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, required=required, doc=doc, **kw)


_COMMON_TAIL = (
    _f("device_id", "id", "Device fingerprint id of the device used."),
    _f("ip", "ip", "Client IP address, IPv4 or IPv6."),
    _f("geo", "geo", "Where the event happened: `{lat, lon, country}`."),
    _f("user_agent", "text", "Client user agent string.", max_length=1024),
)

TRANSACTION_FIELDS: Final = (
    _f("txn_id", "id", "Unique id of the transaction.", required=True),
    _f("timestamp", "timestamp", "When it happened, RFC 3339 with a UTC offset.", required=True),
    _f("source", "id", "Id of the bank or gateway that reported it.", required=True),
    _f("account_id", "id", "The paying account.", required=True),
    _f(
        "amount",
        "amount",
        "Amount in `currency`, > 0, at most the currency's minor units.",
        required=True,
    ),
    _f("currency", "currency", "ISO 4217 alphabetic code.", required=True),
    _f("channel", "enum", "How the payment was made.", required=True, choices=CHANNELS),
    _f("card_id", "id", "Card used (a token, never a PAN)."),
    _f("counterparty_account_id", "id", "Receiving account of a transfer."),
    _f("merchant_id", "id", "Merchant paid."),
    _f("merchant_category", "mcc", "ISO 18245 merchant category code, 4 digits."),
    _f("merchant_country", "country", "Merchant's country, ISO 3166-1 alpha-2."),
    *_COMMON_TAIL,
    _f("email", "email", "E-mail address given with the payment."),
    _f("phone", "phone", "Phone number given with the payment, E.164."),
    _f("billing_address", "text", "Billing address given with the payment.", max_length=512),
    _f(
        "status",
        "enum",
        "Authorisation outcome reported by the source.",
        choices=("approved", "declined", "reversed"),
    ),
)

LOGIN_FIELDS: Final = (
    _f("event_id", "id", "Unique id of the login event.", required=True),
    _f("timestamp", "timestamp", "When it happened, RFC 3339 with a UTC offset.", required=True),
    _f("account_id", "id", "Account the login was for.", required=True),
    _f("success", "bool", "Whether authentication succeeded.", required=True),
    _f("mfa_used", "bool", "Whether a second factor was used.", required=True),
    _f("source", "id", "System that reported the event."),
    *_COMMON_TAIL,
    _f("failure_reason", "text", "Why a failed login failed, as the source says."),
)

DEVICE_EVENT_FIELDS: Final = (
    _f("event_id", "id", "Unique id of the device event.", required=True),
    _f("timestamp", "timestamp", "When it happened, RFC 3339 with a UTC offset.", required=True),
    _f("device_id", "id", "Device fingerprint id.", required=True),
    _f("account_id", "id", "Account signed in on the device, if any."),
    _f("source", "id", "System that reported the event."),
    _f("os", "text", "Operating system name."),
    _f("os_version", "text", "Operating system version."),
    _f("browser", "text", "Browser or app name."),
    _f("emulator", "bool", "The device looks like an emulator."),
    _f("rooted", "bool", "The device is rooted or jailbroken."),
    _f("screen", "text", "Screen resolution, e.g. `1170x2532`."),
    _f("timezone", "text", "Device time zone name."),
    _f("language", "text", "Device language tag."),
    _f("ip", "ip", "IP address the device was seen from."),
    _f("geo", "geo", "Where the device was seen: `{lat, lon, country}`."),
)

ACCOUNT_EVENT_FIELDS: Final = (
    _f("event_id", "id", "Unique id of the account event.", required=True),
    _f("timestamp", "timestamp", "When it happened, RFC 3339 with a UTC offset.", required=True),
    _f("account_id", "id", "The account changed.", required=True),
    _f("kind", "enum", "What changed.", required=True, choices=ACCOUNT_EVENT_KINDS),
    _f(
        "new_value",
        "text",
        "The new e-mail, phone or address, when the kind has one.",
        max_length=512,
    ),
    _f("source", "id", "System that reported the event."),
    _f("device_id", "id", "Device the change was made from."),
    _f("ip", "ip", "IP address the change was made from."),
)

FIELDS: Final[Mapping[str, tuple[FieldSpec, ...]]] = {
    "transaction": TRANSACTION_FIELDS,
    "login": LOGIN_FIELDS,
    "device_event": DEVICE_EVENT_FIELDS,
    "account_event": ACCOUNT_EVENT_FIELDS,
}
"""Field declarations per event type, in documentation order."""

ID_FIELD: Final[Mapping[str, str]] = {
    "transaction": "txn_id",
    "login": "event_id",
    "device_event": "event_id",
    "account_event": "event_id",
}
"""The field that identifies an event of each type (used for de-duplication)."""


@dataclass(slots=True)
class Geo:
    """A location: latitude and longitude in degrees, and the ISO 3166-1 alpha-2 country."""

    lat: float
    lon: float
    country: str | None = None


@dataclass(slots=True, kw_only=True)
class Transaction:
    """A canonical transaction. See ``TRANSACTION_FIELDS`` for each field's meaning."""

    txn_id: str
    timestamp: datetime
    source: str
    account_id: str
    amount: Decimal
    currency: str
    channel: str
    card_id: str | None = None
    counterparty_account_id: str | None = None
    merchant_id: str | None = None
    merchant_category: str | None = None
    merchant_country: str | None = None
    device_id: str | None = None
    ip: str | None = None
    geo: Geo | None = None
    user_agent: str | None = None
    email: str | None = None
    phone: str | None = None
    billing_address: str | None = None
    status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event_type: str = "transaction"

    @property
    def event_id(self) -> str:
        """The transaction's id, under the name every event type shares."""
        return self.txn_id


@dataclass(slots=True, kw_only=True)
class Login:
    """A canonical login attempt. See ``LOGIN_FIELDS``."""

    event_id: str
    timestamp: datetime
    account_id: str
    success: bool
    mfa_used: bool
    source: str | None = None
    device_id: str | None = None
    ip: str | None = None
    geo: Geo | None = None
    user_agent: str | None = None
    failure_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event_type: str = "login"


@dataclass(slots=True, kw_only=True)
class DeviceEvent:
    """A canonical device fingerprint observation. See ``DEVICE_EVENT_FIELDS``."""

    event_id: str
    timestamp: datetime
    device_id: str
    account_id: str | None = None
    source: str | None = None
    os: str | None = None
    os_version: str | None = None
    browser: str | None = None
    emulator: bool | None = None
    rooted: bool | None = None
    screen: str | None = None
    timezone: str | None = None
    language: str | None = None
    ip: str | None = None
    geo: Geo | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event_type: str = "device_event"


@dataclass(slots=True, kw_only=True)
class AccountEvent:
    """A canonical account change. See ``ACCOUNT_EVENT_FIELDS``."""

    event_id: str
    timestamp: datetime
    account_id: str
    kind: str
    new_value: str | None = None
    source: str | None = None
    device_id: str | None = None
    ip: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event_type: str = "account_event"


Event = Transaction | Login | DeviceEvent | AccountEvent

EVENT_CLASSES: Final[Mapping[str, type[Any]]] = {
    "transaction": Transaction,
    "login": Login,
    "device_event": DeviceEvent,
    "account_event": AccountEvent,
}


def _check_declarations() -> None:
    """Fail at import if a dataclass and its field declarations disagree."""
    for name, specs in FIELDS.items():
        declared = {s.name for s in specs}
        attrs = {f.name for f in dataclasses.fields(EVENT_CLASSES[name])} - {"extra", "event_type"}
        if declared != attrs:
            raise AssertionError(f"{name}: declared {sorted(declared ^ attrs)} differ")


_check_declarations()


def event_from_record(record: Mapping[str, Any]) -> Event:
    """Rebuild an event from a record already validated (as read back from the bus).

    No validation is done: records on the bus were validated when they entered.
    """
    cls = EVENT_CLASSES[record["event_type"]]
    values = dict(record)
    values["timestamp"] = datetime.fromisoformat(values["timestamp"])
    if "amount" in values:
        values["amount"] = Decimal(values["amount"])
    geo = values.get("geo")
    if geo is not None:
        values["geo"] = Geo(**geo)
    return cls(**values)  # type: ignore[no-any-return]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


_OPTS = orjson.OPT_UTC_Z


def encode_event(event: Event) -> bytes:
    """Serialise an event for the bus: JSON, amounts as decimal strings, extras nested.

    >>> from datetime import timezone
    >>> encode_event(AccountEvent(event_id="e1", account_id="a1", kind="closed",
    ...     timestamp=datetime(2026, 10, 1, tzinfo=timezone.utc)))[:60]
    b'{"event_id":"e1","timestamp":"2026-10-01T00:00:00Z","account'
    """
    return orjson.dumps(event, default=_json_default, option=_OPTS)


def decode_event(payload: bytes) -> Event:
    """Inverse of :func:`encode_event`."""
    return event_from_record(orjson.loads(payload))
