"""The model's three inference paths give the same scores; the model's shape and repr."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn import sums
from gnn.data import History
from gnn.features import FeatureState
from gnn.model import FraudSAGE
from gnn.online import HistoryGraph, OnlineState, dense_inputs, prefix_means
from gnn.scoring import Scorer
from tests.gnn.conftest import assert_build_current, from_source


@pytest.fixture(scope="module")
def rows(small_history: History) -> list:
    return FeatureState().observe_all(small_history.events)


def scaled_model(rows: list, seed: int = 0) -> FraudSAGE:
    torch.manual_seed(seed)
    model = FraudSAGE(hidden=32)
    d = dense_inputs(rows)
    x = torch.from_numpy(d.x)
    ex = torch.from_numpy(d.entity_x).reshape(-1, d.entity_x.shape[-1])
    model.set_scaling(x.mean(0), x.std(0), ex.mean(0), ex.std(0))
    # a random model scores everything alike; spread the head so the check means something
    with torch.no_grad():
        for p in model.head.parameters():
            p.mul_(8)
    return model.eval()


def test_incremental_and_full_subgraph_scores_agree(rows: list, small_history: History) -> None:
    model = scaled_model(rows)
    d = dense_inputs(rows)
    with torch.no_grad():
        dense = torch.sigmoid(model.forward_dense(*d.tensors())).numpy()
    assert dense.std() > 0.05  # scores spread out: agreement below is not trivial

    # incremental: events one by one, per-entity running sums, micro-batches of 64
    scorer = Scorer(model, block=0.9, review=0.5, batch=64)
    online = np.array([s.score for s in scorer.score_events(small_history.events)])
    np.testing.assert_allclose(online, dense, atol=1e-5, rtol=0)

    # full subgraph: message passing over each transaction's entities and their history
    graph = HistoryGraph(rows)
    picks = list(range(0, len(rows), 7))
    with torch.no_grad():
        full = torch.sigmoid(model(graph.subgraph(picks))).numpy()
    np.testing.assert_allclose(full, dense[picks], atol=1e-5, rtol=0)
    # one at a time too (each target alone in its subgraph)
    for p in picks[:: max(1, len(picks) // 20)]:
        with torch.no_grad():
            one = torch.sigmoid(model(graph.subgraph([p]))).item()
        assert abs(one - dense[p]) < 1e-5


def test_online_state_matches_the_vectorised_history(rows: list) -> None:
    d = dense_inputs(rows)
    state = OnlineState()
    for i, row in enumerate(rows):
        mean, count = state.inputs(row)
        state.add(row)
        np.testing.assert_allclose(mean, d.nb_mean[i], atol=1e-5)
        np.testing.assert_array_equal(count, d.nb_count[i])
    assert d.nb_count.max() > 20  # some entities have a long history


def test_folding_a_batch_gives_the_row_by_row_numbers_bit_for_bit(rows: list) -> None:
    one = OnlineState()
    want = []
    for row in rows:
        want.append(one.inputs(row))
        one.add(row)
    for size in (1, 7, 256):
        state = OnlineState()
        means, counts = [], []
        for start in range(0, len(rows), size):
            mean, count = state.fold(rows[start : start + size])
            means.append(mean)
            counts.append(count)
        np.testing.assert_array_equal(np.concatenate(means), np.stack([m for m, _ in want]))
        np.testing.assert_array_equal(np.concatenate(counts), np.stack([c for _, c in want]))
        assert len(state) == len(one)
    repeats = sum(  # batches of 256 do read entities their own earlier rows added to
        len({r.entities[0] for r in rows[i : i + 256]}) < len(rows[i : i + 256])
        for i in range(0, len(rows), 256)
    )
    assert repeats > 0


def test_the_compiled_entity_sums_are_current_and_give_the_same_bits(rows: list) -> None:
    assert_build_current(sums)
    source = from_source(sums)
    assert not source.compiled()
    fast, slow = sums.OnlineState(), source.OnlineState()
    for start in range(0, len(rows), 50):
        a, b = fast.fold(rows[start : start + 50]), slow.fold(rows[start : start + 50])
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert len(fast) == len(slow) > 100
    assert fast.transactions == slow.transactions == len(rows)


def test_prefix_means_match_a_direct_computation() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    src = rng.integers(-1, 12, size=300)
    qry = rng.integers(-1, 12, size=300)
    mean, count = prefix_means(x, src, qry)
    for t in range(300):
        past = [u for u in range(t) if src[u] == qry[t] and qry[t] >= 0]
        assert count[t] == len(past)
        want = x[past].mean(axis=0) if past else np.zeros(3)
        np.testing.assert_allclose(mean[t], want, atol=1e-5)


def test_the_model_says_what_it_is() -> None:
    assert repr(FraudSAGE(hidden=16)).startswith("FraudSAGE(txn=")
    assert len(FraudSAGE.edge_types()) == 12
    with pytest.raises(ValueError, match="review"):
        Scorer(FraudSAGE(), block=0.5, review=0.9)


def test_the_fused_scoring_path_is_forward_dense(rows: list) -> None:
    model = scaled_model(rows, seed=3)
    d = dense_inputs(rows)
    x, ex, has, nb, cnt = d.tensors()
    # every branch is used: absent entities, entities with and without past transactions
    assert (has == 0).any()
    assert (cnt == 0).any()
    assert (cnt > 0).any()
    fused = model.fused()
    with torch.no_grad():
        want = torch.sigmoid(model.forward_dense(x, ex, has, nb, cnt))
        got = torch.sigmoid(fused(x, ex, has, nb, cnt))
    assert want.std() > 0.05
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=0)  # as the paths above
    # the same input gradients (explanations rank inputs by them)
    grads = []
    for run in (model.forward_dense, fused):
        xi, exi, nbi = (t[:300].clone().requires_grad_(True) for t in (x, ex, nb))
        run(xi, exi, has[:300], nbi, cnt[:300]).sum().backward()
        grads.append([t.grad for t in (xi, exi, nbi)])
    for a, b in zip(*grads, strict=True):
        assert a is not None
        assert b is not None
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5, rtol=1e-4)
    # one row alone gives its score in the batch
    with torch.no_grad():
        one = torch.sigmoid(fused(x[5:6], ex[5:6], has[5:6], nb[5:6], cnt[5:6]))
    assert abs(one.item() - want[5].item()) < 1e-5


def test_the_fused_path_refuses_a_model_in_training() -> None:
    with pytest.raises(ValueError, match="training mode"):
        FraudSAGE(hidden=8).train().fused()
