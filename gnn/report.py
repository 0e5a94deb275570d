"""The evaluation report: several models scored on one labelled period, side by side.

:func:`write_report` writes, into one folder:

* ``report.md``: the run's details (data seed, model version, creation time, thresholds), a
  metrics table with one column per model, per-typology recall and PR-AUC tables, and links to
  the plots;
* ``metrics.json``: the same numbers (:func:`gnn.metrics.summary` per model) for machines;
* ``pr_curves.png``, ``roc_curves.png`` (log false-positive rate, where a fraud team works),
  ``score_histograms.png`` (fraud against honest, log counts, per model),
  ``typology_recall.png`` (recall at each model's threshold per typology; only when typologies
  are known) and ``calibration.png`` (reliability diagram of the models whose scores are
  probabilities in [0, 1]; only when there is one).

Plots are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg (PNG) canvas,
never through ``pyplot``: nothing opens a window or touches the global backend. Curves are
thinned to a few thousand points so that five models over 200,000 samples plot in a second or
two: a point is kept only where the curve enters or leaves a cell of a fine grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from gnn import metrics

__all__ = ["PLOTS", "ModelResult", "write_report"]

PLOTS = {
    "pr": "pr_curves.png",
    "roc": "roc_curves.png",
    "histograms": "score_histograms.png",
    "typology_recall": "typology_recall.png",
    "calibration": "calibration.png",
}
"""The plot files :func:`write_report` may write, by kind."""

_CELLS = 600  # curve thinning grid: at most about 2 * 2 * _CELLS points per curve
_HIST_BINS = 60
_DPI = 100


@dataclass(frozen=True, slots=True)
class ModelResult:
    """One model's scores on the evaluation set.

    Attributes:
        y: Labels, 0 honest, 1 fraud.
        scores: The model's scores, higher means more suspicious.
        threshold: The blocking threshold (flag when ``score >= threshold``).
        typologies: The fraud typology of each sample, ``''`` (or None) for honest ones; None
            when unknown.
        summary: The numbers of :func:`gnn.metrics.summary`, when already computed; computed
            here otherwise.
    """

    y: ArrayLike
    scores: ArrayLike
    threshold: float
    typologies: ArrayLike | Sequence[str | None] | None = None
    summary: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Model:
    """A validated :class:`ModelResult` with everything the plots and tables need."""

    name: str
    color: str
    y: NDArray[np.int8]
    s: NDArray[np.float64]
    threshold: float
    summary: Mapping[str, Any]
    thresholds: NDArray[np.float64]
    tp: NDArray[np.int64]
    fp: NDArray[np.int64]


def write_report(
    out_dir: str | Path,
    results: Mapping[str, ModelResult],
    *,
    title: str,
    meta: Mapping[str, Any],
) -> Path:
    """Write the report, its metrics and its plots into ``out_dir`` (created if needed).

    Args:
        out_dir: The folder to write into; files of the same names are replaced.
        results: Model name to its result, in the order the columns should appear.
        title: The report's heading.
        meta: Details of the run, shown as given (e.g. ``data_seed``, ``model_version``,
            ``created_at``); ``created_at`` is set to now (UTC) when missing.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: When ``results`` is empty, or a model's labels or scores are bad (the
            message names the model).
    """
    if not results:
        raise ValueError("results is empty: give at least one model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = dict(meta)
    info.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
    models = [_prepare(name, i, r) for i, (name, r) in enumerate(results.items())]

    plots: dict[str, str] = {}
    for kind, draw in _DRAWERS.items():
        fig = draw(models)
        if fig is not None:
            fig.savefig(out / PLOTS[kind], dpi=_DPI)
            plots[kind] = PLOTS[kind]

    doc = {
        "title": title,
        "meta": info,
        "models": {m.name: dict(m.summary) for m in models},
        "plots": sorted(plots.values()),
    }
    (out / "metrics.json").write_text(
        json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8"
    )
    path = out / "report.md"
    path.write_text(_markdown(title, info, models, plots), encoding="utf-8")
    return path


def _prepare(name: str, index: int, result: ModelResult) -> _Model:
    try:
        y = np.asarray(result.y)
        s = np.asarray(result.scores, dtype=np.float64)
        summary = result.summary
        if summary is None:
            summary = metrics.summary(
                y, s, threshold=result.threshold, typologies=result.typologies
            )
        thresholds, tp, fp = metrics.operating_points(y, s)
    except ValueError as exc:
        raise ValueError(f"model {name!r}: {exc}") from None
    return _Model(
        name=name,
        color=f"C{index % 10}",
        y=y.astype(np.int8),
        s=s,
        threshold=float(result.threshold),
        summary=summary,
        thresholds=thresholds,
        tp=tp,
        fp=fp,
    )


# --- plots --------------------------------------------------------------------------------


def _thin(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices of the points to draw of a curve with both coordinates in [0, 1].

    A point is kept where the curve enters or leaves a cell of a ``_CELLS`` square grid, so
    the drawn line differs from the full one by less than a cell.
    """
    cx = np.clip((x * _CELLS).astype(np.int64), 0, _CELLS)
    cy = np.clip((y * _CELLS).astype(np.int64), 0, _CELLS)
    key = cx * (_CELLS + 1) + cy
    enters = np.r_[True, key[1:] != key[:-1]]
    leaves = np.r_[enters[1:], True]
    return np.flatnonzero(enters | leaves)


def _figure(width: float = 7.0, height: float = 5.0) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _legend(ax: Axes, **kwargs: Any) -> None:
    ax.legend(fontsize="small", frameon=False, **kwargs)


def _pr_figure(models: Sequence[_Model]) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    for m in models:
        recall = np.r_[0.0, m.tp / m.tp[-1]]
        precision = np.r_[1.0, m.tp / (m.tp + m.fp)]
        keep = _thin(recall, precision)
        ap = m.summary.get("pr_auc")
        label = m.name if ap is None else f"{m.name} (AP {ap:.3f})"
        ax.plot(recall[keep], precision[keep], color=m.color, lw=1.4, label=label)
        ax.plot(
            [m.summary.get("recall_at_threshold", math.nan)],
            [m.summary.get("precision_at_threshold", math.nan)],
            "o",
            color=m.color,
            ms=5,
        )
    prevalence = models[0].tp[-1] / models[0].y.size
    ax.axhline(prevalence, color="grey", lw=0.8, ls=":", label=f"fraud share {prevalence:.4f}")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall (dots: blocking threshold)")
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper right")
    return fig


def _roc_figure(models: Sequence[_Model]) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    floor = 1.0
    for m in models:
        negatives = int(m.fp[-1])
        low = 1.0 / negatives
        floor = min(floor, low)
        fpr = np.r_[0.0, m.fp / negatives]
        tpr = np.r_[0.0, m.tp / m.tp[-1]]
        shown = np.maximum(fpr, low / 2)  # FPR 0 has no place on a log axis: draw it at the edge
        span = -math.log10(low / 2)
        keep = _thin(1.0 + np.log10(shown) / span, tpr)
        auc = m.summary.get("roc_auc")
        label = m.name if auc is None else f"{m.name} (AUC {auc:.3f})"
        ax.plot(shown[keep], tpr[keep], color=m.color, lw=1.4, label=label)
    for budget in (0.001, 0.01):
        ax.axvline(budget, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="False-positive rate (log)", ylabel="Recall", ylim=(0, 1.02))
    ax.set_xlim(floor / 2, 1.0)
    ax.set_title("ROC, low false-positive rates (dotted: 0.1% and 1%)")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, loc="upper left")
    return fig


def _histogram_figure(models: Sequence[_Model]) -> Figure:
    height = 2.1 * len(models) + 0.9
    # A fixed layout and one legend for the figure: constrained layout of many log axes is slow.
    fig = Figure(figsize=(7.0, height))
    fig.subplots_adjust(
        left=0.11, right=0.97, top=1 - 0.75 / height, bottom=0.55 / height, hspace=0.55
    )
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, m in zip(axes, models, strict=True):
        lo, hi = float(m.s.min()), float(m.s.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, _HIST_BINS + 1)
        honest, _ = np.histogram(m.s[m.y == 0], bins=edges)
        fraud, _ = np.histogram(m.s[m.y == 1], bins=edges)
        ax.stairs(honest, edges, fill=True, alpha=0.45, color="C7", label="honest")
        ax.stairs(fraud, edges, fill=True, alpha=0.6, color="C3", label="fraud")
        ax.axvline(m.threshold, color="black", lw=1, ls="--", label="blocking threshold")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
        ax.set_title(m.name, fontsize="medium")
        ax.set_ylabel("Samples")
    axes[-1].set_xlabel("Score")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncols=3, frameon=False)
    return fig


def _typology_figure(models: Sequence[_Model]) -> Figure | None:
    names = _typologies(models)
    if not names:
        return None
    fig = _figure(min(14.0, max(7.0, 0.35 * len(names) * len(models) + 3.0)), 4.5)
    ax = fig.subplots()
    width = 0.8 / len(models)
    x = np.arange(len(names))
    for i, m in enumerate(models):
        typ = m.summary.get("typologies") or {}
        values = [(typ.get(n) or {}).get("recall_at_threshold") for n in names]
        heights = [math.nan if v is None else float(v) for v in values]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, heights, width, color=m.color, label=m.name)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="Recall at the blocking threshold", ylim=(0, 1.05))
    ax.set_title("Recall per fraud typology")
    ax.grid(alpha=0.3, axis="y")
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _calibration_figure(models: Sequence[_Model]) -> Figure | None:
    probabilistic = [m for m in models if m.s.min() >= 0.0 and m.s.max() <= 1.0]
    if not probabilistic:
        return None
    fig = _figure(6.0, 5.5)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfectly calibrated")
    for m in probabilistic:
        cal = metrics.calibration(m.y, m.s)
        pairs = [
            (p, o)
            for p, o in zip(cal["mean_predicted"], cal["observed"], strict=True)
            if p is not None
        ]
        xs, ys = zip(*pairs, strict=True)
        ax.plot(xs, ys, "o-", color=m.color, ms=4, lw=1.2, label=f"{m.name} (ECE {cal['ece']:.3f})")
    ax.set(xlabel="Mean predicted probability", ylabel="Observed fraud rate")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.set_title("Calibration (10 equal-width bins)")
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper left")
    return fig


_DRAWERS: dict[str, Callable[[Sequence[_Model]], Figure | None]] = {
    "pr": _pr_figure,
    "roc": _roc_figure,
    "histograms": _histogram_figure,
    "typology_recall": _typology_figure,
    "calibration": _calibration_figure,
}


# --- markdown -----------------------------------------------------------------------------

_ROWS = [
    ("ROC-AUC", "roc_auc", True),
    ("PR-AUC", "pr_auc", True),
    ("Recall @ 0.1% FPR", "recall_at_0.1%_fpr", True),
    ("Recall @ 1% FPR", "recall_at_1%_fpr", True),
    ("Blocking threshold", "threshold", False),
    ("Precision @ threshold", "precision_at_threshold", True),
    ("Recall @ threshold", "recall_at_threshold", True),
    ("FPR @ threshold", "fpr_at_threshold", False),
    ("Flagged", "flagged", False),
    ("ECE", "ece", False),
]
"""Metrics table rows: label, summary key, whether the best (highest) value is shown bold."""

_CAPTIONS = {
    "pr": "Precision-recall curves",
    "roc": "ROC curves at low false-positive rates",
    "histograms": "Score distributions, fraud against honest",
    "typology_recall": "Recall per typology at the blocking threshold",
    "calibration": "Calibration (reliability) diagram",
}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    return _cell(value)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: bool = True
) -> list[str]:
    """A Markdown table; the columns after the first are right-aligned when ``numeric``."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    rest = " ---: " if numeric else " --- "
    lines.append("|" + "|".join([" --- "] + [rest] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _bold_best(values: Sequence[Any]) -> list[str]:
    texts = [_number(v) for v in values]
    finite = [
        float(v)
        for v in values
        if isinstance(v, int | float | np.number) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if len(values) < 2 or not finite:
        return texts
    best = max(finite)
    return [
        f"**{t}**" if isinstance(v, int | float | np.number) and v == best else t
        for t, v in zip(texts, values, strict=True)
    ]


def _typologies(models: Sequence[_Model]) -> list[str]:
    names: set[str] = set()
    for m in models:
        names.update((m.summary.get("typologies") or {}).keys())
    return sorted(names)


def _markdown(
    title: str, meta: Mapping[str, Any], models: Sequence[_Model], plots: Mapping[str, str]
) -> str:
    names = [m.name for m in models]
    lines = [f"# {title}", ""]

    lines += ["## Run", ""]
    run_rows = [[_cell(k), _meta_value(v)] for k, v in meta.items()]
    run_rows.append(
        ["thresholds", ", ".join(f"{_cell(m.name)}: {_number(m.threshold)}" for m in models)]
    )
    lines += [*_table(["Detail", "Value"], run_rows, numeric=False), ""]

    first = models[0].summary
    lines += [
        "## Metrics",
        "",
        f"{_number(first.get('positives'))} frauds and {_number(first.get('negatives'))} honest "
        "samples. A sample is flagged when its score is at or above the model's blocking "
        "threshold; recall at a false-positive rate uses the lowest threshold within it. "
        "Best value in bold.",
        "",
    ]
    rows = []
    for label, key, bold in _ROWS:
        values = [m.summary.get(key) for m in models]
        rows.append([label, *(_bold_best(values) if bold else [_number(v) for v in values])])
    lines += [*_table(["Metric", *names], rows), ""]

    typologies = _typologies(models)
    lines += ["## Per typology", ""]
    if not typologies:
        lines += ["No typology labels were given.", ""]
    else:
        for heading, key in (
            ("Recall at the blocking threshold", "recall_at_threshold"),
            ("PR-AUC (the typology's frauds against all honest samples)", "pr_auc"),
        ):
            lines += [f"### {heading}", ""]
            rows = []
            for t in typologies:
                entries = [(m.summary.get("typologies") or {}).get(t) or {} for m in models]
                counts = sorted({e["positives"] for e in entries if "positives" in e})
                values = [e.get(key) for e in entries]
                rows.append([_cell(t), " / ".join(_number(c) for c in counts), *_bold_best(values)])
            lines += [*_table(["Typology", "Frauds", *names], rows), ""]

    lines += ["## Plots", ""]
    for kind, file in plots.items():
        lines += [f"### {_CAPTIONS[kind]}", "", f"![{_CAPTIONS[kind]}]({file})", ""]
    missing = [k for k in PLOTS if k not in plots]
    if "calibration" in missing:
        lines += ["No calibration diagram: no model's scores are probabilities in [0, 1].", ""]
    return "\n".join(lines)


def _meta_value(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return _cell(json.dumps(value, default=str, sort_keys=True))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return _number(value)
    return _cell(value)
