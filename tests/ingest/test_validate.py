"""Record validation: every kind of bad value gets a reason naming its field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ingest.errors import RecordRejected
from ingest.events import Geo, Login, Transaction, decode_event, encode_event
from ingest.validate import Validator

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def validator() -> Validator:
    return Validator(now=lambda: NOW)


def txn(**overrides):
    record = {
        "txn_id": "t1",
        "timestamp": "2026-10-31T10:00:00+01:00",
        "source": "bank_a",
        "account_id": "acc_1",
        "amount": "12.50",
        "currency": "EUR",
        "channel": "card_not_present",
        "ip": "203.0.113.7",
        "geo": {"lat": 52.37, "lon": 4.89, "country": "NL"},
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not ...}


def rejected(validator: Validator, record, event_type="transaction") -> dict[str, str]:
    with pytest.raises(RecordRejected) as info:
        validator.validate(record, event_type=event_type)
    return {e.field: e.reason for e in info.value.errors}


def test_valid_transaction_is_typed_and_keeps_extras(validator):
    event = validator.validate(txn(loyalty="gold", nested={"a": 1}), event_type="transaction")
    assert isinstance(event, Transaction)
    assert event.amount == Decimal("12.50")
    assert event.timestamp.utcoffset().total_seconds() == 3600
    assert event.geo == Geo(52.37, 4.89, "NL")
    assert event.extra == {"loyalty": "gold", "nested": {"a": 1}}


def test_event_type_taken_from_the_record(validator):
    event = validator.validate({**txn(), "event_type": "transaction"})
    assert isinstance(event, Transaction)
    assert rejected(validator, {**txn(), "event_type": "payment"}, None) == {
        "event_type": "unknown event type 'payment'; expected one of "
        "['transaction', 'login', 'device_event', 'account_event']"
    }
    assert "required" in rejected(validator, txn(), None)["event_type"]


def test_encode_decode_round_trip(validator):
    event = validator.validate(txn(extra_field=[1, 2]), event_type="transaction")
    assert decode_event(encode_event(event)) == event


def test_missing_required_field(validator):
    assert rejected(validator, txn(currency=...)) == {"currency": "required field is missing"}
    assert rejected(validator, txn(account_id="")) == {"account_id": "required field is missing"}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", {"v": 1}, "expected a number or decimal string, got dict"),
        ("amount", True, "expected a number or decimal string, got bool"),
        ("account_id", ["a"], "expected a string, got list"),
        ("timestamp", 1730000000, "expected an RFC 3339 string, got int"),
        ("geo", "52.3,4.8", "expected an object {lat, lon, country}, got str"),
        ("channel", "online", "'online' is not one of"),
        ("merchant_category", "54111", "expected a 4-digit merchant category code"),
        ("email", "not-an-email", "not an e-mail address"),
        ("phone", "0612345678", "not an E.164 phone number"),
    ],
)
def test_wrong_type_or_shape(validator, field, value, reason):
    assert reason in rejected(validator, txn(**{field: value}))[field]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (-3, "must be > 0, got -3"),
        (0, "must be > 0, got 0"),
        ("0.00", "must be > 0"),
        (float("nan"), "must be a finite number"),
        (float("inf"), "must be a finite number"),
        ("NaN", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        ("1e15", "exceeds the maximum plausible amount"),
        (5_000_000_000, "exceeds the maximum plausible amount"),
        ("12.345", "has more decimals than EUR allows (2)"),
        ("twelve", "not a decimal number"),
    ],
)
def test_bad_amounts(validator, amount, reason):
    assert reason in rejected(validator, txn(amount=amount))["amount"]


def test_amount_precision_follows_the_currency(validator):
    assert validator.validate(txn(amount="1500", currency="JPY"), event_type="transaction")
    assert "JPY allows (0)" in rejected(validator, txn(amount="1500.5", currency="JPY"))["amount"]
    event = validator.validate(txn(amount="1.250", currency="BHD"), event_type="transaction")
    assert event.amount == Decimal("1.250")
    # trailing zeros beyond the currency's digits are harmless
    assert validator.validate(txn(amount="12.500"), event_type="transaction").amount == Decimal(
        "12.5"
    )


def test_unknown_currency(validator):
    assert rejected(validator, txn(currency="EURO")) == {
        "currency": "unknown ISO 4217 currency 'EURO'"
    }
    assert rejected(validator, txn(currency="eur"))["currency"].startswith("unknown ISO 4217")


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("2026-10-31T10:00:00", "timezone offset required"),
        ("2026-10-31 10:00", "timezone offset required"),
        ("31/10/2026 10:00+00:00", "not an RFC 3339 timestamp"),
        ("2026-13-01T00:00:00Z", "not an RFC 3339 timestamp"),
        ("1970-01-01T00:00:00Z", "is before 2000-01-01"),
        ("2031-01-01T00:00:00Z", "in the future"),
    ],
)
def test_bad_timestamps(validator, ts, reason):
    assert reason in rejected(validator, txn(timestamp=ts))["timestamp"]


def test_future_allowance_is_relative_to_the_injected_clock(validator):
    ok = validator.validate(txn(timestamp="2026-11-02T11:00:00Z"), event_type="transaction")
    assert ok.timestamp.year == 2026
    assert "future" in rejected(validator, txn(timestamp="2026-11-02T13:00:00Z"))["timestamp"]


@pytest.mark.parametrize("ip", ["256.1.1.1", "1.2.3", "10.0.0.1/24", "::g", "example.com"])
def test_invalid_ip(validator, ip):
    assert "not a valid IPv4 or IPv6 address" in rejected(validator, txn(ip=ip))["ip"]


@pytest.mark.parametrize("ip", ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"])
def test_valid_ip(validator, ip):
    assert validator.validate(txn(ip=ip), event_type="transaction").ip == ip


@pytest.mark.parametrize(
    ("geo", "reason"),
    [
        ({"lat": 91, "lon": 0}, "lat: 91 is outside [-90, 90]"),
        ({"lat": 0, "lon": -180.5}, "lon: -180.5 is outside [-180, 180]"),
        ({"lat": float("nan"), "lon": 0}, "lat: nan is outside"),
        ({"lat": "52", "lon": 4}, "lat: expected a number, got str"),
        ({"lat": 52, "lon": 4, "country": "XX"}, "unknown ISO 3166-1 alpha-2 country code 'XX'"),
    ],
)
def test_bad_geo(validator, geo, reason):
    assert reason in rejected(validator, txn(geo=geo))["geo"]


def test_unknown_country_code(validator):
    assert rejected(validator, txn(merchant_country="UK")) == {
        "merchant_country": "unknown ISO 3166-1 alpha-2 country code 'UK'"
    }


def test_every_bad_field_is_reported_at_once(validator):
    reasons = rejected(validator, txn(amount=-1, currency="ZZZ", ip="x", channel="pos"))
    assert set(reasons) == {"amount", "currency", "ip", "channel"}


def test_login_booleans(validator):
    base = {"event_id": "l1", "timestamp": "2026-10-30T08:00:00Z", "account_id": "a1"}
    event = validator.validate({**base, "success": "true", "mfa_used": False}, event_type="login")
    assert isinstance(event, Login)
    assert event.success is True
    assert event.mfa_used is False
    assert (
        "expected true or false"
        in rejected(validator, {**base, "success": "maybe", "mfa_used": False}, "login")["success"]
    )


def test_numeric_ids_are_accepted_as_strings(validator):
    assert validator.validate(txn(account_id=12345), event_type="transaction").account_id == "12345"


def test_control_characters_in_ids_are_rejected(validator):
    assert "control characters" in rejected(validator, txn(txn_id="t\n1"))["txn_id"]
