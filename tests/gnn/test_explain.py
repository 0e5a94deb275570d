"""Explanations: faithful to the model, complete, in plain words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnn import registry
from gnn.data import load_history
from gnn.explain import Explainer, faithfulness
from gnn.online import HistoryGraph
from gnn.train import Prepared, TrainConfig, predict, prepare, train


@pytest.fixture(scope="module")
def setup(medium_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    prep = prepare(load_history(medium_data))
    out = tmp_path_factory.mktemp("explain-models")
    folder = train(
        medium_data,
        out,
        seed=1,
        config=TrainConfig(epochs=3),
        baselines=False,
        prepared=prep,
    )
    model, manifest = registry.load(folder)
    scores = predict(model, prep.inputs)
    return prep, model, manifest, scores


def flagged(prep: Prepared, scores: np.ndarray, manifest: dict) -> np.ndarray:
    return np.flatnonzero((scores >= manifest["thresholds"]["review"]) & (prep.y == 1))


def test_an_explanation_names_features_neighbours_and_reasons(setup: tuple) -> None:
    prep, model, manifest, scores = setup
    graph = HistoryGraph(prep.rows)
    explainer = Explainer(model, graph, ring_of=prep.state.ring_of)
    picks = flagged(prep, scores, manifest)
    assert len(picks) >= 20
    for pos in picks[:: max(1, len(picks) // 5)]:
        e = explainer.explain(int(pos))
        row = prep.rows[pos]
        assert e.txn_id == row.txn_id
        assert abs(e.score - scores[pos]) < 1e-5
        assert e.reasons
        assert all(isinstance(r, str) and r for r in e.reasons)
        present = {x for x in row.entities if x is not None}
        assert {n["id"] for n in e.neighbours} <= present
        assert e.features
        assert e.seconds > 0


def test_feature_attributions_add_up_to_the_logit_change(setup: tuple) -> None:
    prep, model, manifest, scores = setup
    graph = HistoryGraph(prep.rows)
    explainer = Explainer(model, graph, steps=64)
    pos = int(flagged(prep, scores, manifest)[0])
    _, rows = explainer.feature_attributions(pos)
    d = graph.dense_at(pos)
    x, ex, has, nb, cnt = d.tensors()
    with torch.no_grad():
        logit = float(model.forward_dense(x, ex, has, nb, cnt)[0])
        base = float(
            model.forward_dense(
                model.txn_mean.expand_as(x),
                model.ent_mean.expand_as(ex),
                has,
                model.txn_mean.expand_as(nb),
                cnt,
            )[0]
        )
    total = sum(r["attribution"] for r in rows)
    assert abs(total - (logit - base)) < 0.05 * abs(logit - base) + 0.05


def test_removing_the_top_edges_lowers_the_score_more_than_random_ones(setup: tuple) -> None:
    prep, model, manifest, scores = setup
    explainer = Explainer(model, HistoryGraph(prep.rows))
    picks = [int(p) for p in flagged(prep, scores, manifest)[:40]]
    got = faithfulness(explainer, picks, k=3)
    assert got["transactions"] >= 20
    assert got["mean_drop_top"] > 2 * got["mean_drop_random"]
    assert got["top_beats_random"] > 0.7 * got["transactions"]
