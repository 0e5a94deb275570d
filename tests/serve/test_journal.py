"""The decision journal, the warm start of `ringfence serve`, and the shadow report."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gnn import registry
from ingest.bus import EmbeddedBus
from ingest.events import Transaction, encode_event
from ingest.pipeline import EVENTS_TOPIC
from rules.evaluate import Outcome
from rules.store import RuleStore, StoreFollower
from serve.api import create_app
from serve.cli import main
from serve.journal import (
    DecisionJournal,
    JournalLocked,
    read_journal,
    segment_numbers,
    shadow_report,
)
from serve.pipeline import Decision, ScoringPipeline
from serve.tokens import SigningKeys, issue
from serve.warm import warm_start
from tests.serve.conftest import running

KEYS = SigningKeys.parse("k1=" + "j" * 40)
LIVE = 'version: "live-1"\nrules:\n  - {id: all, when: "true", action: tag}\n'
SHADOW = (
    'version: "shadow-1"\nrules:\n'
    '  - {id: big, when: "txn.amount > 100", action: review, priority: 5}\n'
)


def txn(i: int) -> Transaction:
    return Transaction(
        txn_id=f"t{i}",
        timestamp=datetime(2026, 10, 1, tzinfo=UTC) + timedelta(seconds=i),
        source="gw",
        account_id=f"a{i % 7}",
        amount=Decimal(f"{10 + i}.25"),
        currency="EUR",
        channel="card_not_present",
        merchant_id="m1",
        device_id=f"d{i % 3}",
    )


def decided(i: int) -> Decision:
    hit = (Outcome("big", "hit", ()),) if i % 2 else ()
    return Decision(
        f"t{i}",
        i / 1000 + 1 / 3,
        "review" if i % 2 else "approve",
        ("a reason",) if i % 2 else (),
        "rule:big" if i % 2 else "model",
        "v1",
        ruleset_version="live-1",
        rule_outcomes=hit,
        shadow_decision="block" if i % 3 == 0 else "approve",
    )


def read_all(folder: Path) -> list[Any]:
    return [line for lines in read_journal(folder, batch=7) for line in lines]


def test_journal_round_trip_across_segments_and_reopen(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    events = [txn(i) for i in range(60)]
    decisions = [decided(i) for i in range(60)]
    with DecisionJournal(folder, sync_ms=5, segment_bytes=4096) as journal:
        with pytest.raises(JournalLocked):
            DecisionJournal(folder)
        for k in range(0, 40, 8):  # a batch's events may hold more than its decisions
            journal.append(events[k : k + 10], decisions[k : k + 8], shadow_version="shadow-1")
        assert journal.stats.records == 40
    assert len(segment_numbers(folder)) > 2  # rotated past 4 KiB
    with DecisionJournal(folder, segment_bytes=4096) as journal:  # reopened: appends after
        journal.hook()(events[40:], decisions[40:])
    lines = read_all(folder)
    assert [encode_event(x.decoded_event()) for x in lines] == [encode_event(e) for e in events]
    assert [x.to_decision() for x in lines] == decisions
    assert {x.shadow_ruleset_version for x in lines[:40]} == {"shadow-1"}
    assert {x.shadow_ruleset_version for x in lines[40:]} == {None}  # no pipeline given


def test_a_torn_last_line_is_skipped_then_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "journal"
    with DecisionJournal(folder) as journal:
        journal.append([txn(i) for i in range(5)], [decided(i) for i in range(5)])
    last = folder / f"{segment_numbers(folder)[-1]:012d}.jsonl"
    whole = last.read_bytes()
    # a damaged line in the middle, and a crash in the middle of the last write
    lines = whole.splitlines(keepends=True)
    last.write_bytes(b"".join(lines[:2]) + b'{"at":1,"oops\n' + b"".join(lines[2:]) + lines[0][:40])
    with caplog.at_level(logging.WARNING, logger="serve.journal"):
        got = read_all(folder)
    assert [x.decision["txn_id"] for x in got] == [f"t{i}" for i in range(5)]
    assert "torn last line" in caplog.text
    assert "damaged line 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serve.journal"), DecisionJournal(folder) as j:
        j.append([txn(5)], [decided(5)])
    assert "cutting off a torn last line" in caplog.text
    assert [x.decision["txn_id"] for x in read_all(folder)] == [f"t{i}" for i in range(6)]


def test_shadow_report_counts_pairs_from_journal_and_stream_log(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    with DecisionJournal(folder) as journal:
        journal.append(
            [txn(i) for i in range(12)], [decided(i) for i in range(12)], shadow_version="s1"
        )
    stream = tmp_path / "decisions.jsonl"
    rows = [
        {"txn_id": "x1", "decision": "block", "shadow_decision": "block", "ruleset_version": "l2"},
        {"txn_id": "x2", "decision": "approve", "shadow_decision": None, "ruleset_version": None},
    ]
    stream.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = shadow_report(folder, stream, examples=3)
    # t0..t11: live approve on even, review on odd; shadow block when i % 3 == 0, else approve
    expected = {("approve", "block"): 2, ("approve", "approve"): 4}
    expected |= {("review", "block"): 2, ("review", "approve"): 4, ("block", "block"): 1}
    assert {(p["live"], p["shadow"]): p["count"] for p in report["pairs"]} == expected
    assert (report["decisions"], report["compared"], report["without_shadow"]) == (14, 13, 1)
    assert report["differ"] == 2 + 4 + 2
    assert [d["txn_id"] for d in report["first_differing"]] == ["t0", "t1", "t3"]
    assert report["live_versions"] == {"live-1": 12, "l2": 1}
    assert report["shadow_versions"] == {"s1": 12}
    assert report["sources"] == {"journal": 12, "stream": 2}


def token() -> str:
    return issue(KEYS, client="gw", scopes=["score"], ttl_s=600, now=datetime.now(UTC))


def post(url: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {token()}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def strip(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("latency_ms", "replayed")}


@pytest.fixture
def state(tmp_path: Path, history_and_model: tuple) -> tuple[Path, list[Any], list[Any]]:
    """A data directory whose bus holds the first 60% of the history; the next transactions."""
    history, _ = history_and_model
    events = history.events
    cut = int(len(events) * 0.6)
    root = tmp_path / "state"
    with EmbeddedBus(root / "bus", fsync=False) as bus:
        bus.append(EVENTS_TOPIC, [encode_event(e) for e in events[:cut]])
    store = RuleStore(root / "rules")
    store.publish(SHADOW, who="test")
    store.publish(LIVE, who="test")
    store.set_shadow("shadow-1", who="test")
    later = [e for e in events[cut:] if e.event_type == "transaction"][:45]
    return root, events[:cut], later


def pipeline_on(root: Path, model_and_manifest: tuple) -> ScoringPipeline:
    model, manifest = model_and_manifest
    return ScoringPipeline(model, manifest, rules_from=StoreFollower(RuleStore(root / "rules")))


def test_a_restart_keeps_the_state_and_the_answers_given(
    state: tuple, history_and_model: tuple
) -> None:
    root, past, later = state
    _, model_and_manifest = history_and_model
    body = [json.loads(encode_event(t)) for t in later]

    def start(journal: DecisionJournal) -> tuple[ScoringPipeline, Any]:
        pipeline = pipeline_on(root, model_and_manifest)
        with EmbeddedBus(root / "bus") as bus:
            summary = warm_start(pipeline, bus=bus, journal=journal.folder, batch=1500)
        pipeline.on_decisions = journal.hook(pipeline)
        return pipeline, summary

    with DecisionJournal(root / "journal", sync_ms=5) as journal:
        pipeline, summary = start(journal)
        assert (summary.bus_events, summary.journal_records) == (len(past), 0)
        with running(create_app(pipeline, KEYS)) as url:
            first = post(url, "/v1/score/batch", {"transactions": body[:25]})["results"]
            first += [post(url, "/v1/score", t) for t in body[25:30]]
    assert not any(a["replayed"] for a in first)
    assert any(a["shadow_decision"] != a["decision"] for a in first)
    assert len(read_all(root / "journal")) == 30

    with DecisionJournal(root / "journal", sync_ms=5) as journal:  # the restart
        pipeline, summary = start(journal)
        assert (summary.bus_events, summary.journal_records) == (len(past), 30)
        with running(create_app(pipeline, KEYS)) as url:
            retried = post(url, "/v1/score/batch", {"transactions": [body[3], body[27]]})
            after = post(url, "/v1/score/batch", {"transactions": body[30:]})["results"]
    assert [a["replayed"] for a in retried["results"]] == [True, True]
    assert [strip(a) for a in retried["results"]] == [strip(first[3]), strip(first[27])]
    journaled = read_all(root / "journal")
    assert [x.decision["txn_id"] for x in journaled] == [t.txn_id for t in later]  # no retries
    assert {x.shadow_ruleset_version for x in journaled} == {"shadow-1"}

    # the same as one pipeline that saw everything without a restart
    once = pipeline_on(root, model_and_manifest)
    once.warm(past)
    once.process(later[:30])
    straight = once.process(later[30:])
    assert [a["txn_id"] for a in after] == [d.txn_id for d in straight]
    assert max(abs(a["score"] - d.score) for a, d in zip(after, straight, strict=True)) < 1e-6
    assert [a["decision"] for a in after] == [d.decision for d in straight]

    report = shadow_report(root / "journal")
    pairs: dict[tuple[str, str], int] = {}
    for a in first + after:
        pairs[(a["decision"], a["shadow_decision"])] = (
            pairs.get((a["decision"], a["shadow_decision"]), 0) + 1
        )
    assert {(p["live"], p["shadow"]): p["count"] for p in report["pairs"]} == pairs
    assert report["differ"] == sum(a["decision"] != a["shadow_decision"] for a in first + after)


def test_ringfence_serve_warms_up_journals_and_answers_retries_after_a_restart(
    state: tuple,
    history_and_model: tuple,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uvicorn

    root, past, later = state
    _, (model, manifest) = history_and_model
    registry.save(root / "models", model, manifest)
    monkeypatch.setenv("RINGFENCE_JWT_KEYS", "k1=" + "j" * 40)
    body = [json.loads(encode_event(t)) for t in later[:4]]
    answers: list[Any] = []
    options: list[dict[str, Any]] = []

    def serve(app: Any, **kw: Any) -> None:  # what uvicorn.run would serve, for two requests
        options.append(kw)
        with running(app) as url:
            answers.append(post(url, "/v1/score/batch", {"transactions": body})["results"])

    monkeypatch.setattr(uvicorn, "run", serve)
    assert main(["serve", "--data-dir", str(root)]) == 0
    assert f"warm start: {len(past):,} bus events and 0 journal records" in capsys.readouterr().err
    monkeypatch.setenv("RINGFENCE_KEEP_ALIVE_S", "120")
    assert main(["serve", "--data-dir", str(root), "--no-history"]) == 0
    assert [o["timeout_keep_alive"] for o in options] == [75, 120]
    assert "warm start: 0 bus events and 4 journal records" in capsys.readouterr().err
    assert [a["replayed"] for a in answers[1]] == [True] * 4
    assert [strip(a) for a in answers[1]] == [strip(a) for a in answers[0]]

    assert main(["rules", "shadow-report", "--data", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == report["compared"] == 4
    assert report["shadow_versions"] == {"shadow-1": 4}
    assert main(["rules", "shadow-report", "--data-dir", str(root)]) == 0
    table = capsys.readouterr().out
    assert "shadow rule sets: shadow-1 (4)" in table
