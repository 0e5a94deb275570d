"""Declared field maps: conversions agree with the standard library they stand in for."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from ingest.errors import RecordRejected
from ingest.mapping import FieldMap, _compile_strptime

FORMATS = ["%d/%m/%Y %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S.%f", "%m/%d/%Y", "%Y-%m-%d"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_fast_date_parser_matches_strptime(fmt):
    parse = _compile_strptime(fmt)
    assert parse is not None
    rng = random.Random(fmt)
    start = datetime(2000, 1, 1)
    for _ in range(2000):
        ts = start + timedelta(seconds=rng.randrange(10**9), microseconds=rng.randrange(10**6))
        text = ts.strftime(fmt)
        assert parse(text) == datetime.strptime(text, fmt)  # noqa: DTZ007


@pytest.mark.parametrize(
    "text",
    [
        "",
        "31/13/2026 10:00:00",
        "2026-10-01",
        "31/10/2026 10:00",
        "31/10/2026 25:00:00",
        "x31/10/2026 10:00:00",
        "31/10/2026 10:00:00 ",
        "29/02/2026 10:00:00",
    ],
)
def test_fast_date_parser_rejects_what_strptime_rejects(text):
    fmt = "%d/%m/%Y %H:%M:%S"
    with pytest.raises(ValueError):  # noqa: PT011 - strptime's messages vary by case
        datetime.strptime(text, fmt)  # noqa: DTZ007
    with pytest.raises(ValueError):  # noqa: PT011
        _compile_strptime(fmt)(text)


def test_unsupported_directives_fall_back_to_strptime():
    fm = FieldMap.compile({"timestamp": {"from": "t", "format": "%d %b %Y", "timezone": "UTC"}})
    assert fm.apply({"t": "03 Oct 2026"}) == {"timestamp": "2026-10-03T00:00:00+00:00"}


def test_local_times_get_their_zone_offset_across_daylight_saving():
    fm = FieldMap.compile(
        {"timestamp": {"from": "t", "format": "%Y-%m-%d %H:%M:%S", "timezone": "Europe/Berlin"}}
    )
    assert fm.apply({"t": "2026-10-24 12:00:00"})["timestamp"] == "2026-10-24T12:00:00+02:00"
    assert fm.apply({"t": "2026-10-26 12:00:00"})["timestamp"] == "2026-10-26T12:00:00+01:00"
    with pytest.raises(RecordRejected, match="does not match the declared format"):
        fm.apply({"t": "24.10.2026"})


def test_minor_units_need_a_known_currency_and_an_integer():
    fm = FieldMap.compile({"amount": {"from": "a", "scale": "minor"}, "currency": "c"})
    assert fm.apply({"a": "1999", "c": "EUR"})["amount"] == "19.99"
    assert fm.apply({"a": "1999", "c": "KWD"})["amount"] == "1.999"
    for row, reason in [
        ({"a": "19.5", "c": "EUR"}, "must be an integer"),
        ({"a": "Infinity", "c": "EUR"}, "must be an integer"),
        ({"a": "10", "c": "???"}, "needs a known currency"),
    ]:
        with pytest.raises(RecordRejected, match=reason):
            fm.apply(row)
