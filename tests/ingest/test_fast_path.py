"""The one-pass JSON path gives exactly the verdict and the event of the full path.

``Validator.validate_json`` decodes canonical JSON straight into the event Struct, and
``Validator.validate`` builds it from a mapping the same way; both fall back to the full
validator (``validate_full``) on any doubt. These tests hold them to that: on valid records, on
every bad input, and on thousands of seeded random mutations, all paths agree byte for byte.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest

from ingest.errors import RecordRejected
from ingest.events import encode_event
from ingest.sources import parse_json_record
from ingest.validate import Validator

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

BASE = {
    "transaction": {
        "event_type": "transaction",
        "txn_id": "t1",
        "timestamp": "2026-10-31T10:00:00+01:00",
        "source": "bank_a",
        "account_id": "acc_1",
        "amount": 12.5,
        "currency": "EUR",
        "channel": "card_not_present",
        "card_id": "tok_1",
        "merchant_id": "m1",
        "merchant_category": "5411",
        "merchant_country": "NL",
        "device_id": "dev_1",
        "ip": "203.0.113.7",
        "geo": {"lat": 52.37, "lon": 4.89, "country": "NL"},
        "email": "a@example.com",
        "phone": "+31612345678",
        "status": "approved",
        "user_agent": "Mozilla/5.0",
        "billing_address": "1 Main St",
    },
    "login": {
        "event_type": "login",
        "event_id": "l1",
        "timestamp": "2026-10-31T08:00:00Z",
        "account_id": "acc_1",
        "success": True,
        "mfa_used": False,
        "ip": "2001:db8::1",
        "device_id": "dev_1",
        "failure_reason": "bad_password",
        "source": "auth",
    },
    "device_event": {
        "event_type": "device_event",
        "event_id": "d1",
        "timestamp": "2026-10-31T08:00:00Z",
        "device_id": "dev_1",
        "os": "iOS",
        "os_version": "17.1",
        "emulator": False,
        "rooted": False,
        "screen": "1170x2532",
        "geo": {"lat": 1, "lon": 2},
    },
    "account_event": {
        "event_type": "account_event",
        "event_id": "a1",
        "timestamp": "2026-10-31T08:00:00Z",
        "account_id": "acc_1",
        "kind": "email_changed",
        "new_value": "b@example.com",
    },
}

TRICKY = [
    None,
    "",
    " ",
    "x",
    " padded ",
    "t\x00",
    "tab\tin",
    0,
    1,
    -1,
    7,
    12.5,
    12.345,
    1e3,
    1e20,
    True,
    False,
    "true",
    "FALSE",
    "12.50",
    "12.500",
    "1E+3",
    "NaN",
    "Infinity",
    "-0",
    "0.00",
    [],
    [1],
    {},
    {"lat": 91, "lon": 0},
    {"lat": 10, "lon": 20, "country": "UK"},
    {"lat": 10, "lon": 20, "city": "x"},
    "2026-10-31T10:00:00",
    "2026-10-31 10:00:00Z",
    "2026-10-31T23:59:60Z",
    "1999-12-31T23:59:59Z",
    "2026-11-03T00:00:00Z",
    "2026-10-31T10:00Z",
    "20261031T100000Z",
    "EUR",
    "eur",
    "JPY",
    "XXX",
    "NL",
    "UK",
    "5411",
    "541",
    "card_present",
    "online",
    "10.0.0.1",
    "10.0.0.1/8",
    "::1",
    "1.2.3",
    "a@b.co",
    "a@b",
    "+441234567",
    "0123",
    "x" * 129,
    "x" * 600,
    "ü" * 10,
    "\u2028",
    "approved",
    "opened",
    "closed",
]


def verdict(fn, *args, **kw):
    try:
        event = fn(*args, **kw)
    except RecordRejected as exc:
        return ("rejected", [(e.field, e.reason) for e in exc.errors])
    return ("accepted", encode_event(event), event)


def full_path(validator: Validator, raw: bytes, event_type=None):
    record, error = parse_json_record(raw)
    if error is not None:
        return ("rejected", [(e.field, e.reason) for e in error.errors])
    return verdict(validator.validate_full, record, event_type=event_type)


def assert_same(validator: Validator, raw: bytes, event_type=None):
    """The JSON path and the mapping path each give the full validator's verdict and event."""
    full = full_path(validator, raw, event_type)
    fast = verdict(validator.validate_json, raw, event_type=event_type)
    assert fast[:2] == full[:2], raw
    if fast[0] == "accepted":
        assert fast[2] == full[2]
    record, error = parse_json_record(raw)
    if error is None:
        mapped = verdict(validator.validate, record, event_type=event_type)
        assert mapped[:2] == full[:2], record


@pytest.fixture
def validator() -> Validator:
    return Validator(now=lambda: NOW)


@pytest.mark.parametrize("event_type", list(BASE))
def test_valid_records_take_the_fast_path_and_match(validator, event_type):
    raw = orjson.dumps({**BASE[event_type], "vendor_field": {"nested": [1, 2.5, "x"]}})
    before = validator.fast_hits
    assert_same(validator, raw)
    assert validator.fast_hits == before + 2, "a canonical record should not need the full path"
    event = validator.validate_json(raw)
    assert event.extra == {"vendor_field": {"nested": [1, 2.5, "x"]}}


def test_event_type_may_be_implied_by_the_source(validator):
    record = dict(BASE["transaction"])
    del record["event_type"]
    raw = orjson.dumps(record)
    assert_same(validator, raw, event_type="transaction")
    assert validator.validate_json(raw, event_type="transaction").txn_id == "t1"
    with pytest.raises(RecordRejected, match="event_type"):
        validator.validate_json(raw)
    with pytest.raises(RecordRejected, match="expected 'login' here"):
        validator.validate_json(orjson.dumps(BASE["transaction"]), event_type="login")


def test_a_field_named_extra_is_kept_as_an_extra(validator):
    raw = orjson.dumps({**BASE["login"], "extra": {"a": 1}})
    assert_same(validator, raw)
    assert validator.validate_json(raw).extra == {"extra": {"a": 1}}
    record = {**BASE["transaction"], "z_field": 1, "extra": {"a": 1}, "a_field": 2}
    before = validator.fast_hits
    event = validator.validate(record)  # a mapping with one takes the fast path too
    assert validator.fast_hits == before + 1
    assert list(event.extra.items()) == [("z_field", 1), ("extra", {"a": 1}), ("a_field", 2)]
    assert encode_event(event) == encode_event(validator.validate_full(record))


def test_seeded_mutations_agree(validator):
    rng = random.Random(20261129)
    agreed = 0
    for _ in range(6000):
        event_type = rng.choice(list(BASE))
        record = dict(BASE[event_type])
        for _ in range(rng.randint(1, 3)):
            field = rng.choice([*record, "extra_field", "extra", "event_type"])
            value = rng.choice(TRICKY)
            if value is None and rng.random() < 0.5:
                record.pop(field, None)
            else:
                record[field] = value
        raw = orjson.dumps(record)
        implied = event_type if rng.random() < 0.3 else None
        assert_same(validator, raw, implied)
        agreed += 1
    assert agreed == 6000
    assert validator.fast_hits > 300, "the mutations should leave many records fast-valid"
    assert validator.slow_calls > 6000, "and send many down the full path"
