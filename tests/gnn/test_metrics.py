"""gnn.metrics: agreement with scikit-learn, ties at the operating point, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from gnn import metrics


def _data(seed: int, n: int = 3000, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05 + 0.1 * (seed % 3)).astype(int)
    s = rng.normal(size=n) + 1.5 * y
    if ties:
        s = np.round(s, 1)  # many ties, across the classes
    return y, s


SEEDS = [0, 1, 2, 3]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_metrics_match_sklearn(seed: int, ties: bool) -> None:
    y, s = _data(seed, ties=ties)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.pr_auc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fpr", [0.0, 0.001, 0.01, 0.1, 0.5, 1.0])
def test_recall_at_fpr_matches_sklearn_roc_curve(seed: int, ties: bool, fpr: float) -> None:
    y, s = _data(seed, ties=ties)
    fprs, tprs, thresholds = roc_curve(y, s, drop_intermediate=False)
    ok = fprs <= fpr
    expected = tprs[ok].max()
    assert metrics.recall_at_fpr(y, s, fpr) == pytest.approx(expected, abs=1e-12)
    # The threshold is the lowest sklearn threshold within the budget (its first is +inf).
    t = metrics.threshold_at_fpr(y, s, fpr)
    lowest = thresholds[ok].min()
    if math.isinf(lowest):
        assert t > s.max()
    else:
        assert t == lowest
    # And the threshold keeps its promise.
    assert np.count_nonzero((s >= t) & (y == 0)) / np.count_nonzero(y == 0) <= fpr


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_and_recall_at_threshold_match_sklearn(seed: int) -> None:
    y, s = _data(seed, ties=True)
    for t in (-1.0, 0.0, 0.5, 1.3, 2.0):
        pred = (s >= t).astype(int)
        assert metrics.precision_at(y, s, t) == pytest.approx(
            precision_score(y, pred, zero_division=0), abs=1e-12
        )
        assert metrics.recall_at(y, s, t) == pytest.approx(recall_score(y, pred), abs=1e-12)


def test_precision_at_flags_nothing_is_zero() -> None:
    assert metrics.precision_at([0, 1], [0.1, 0.2], 0.5) == 0.0


def test_recall_at_fpr_hand_made_ties() -> None:
    # Sorted by score: n(0.9) | p(0.8) | p n (0.7, tied) | p (0.6) | n n n n n n
    y = [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.7, 0.7, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    # 8 negatives. The top negative alone is 1/8 = 0.125.
    assert metrics.recall_at_fpr(y, s, 0.1) == 0.0
    assert metrics.threshold_at_fpr(y, s, 0.1) > 0.9
    # 0.125 admits thresholds 0.9 and 0.8, but not 0.7: the tie would bring a second negative.
    assert metrics.threshold_at_fpr(y, s, 0.125) == 0.8
    assert metrics.recall_at_fpr(y, s, 0.125) == pytest.approx(1 / 3)
    assert metrics.recall_at_fpr(y, s, 0.2) == pytest.approx(1 / 3)
    # 2/8 admits the tie group (and then 0.6, which adds no negative).
    assert metrics.threshold_at_fpr(y, s, 0.25) == 0.6
    assert metrics.recall_at_fpr(y, s, 0.25) == 1.0
    # The bottom tie group holds 6 negatives: all or nothing.
    assert metrics.threshold_at_fpr(y, s, 0.99) == 0.6
    assert metrics.threshold_at_fpr(y, s, 1.0) == 0.1


def test_recall_at_fpr_all_tied() -> None:
    y = [0, 1, 0, 1]
    s = [0.5, 0.5, 0.5, 0.5]
    assert metrics.recall_at_fpr(y, s, 0.5) == 0.0
    assert metrics.recall_at_fpr(y, s, 1.0) == 1.0
    assert metrics.roc_auc(y, s) == 0.5


def test_per_group_recall_and_pr_auc() -> None:
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.8, 0.7, 0.3, 0.6, 0.1, 0.4, 0.5])
    groups = ["mule", "mule", "ato", "ato", None, "", None, float("nan"), "victim"]
    rec = metrics.per_group_recall(y, s, groups, 0.55)
    assert rec == {metrics.UNGROUPED: 0.0, "ato": 1.0, "mule": 0.5}
    assert list(rec) == sorted(rec)
    aucs = metrics.per_group_pr_auc(y, s, groups)
    neg = y == 0
    for g, idx in (("mule", [0, 1]), ("ato", [2, 3]), (metrics.UNGROUPED, [4])):
        keep = neg.copy()
        keep[idx] = True
        assert aucs[g] == pytest.approx(average_precision_score(y[keep], s[keep]))


@pytest.mark.parametrize("bins", [1, 5, 10, 17])
def test_calibration_matches_sklearn(bins: int) -> None:
    rng = np.random.default_rng(7)
    p = rng.random(5000) ** 2
    p[:10] = [0.0, 1.0, 0.1, 0.2, 0.5, 0.5, 0.3, 0.9, 0.6, 0.7]  # values on the bin edges
    y = (rng.random(5000) < p).astype(int)
    cal = metrics.calibration(y, p, bins=bins)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    observed = [o for o in cal["observed"] if o is not None]
    predicted = [m for m in cal["mean_predicted"] if m is not None]
    np.testing.assert_allclose(observed, prob_true, atol=1e-12)
    np.testing.assert_allclose(predicted, prob_pred, atol=1e-12)
    assert sum(cal["counts"]) == 5000
    assert len(cal["edges"]) == bins + 1
    json.dumps(cal)  # JSON-ready


def test_calibration_ece_small_when_calibrated_large_when_not() -> None:
    rng = np.random.default_rng(11)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert metrics.calibration(y, p)["ece"] < 0.01
    overconfident = np.sqrt(p)  # says more than it knows
    assert metrics.calibration(y, overconfident)["ece"] > 0.1
    y_rare = (rng.random(p.size) < p**4).astype(int)
    assert metrics.calibration(y_rare, p)["ece"] > 0.2


def test_calibration_empty_bins_are_none() -> None:
    cal = metrics.calibration([0, 1], [0.05, 0.95], bins=10)
    assert cal["counts"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert cal["observed"][1] is None
    assert cal["mean_predicted"][1] is None
    assert cal["ece"] == pytest.approx(0.05)


def test_choose_threshold_rules() -> None:
    y, s = _data(5, n=5000)
    t = metrics.choose_threshold(y, s, target_fpr=0.01)
    assert t == metrics.threshold_at_fpr(y, s, 0.01)
    neg = y == 0
    assert np.count_nonzero(s[neg] >= t) / neg.sum() <= 0.01
    # Lowest threshold meeting the precision floor: nothing lower meets it.
    t = metrics.choose_threshold(y, s, min_precision=0.5)
    assert metrics.precision_at(y, s, t) >= 0.5
    lower = np.unique(s[s < t])
    assert all(metrics.precision_at(y, s, u) < 0.5 for u in lower[-200:])
    # Both: the stricter one wins.
    both = metrics.choose_threshold(y, s, target_fpr=0.05, min_precision=0.5)
    assert both >= metrics.choose_threshold(y, s, target_fpr=0.05)
    assert both >= t
    # Unreachable: block nothing.
    never = metrics.choose_threshold(y, s, min_precision=1.0, target_fpr=0.0)
    top_is_fraud = y[np.argmax(s)] == 1
    assert (never <= s.max()) == bool(top_is_fraud)
    assert metrics.choose_threshold([1, 0], [0.2, 0.9], min_precision=0.9) > 0.9


def test_summary_keys_and_values() -> None:
    y, s = _data(2)
    rng = np.random.default_rng(2)
    typ = np.where(y == 1, rng.choice(["mule_network", "account_takeover"], y.size), "")
    t = metrics.choose_threshold(y, s, target_fpr=0.02)
    out = metrics.summary(y, s, threshold=t, typologies=typ)
    assert out["positives"] == int(y.sum())
    assert out["negatives"] == int((y == 0).sum())
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert out["recall_at_0.1%_fpr"] == metrics.recall_at_fpr(y, s, 0.001)
    assert out["recall_at_1%_fpr"] == metrics.recall_at_fpr(y, s, 0.01)
    assert out["precision_at_threshold"] == metrics.precision_at(y, s, t)
    assert out["recall_at_threshold"] == metrics.recall_at(y, s, t)
    assert out["fpr_at_threshold"] <= 0.02
    assert out["ece"] is None  # scores are not probabilities
    assert set(out["typologies"]) == {"account_takeover", "mule_network"}
    recalls = metrics.per_group_recall(y, s, typ, t)
    aucs = metrics.per_group_pr_auc(y, s, typ)
    for name, row in out["typologies"].items():
        assert row["positives"] == int(np.count_nonzero(typ == name))
        assert row["recall_at_threshold"] == recalls[name]
        assert row["pr_auc"] == pytest.approx(aucs[name], abs=1e-12)
    json.dumps(out, allow_nan=False)

    probs = 1 / (1 + np.exp(-s))
    plain = metrics.summary(y.astype(bool), list(probs), threshold=0.8)
    assert plain["typologies"] == {}
    assert plain["ece"] == metrics.calibration(y, probs)["ece"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.roc_auc([0, 1, 1], [0.1, 0.2]), r"^s has 2 values but y has 3"),
        (lambda: metrics.roc_auc([0, 2], [0.1, 0.2]), r"^y must hold 0/1 labels, found 2"),
        (lambda: metrics.roc_auc(["a", "b"], [0.1, 0.2]), r"^y must hold 0/1 labels"),
        (lambda: metrics.roc_auc([0, 1], [0.1, float("nan")]), r"^s holds non-finite"),
        (lambda: metrics.roc_auc([0, 1], ["x", "y"]), r"^s must be numeric"),
        (lambda: metrics.roc_auc([[0, 1]], [[0.1, 0.2]]), r"^y must be 1-D"),
        (lambda: metrics.roc_auc([], []), r"^y is empty"),
        (lambda: metrics.roc_auc([0, 0], [0.1, 0.2]), r"^y has no positive"),
        (lambda: metrics.roc_auc([1, 1], [0.1, 0.2]), r"^y has no negative"),
        (lambda: metrics.pr_auc([0, 0], [0.1, 0.2]), r"^y has no positive"),
        (lambda: metrics.recall_at_fpr([0, 1], [0.1, 0.2], 1.5), r"^fpr must be in \[0, 1\]"),
        (lambda: metrics.recall_at_fpr([0, 1], [0.1, 0.2], None), r"^fpr must be a number"),
        (lambda: metrics.recall_at([0, 0], [0.1, 0.2], 0.1), r"^y has no positive"),
        (lambda: metrics.precision_at([0, 1], [0.1, 0.2], math.inf), r"^threshold must be"),
        (lambda: metrics.per_group_recall([0, 1], [0.1, 0.2], ["a"], 0.1), r"^groups has 1"),
        (lambda: metrics.calibration([0, 1], [0.1, 1.2]), r"^s must be probabilities"),
        (lambda: metrics.calibration([0, 1], [0.1, 0.2], bins=0), r"^bins must be"),
        (lambda: metrics.choose_threshold([0, 1], [0.1, 0.2]), r"target_fpr or min_precision"),
        (
            lambda: metrics.choose_threshold([0, 0], [0.1, 0.2], target_fpr=0.1),
            r"^y_val has no positive",
        ),
        (
            lambda: metrics.choose_threshold([0, 1], [0.1], target_fpr=0.1),
            r"^s_val has 1 values but y_val has 2",
        ),
        (
            lambda: metrics.choose_threshold([0, 1], [0.1, 0.2], min_precision=2),
            r"^min_precision must be in",
        ),
        (lambda: metrics.summary([0, 1], [0.1, 0.2], threshold=None), r"^threshold must be"),
        (
            lambda: metrics.summary([0, 1], [0.1, 0.2], threshold=0.1, typologies=["a"]),
            r"^typologies has 1 values but y has 2",
        ),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_bool_labels_and_lists_accepted() -> None:
    assert metrics.roc_auc([False, True, True], [0.1, 0.9, 0.3]) == 1.0
    assert metrics.roc_auc(np.array([0.0, 1.0]), (0.2, 0.1)) == 0.0
