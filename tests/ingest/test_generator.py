"""The synthetic data generator: determinism, planted fraud, truth files, and every source
readable through its manifest by the ingest readers and the validator."""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from fnmatch import fnmatch
from pathlib import Path

import orjson
import pytest
import yaml

from ingest.errors import RecordRejected
from ingest.generator import PROFILES, TYPOLOGIES, FraudConfig, generate
from ingest.sources import format_location, load_manifest
from ingest.validate import Validator

SEED = 11


def _now() -> datetime:
    return datetime(2027, 1, 1, tzinfo=UTC)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "small"
    ticks = iter((100.0, 101.5))
    report = generate(out, seed=SEED, timer=lambda: next(ticks), **PROFILES["small"])
    return out, report


@pytest.fixture(scope="module")
def read_back(small):
    """Every record of every source, read through the manifest and validated.

    Returns (accepted events, rejected (source, location, reason) tuples).
    """
    out, _ = small
    validator = Validator(now=_now)
    accepted, rejected = [], []
    for spec in load_manifest(out):
        for loc, _raw, record, error, event_type in spec.read():
            where = (spec.name, format_location(loc))
            if error is None:
                try:
                    if isinstance(record, bytes):
                        try:
                            record = orjson.loads(record)
                        except orjson.JSONDecodeError as exc:
                            raise RecordRejected([]) from exc
                    accepted.append((where, validator.validate(record, event_type=event_type)))
                    continue
                except RecordRejected as exc:
                    error = exc
            rejected.append((*where, str(error)))
    return accepted, rejected


def test_same_seed_gives_identical_files_and_another_seed_does_not(small, tmp_path):
    out, _ = small
    again = generate(tmp_path / "again", seed=SEED, **PROFILES["small"])
    other = generate(tmp_path / "other", seed=SEED + 1, **PROFILES["small"])
    first, second, third = _hashes(out), _hashes(again.out_dir), _hashes(other.out_dir)
    assert first == second
    common = first.keys() & third.keys()
    assert sum(first[k] != third[k] for k in common) > 0.9 * len(common)


def test_rerun_into_the_same_folder_replaces_the_previous_output(tmp_path):
    generate(tmp_path, seed=3, accounts=150, days=3)
    generate(tmp_path, seed=3, accounts=150, days=2)
    assert len(list((tmp_path / "auth").glob("*.log"))) == 2


def test_report_matches_summary_and_the_injected_clock(small):
    out, report = small
    summary = orjson.loads((out / "truth" / "summary.json").read_bytes())
    assert report.elapsed_s == 1.5
    assert summary["seed"] == SEED
    assert summary["args"] == {"accounts": 300, "days": 7, "start": "2026-10-01"}
    assert summary["transactions"] == report.transactions == report.events_by_type["transaction"]
    assert summary["fraud_by_typology"] == report.fraud_by_typology
    assert summary["events_by_source"] == report.events_by_source
    assert 3000 < report.events < 15000
    assert set(report.events_by_type) == {"transaction", "login", "device_event", "account_event"}


def test_every_typology_is_planted_and_fraud_stays_under_two_percent(small):
    out, report = small
    assert set(report.fraud_by_typology) == set(TYPOLOGIES)
    assert all(n > 0 for n in report.fraud_by_typology.values()), report.fraud_by_typology
    assert all(n > 0 for n in report.rings_by_typology.values())
    assert 0 < report.fraud_rate < 0.02
    rows = _csv(out / "truth" / "transactions.csv")
    fraud = Counter(r["typology"] for r in rows if r["is_fraud"] == "1")
    assert dict(fraud) == {k: v for k, v in report.fraud_by_typology.items() if v}
    assert all(r["ring_id"] for r in rows if r["is_fraud"] == "1")
    assert not any(r["typology"] or r["ring_id"] for r in rows if r["is_fraud"] == "0")


def test_truth_accounts_name_every_ring_and_role(small):
    out, _ = small
    rows = _csv(out / "truth" / "accounts.csv")
    rings = defaultdict(set)
    for r in rows:
        if r["ring_id"]:
            rings[r["typology"]].add(r["ring_id"])
    assert set(rings) == set(TYPOLOGIES)
    roles = {r["role"] for r in rows}
    assert {
        "ring_member",
        "mule",
        "collector",
        "victim",
        "compromised",
        "merchant_owner",
        "customer",
        "business",
    } <= roles
    fraud_rings = {r["ring_id"] for r in _csv(out / "truth" / "transactions.csv") if r["ring_id"]}
    assert fraud_rings <= {r["ring_id"] for r in rows}


def test_manifest_declares_every_file_and_every_source_has_files(small):
    out, _ = small
    manifest = yaml.safe_load((out / "sources.yaml").read_text(encoding="utf-8"))
    assert manifest["version"] == 1
    sources = manifest["sources"]
    formats = Counter(s["format"] for s in sources)
    assert formats["jsonl"] >= 3
    assert formats["csv"] >= 2
    assert {"sqlite", "documents", "authlog"} <= set(formats)
    files = [
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file()
        and p.relative_to(out).parts[0] not in ("truth",)
        and p.name != "sources.yaml"
    ]
    for f in files:
        assert any(fnmatch(f, s["path"]) for s in sources), f
    for s in sources:
        assert any(fnmatch(f, s["path"]) for f in files), s["name"]
    gateways = [s for s in sources if s["format"] == "csv"]
    column_sets = [{v for v in s["fields"].values() if isinstance(v, str)} for s in gateways]
    assert len({frozenset(c) for c in column_sets}) == len(gateways)  # own column names
    assert any(
        isinstance(f, dict) and f.get("scale") == "minor"
        for s in gateways
        for f in s["fields"].values()
    )


def test_bank_streams_validate_directly(small):
    out, _ = small
    validator = Validator(now=_now)
    defects = {
        (d["path"], d["location"].rsplit(":", 1)[1]): d["kind"]
        for d in _csv(out / "truth" / "defects.csv")
        if d["path"].startswith("banks/")
    }
    ids = Counter()
    extras = set()
    for path in sorted((out / "banks").rglob("*.jsonl")):
        rel = str(path.relative_to(out))
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            kind = defects.get((rel, str(n)))
            if kind not in (None, "duplicate"):
                with pytest.raises((RecordRejected, orjson.JSONDecodeError)):
                    validator.validate(orjson.loads(line))
                continue
            event = validator.validate(orjson.loads(line))
            assert event.timestamp.tzinfo is not None
            ids[(event.event_type, getattr(event, "txn_id", None) or event.event_id)] += 1
            extras |= set(event.extra)
    repeated = sum(c - 1 for c in ids.values())
    assert repeated == sum(1 for k in defects.values() if k == "duplicate")
    assert {"branch_code", "auth_code"} <= extras


def test_every_source_reads_back_with_only_the_planted_defects_rejected(small, read_back):
    out, report = small
    accepted, rejected = read_back
    defects = {(d["source"], d["location"]): d for d in _csv(out / "truth" / "defects.csv")}
    noise = [r for r in rejected if (r[0], r[1]) not in defects]
    assert all(r[0] == "auth_server" and "matches no pattern" in r[2] for r in noise), noise[:3]
    assert len(noise) == report.noise_lines
    planted = {k for k, d in defects.items() if d["kind"] != "duplicate"}
    assert {(r[0], r[1]) for r in rejected if (r[0], r[1]) in defects} == planted
    by_source = Counter(where[0] for where, _ in accepted)
    for source, counts in report.events_by_source.items():
        dups = sum(1 for k, d in defects.items() if k[0] == source and d["kind"] == "duplicate")
        bad = sum(1 for k in planted if k[0] == source)
        assert by_source[source] == sum(counts.values()) - bad + dups, source


def test_truth_covers_every_transaction_id_once(small, read_back):
    out, _ = small
    accepted, _ = read_back
    truth = [r["txn_id"] for r in _csv(out / "truth" / "transactions.csv")]
    assert len(truth) == len(set(truth))
    seen = {e.txn_id for _, e in accepted if e.event_type == "transaction"}
    damaged = {
        d["record_id"]
        for d in _csv(out / "truth" / "defects.csv")
        if d["event_type"] == "transaction"
    }
    assert seen | damaged == set(truth)


def test_every_channel_and_account_event_kind_appears(read_back):
    accepted, _ = read_back
    channels = {e.channel for _, e in accepted if e.event_type == "transaction"}
    assert channels == {"card_present", "card_not_present", "transfer", "atm", "wallet"}
    statuses = {e.status for _, e in accepted if e.event_type == "transaction"}
    assert statuses == {"approved", "declined", "reversed"}
    kinds = {e.kind for _, e in accepted if e.event_type == "account_event"}
    assert {"password_reset", "email_changed"} <= kinds
    assert any(":" in (e.ip or "") for _, e in accepted)  # some IPv6


def _labels(out: Path) -> dict[str, tuple[str, str]]:
    return {
        r["txn_id"]: (r["typology"], r["ring_id"])
        for r in _csv(out / "truth" / "transactions.csv")
        if r["is_fraud"] == "1"
    }


def _km(a, b) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 12742 * math.asin(math.sqrt(h))


def test_planted_patterns_are_visible_in_the_data(small, read_back):
    out, _ = small
    accepted, _ = read_back
    labels = _labels(out)
    txns = [e for _, e in accepted if e.event_type == "transaction"]
    by_typology = defaultdict(list)
    for t in txns:
        if t.txn_id in labels:
            by_typology[labels[t.txn_id][0]].append(t)

    # card testing: tiny online payments, many declined, from one device per ring
    tests = [t for t in by_typology["card_testing"] if t.amount <= 3]
    assert tests
    assert all(t.channel == "card_not_present" for t in tests)
    assert sum(t.status == "declined" for t in tests) >= len(tests) / 3
    # mule network: some mule receives from at least two different payers
    payers = defaultdict(set)
    for t in by_typology["mule_network"]:
        payers[t.counterparty_account_id].add(t.account_id)
    assert max(len(p) for p in payers.values()) >= 2
    # round tripping: similar amounts, and money comes back to an account that sent it
    cycle = by_typology["round_tripping"]
    assert {t.account_id for t in cycle} & {t.counterparty_account_id for t in cycle}
    assert all(
        any(o is not t and abs(o.amount - t.amount) <= t.amount * Decimal("0.05") for o in cycle)
        for t in cycle
    )
    # synthetic identities: ring accounts share devices
    devices = defaultdict(set)
    for _, e in accepted:
        if e.event_type != "account_event" and e.device_id:
            devices[e.device_id].add(e.account_id)
    synth = {
        r["account_id"]
        for r in _csv(out / "truth" / "accounts.csv")
        if r["typology"] == "synthetic_identity" and r["role"] == "ring_member"
    }
    assert any(len(accts & synth) >= 2 for accts in devices.values())
    # impossible travel: a payment far away (faster than an airliner) after one at home
    far = by_typology["impossible_travel"]
    home = [t for t in txns if t.txn_id not in labels and t.geo is not None]

    def kmh(f, h) -> float:
        hours = abs((f.timestamp - h.timestamp).total_seconds()) / 3600
        return _km(f.geo, h.geo) / max(hours, 1 / 60)

    assert any(
        _km(f.geo, h.geo) > 1000 and kmh(f, h) > 1000
        for f in far
        if f.geo
        for h in home
        if h.account_id == f.account_id
    )
    # account takeover: a password reset and a new e-mail before the draining transfers
    ato = {t.account_id for t in by_typology["account_takeover"]}
    resets = {
        e.account_id
        for _, e in accepted
        if e.event_type == "account_event" and e.kind == "password_reset"
    }
    assert ato
    assert ato <= resets
    # collusive merchant: one merchant paid by several ring cards, with refunds
    merchants = Counter(t.merchant_id for t in by_typology["collusive_merchant"] if t.merchant_id)
    assert merchants.most_common(1)[0][1] >= 3


def test_profiles_and_fraud_knobs():
    assert PROFILES["small"] == {"accounts": 300, "days": 7}
    assert PROFILES["default"] == {"accounts": 10_000, "days": 30}
    big, little = FraudConfig.for_accounts(20_000), FraudConfig.for_accounts(300)
    assert big.synthetic_rings == 2 * FraudConfig().synthetic_rings
    assert little.synthetic_rings == 1
    assert little.synthetic_size == (3, 3)


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="days"):
        generate(tmp_path, seed=1, days=0, accounts=300)
    with pytest.raises(ValueError, match="accounts"):
        generate(tmp_path, seed=1, days=3, accounts=10)


def test_other_start_dates_cross_daylight_saving_and_month_ends(tmp_path):
    report = generate(tmp_path, seed=2, accounts=200, days=4, start=date(2026, 10, 24))
    assert report.transactions > 0
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == [
        f"auth-2026-10-{d}.log" for d in (24, 25, 26, 27)
    ]
