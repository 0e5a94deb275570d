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

Domain objects are msgspec Structs (plain slotted classes built in C; treat them as immutable).
Fields a source sends that the contract does not know are kept, in ``extra``, never rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

import msgspec
from msgspec import Meta

from ingest.reference import COUNTRIES, CURRENCY_EXPONENTS

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


# -- domain types ---------------------------------------------------------------------------
# msgspec Structs: plain, slotted, built in C. Their annotations carry the constraints that a
# decoder can check while it parses (types, lengths, enumerations, ranges), so valid JSON in the
# canonical form decodes and validates in one pass (see ``ingest.validate``); what annotations
# cannot say (IP syntax, amount precision, timestamp range) is checked after. Built from Python,
# a Struct checks nothing: the validator does.

_Id = Annotated[str, Meta(min_length=1, max_length=128)]
_Text = Annotated[str, Meta(min_length=1, max_length=128)]
_LongText = Annotated[str, Meta(min_length=1, max_length=512)]
_UserAgent = Annotated[str, Meta(min_length=1, max_length=1024)]
_Timestamp = Annotated[datetime, Meta(tz=True)]
_Mcc = Annotated[str, Meta(pattern=r"^[0-9]{4}$")]
_Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")]
_Phone = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}$")]
_Status = Literal["approved", "declined", "reversed"]
if TYPE_CHECKING:  # the enumerations below are built from tables; checkers see plain strings
    _Country = str
    _Currency = str
    _Channel = str
    _Kind = str
else:
    _Country = Literal[tuple(sorted(COUNTRIES))]
    _Currency = Literal[tuple(sorted(CURRENCY_EXPONENTS))]
    _Channel = Literal[CHANNELS]
    _Kind = Literal[ACCOUNT_EVENT_KINDS]
_Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
_Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]


class Geo(msgspec.Struct, omit_defaults=True):
    """A location: latitude and longitude in degrees, and the ISO 3166-1 alpha-2 country."""

    lat: _Lat
    lon: _Lon
    country: _Country | None = None


class _Event(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="event_type"):
    """Base of the event types: JSON carries the type in ``event_type``."""

    event_type: ClassVar[str]
    extra: dict[str, Any] = {}


class Transaction(_Event, tag="transaction"):
    """A canonical transaction. See ``TRANSACTION_FIELDS`` for each field's meaning."""

    event_type: ClassVar[str] = "transaction"
    txn_id: _Id
    timestamp: _Timestamp
    source: _Id
    account_id: _Id
    amount: Decimal
    currency: _Currency
    channel: _Channel
    card_id: _Id | None = None
    counterparty_account_id: _Id | None = None
    merchant_id: _Id | None = None
    merchant_category: _Mcc | None = None
    merchant_country: _Country | None = None
    device_id: _Id | None = None
    ip: str | None = None
    geo: Geo | None = None
    user_agent: _UserAgent | None = None
    email: _Email | None = None
    phone: _Phone | None = None
    billing_address: _LongText | None = None
    status: _Status | None = None

    @property
    def event_id(self) -> str:
        """The transaction's id, under the name every event type shares."""
        return self.txn_id


class Login(_Event, tag="login"):
    """A canonical login attempt. See ``LOGIN_FIELDS``."""

    event_type: ClassVar[str] = "login"
    event_id: _Id
    timestamp: _Timestamp
    account_id: _Id
    success: bool
    mfa_used: bool
    source: _Id | None = None
    device_id: _Id | None = None
    ip: str | None = None
    geo: Geo | None = None
    user_agent: _UserAgent | None = None
    failure_reason: _Text | None = None


class DeviceEvent(_Event, tag="device_event"):
    """A canonical device fingerprint observation. See ``DEVICE_EVENT_FIELDS``."""

    event_type: ClassVar[str] = "device_event"
    event_id: _Id
    timestamp: _Timestamp
    device_id: _Id
    account_id: _Id | None = None
    source: _Id | None = None
    os: _Text | None = None
    os_version: _Text | None = None
    browser: _Text | None = None
    emulator: bool | None = None
    rooted: bool | None = None
    screen: _Text | None = None
    timezone: _Text | None = None
    language: _Text | None = None
    ip: str | None = None
    geo: Geo | None = None


class AccountEvent(_Event, tag="account_event"):
    """A canonical account change. See ``ACCOUNT_EVENT_FIELDS``."""

    event_type: ClassVar[str] = "account_event"
    event_id: _Id
    timestamp: _Timestamp
    account_id: _Id
    kind: _Kind
    new_value: _LongText | None = None
    source: _Id | None = None
    device_id: _Id | None = None
    ip: str | None = None


Event = Transaction | Login | DeviceEvent | AccountEvent

EVENT_CLASSES: Final[Mapping[str, type[Any]]] = {
    "transaction": Transaction,
    "login": Login,
    "device_event": DeviceEvent,
    "account_event": AccountEvent,
}


def _check_declarations() -> None:
    """Fail at import if a Struct and its field declarations disagree."""
    for name, specs in FIELDS.items():
        declared = [s.name for s in specs]
        attrs = [f for f in EVENT_CLASSES[name].__struct_fields__ if f != "extra"]
        if declared != attrs:
            raise AssertionError(f"{name}: declared {declared} but the Struct has {attrs}")
        for spec in specs:
            if spec.kind == "text" and spec.max_length not in (128, 512, 1024):
                raise AssertionError(f"{name}.{spec.name}: no Struct type for its max_length")


_check_declarations()

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Event)
_DECODE_LIST = msgspec.json.Decoder(list[Event])  # type: ignore[valid-type]


def encode_event(event: Event) -> bytes:
    """Serialise an event for the bus: JSON, amounts as decimal strings, extras nested.

    >>> from datetime import timezone
    >>> encode_event(AccountEvent(event_id="e1", account_id="a1", kind="closed",
    ...     timestamp=datetime(2026, 10, 1, tzinfo=timezone.utc)))
    b'{"event_type":"account_event","event_id":"e1","timestamp":"2026-10-01T00:00:00Z","account_id":"a1","kind":"closed"}'
    """
    return _ENCODER.encode(event)


def decode_event(payload: bytes) -> Event:
    """Inverse of :func:`encode_event` (trusted input: what the bus holds was validated)."""
    return _DECODER.decode(payload)


def encode_events(events: Sequence[Event]) -> bytes:
    """Several events as one JSON array, each encoded as :func:`encode_event` encodes it."""
    return _ENCODER.encode(events)


def decode_events(payload: bytes | memoryview) -> list[Event]:
    """Inverse of :func:`encode_events` (trusted input, as for :func:`decode_event`)."""
    return _DECODE_LIST.decode(payload)


def event_from_record(record: Mapping[str, Any]) -> Event:
    """Rebuild an event from a record already validated (an encoded event, parsed)."""
    return msgspec.convert(record, Event)  # type: ignore[arg-type]
