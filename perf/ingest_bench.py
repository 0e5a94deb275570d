"""Ingest throughput per source format: parse + validate + append to the embedded bus.

Writes N synthetic transaction records in each format into a temporary folder, then ingests each
format into a fresh data directory in this one process, pinned to one CPU core, with data
expectations off (they are a per-source report, not the record path) and fsync on. Prints
records/s per format. Target (issue 2): >= 100,000 transaction events/s for JSON lines.

    python perf/ingest_bench.py [--records 200000] [--repeat 3] [--formats jsonl,csv,...]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from ingest.bus import EmbeddedBus
from ingest.deadletter import DeadLetterStore
from ingest.dedup import SeenIds
from ingest.pipeline import EVENTS_TOPIC, ingest
from ingest.sources import load_manifest
from ingest.validate import Validator

MCCS = ["5411", "5541", "5812", "5999", "4900", "4511", "7011", "5311"]
COUNTRIES = [("GB", 51.5, -0.12), ("DE", 52.5, 13.4), ("FR", 48.85, 2.35), ("NL", 52.37, 4.9)]


def make_records(n: int, seed: int = 1) -> list[dict]:
    """Realistic transactions: ids, card, merchant, device, IP, geo, an extra field."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        country, lat, lon = COUNTRIES[i % 4]
        out.append(
            {
                "event_type": "transaction",
                "txn_id": f"txn_{i:09d}",
                "timestamp": (start + timedelta(seconds=i * 2.5)).isoformat(),
                "source": "bank_bench",
                "account_id": f"acc_{rng.randrange(50_000):06d}",
                "card_id": f"tok_{rng.randrange(80_000):07x}",
                "merchant_id": f"mer_{rng.randrange(5_000):05d}",
                "merchant_category": MCCS[i % len(MCCS)],
                "amount": round(rng.lognormvariate(3.2, 1.0), 2) or 0.01,
                "currency": "EUR",
                "channel": "card_present" if i % 3 else "card_not_present",
                "device_id": f"dev_{rng.randrange(60_000):08x}",
                "ip": f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 250 + 1}",  # noqa: E501
                "geo": {"lat": lat + rng.random(), "lon": lon + rng.random(), "country": country},
                "branch_code": f"B{i % 90:02d}",
            }
        )
    return out


CSV_COLUMNS = [
    "Ref",
    "When",
    "Customer",
    "Card",
    "Shop",
    "MCC",
    "Cents",
    "Ccy",
    "Kind",
    "Device",
    "IP",
    "Lat",
    "Lon",
    "Country",
]


def write_sources(root: Path, records: list[dict]) -> None:
    """Write the same records as JSON lines, gateway CSV, SQLite rows, documents and log lines."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "bank.jsonl").open("wb") as fh:
        fh.writelines(orjson.dumps(r) + b"\n" for r in records)
    with (root / "gateway.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in records:
            ts = datetime.fromisoformat(r["timestamp"])
            w.writerow(
                [
                    r["txn_id"],
                    ts.strftime("%d/%m/%Y %H:%M:%S"),
                    r["account_id"],
                    r["card_id"],
                    r["merchant_id"],
                    r["merchant_category"],
                    round(r["amount"] * 100),
                    "EUR",
                    "ECOM" if r["channel"] == "card_not_present" else "POS",
                    r["device_id"],
                    r["ip"],
                    r["geo"]["lat"],
                    r["geo"]["lon"],
                    r["geo"]["country"],
                ]
            )
    db = sqlite3.connect(root / "core.db")
    db.execute(
        "CREATE TABLE transactions (id INTEGER PRIMARY KEY, ref TEXT, booked TEXT, "
        "acct TEXT, cpty TEXT, amount REAL, ccy TEXT)"
    )
    db.executemany(
        "INSERT INTO transactions (ref, booked, acct, cpty, amount, ccy) VALUES (?,?,?,?,?,?)",
        [
            (r["txn_id"], r["timestamp"], r["account_id"], r["merchant_id"], r["amount"], "EUR")
            for r in records
        ],
    )
    db.commit()
    db.close()
    docs = root / "docs"
    docs.mkdir()
    per_doc = 50
    for d in range(0, len(records), per_doc):
        chunk = records[d : d + per_doc]
        doc = {
            "customer": {"account": chunk[0]["account_id"]},
            "activity": [
                {
                    "kind": "payment",
                    "id": r["txn_id"],
                    "at": r["timestamp"],
                    "value": {"amount": r["amount"], "currency": "EUR"},
                    "merchant": r["merchant_id"],
                    "device": r["device_id"],
                }
                for r in chunk
            ],
        }
        (docs / f"c{d:08d}.json").write_bytes(orjson.dumps(doc))
    with (root / "auth.log").open("w") as fh:
        for r in records:
            fh.write(
                f"{r['timestamp']} auth01 authd[311]: LOGIN_OK req={r['txn_id']} "
                f"user={r['account_id']} ip={r['ip']} device={r['device_id']} mfa=totp\n"
            )
    (root / "sources.yaml").write_text(MANIFEST)


MANIFEST = r"""
version: 1
sources:
  - {name: jsonl, format: jsonl, path: bank.jsonl}
  - name: csv
    format: csv
    path: gateway.csv
    event_type: transaction
    fields:
      txn_id: Ref
      timestamp: {from: When, format: "%d/%m/%Y %H:%M:%S", timezone: UTC}
      account_id: Customer
      card_id: Card
      merchant_id: Shop
      merchant_category: MCC
      amount: {from: Cents, scale: minor}
      currency: Ccy
      channel: {from: Kind, values: {ECOM: card_not_present, POS: card_present}}
      device_id: Device
      ip: IP
      geo.lat: {from: Lat, type: float}
      geo.lon: {from: Lon, type: float}
      geo.country: Country
      source: {const: gw_bench}
  - name: sqlite
    format: sqlite
    path: core.db
    table: transactions
    key: id
    event_type: transaction
    fields:
      txn_id: ref
      timestamp: booked
      account_id: acct
      counterparty_account_id: cpty
      amount: amount
      currency: ccy
      channel: {const: transfer}
      source: {const: core_bench}
  - name: documents
    format: documents
    path: docs/*.json
    items: activity
    type_field: kind
    types:
      payment:
        event_type: transaction
        fields:
          txn_id: id
          timestamp: at
          account_id: doc:customer.account
          amount: value.amount
          currency: value.currency
          merchant_id: merchant
          device_id: device
          channel: {const: wallet}
          source: {const: wallet_bench}
  - name: authlog
    format: authlog
    path: auth.log
    patterns:
      - regex: >-
          ^(?P<ts>\S+) (?P<host>\S+) authd\[\d+\]: LOGIN_OK req=(?P<req>\S+) user=(?P<user>\S+)
          ip=(?P<ip>\S+) device=(?P<dev>\S+) mfa=(?P<mfa>\S+)$
        event_type: login
        fields:
          event_id: req
          timestamp: ts
          account_id: user
          ip: ip
          device_id: dev
          success: {const: true}
          mfa_used: {from: mfa, values: {totp: true, none: false}}
"""


def run_once(spec, state: Path) -> tuple[float, int]:
    """Ingest one source into a fresh data directory; return (seconds, records)."""
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    bus = EmbeddedBus(state / "bus")
    seen = SeenIds(state / "ingest", bus, EVENTS_TOPIC)
    dead = DeadLetterStore(state / "deadletter")
    t0 = time.perf_counter()
    summary = ingest(
        [spec],
        bus=bus,
        dead_letters=dead,
        seen=seen,
        validator=Validator(),
        check_expectations=False,
    )
    elapsed = time.perf_counter() - t0
    counts = summary.sources[spec.name]
    assert counts.reconciles(), counts
    assert counts.rejected == 0, counts
    seen.close()
    dead.close()
    bus.close()
    return elapsed, counts.received


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="jsonl,csv,sqlite,documents,authlog")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    work = Path(tempfile.mkdtemp(prefix="ringfence-bench-"))
    try:
        t0 = time.perf_counter()
        write_sources(work / "data", make_records(args.records))
        print(
            f"wrote {args.records:,} records per format in {time.perf_counter() - t0:.1f} s "
            f"(one core: cpu {sorted(os.sched_getaffinity(0))})"
        )
        specs = {s.name: s for s in load_manifest(work / "data")}
        print(f"{'format':<10} {'records/s (median)':>20} {'best':>12} {'runs':>6}")
        for name in args.formats.split(","):
            rates = []
            for _ in range(args.repeat):
                seconds, n = run_once(specs[name], work / "state")
                rates.append(n / seconds)
            print(
                f"{name:<10} {statistics.median(rates):>20,.0f} {max(rates):>12,.0f} "
                f"{len(rates):>6}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
