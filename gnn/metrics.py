"""Scores for a fraud detector on a labelled period: ranking, operating point, calibration.

Every function takes the labels ``y`` (0 honest, 1 fraud; booleans are fine) and the scores
``s`` (higher means more suspicious) as 1-D array-likes of one length, and returns plain Python
floats, ints, lists and dicts, ready for JSON. Bad input raises :class:`ValueError` naming the
argument: different lengths, labels other than 0/1, scores that are not finite, no positive or
no negative where the metric needs both.

A *threshold* ``t`` flags every sample with ``s >= t``; samples tied at ``t`` are all flagged or
all not, so the operating points of a score are exactly its distinct values (plus one just above
the highest score, which flags nothing). ROC-AUC and PR-AUC (average precision) agree with
:func:`sklearn.metrics.roc_auc_score` and :func:`sklearn.metrics.average_precision_score`.

>>> y = [0, 0, 1, 0, 1, 1]
>>> s = [0.1, 0.4, 0.35, 0.2, 0.8, 0.9]
>>> round(roc_auc(y, s), 4), round(pr_auc(y, s), 4)
(0.8889, 0.9167)
>>> threshold_at_fpr(y, s, 0.0), recall_at_fpr(y, s, 0.0)
(0.8, 0.6666666666666666)
>>> precision_at(y, s, 0.35), recall_at(y, s, 0.35)
(0.75, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "UNGROUPED",
    "calibration",
    "choose_threshold",
    "operating_points",
    "per_group_pr_auc",
    "per_group_recall",
    "pr_auc",
    "precision_at",
    "recall_at",
    "recall_at_fpr",
    "roc_auc",
    "summary",
    "threshold_at_fpr",
]

UNGROUPED = "(none)"
"""The group of a positive whose group is empty (``''``, ``None`` or NaN)."""

_Labels = NDArray[np.int8]
_Scores = NDArray[np.float64]


# --- validation ---------------------------------------------------------------------------


def _labels(y: ArrayLike, name: str) -> _Labels:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype == np.bool_:
        return arr.astype(np.int8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        raise ValueError(f"{name} must hold 0/1 labels, found {arr[bad][0].item()!r}")
    return arr.astype(np.int8)


def _scores(s: ArrayLike, name: str, n: int, y_name: str) -> _Scores:
    try:
        arr = np.asarray(s, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} values but {y_name} has {n}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values (NaN or infinity)")
    return arr


def _check(
    y: ArrayLike,
    s: ArrayLike,
    *,
    positives: bool = True,
    negatives: bool = True,
    names: tuple[str, str] = ("y", "s"),
) -> tuple[_Labels, _Scores]:
    """Validated labels and scores; ``positives``/``negatives``: whether one of each is needed."""
    y_name, s_name = names
    ya = _labels(y, y_name)
    sa = _scores(s, s_name, ya.size, y_name)
    n_pos = int(ya.sum())
    if positives and n_pos == 0:
        raise ValueError(f"{y_name} has no positive (label 1); this metric needs one")
    if negatives and n_pos == ya.size:
        raise ValueError(f"{y_name} has no negative (label 0); this metric needs one")
    return ya, sa


def _threshold(threshold: float, name: str = "threshold") -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {threshold!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"{name} must be finite, got {t}")
    return t


def _rate(value: float, name: str) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {r}")
    return r


def _group_names(groups: NDArray[np.str_]) -> NDArray[np.str_]:
    """Group names with the empty one replaced by :data:`UNGROUPED`."""
    return np.where(groups == "", UNGROUPED, groups)


def _groups(
    groups: ArrayLike | Sequence[str | None], n: int, name: str = "groups"
) -> NDArray[np.str_]:
    """Group names as strings; ``None``, NaN and ``''`` all become ``''``."""
    arr = np.asarray(groups, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} values but y has {n}")
    out = ["" if g is None or (isinstance(g, float) and math.isnan(g)) else str(g) for g in arr]
    return np.asarray(out, dtype=np.str_)


# --- operating points ---------------------------------------------------------------------


def _points(y: _Labels, s: _Scores) -> tuple[_Scores, NDArray[np.int64], NDArray[np.int64]]:
    """Distinct thresholds (descending) and the positives and negatives each one flags."""
    order = np.argsort(-s, kind="stable")
    return _sorted_points(y[order], s[order])


def _sorted_points(
    ys: _Labels, ss: _Scores
) -> tuple[_Scores, NDArray[np.int64], NDArray[np.int64]]:
    """As :func:`_points`, for samples already sorted by descending score."""
    last = np.r_[np.flatnonzero(np.diff(ss)), ss.size - 1]  # last index of each tie group
    tp = np.cumsum(ys, dtype=np.int64)[last]
    fp = (last + 1) - tp
    return ss[last], tp, fp


def _above(s: _Scores) -> float:
    """A threshold just above every score: it flags nothing."""
    return float(np.nextafter(s.max(), np.inf))


def operating_points(
    y: ArrayLike, s: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Every operating point of a score, for curves: the arrays behind the metrics here.

    Args:
        y: Labels, 0/1.
        s: Scores.

    Returns:
        ``(thresholds, tp, fp)``: the distinct scores from the highest down, and how many
        positives and negatives each one flags (``s >= threshold``), both non-decreasing.

    Raises:
        ValueError: On bad input.

    >>> t, tp, fp = operating_points([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5])
    >>> t.tolist(), tp.tolist(), fp.tolist()
    ([0.9, 0.5, 0.1], [1, 2, 2], [0, 1, 2])
    """
    ya, sa = _check(y, s, positives=False, negatives=False)
    return _points(ya, sa)


# --- ranking metrics ----------------------------------------------------------------------


def roc_auc(y: ArrayLike, s: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half), as :func:`sklearn.metrics.roc_auc_score`.

    Args:
        y: Labels, 0/1.
        s: Scores, higher means more suspicious.

    Returns:
        The probability that a random fraud scores above a random honest sample.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive or a negative.

    >>> roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5])
    0.875
    """
    ya, sa = _check(y, s)
    _, tp, fp = _points(ya, sa)
    return _roc_auc(tp, fp)


def _roc_auc(tp: NDArray[np.int64], fp: NDArray[np.int64]) -> float:
    return float(np.trapezoid(np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]))


def pr_auc(y: ArrayLike, s: ArrayLike) -> float:
    """Average precision, as :func:`sklearn.metrics.average_precision_score`.

    The sum over the distinct thresholds, from the highest, of the precision there times the
    recall gained there (no interpolation).

    Args:
        y: Labels, 0/1.
        s: Scores.

    Returns:
        The average precision; a random score gets about the share of positives.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive.

    >>> pr_auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5])
    0.8333333333333333
    """
    ya, sa = _check(y, s, negatives=False)
    _, tp, fp = _points(ya, sa)
    return _average_precision(tp, fp)


def _average_precision(tp: NDArray[np.int64], fp: NDArray[np.int64]) -> float:
    gained = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(gained * (tp / (tp + fp))))


# --- operating point ----------------------------------------------------------------------


def threshold_at_fpr(y: ArrayLike, s: ArrayLike, fpr: float) -> float:
    """The lowest threshold whose false-positive rate is at most ``fpr``.

    The thresholds tried are the distinct scores: a threshold flags every sample scoring at or
    above it, ties included. The false-positive rate only grows as the threshold falls, so this
    is the operating point with the most recall within the budget. When even the highest score
    flags too many negatives, the result is just above the highest score (it flags nothing).

    Args:
        y: Labels, 0/1.
        s: Scores.
        fpr: The largest share of negatives that may be flagged, in [0, 1].

    Returns:
        The threshold, one of the scores or just above the highest.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive or a negative.

    >>> threshold_at_fpr([0, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5, 0.1], 0.34)
    0.8
    >>> threshold_at_fpr([0, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5, 0.1], 0.7)
    0.5
    """
    ya, sa = _check(y, s)
    thresholds, _, fp = _points(ya, sa)
    return _threshold_at_fpr(thresholds, fp, _rate(fpr, "fpr"))


def _threshold_at_fpr(thresholds: _Scores, fp: NDArray[np.int64], budget: float) -> float:
    # fp only grows as the threshold falls, so the admissible points are a prefix.
    k = int(np.count_nonzero(fp / fp[-1] <= budget))
    return float(np.nextafter(thresholds[0], np.inf)) if k == 0 else float(thresholds[k - 1])


def recall_at_fpr(y: ArrayLike, s: ArrayLike, fpr: float) -> float:
    """The recall at :func:`threshold_at_fpr`: the most recall with at most ``fpr`` false alarms.

    Ties are never split: a score shared by a fraud and an honest sample flags both or neither.

    Args:
        y: Labels, 0/1.
        s: Scores.
        fpr: The largest share of negatives that may be flagged, in [0, 1].

    Returns:
        The share of positives flagged.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive or a negative.

    >>> recall_at_fpr([0, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5, 0.1], 0.34)
    0.5
    >>> recall_at_fpr([0, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5, 0.1], 0.6)
    0.5
    """
    ya, sa = _check(y, s)
    return _recall(ya, sa, threshold_at_fpr(ya, sa, fpr))


def _recall(y: _Labels, s: _Scores, t: float) -> float:
    return float(np.count_nonzero((s >= t) & (y == 1)) / np.count_nonzero(y))


def _precision(y: _Labels, s: _Scores, t: float) -> float:
    flagged = s >= t
    n = int(np.count_nonzero(flagged))
    return float(np.count_nonzero(flagged & (y == 1)) / n) if n else 0.0


def precision_at(y: ArrayLike, s: ArrayLike, threshold: float) -> float:
    """The share of frauds among the samples flagged at ``threshold`` (``s >= threshold``).

    Args:
        y: Labels, 0/1.
        s: Scores.
        threshold: The blocking threshold.

    Returns:
        The precision; 0.0 when nothing is flagged (as scikit-learn with ``zero_division=0``).

    Raises:
        ValueError: On bad input.

    >>> precision_at([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5], 0.5)
    0.6666666666666666
    """
    ya, sa = _check(y, s, positives=False, negatives=False)
    return _precision(ya, sa, _threshold(threshold))


def recall_at(y: ArrayLike, s: ArrayLike, threshold: float) -> float:
    """The share of frauds flagged at ``threshold`` (``s >= threshold``).

    Args:
        y: Labels, 0/1.
        s: Scores.
        threshold: The blocking threshold.

    Returns:
        The recall.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive.

    >>> recall_at([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.4], 0.5)
    0.5
    """
    ya, sa = _check(y, s, negatives=False)
    return _recall(ya, sa, _threshold(threshold))


def per_group_recall(
    y: ArrayLike, s: ArrayLike, groups: ArrayLike | Sequence[str | None], threshold: float
) -> dict[str, float]:
    """The recall at ``threshold`` among the positives of each group (e.g. fraud typology).

    Negatives take no part whatever their group (normally ``''`` or ``None``). A positive with
    an empty group is counted under :data:`UNGROUPED`.

    Args:
        y: Labels, 0/1.
        s: Scores.
        groups: One group name per sample.
        threshold: The blocking threshold.

    Returns:
        Group name to recall, sorted by name; only groups with a positive appear.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive.

    >>> per_group_recall([1, 1, 1, 0], [0.9, 0.2, 0.7, 0.8], ["mule", "mule", "ato", ""], 0.5)
    {'ato': 1.0, 'mule': 0.5}
    """
    ya, sa = _check(y, s, negatives=False)
    t = _threshold(threshold)
    ga = _groups(groups, ya.size)
    pos = ya == 1
    hit = pos & (sa >= t)
    names = _group_names(ga)
    return {
        str(g): float(np.count_nonzero(hit & (names == g)) / np.count_nonzero(pos & (names == g)))
        for g in np.unique(names[pos])
    }


def per_group_pr_auc(
    y: ArrayLike, s: ArrayLike, groups: ArrayLike | Sequence[str | None]
) -> dict[str, float]:
    """The PR-AUC of each group's positives against all the negatives.

    The positives of the other groups are left out, so each figure reads as "how well this kind
    of fraud stands out from honest traffic". Positives with an empty group form
    :data:`UNGROUPED`.

    Args:
        y: Labels, 0/1.
        s: Scores.
        groups: One group name per sample.

    Returns:
        Group name to average precision, sorted by name; only groups with a positive appear.

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive or a negative.

    >>> per_group_pr_auc([1, 1, 0, 0], [0.9, 0.3, 0.5, 0.1], ["mule", "ato", "", ""])
    {'ato': 0.5, 'mule': 1.0}
    """
    ya, sa = _check(y, s)
    ga = _groups(groups, ya.size)
    pos = ya == 1
    neg = ~pos
    names = _group_names(ga)
    out: dict[str, float] = {}
    for g in np.unique(names[pos]):
        keep = neg | (pos & (names == g))
        out[str(g)] = pr_auc(ya[keep], sa[keep])
    return out


# --- calibration --------------------------------------------------------------------------


def calibration(y: ArrayLike, s: ArrayLike, bins: int = 10) -> dict[str, Any]:
    """Mean predicted probability against the observed fraud rate, per score bin.

    The bins split [0, 1] into ``bins`` equal widths, closed on the right (the first also holds
    0), as :func:`sklearn.calibration.calibration_curve` with ``strategy="uniform"``. The
    expected calibration error (ECE) is the sample-weighted mean of ``|observed - predicted|``
    over the bins.

    Args:
        y: Labels, 0/1.
        s: Predicted probabilities of fraud, in [0, 1].
        bins: The number of bins, at least 1.

    Returns:
        ``{"edges": [bins + 1 floats], "mean_predicted": [...], "observed": [...],
        "counts": [...], "ece": float}``; the mean and observed rate of an empty bin are None.

    Raises:
        ValueError: On bad input, a score outside [0, 1], or ``bins`` below 1.

    >>> cal = calibration([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8], bins=2)
    >>> cal["mean_predicted"], cal["observed"], cal["counts"], round(cal["ece"], 4)
    ([0.2, 0.7], [0.0, 1.0], [2, 2], 0.25)
    """
    ya, sa = _check(y, s, positives=False, negatives=False)
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    if sa.min() < 0.0 or sa.max() > 1.0:
        raise ValueError("s must be probabilities in [0, 1] for calibration")
    nb = int(bins)
    edges = np.linspace(0.0, 1.0, nb + 1)
    ids = np.searchsorted(edges[1:-1], sa)
    counts = np.bincount(ids, minlength=nb)
    sums = np.bincount(ids, weights=sa, minlength=nb)
    trues = np.bincount(ids, weights=ya, minlength=nb)
    full = counts > 0
    pred = np.divide(sums, counts, out=np.zeros(nb), where=full)
    obs = np.divide(trues, counts, out=np.zeros(nb), where=full)
    ece = float(np.sum(counts * np.abs(obs - pred)) / ya.size)
    return {
        "edges": [float(e) for e in edges],
        "mean_predicted": [float(p) if f else None for p, f in zip(pred, full, strict=True)],
        "observed": [float(o) if f else None for o, f in zip(obs, full, strict=True)],
        "counts": [int(c) for c in counts],
        "ece": ece,
    }


def _is_probability(s: _Scores) -> bool:
    return bool(s.min() >= 0.0 and s.max() <= 1.0)


# --- choosing and summarising -------------------------------------------------------------


def choose_threshold(
    y_val: ArrayLike,
    s_val: ArrayLike,
    *,
    target_fpr: float | None = None,
    min_precision: float | None = None,
) -> float:
    """Pick a blocking threshold on a validation set.

    The rule: among the distinct validation scores, take the **lowest** threshold (so the most
    recall) that meets every constraint given:

    * ``target_fpr``: at most this share of the validation negatives is flagged;
    * ``min_precision``: at least this share of the flagged validation samples is fraud.

    The false-positive rate falls as the threshold rises, but precision need not rise, so the
    chosen threshold is the lowest one meeting both, not the first from the top. When no score
    meets them, the threshold is just above the highest validation score: block nothing rather
    than break the promise.

    Args:
        y_val: Validation labels, 0/1.
        s_val: Validation scores.
        target_fpr: The largest false-positive rate allowed, in [0, 1].
        min_precision: The smallest precision allowed, in [0, 1].

    Returns:
        The threshold; flag a sample when its score is at or above it.

    Raises:
        ValueError: On bad input, when ``y_val`` lacks a positive or a negative, or when neither
            ``target_fpr`` nor ``min_precision`` is given.

    >>> y = [1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    >>> s = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    >>> choose_threshold(y, s, target_fpr=0.15)
    0.8
    >>> choose_threshold(y, s, min_precision=0.8)
    0.9
    >>> choose_threshold(y, s, target_fpr=0.3, min_precision=0.6)
    0.7
    """
    if target_fpr is None and min_precision is None:
        raise ValueError("give target_fpr or min_precision (or both)")
    ya, sa = _check(y_val, s_val, names=("y_val", "s_val"))
    thresholds, tp, fp = _points(ya, sa)
    ok = np.ones(thresholds.size, dtype=bool)
    if target_fpr is not None:
        ok &= fp / fp[-1] <= _rate(target_fpr, "target_fpr")
    if min_precision is not None:
        ok &= tp / (tp + fp) >= _rate(min_precision, "min_precision")
    hits = np.flatnonzero(ok)
    return float(thresholds[hits[-1]]) if hits.size else _above(sa)


def summary(
    y: ArrayLike,
    s: ArrayLike,
    *,
    threshold: float,
    typologies: ArrayLike | Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Every headline number for one model on one labelled set.

    Args:
        y: Labels, 0/1.
        s: Scores.
        threshold: The blocking threshold (see :func:`choose_threshold`).
        typologies: Optional fraud typology per sample (``''`` or ``None`` for honest ones).

    Returns:
        A JSON-ready dict: ``positives``, ``negatives``, ``roc_auc``, ``pr_auc``,
        ``recall_at_0.1%_fpr``, ``recall_at_1%_fpr``, ``threshold``, ``flagged``,
        ``fpr_at_threshold``, ``precision_at_threshold``, ``recall_at_threshold``, ``ece`` (None
        when the scores are not probabilities in [0, 1]) and ``typologies``: typology name to
        ``{"positives", "recall_at_threshold", "pr_auc"}`` (empty without ``typologies``).

    Raises:
        ValueError: On bad input, or when ``y`` lacks a positive or a negative.

    >>> out = summary([0, 1, 0, 1, 0], [0.1, 0.9, 0.2, 0.6, 0.7], threshold=0.65,
    ...               typologies=["", "ato", "", "mule", ""])
    >>> out["roc_auc"], out["precision_at_threshold"], out["recall_at_threshold"]
    (0.8333333333333334, 0.5, 0.5)
    >>> out["typologies"]["mule"]
    {'positives': 1, 'recall_at_threshold': 0.0, 'pr_auc': 0.5}
    """
    ya, sa = _check(y, s)
    t = _threshold(threshold)
    order = np.argsort(-sa, kind="stable")
    ys, ss = ya[order], sa[order]
    thresholds, tp, fp = _sorted_points(ys, ss)
    flagged = sa >= t
    negatives = int(fp[-1])
    out: dict[str, Any] = {
        "positives": int(tp[-1]),
        "negatives": negatives,
        "roc_auc": _roc_auc(tp, fp),
        "pr_auc": _average_precision(tp, fp),
        "recall_at_0.1%_fpr": _recall(ya, sa, _threshold_at_fpr(thresholds, fp, 0.001)),
        "recall_at_1%_fpr": _recall(ya, sa, _threshold_at_fpr(thresholds, fp, 0.01)),
        "threshold": t,
        "flagged": int(np.count_nonzero(flagged)),
        "fpr_at_threshold": float(np.count_nonzero(flagged & (ya == 0)) / negatives),
        "precision_at_threshold": _precision(ya, sa, t),
        "recall_at_threshold": _recall(ya, sa, t),
        "ece": calibration(ya, sa)["ece"] if _is_probability(sa) else None,
        "typologies": {},
    }
    if typologies is None:
        return out
    names = _group_names(_groups(typologies, ya.size, "typologies"))
    pos = ya == 1
    hit = pos & flagged
    sorted_names = names[order]
    sorted_neg = ys == 0
    for g in np.unique(names[pos]):
        mine = pos & (names == g)
        # A subset of a stable sort is the stable sort of the subset: no need to sort again.
        keep = sorted_neg | (sorted_names == g)
        _, gtp, gfp = _sorted_points(ys[keep], ss[keep])
        out["typologies"][str(g)] = {
            "positives": int(np.count_nonzero(mine)),
            "recall_at_threshold": float(np.count_nonzero(hit & mine) / np.count_nonzero(mine)),
            "pr_auc": _average_precision(gtp, gfp),
        }
    return out
