"""The stream consumer scores every transaction on the bus once, and resumes where it stopped."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from gnn import registry
from gnn.scoring import Scorer
from gnn.train import TrainConfig, train
from ingest.bus.embedded import EmbeddedBus
from ingest.events import decode_event, encode_event
from ingest.generator import PROFILES, generate
from ingest.pipeline import EVENTS_TOPIC
from serve.cli import main


def bus_events(state: Path) -> list:
    bus = EmbeddedBus(state / "bus")
    try:
        consumer = bus.consumer(EVENTS_TOPIC, "test-reader")
        out = []
        while records := consumer.poll(5000):
            out += [decode_event(r.payload) for r in records]
        consumer.close()
        return out
    finally:
        bus.close()


@pytest.mark.parametrize("feature_worker", ["0", "1"], ids=["in_process", "feature_worker"])
def test_the_stream_scores_each_transaction_once_and_resumes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    feature_worker: str,
) -> None:
    # batches are pipelined (the next begun before the last is decided); with the worker the
    # features of the next are computed in its process meanwhile: the same scores either way
    monkeypatch.setenv("RINGFENCE_FEATURE_WORKER", feature_worker)
    data, state = tmp_path / "data", tmp_path / "state"
    generate(data, seed=9, start=date(2026, 10, 1), **PROFILES["small"])
    assert main(["ingest", str(data), "--data-dir", str(state), "-q"]) == 0
    capsys.readouterr()
    train(data, state / "models", seed=0, config=TrainConfig(epochs=2), baselines=False)

    assert main(["stream", "--data-dir", str(state), "-q"]) == 0
    first = json.loads(capsys.readouterr().out)
    events = bus_events(state)
    txns = [e for e in events if e.event_type == "transaction"]
    assert first["events_consumed"] == len(events)
    assert first["transactions_decided"] == first["decisions_written"] == len(txns)
    log = Path(first["decisions"])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["txn_id"] for r in rows] == [t.txn_id for t in txns]
    # the same scores as the offline scorer over the bus in the same order
    model, manifest = registry.load(state / "models")
    offline = [s.score for s in Scorer.from_manifest(model, manifest).score_events(events)]
    np.testing.assert_allclose([r["score"] for r in rows], offline, atol=1e-6)

    # a second run rebuilds the state from the committed offset and writes nothing new
    assert main(["stream", "--data-dir", str(state), "-q"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rebuilt_from_events"] == len(events)
    assert again["events_consumed"] == again["decisions_written"] == 0
    assert len(log.read_text().splitlines()) == len(txns)

    # new events on the bus are scored after the rebuild, with the history before them
    more = tmp_path / "more.jsonl"
    late = txns[-1]
    fresh = late.__class__(
        **{f: getattr(late, f) for f in late.__struct_fields__} | {"txn_id": "late-1"}
    )
    more.write_bytes(encode_event(fresh) + b"\n")
    assert main(["ingest", str(more), "--data-dir", str(state), "-q"]) == 0
    capsys.readouterr()
    assert main(["stream", "--data-dir", str(state), "-q"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert (third["events_consumed"], third["decisions_written"]) == (1, 1)
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["txn_id"] == "late-1"
    offline = list(Scorer.from_manifest(model, manifest).score_events([*events, fresh]))[-1]
    assert abs(last["score"] - offline.score) < 1e-6
