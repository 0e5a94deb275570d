"""Ingest end to end on the embedded bus: accounting, dead letters, idempotence, isolation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from ingest.deadletter import read_dead_letters
from ingest.dedup import SeenIds
from ingest.events import decode_event, encode_event
from ingest.pipeline import EVENTS_TOPIC, ingest
from ingest.sources import autodetect
from serve.cli import main, run_ingest
from serve.settings import Settings
from serve.wiring import ingest_runtime

ROOT = Path(__file__).resolve().parents[2]


def txn(i: int, **over) -> dict:
    record = {
        "event_type": "transaction",
        "txn_id": f"t{i}",
        "timestamp": "2026-10-01T10:00:00Z",
        "source": "bank_a",
        "account_id": f"acc_{i % 7}",
        "amount": "10.00",
        "currency": "EUR",
        "channel": "card_present",
        "merchant_id": "m1",
    }
    record.update(over)
    return record


# every bad input the contract names, with the field and a piece of the reason expected
BAD_JSON_LINES = [
    (b'{"event_type": "transaction", "txn_id": "b1", "amount": ', "(record)", "invalid JSON"),
    (b'{"txn_id": "b2", "note": "\xff\xfe"}', "(record)", "not valid UTF-8"),
    (
        orjson.dumps({k: v for k, v in txn(3).items() if k != "account_id"}),
        "account_id",
        "required field is missing",
    ),
    (orjson.dumps(txn(4, amount={"v": 1})), "amount", "expected a number"),
    (orjson.dumps(txn(5, amount=-5)), "amount", "must be > 0"),
    (orjson.dumps(txn(6, amount=0)), "amount", "must be > 0"),
    (orjson.dumps(txn(7, amount="NaN")), "amount", "finite"),
    (orjson.dumps(txn(8, amount="Infinity")), "amount", "finite"),
    (orjson.dumps(txn(9, amount=1e13)), "amount", "maximum plausible amount"),
    (orjson.dumps(txn(10, currency="EURO")), "currency", "unknown ISO 4217"),
    (orjson.dumps(txn(11, timestamp="2026-10-01T10:00:00")), "timestamp", "timezone offset"),
    (orjson.dumps(txn(12, timestamp="1970-01-01T00:00:00Z")), "timestamp", "before 2000"),
    (orjson.dumps(txn(13, ip="300.1.1.1")), "ip", "not a valid IPv4 or IPv6"),
    (orjson.dumps(txn(14, geo={"lat": 95, "lon": 0})), "geo", "lat: 95 is outside"),
    (orjson.dumps(txn(15, geo={"lat": 1, "lon": 200})), "geo", "lon: 200 is outside"),
    (orjson.dumps(txn(16, merchant_country="UK")), "merchant_country", "unknown ISO 3166-1"),
    (orjson.dumps(txn(17, pad="x" * 66_000)), "(record)", "exceeds the 65536 byte limit"),
]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "state")


def make_sources(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    good = [orjson.dumps(txn(i)) for i in range(100, 150)]
    good.append(orjson.dumps(txn(100)))  # a redelivery: same id, counted as a duplicate
    lines = good + [line for line, _, _ in BAD_JSON_LINES]
    (root / "bank.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (root / "gw.csv").write_text(
        "txn_id,timestamp,source,account_id,amount,currency,channel,merchant_id\n"
        "g1,2026-10-01T11:00:00+02:00,gw,acc_1,5.50,EUR,card_not_present,m2\n"
        "g2,2026-10-01T11:00:00+02:00,gw,acc_1,5.50\n"
    )
    (root / "empty.jsonl").write_bytes(b"")
    (root / "auth.log").write_text(
        "2026-10-01T08:00:00Z authd: LOGIN_OK req=q1 user=acc_1\n"
        "2026-10-01T08:00:01Z authd: something else entirely\n"
    )
    (root / "sources.yaml").write_text(
        textwrap.dedent(
            r"""
            version: 1
            sources:
              - {name: bank, format: jsonl, path: bank.jsonl}
              - {name: gw, format: csv, path: gw.csv, event_type: transaction}
              - {name: empty, format: jsonl, path: empty.jsonl}
              - name: auth
                format: authlog
                path: auth.log
                patterns:
                  - regex: '^(?P<ts>\S+) authd: LOGIN_OK req=(?P<req>\S+) user=(?P<user>\S+)$'
                    event_type: login
                    fields:
                      event_id: req
                      timestamp: ts
                      account_id: user
                      success: {const: true}
                      mfa_used: {const: false}
            """
        )
    )
    return root


def run(settings: Settings, path: Path) -> dict:
    return run_ingest(settings, path, expectations=True, quiet=True)


def test_every_record_is_accounted_for(settings, tmp_path):
    result = run(settings, make_sources(tmp_path / "in"))
    src = result["sources"]
    assert src["bank"] == {
        **src["bank"],
        "received": 51 + len(BAD_JSON_LINES),
        "accepted": 50,
        "duplicates": 1,
        "rejected": len(BAD_JSON_LINES),
        "reconciled": True,
    }
    assert (src["gw"]["accepted"], src["gw"]["rejected"]) == (1, 1)
    assert (src["empty"]["received"], src["empty"]["rejected"]) == (1, 1)
    assert (src["auth"]["accepted"], src["auth"]["rejected"]) == (1, 1)
    totals = result["totals"]
    assert totals["accepted"] + totals["rejected"] + totals["duplicates"] == totals["received"]
    assert totals["accepted_by_type"] == {"login": 1, "transaction": 51}
    assert result["bus_end_offset"] == 52


def test_each_bad_input_is_dead_lettered_with_field_and_reason(settings, tmp_path):
    run(settings, make_sources(tmp_path / "in"))
    letters = list(read_dead_letters(settings.path("deadletter")))
    bank = [d for d in letters if d.source == "bank"]
    assert len(bank) == len(BAD_JSON_LINES)
    for letter, (_, field, reason) in zip(bank, BAD_JSON_LINES, strict=True):
        assert letter.field == field, letter
        assert reason in letter.reason, letter
        assert letter.location.startswith("bank.jsonl:")
    by_source = {d.source: d for d in letters if d.source != "bank"}
    assert by_source["gw"].reason == "wrong column count: expected 8 columns, got 5"
    assert by_source["gw"].location == "gw.csv:2"
    assert by_source["empty"].field == "(file)"
    assert by_source["auth"].reason == "line matches no pattern of source 'auth'"
    assert by_source["auth"].raw == "2026-10-01T08:00:01Z authd: something else entirely"
    non_utf8 = next(d for d in bank if "UTF-8" in d.reason)
    assert non_utf8.raw_encoding == "base64"  # the bytes are kept exactly


def test_accepted_events_are_on_the_bus_in_order(settings, tmp_path):
    run(settings, make_sources(tmp_path / "in"))
    from ingest.bus import EmbeddedBus

    with EmbeddedBus(settings.path("bus")) as bus:
        consumer = bus.consumer(EVENTS_TOPIC, "test")
        records = consumer.poll(1000)
    events = [decode_event(r.payload) for r in records]
    assert [e.event_id for e in events[:3]] == ["t100", "t101", "t102"]
    assert records[0].key == "acc_2"
    assert events[-1].event_type == "login"
    assert {e.event_id for e in events} >= {"g1", "q1"}


def test_reingest_changes_nothing(settings, tmp_path):
    data = make_sources(tmp_path / "in")
    first = run(settings, data)
    letters = settings.path("deadletter", "deadletter.jsonl").read_bytes()
    second = run(settings, data)
    assert second["totals"]["accepted"] == 0
    assert second["totals"]["duplicates"] == first["totals"]["accepted"] + 1
    assert second["totals"]["rejected"] == first["totals"]["rejected"]
    assert second["bus_end_offset"] == first["bus_end_offset"]
    assert second["dead_letters_added"] == 0
    assert settings.path("deadletter", "deadletter.jsonl").read_bytes() == letters


def test_data_directories_are_isolated(tmp_path):
    data = make_sources(tmp_path / "in")
    a = Settings(data_dir=tmp_path / "a")
    b = Settings(data_dir=tmp_path / "b")
    run(a, data)
    result_b = run(b, data)
    assert result_b["totals"]["accepted"] == 52  # b has never seen these ids
    assert result_b["totals"]["duplicates"] == 1


def test_ids_appended_before_a_crash_are_recovered_from_the_bus(settings, tmp_path):
    """An ingest killed after its bus append but before it recorded the ids loses nothing."""
    from ingest.bus import EmbeddedBus
    from ingest.validate import Validator

    event = Validator().validate(txn(1), event_type="transaction")
    settings.data_dir.mkdir(parents=True)
    with EmbeddedBus(settings.path("bus")) as bus:
        bus.append(EVENTS_TOPIC, [encode_event(event)], ["acc_1"])
    with EmbeddedBus(settings.path("bus")) as bus:
        seen = SeenIds(settings.path("ingest"), bus, EVENTS_TOPIC)
        assert "transaction:t1" in seen
        seen.close()
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps(txn(1)) + b"\n")
    assert run(settings, path)["totals"]["duplicates"] == 1


def test_same_id_different_event_types_are_distinct(settings, tmp_path):
    path = tmp_path / "mixed.jsonl"
    login = {
        "event_type": "login",
        "event_id": "x1",
        "timestamp": "2026-10-01T08:00:00Z",
        "account_id": "a",
        "success": True,
        "mfa_used": False,
    }
    path.write_bytes(orjson.dumps(txn(0, txn_id="x1")) + b"\n" + orjson.dumps(login) + b"\n")
    assert run(settings, path)["totals"]["accepted"] == 2


def test_ingest_function_reports_progress(settings, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(txn(i)) for i in range(300)))
    messages: list[str] = []
    with ingest_runtime(settings) as rt:
        summary = ingest(
            autodetect(path),
            bus=rt.bus,
            dead_letters=rt.dead_letters,
            seen=rt.seen,
            validator=rt.validator,
            batch_size=50,
            progress=messages.append,
            progress_every_s=0.0,
        )
    assert summary.totals().accepted == 300
    assert any("records" in m for m in messages)
    assert "300 received, 300 accepted" in messages[-1]


def test_cli_ingest_prints_a_reconciled_json_summary(tmp_path, capsys):
    data = make_sources(tmp_path / "in")
    assert main(["ingest", str(data), "--data-dir", str(tmp_path / "s"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(s["reconciled"] for s in out["sources"].values())
    assert out["data_dir"] == str(tmp_path / "s")


def test_cli_reports_a_missing_path_clearly(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "s")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_console_script_uses_the_data_dir_from_the_environment(tmp_path):
    data = make_sources(tmp_path / "in")
    env = {"RINGFENCE_DATA_DIR": str(tmp_path / "envstate"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "serve.cli", "ingest", str(data), "--quiet"],
        capture_output=True,
        check=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert json.loads(out.stdout)["totals"]["accepted"] == 52
    assert (tmp_path / "envstate" / "deadletter" / "deadletter.jsonl").exists()


def test_cli_deadletter_filters_by_source_and_field(tmp_path, capsys):
    data = make_sources(tmp_path / "in")
    state = str(tmp_path / "s")
    assert main(["ingest", str(data), "--data-dir", state, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["deadletter", "--data-dir", state, "--source", "bank", "--field", "amount"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == sum(1 for _, field, _ in BAD_JSON_LINES if field == "amount")
    assert {x["source"] for x in lines} == {"bank"}
    assert main(["deadletter", "--data-dir", state, "--limit", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_limits_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RINGFENCE_MAX_AMOUNT", "100")
    monkeypatch.setenv("RINGFENCE_DATA_DIR", str(tmp_path / "env"))
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        orjson.dumps(txn(1, amount="100.00"))
        + b"\n"
        + orjson.dumps(txn(2, amount="100.01"))
        + b"\n"
    )
    result = run(Settings(), path)
    assert (result["totals"]["accepted"], result["totals"]["rejected"]) == (1, 1)
    assert result["data_dir"] == str(tmp_path / "env")
    (letter,) = read_dead_letters(tmp_path / "env" / "deadletter")
    assert letter.reason == "100.01 exceeds the maximum plausible amount 100"
