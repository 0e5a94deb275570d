"""TorchServe scores posted subgraphs exactly as the in-process scorer does.

A small model is trained, packed into a ``.mar`` (what ``make torchserve-archive`` runs), served
by a real TorchServe (Java frontend, Python worker) and sent subgraphs of 30 transactions; the
scores must equal ``sigmoid(forward_dense)`` over the same rows to 1e-5.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gnn import registry
from gnn.data import load_history
from gnn.model import FraudSAGE
from gnn.online import HistoryGraph, dense_inputs
from gnn.serving_payload import PayloadError, from_payload, merge, to_payload
from gnn.torchserve_handler import VERSION_HEADER, FraudSAGEHandler
from gnn.train import TrainConfig, prepare, train
from ingest.generator import generate
from tests.services.torchserve import TorchServeServer, archive

PER_REQUEST = 30


@dataclass
class Trained:
    version_dir: Path
    model: FraudSAGE
    graph: HistoryGraph
    dense: np.ndarray  # in-process scores of every row


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("torchserve-model")
    generate(root / "data", seed=8, days=7, accounts=300)
    version_dir = train(
        root / "data", root / "models", seed=0, config=TrainConfig(epochs=2), baselines=False
    )
    model, _ = registry.load(version_dir)
    rows = prepare(load_history(root / "data")).rows
    with torch.no_grad():
        dense = torch.sigmoid(model.forward_dense(*dense_inputs(rows).tensors())).numpy()
    assert dense.std() > 0.01  # scores differ: agreement below means something
    return Trained(version_dir, model, HistoryGraph(rows), dense)


def picks(trained: Trained, start: int) -> list[int]:
    n = len(trained.graph.rows)
    step = max(1, (n - start) // PER_REQUEST)
    return list(range(start, n, step))[:PER_REQUEST]


def assert_scores(trained: Trained, answer: list[dict[str, Any]], positions: list[int]) -> None:
    assert [a["txn_id"] for a in answer] == [trained.graph.rows[p].txn_id for p in positions]
    got = np.array([a["score"] for a in answer])
    np.testing.assert_allclose(got, trained.dense[positions], atol=1e-5, rtol=0)


# -- the payload, in process -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["list", "base64"])
def test_a_payload_round_trips_exactly(trained: Trained, encoding: str) -> None:
    sg = trained.graph.subgraph(picks(trained, 3))
    back = from_payload(json.loads(json.dumps(to_payload(sg, encoding))))  # type: ignore[arg-type]
    for kind in sg.node_types:
        assert torch.equal(back[kind].x, sg[kind].x)
    for et in FraudSAGE.edge_types():
        assert torch.equal(back[et].edge_index, sg[et].edge_index)
    assert back["txn"].txn_id == sg["txn"].txn_id
    with torch.no_grad():
        assert torch.equal(trained.model(back), trained.model(sg))


def test_merged_subgraphs_score_as_they_do_alone(trained: Trained) -> None:
    a, b = picks(trained, 0), picks(trained, 11)
    data, sizes = merge([trained.graph.subgraph(a), trained.graph.subgraph(b)])
    assert sizes == [len(a), len(b)]
    with torch.no_grad():
        got = torch.sigmoid(trained.model(data)).numpy()
    np.testing.assert_allclose(got, trained.dense[a + b], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(format="other/9"), "format"),
        (lambda p: p["nodes"].update(bank={"x": []}), "unknown node types"),
        (lambda p: p["nodes"]["txn"].update(x=[[1.0, 2.0]]), "expected"),
        (lambda p: p.update(target=[10**6]), "outside"),
        (lambda p: p["edges"].append({"type": ["txn", "to", "card"], "index": []}), "edge type"),
        (lambda p: p["edges"][0].update(index=[[0], [10**6]]), "outside"),
        (lambda p: p["nodes"]["card"]["x"].update(base64="!!"), "base64"),
    ],
)
def test_a_malformed_payload_is_refused(trained: Trained, change: Any, message: str) -> None:
    payload = to_payload(trained.graph.subgraph(picks(trained, 5)))
    change(payload)
    with pytest.raises(PayloadError, match=message):
        from_payload(payload)


class FakeContext:
    def __init__(self, model_dir: Path) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        self.status: dict[int, int] = {}
        self.headers: dict[int, dict[str, str]] = {}

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = code

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.headers.setdefault(idx, {})[key] = value


def test_the_handler_scores_a_batch_of_requests(trained: Trained) -> None:
    ctx = FakeContext(trained.version_dir)
    handler = FraudSAGEHandler()
    a, b, c = picks(trained, 1), picks(trained, 2), picks(trained, 9)
    g = trained.graph
    requests = [
        {"body": json.dumps(to_payload(g.subgraph(a), "list")).encode()},
        {"body": b"{not json"},
        {"data": [to_payload(g.subgraph(b)), to_payload(g.subgraph(c))]},
    ]
    before = torch.get_num_threads()
    try:
        answers = handler.handle(requests, ctx)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert len(answers) == 3
    assert_scores(trained, answers[0], a)
    assert "not JSON" in answers[1]["error"]
    assert ctx.status == {1: 400}
    version = json.loads((trained.version_dir / "manifest.json").read_text())["version"]
    assert ctx.headers == {i: {VERSION_HEADER: version} for i in range(3)}
    assert_scores(trained, answers[2], b + c)


# -- a real TorchServe -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("torchserve")
    mar = archive(trained.version_dir, root / "store")
    assert mar.name == f"{trained.version_dir.name}.mar"
    with TorchServeServer(root / "server", mar.parent, {"fraud": mar.name}) as url:
        yield url


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/predictions/fraud",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_torchserve_scores_equal_the_in_process_scores(trained: Trained, server: str) -> None:
    g = trained.graph
    for start, encoding in [(0, "list"), (4, "base64"), (17, "base64")]:
        positions = picks(trained, start)
        began = time.perf_counter()
        status, answer = post(server, to_payload(g.subgraph(positions), encoding))  # type: ignore[arg-type]
        took = time.perf_counter() - began
        assert status == 200, answer
        assert len(answer) == PER_REQUEST
        assert_scores(trained, answer, positions)
        assert took < 10
    a, b = picks(trained, 6), picks(trained, 8)
    status, answer = post(server, [to_payload(g.subgraph(a)), to_payload(g.subgraph(b))])
    assert status == 200
    assert_scores(trained, answer, a + b)


def test_torchserve_refuses_a_malformed_subgraph(trained: Trained, server: str) -> None:
    payload = to_payload(trained.graph.subgraph(picks(trained, 5)))
    payload["target"] = [10**6]
    status, answer = post(server, payload)
    assert status == 400
    assert "outside" in json.dumps(answer)
    # and the worker still serves
    positions = picks(trained, 2)
    status, answer = post(server, to_payload(trained.graph.subgraph(positions)))
    assert status == 200
    assert_scores(trained, answer, positions)
