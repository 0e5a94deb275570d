"""Data expectations on each source: schema, ranges, null rates, uniqueness.

Record validation (:mod:`ingest.validate`) decides whether one record may enter. Expectations
look at a source's accepted records *together* and flag what no single record shows: a gateway
that stopped sending device ids, a bank whose logins mostly fail, amounts that drifted out of
their usual range, an id that repeats. They never reject records; failures are reported in the
ingest summary for the data owner.

Library: **pandera** (``pandera.pandas``). We chose it over Great Expectations because it
declares expectations in code next to the event contract, validates a pandas frame in one call
with lazy error collection (every failing check and its failure cases at once), imports in
about half a second and brings few dependencies; Great Expectations needs a project context,
stores and many more packages for the same checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from ingest.events import ACCOUNT_EVENT_KINDS, CHANNELS

_COLUMNS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "transaction": {
        "id": lambda e: e.txn_id,
        "amount": lambda e: float(e.amount),
        "currency": lambda e: e.currency,
        "channel": lambda e: e.channel,
        "account_id": lambda e: e.account_id,
        "device_id": lambda e: e.device_id,
        "ip": lambda e: e.ip,
        "merchant_id": lambda e: e.merchant_id,
        "counterparty_account_id": lambda e: e.counterparty_account_id,
        "timestamp": lambda e: e.timestamp,
    },
    "login": {
        "id": lambda e: e.event_id,
        "success": lambda e: e.success,
        "ip": lambda e: e.ip,
        "device_id": lambda e: e.device_id,
        "timestamp": lambda e: e.timestamp,
    },
    "device_event": {
        "id": lambda e: e.event_id,
        "device_id": lambda e: e.device_id,
        "emulator": lambda e: e.emulator,
        "timestamp": lambda e: e.timestamp,
    },
    "account_event": {
        "id": lambda e: e.event_id,
        "kind": lambda e: e.kind,
        "timestamp": lambda e: e.timestamp,
    },
}


class ColumnCollector:
    """Collects, per event type, the columns the expectations look at."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))

    def add(self, events: Sequence[Any]) -> None:
        """Add a batch of accepted events."""
        by_type: dict[str, list[Any]] = defaultdict(list)
        for e in events:
            by_type[e.event_type].append(e)
        for event_type, group in by_type.items():
            cols = self.columns[event_type]
            for name, get in _COLUMNS[event_type].items():
                cols[name].extend(map(get, group))


@dataclass(frozen=True, slots=True)
class ExpectationReport:
    """The outcome of one expectation on one source's records of one event type."""

    event_type: str
    name: str
    passed: bool
    failures: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "event_type": self.event_type,
            "name": self.name,
            "passed": self.passed,
            "failures": self.failures,
            "detail": self.detail,
        }


_OBSERVE: dict[str, Callable[[pd.DataFrame], float]] = {}
"""Whole-frame expectations by name -> the observed ratio they compare with their limit."""


def _ratio_check(name: str, observe: Callable[[pd.DataFrame], float], at_most: float) -> pa.Check:
    _OBSERVE[name] = observe
    return pa.Check(lambda df: bool(observe(df) <= at_most), name=name)


def _null_rate(
    column: str, at_most: float, where: Callable[[pd.DataFrame], Any] | None = None, label: str = ""
) -> pa.Check:
    def observe(df: pd.DataFrame) -> float:
        sub = df[where(df)] if where is not None else df
        return 0.0 if sub.empty else float(sub[column].isna().mean())

    return _ratio_check(f"null_rate({column}{label}) <= {at_most:g}", observe, at_most)


def _share(column: str, value: Any, at_most: float) -> pa.Check:
    def observe(df: pd.DataFrame) -> float:
        return 0.0 if df.empty else float((df[column] == value).mean())

    return _ratio_check(f"share({column} == {value}) <= {at_most:g}", observe, at_most)


def _cards(df: pd.DataFrame) -> Any:
    return df["channel"].isin(("card_present", "card_not_present"))


_ID = pa.Column(str, unique=True, nullable=False, title="id")

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "transaction": pa.DataFrameSchema(
        {
            "id": _ID,
            "amount": pa.Column(float, [pa.Check.gt(0), pa.Check.le(250_000)]),
            "currency": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}$")),
            "channel": pa.Column(str, pa.Check.isin(CHANNELS)),
            "account_id": pa.Column(str, nullable=False),
        },
        checks=[
            _null_rate("merchant_id", 0.05, _cards, " | card payments"),
            _null_rate(
                "counterparty_account_id",
                0.05,
                lambda df: df["channel"] == "transfer",
                " | transfers",
            ),
            _null_rate(
                "device_id",
                0.5,
                lambda df: df["channel"] == "card_not_present",
                " | card_not_present",
            ),
            _null_rate(
                "ip", 0.5, lambda df: df["channel"] == "card_not_present", " | card_not_present"
            ),
        ],
        strict=False,
    ),
    "login": pa.DataFrameSchema(
        {"id": _ID, "success": pa.Column(bool)},
        checks=[_share("success", False, 0.5), _null_rate("ip", 0.5)],
        strict=False,
    ),
    "device_event": pa.DataFrameSchema(
        {"id": _ID, "device_id": pa.Column(str, nullable=False)},
        checks=[_share("emulator", True, 0.2)],
        strict=False,
    ),
    "account_event": pa.DataFrameSchema(
        {"id": _ID, "kind": pa.Column(str, pa.Check.isin(ACCOUNT_EVENT_KINDS))},
        strict=False,
    ),
}
"""The expectations per event type (column checks and whole-frame checks)."""


def _expectations(schema: pa.DataFrameSchema) -> list[tuple[str | None, str]]:
    """Every expectation of a schema as (column, check), named the way pandera reports them."""
    out: list[tuple[str | None, str]] = []
    for col_name, col in schema.columns.items():
        out.append((col_name, f"dtype('{col.dtype}')"))
        if not col.nullable:
            out.append((col_name, "not_nullable"))
        if col.unique:
            out.append((col_name, "field_uniqueness"))
        out.extend((col_name, str(c.error or c.name)) for c in col.checks)
    out.extend((None, str(c.error or c.name)) for c in schema.checks)
    return out


def _label(column: str | None, check: str) -> str:
    readable = {"field_uniqueness": "unique", "not_nullable": "not_null"}.get(check, check)
    return readable if column is None else f"{column}: {readable}"


def run_expectations(collector: ColumnCollector) -> list[ExpectationReport]:
    """Validate each event type's frame; report every expectation, passed or failed."""
    reports: list[ExpectationReport] = []
    for event_type, cols in collector.columns.items():
        schema = SCHEMAS[event_type]
        frame = pd.DataFrame(
            {k: pd.Series(v, dtype=float if k == "amount" else object) for k, v in cols.items()}
        )
        for col in ("id", "currency", "channel", "account_id", "kind", "device_id"):
            if col in frame and frame[col].notna().all():
                frame[col] = frame[col].astype(str)
        if "success" in frame:
            frame["success"] = frame["success"].astype(bool)
        failures: dict[tuple[str | None, str], list[Any]] = {}
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            for row in exc.failure_cases.itertuples(index=False):
                column = row.column if isinstance(row.column, str) else None
                failures.setdefault((column, str(row.check)), []).append(row.failure_case)
        n = len(frame)
        expected = _expectations(schema)
        for key in expected + sorted(set(failures) - set(expected), key=str):
            cases = failures.get(key)
            observe = _OBSERVE.get(key[1]) if key[0] is None else None
            if observe is not None:
                detail = f"observed {observe(frame):.4f} over {n} records"
            elif cases is None:
                detail = f"{n} records"
            else:
                detail = f"{len(cases)} of {n} fail; e.g. {[str(c) for c in cases[:3]]}"
            failed = 0 if cases is None else (1 if observe is not None else len(cases))
            reports.append(
                ExpectationReport(event_type, _label(*key), cases is None, failed, detail)
            )
    return reports
