"""The pipeline scores through a real TorchServe exactly as it does in process.

The serve tests' small model is archived (as ``make torchserve-archive`` does), served by one
real TorchServe for the module, and a pipeline with :class:`serve.model_backend.
TorchServeBackend` decides a few hundred transactions after a warmed state; scores (to 1e-5)
and decisions must equal the in-process pipeline's. Then the failures: TorchServe unreachable,
another model version, a pipeline without history.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gnn import registry
from gnn.model import intra_op_threads
from serve.model_backend import ModelBackendError, TorchServeBackend
from serve.pipeline import ScoringPipeline
from serve.settings import Settings
from serve.wiring import scoring_pipeline
from tests.services.ports import free_port
from tests.services.torchserve import TorchServeServer, archive

WARM = 1500
"""Events folded in before the compared ones (so entities have history)."""
SCORED = 300
"""Transactions compared."""
BATCHES = (1, 7, 64, 100, 128)
"""Batch sizes, cycled."""


@pytest.fixture(scope="module")
def model_dir(history_and_model: tuple, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serve tests' model as a registry version folder."""
    _, (model, manifest) = history_and_model
    return registry.save(tmp_path_factory.mktemp("backend-models"), model, manifest)


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("backend-torchserve")
    mar = archive(model_dir, root / "store")
    with TorchServeServer(root / "server", mar.parent, {"fraud": mar.name}) as url:
        yield url


def split(events: list[Any]) -> tuple[list[Any], list[Any]]:
    """The warm-up events, and the events after them holding :data:`SCORED` transactions."""
    rest: list[Any] = []
    txns = 0
    for e in events[WARM:]:
        rest.append(e)
        txns += e.event_type == "transaction"
        if txns == SCORED:
            break
    assert txns == SCORED
    return list(events[:WARM]), rest


def in_batches(pipeline: ScoringPipeline, events: list[Any]) -> tuple[list[Any], int]:
    """The decisions, in batches of :data:`BATCHES` sizes; and how many batches scored any."""
    out = []
    k = i = scored = 0
    while k < len(events):
        size = BATCHES[i % len(BATCHES)]
        got = pipeline.process(events[k : k + size])
        scored += any(not d.replayed for d in got)
        out += got
        k += size
        i += 1
    return out, scored


def decided_in_process(history_and_model: tuple) -> tuple[list[Any], list[Any], list[Any]]:
    """The warm-up events, the events after them, and their in-process decisions."""
    history, (model, manifest) = history_and_model
    warm, events = split(history.events)
    with intra_op_threads(1):
        local = ScoringPipeline(model, manifest)
        local.warm(warm)
        expected, _ = in_batches(local, events)
    return warm, events, expected


def test_torchserve_scores_and_decides_as_the_in_process_model(
    history_and_model: tuple, server: str
) -> None:
    _, (model, manifest) = history_and_model
    warm, events, expected = decided_in_process(history_and_model)
    with intra_op_threads(1):
        remote = ScoringPipeline(model, manifest)
        remote.warm(warm)  # in process: the state only
        backend = TorchServeBackend.for_pipeline(remote, server, "fraud", timeout_s=30)
        assert backend.served_version == manifest["version"]
        remote.backend = backend
        got, batches = in_batches(remote, events)
        backend.close()

    assert len(got) == len(expected) >= SCORED
    assert [d.txn_id for d in got] == [d.txn_id for d in expected]
    scores = np.array([d.score for d in got])
    np.testing.assert_allclose(scores, [d.score for d in expected], atol=1e-5, rtol=0)
    assert scores.std() > 0.01  # the scores differ: agreement means something
    assert [d.decision for d in got] == [d.decision for d in expected]
    assert [d.reasons for d in got] == [d.reasons for d in expected]
    assert backend.stats.requests == 1 + batches  # the probe, then one request per batch
    assert backend.stats.split_batches == backend.stats.reconnects == 0


def test_a_batch_over_the_request_limit_is_split(history_and_model: tuple, server: str) -> None:
    history, (model, manifest) = history_and_model
    warm, events = split(history.events)
    with intra_op_threads(1):
        pipeline = ScoringPipeline(model, manifest)
        pipeline.warm(warm + events[:-128])
        want = pipeline.process(events[-128:])  # in process, then the same rows remotely
        backend = TorchServeBackend.for_pipeline(
            pipeline, server, "fraud", timeout_s=30, max_request_bytes=60_000
        )
        rows = backend.history.rows[-len(want) :]
        got = backend.score(rows)
    assert backend.stats.split_batches > 0
    assert backend.stats.requests > 2
    assert [r.txn_id for r in rows] == [d.txn_id for d in want]
    np.testing.assert_allclose(got, [d.score for d in want], atol=1e-5, rtol=0)


def test_an_unreachable_torchserve_is_a_clear_error(history_and_model: tuple) -> None:
    _, (model, manifest) = history_and_model
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelBackendError, match="connection refused") as err:
        TorchServeBackend.for_pipeline(ScoringPipeline(model, manifest), url, "fraud", timeout_s=5)
    assert f"{url}/predictions/fraud" in str(err.value)
    assert err.value.is_retryable()


def test_another_model_version_is_refused(history_and_model: tuple, server: str) -> None:
    history, (model, manifest) = history_and_model
    other = dict(manifest, version="fraudsage-20990101T000000Z-00000000")
    pipeline = ScoringPipeline(model, other)
    with pytest.raises(ModelBackendError, match="serves model version") as err:
        TorchServeBackend.for_pipeline(pipeline, server, "fraud", timeout_s=30)
    assert manifest["version"] in str(err.value)
    assert other["version"] in str(err.value)
    assert not err.value.is_retryable()

    # checked on every answer too, not only when built
    backend = TorchServeBackend.for_pipeline(pipeline, server, "fraud", timeout_s=30, check=False)
    # in the pipeline, an answer from another version is not used: the batch is scored by
    # the pipeline's own model, and the failure counted
    pipeline.backend = backend
    with intra_op_threads(1):
        decided = pipeline.process(split(history.events)[1][:20])
    assert decided
    assert pipeline.stats.backend_failures == 1
    assert backend.served_version == manifest["version"] != other["version"]


def test_an_unknown_model_name_names_the_answer(history_and_model: tuple, server: str) -> None:
    _, (model, manifest) = history_and_model
    with pytest.raises(ModelBackendError, match="HTTP 404") as err:
        TorchServeBackend.for_pipeline(ScoringPipeline(model, manifest), server, "nope")
    assert f"{server}/predictions/nope" in str(err.value)


def test_the_backend_needs_the_pipelines_history(history_and_model: tuple) -> None:
    _, (model, manifest) = history_and_model
    pipeline = ScoringPipeline(model, manifest, keep_history=False)
    with pytest.raises(ModelBackendError, match="keep_history=True"):
        TorchServeBackend.for_pipeline(pipeline, "http://127.0.0.1:1", "fraud")


def test_the_settings_wire_the_torchserve_backend(
    model_dir: Path, server: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        model_backend="torchserve",
        torchserve_url=server,
        torchserve_model="fraud",
        torchserve_timeout_s=30,
        alert_outbox=False,
    )
    with scoring_pipeline(settings, model_dir) as pipeline:
        assert isinstance(pipeline.backend, TorchServeBackend)
        assert pipeline.backend.served_version == pipeline.version
    with (
        pytest.raises(ModelBackendError, match="keep_history=True"),
        scoring_pipeline(settings, model_dir, keep_history=False),
    ):
        pass
    with scoring_pipeline(Settings(data_dir=tmp_path, alert_outbox=False), model_dir) as p:
        assert p.backend is None


def test_a_failing_torchserve_falls_back_to_the_same_model_in_process(
    history_and_model: tuple,
) -> None:
    _, (model, manifest) = history_and_model
    warm, events, expected = decided_in_process(history_and_model)
    with intra_op_threads(1):
        remote = ScoringPipeline(model, manifest)
        remote.warm(warm)
        # TorchServe went away after the start-up check: nothing listens on this port
        remote.backend = TorchServeBackend(
            f"http://127.0.0.1:{free_port()}",
            "fraud",
            remote.history,
            timeout_s=2,
            expected_version=manifest["version"],
            check=False,
        )
        got, batches = in_batches(remote, events)
    assert remote.stats.backend_failures == batches > 0
    assert [(d.txn_id, d.score, d.decision) for d in got] == [
        (d.txn_id, d.score, d.decision) for d in expected
    ]
