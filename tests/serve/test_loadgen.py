"""The open-loop load generator (``perf/loadgen``): built with Go, run against the real API."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.events import encode_event
from serve.api import create_app
from serve.pipeline import ScoringPipeline
from serve.tokens import SigningKeys, issue
from tests.serve.conftest import running

ROOT = Path(__file__).resolve().parents[2]
KEYS = SigningKeys.parse("k1=" + "g" * 40)


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.fail("Go is needed to build perf/loadgen (the machine's `go`)")
    binary = tmp_path_factory.mktemp("loadgen") / "loadgen"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=ROOT / "perf" / "loadgen", check=True
    )
    return binary


def test_it_sends_at_the_rate_asked_and_counts_answers_and_errors(
    loadgen: Path, history_and_model: tuple, tmp_path: Path
) -> None:
    history, (model, manifest) = history_and_model
    bodies = tmp_path / "txns.jsonl"
    txns = [encode_event(e) for e in history.events if e.event_type == "transaction"][:400]
    bodies.write_bytes(b"\n".join(txns) + b"\n")
    token = issue(KEYS, client="gw_load", scopes=["score"], ttl_s=600, now=datetime.now(UTC))
    pipeline = ScoringPipeline(model, manifest)

    def run(url: str, *args: str) -> dict:
        got = subprocess.run(
            [str(loadgen), "-url", url, "-bodies", str(bodies), *args],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return json.loads(got.stdout)

    with running(create_app(pipeline, KEYS)) as url:
        paced = run(f"{url}/v1/score", "-token", token, "-rate", "200", "-duration", "1s")
        refused = run(f"{url}/v1/score", "-token", "not-a-token", "-rate", "100", "-duration", "1s")
        batched = run(f"{url}/v1/score/batch", "-token", token, "-rate", "0", "-batch", "50")
    # open loop: about 200 calls leave in the second, whatever the answers
    assert 190 <= paced["sent"] <= 202
    assert paced["ok"] == paced["sent"]
    assert 0 < paced["p50_ms"] <= paced["p99_ms"] <= paced["max_ms"]
    assert 0 < paced["generator_cpu"] < 1
    assert refused["ok"] == 0
    assert refused["errors"] == {"401": refused["sent"]}
    # the first 400 transactions, 50 a call; the rest of the file is replays of none
    assert batched["exhausted"] is True
    assert batched["sent"] == 8
    assert batched["achieved_txn_s"] == pytest.approx(batched["achieved_rps"] * 50)
    assert pipeline.stats.transactions == 400
