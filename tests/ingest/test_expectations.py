"""Data expectations flag what no single record shows, and never reject records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ingest.events import Login, Transaction
from ingest.expectations import ColumnCollector, run_expectations

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def txn(i: int, **over) -> Transaction:
    values = dict(
        txn_id=f"t{i}",
        timestamp=T0,
        source="gw",
        account_id=f"a{i % 5}",
        amount=Decimal("20.00"),
        currency="EUR",
        channel="card_not_present",
        merchant_id="m1",
        device_id=f"d{i}",
        ip="192.0.2.1",
    )
    values.update(over)
    return Transaction(**values)


def login(i: int, success: bool) -> Login:
    return Login(
        event_id=f"l{i}",
        timestamp=T0,
        account_id="a1",
        success=success,
        mfa_used=False,
        ip="192.0.2.1",
    )


def report(events) -> dict[str, tuple[bool, str]]:
    collector = ColumnCollector()
    collector.add(events)
    return {f"{r.event_type} {r.name}": (r.passed, r.detail) for r in run_expectations(collector)}


def test_clean_data_meets_every_expectation():
    results = report([txn(i) for i in range(100)] + [login(i, True) for i in range(20)])
    assert results, "expectations ran"
    failed = {k: v for k, v in results.items() if not v[0]}
    assert failed == {}
    assert "transaction id: unique" in results
    assert "transaction null_rate(device_id | card_not_present) <= 0.5" in results


def test_a_gateway_that_stopped_sending_device_ids_is_flagged():
    events = [txn(i, device_id=None) if i % 4 else txn(i) for i in range(100)]
    passed, detail = report(events)["transaction null_rate(device_id | card_not_present) <= 0.5"]
    assert not passed
    assert detail == "observed 0.7500 over 100 records"


def test_mostly_failing_logins_are_flagged():
    events = [login(i, success=i % 5 == 0) for i in range(50)]
    passed, detail = report(events)["login share(success == False) <= 0.5"]
    assert not passed
    assert detail.startswith("observed 0.8000")


def test_out_of_range_amounts_and_repeated_ids_are_counted():
    events = [txn(i) for i in range(10)]
    events += [txn(100, amount=Decimal("900000")), txn(3)]
    results = report(events)
    passed, detail = results["transaction amount: less_than_or_equal_to(250000)"]
    assert not passed
    assert detail.startswith("1 of 12 fail")
    passed, detail = results["transaction id: unique"]
    assert not passed
    assert "t3" in detail
