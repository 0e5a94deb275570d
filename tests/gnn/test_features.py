"""Features: point-in-time correctness, determinism, what they say about known cases."""

from __future__ import annotations

import os
import random
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from gnn import features
from gnn.data import History, event_time_key
from gnn.features import ENTITY_FEATURES, RELATIONS, TXN_FEATURES, TXN_INDEX, FeatureState
from gnn.native import warn_if_stale
from ingest.events import AccountEvent, Login, Transaction
from tests.gnn.conftest import assert_build_current, from_source

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def txn(i: int, minutes: float, account: str = "a1", **kw: object) -> Transaction:
    fields: dict = {
        "txn_id": f"t{i}",
        "timestamp": T0 + timedelta(minutes=minutes),
        "source": "bank",
        "account_id": account,
        "amount": Decimal("25.00"),
        "currency": "EUR",
        "channel": "card_present",
        "merchant_id": "m1",
        "card_id": f"card_{account}",
        "device_id": f"dev_{account}",
    }
    fields.update(kw)
    return Transaction(**fields)


def test_a_feature_never_sees_the_future(small_history: History) -> None:
    events = small_history.events
    full = FeatureState().observe_all(events)
    cut = len(events) * 2 // 3
    past = FeatureState().observe_all(events[:cut])
    assert 1000 < len(past) < len(full)
    for a, b in zip(past, full, strict=False):
        assert a.txn_id == b.txn_id
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.entity_x, b.entity_x)
        assert a.entities == b.entities
    # shuffling what comes after the cut changes nothing before it
    later = events[cut:]
    random.Random(3).shuffle(later)
    again = FeatureState().observe_all(events[:cut] + later)
    for a, b in zip(past, again, strict=False):
        np.testing.assert_array_equal(a.x, b.x)


def test_same_events_same_features(small_history: History) -> None:
    a = FeatureState().observe_all(small_history.events)
    b = FeatureState().observe_all(small_history.events)
    assert len(a) == len(b) > 1000
    np.testing.assert_array_equal(np.stack([r.x for r in a]), np.stack([r.x for r in b]))
    assert all(np.isfinite(r.x).all() and np.isfinite(r.entity_x).all() for r in a)
    assert a[0].x.shape == (len(TXN_FEATURES),)
    assert a[0].entity_x.shape == (len(RELATIONS), len(ENTITY_FEATURES))
    assert [e.txn_id for e in sorted(small_history.events, key=event_time_key)[:1]]


def test_velocity_windows_count_only_the_past() -> None:
    state = FeatureState(rings=False)
    rows = [state.observe(txn(i, m)) for i, m in enumerate([0, 0.5, 30, 89, 60 * 25])]
    ix = TXN_INDEX
    got = [
        (r.x[ix["account_count_1m"]], r.x[ix["account_count_1h"]], r.x[ix["account_count_24h"]])
        for r in rows
        if r is not None
    ]
    expect = [(0, 0, 0), (1, 1, 1), (0, 2, 2), (0, 1, 3), (0, 0, 1)]  # counts before each
    assert [tuple(np.expm1(v).round().astype(int)) for v in got] == expect


def test_new_device_reset_and_sharing_are_seen() -> None:
    state = FeatureState(rings=False)
    ix = TXN_INDEX
    first = state.observe(txn(1, 0))
    assert first is not None
    assert first.x[ix["new_device"]] == 1.0
    again = state.observe(txn(2, 10))
    assert again is not None
    assert again.x[ix["new_device"]] == 0.0
    state.observe(
        AccountEvent(
            event_id="e1",
            timestamp=T0 + timedelta(minutes=20),
            account_id="a1",
            kind="password_reset",
        )
    )
    state.observe(
        Login(
            event_id="l1",
            timestamp=T0 + timedelta(minutes=21),
            account_id="a1",
            success=True,
            mfa_used=False,
            device_id="dev_new",
        )
    )
    # another account on a1's device, then a1 on the new device right after the reset
    other = state.observe(txn(3, 22, account="a2", device_id="dev_a1"))
    assert other is not None
    assert round(float(np.expm1(other.x[ix["accounts_per_device"]]))) == 2
    after = state.observe(txn(4, 30, device_id="dev_new"))
    assert after is not None
    assert after.x[ix["recent_password_reset"]] > 0.99
    assert after.x[ix["new_device_login"]] > 0.99
    assert after.x[ix["new_device"]] == 0.0  # the login already showed the device


def test_amount_against_the_accounts_own_history() -> None:
    state = FeatureState(rings=False)
    for i in range(10):
        state.observe(txn(i, i * 60, amount=Decimal("20.00") + i))
    big = state.observe(txn(99, 700, amount=Decimal("900.00")))
    usual = state.observe(txn(100, 760, amount=Decimal("24.00")))
    assert big is not None
    assert usual is not None
    ix = TXN_INDEX
    assert big.x[ix["amount_z"]] > 5
    assert big.x[ix["amount_percentile"]] == 1.0
    assert abs(usual.x[ix["amount_z"]]) < 2
    assert usual.x[ix["amount_percentile"]] < 0.7


def test_the_compiled_build_is_current_and_gives_the_same_bits(small_history: History) -> None:
    # `make native` builds it before the tests; a stale or missing build is a failure here
    assert_build_current(features)
    source = from_source(features)
    assert not source.compiled()
    fast = features.FeatureState().observe_all(small_history.events)
    slow = source.FeatureState().observe_all(small_history.events)
    assert len(fast) == len(slow) > 1000
    for a, b in zip(fast, slow, strict=True):
        assert (a.txn_id, a.ts, a.entities) == (b.txn_id, b.ts, b.entities)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.entity_x, b.entity_x)


def test_a_build_older_than_its_source_warns(tmp_path: Path) -> None:
    built, source = tmp_path / "mod.cpython-311-x86_64-linux-gnu.so", tmp_path / "mod.py"
    source.write_text("")
    built.write_bytes(b"")
    os.utime(source, (1_000, 1_000))
    os.utime(built, (2_000, 2_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_stale(str(built))  # current: silent
    os.utime(source, (3_000, 3_000))
    with pytest.warns(RuntimeWarning, match="mod.py: run `make native`"):
        warn_if_stale(str(built))


def test_velocity_windows_stay_exact_across_compaction() -> None:
    # one busy card: thousands of payments a few seconds apart, so the windows drop expired
    # items in bulk many times; every count must equal a direct count over the raw times
    state = FeatureState(rings=False)
    ix = TXN_INDEX
    times: list[float] = []
    rng = random.Random(5)
    minute = 0.0
    for i in range(3000):
        minute += rng.choice((0.02, 0.05, 0.5, 3.0, 45.0))
        row = state.observe(txn(i, minute, card_id="card_busy", device_id=f"dev_{i % 7}"))
        assert row is not None
        now = minute * 60
        for name, span in (("1m", 60), ("1h", 3600), ("24h", 86400)):
            expect = sum(1 for t in times if t > now - span)
            got = round(float(np.expm1(row.x[ix[f"card_count_{name}"]])))
            assert got == expect, (i, name)
        times.append(now)
