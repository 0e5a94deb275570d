"""``ringfence evaluate``: the GNN, the tabular baseline and unsupervised detectors side by side.

:func:`evaluate` scores a data folder's evaluation period (by default the last 20% of its time,
the same cut as training: on the training folder that is the held-out test period; on a fresh
folder the earlier 80% only warms the state up) with every model of a version folder, and
returns (and writes, as Markdown with PNG plots, see :mod:`gnn.report`) ROC-AUC, PR-AUC, recall
at 0.1% and 1% false-positive rate, precision at the blocking threshold, per-typology recall and
PR-AUC, calibration, and two comparisons the product promises:

- ``ring_typologies``: PR-AUC on the ring typologies (synthetic identity, mule networks, round
  tripping: their fraud against all honest transactions) per model, and the GNN's lead over
  the tabular baseline;
- ``withheld``: when the model was trained with ``--withhold-typology T``, the recall of T at 1%
  false-positive rate for every model (how well each catches a pattern nobody labelled).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from gnn import metrics, registry
from gnn.data import load_history
from gnn.report import ModelResult, write_report
from gnn.train import (
    BASELINES,
    BLOCK_FPR,
    Prepared,
    block_threshold,
    load_baselines,
    prepare,
    scores_of,
    temporal_split,
)

RING_TYPOLOGIES: Final = ("synthetic_identity", "mule_network", "round_tripping")
PERIODS: Final = ("test", "all")


def data_seed(data_dir: Path) -> int | None:
    """The generator seed recorded in ``truth/summary.json``, if any."""
    try:
        seed = json.loads((data_dir / "truth" / "summary.json").read_text()).get("seed")
    except (OSError, ValueError):
        return None
    return seed if isinstance(seed, int) else None


def _ring_pr_auc(y: np.ndarray, s: np.ndarray, typ: np.ndarray) -> float | None:
    keep = np.isin(typ, RING_TYPOLOGIES) | (y == 0)
    yk = y[keep]
    return metrics.pr_auc(yk, s[keep]) if 0 < yk.sum() < len(yk) else None


def evaluate(
    model_path: str | Path,
    data_dir: str | Path,
    *,
    report_dir: str | Path | None = None,
    period: str = "test",
    progress: Callable[[str], None] | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Evaluate a model version (and its baselines) on a data folder.

    Args:
        model_path: a version folder or a registry (its latest version).
        data_dir: a data folder with truth.
        report_dir: where to write the report (default: ``<version>/evaluation-<data fp>``).
        period: ``test`` (the last 20% of the folder's time) or ``all``.
        progress: called with a line now and then.
        prepared: reuse already-prepared inputs of ``data_dir``.

    Returns:
        The figures, JSON-ready; ``report`` is the path of the Markdown report.
    """
    if period not in PERIODS:
        raise ValueError(f"period: expected one of {PERIODS}, got {period!r}")
    folder = registry.resolve(model_path)
    model, manifest = registry.load(folder)
    data_dir = Path(data_dir)
    prep = prepared or prepare(load_history(data_dir, progress=progress), progress=progress)
    split = temporal_split(prep.ts)
    rows = split.test if period == "test" else np.arange(len(prep.y))
    y = prep.y[rows].astype(np.int8)
    typ = prep.typology[rows]
    if not 0 < y.sum() < len(y):
        raise ValueError(f"data: the {period} period of {data_dir} lacks fraud or honest rows")
    models: dict[str, Any] = {"gnn": model} | load_baselines(folder)
    thresholds = {"gnn": float(manifest["thresholds"]["block"])}
    trained = manifest.get("metrics", {})
    results: dict[str, ModelResult] = {}
    out: dict[str, Any] = {"models": {}}
    for name in ("gnn", *BASELINES):
        if name not in models:
            continue
        s = scores_of(name, models[name], prep, rows)
        t = thresholds.get(name, trained.get(name, {}).get("threshold"))
        if t is None:  # a baseline without a stored threshold: choose on this validation
            t = block_threshold(
                prep.y[split.val], scores_of(name, models[name], prep, split.val), BLOCK_FPR
            )
        summary = metrics.summary(y, s, threshold=float(t), typologies=typ)
        summary["ring_typologies_pr_auc"] = _ring_pr_auc(y, s, typ)
        withheld = manifest.get("withheld_typology")
        if withheld:
            mine = typ == withheld
            t1 = metrics.threshold_at_fpr(y, s, 0.01)
            summary["withheld_recall_at_1%_fpr"] = (
                float(((s >= t1) & mine).sum() / mine.sum()) if mine.any() else None
            )
        results[name] = ModelResult(y, s, float(t), typ, summary)
        out["models"][name] = summary
        if progress:
            progress(f"{name}: PR-AUC {summary['pr_auc']:.4f}, ROC-AUC {summary['roc_auc']:.4f}")
    ring = {n: m["ring_typologies_pr_auc"] for n, m in out["models"].items()}
    lead = None
    if ring.get("gnn") is not None and ring.get("tabular") is not None:
        lead = ring["gnn"] - ring["tabular"]
    out["ring_typologies"] = {"typologies": list(RING_TYPOLOGIES), "pr_auc": ring, "gnn_lead": lead}
    if manifest.get("withheld_typology"):
        out["withheld"] = {
            "typology": manifest["withheld_typology"],
            "recall_at_1%_fpr": {
                n: m.get("withheld_recall_at_1%_fpr") for n, m in out["models"].items()
            },
        }
    meta = {
        "model_version": manifest["version"],
        "model_seed": manifest.get("seed"),
        "trained_on": manifest.get("data", {}).get("fingerprint", "")[:12],
        "data": str(data_dir),
        "data_seed": data_seed(data_dir),
        "data_fingerprint": registry.fingerprint(data_dir)[:12],
        "period": period,
        "transactions": len(rows),
        "fraud": int(y.sum()),
        "withheld_typology": manifest.get("withheld_typology"),
    }
    out["meta"] = meta
    target = Path(report_dir) if report_dir else folder / f"evaluation-{meta['data_fingerprint']}"
    out["report"] = str(
        write_report(target, results, title=f"Evaluation of {manifest['version']}", meta=meta)
    )
    return out


def fairness(
    model_path: str | Path,
    data_dir: str | Path,
    *,
    attribute: str | None = None,
    progress: Callable[[str], None] | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Audit the model's blocking across protected groups, and one mitigation before/after.

    The audit runs on the evaluation period (the last 20%) at the model's blocking threshold.
    The mitigation (per-group thresholds, :func:`gnn.fairness.fit_mitigation`) is fitted on
    the validation period for ``attribute`` (default: the attribute with the largest
    false-positive-rate gap) and applied to the evaluation period.
    """
    from gnn import fairness as fair

    folder = registry.resolve(model_path)
    model, manifest = registry.load(folder)
    data_dir = Path(data_dir)
    attrs = fair.load_customer_attributes(data_dir / "truth")
    prep = prepared or prepare(load_history(data_dir, progress=progress), progress=progress)
    split = temporal_split(prep.ts)
    threshold = float(manifest["thresholds"]["block"])
    scored = {}
    for name, rows in (("val", split.val), ("test", split.test)):
        scored[name] = (
            prep.y[rows].astype(np.int8),
            scores_of("gnn", model, prep, rows),
            fair.groups_for(prep.accounts[rows], attrs),
        )
    y, s, groups = scored["test"]
    # a group's false-positive rate near the blocking rate needs enough honest transactions
    # to mean anything: ten expected false positives at the overall rate
    honest = s[y == 0]
    fpr = float(np.mean(honest >= threshold)) if len(honest) else 0.0
    support = max(fair.MIN_NEGATIVES, math.ceil(10 / fpr)) if fpr > 0 else fair.MIN_NEGATIVES
    before = fair.audit(y, s, threshold, groups, label="before mitigation", min_negatives=support)
    if attribute is None:
        gaps = {a: before.gap(a, "fpr") or 0.0 for a in fair.ATTRIBUTES}
        attribute = max(gaps, key=gaps.__getitem__)
    if attribute not in fair.ATTRIBUTES:
        raise ValueError(f"attribute: expected one of {fair.ATTRIBUTES}, got {attribute!r}")
    yv, sv, gv = scored["val"]
    mitigation = fair.fit_mitigation(
        yv, sv, gv[attribute], threshold=threshold, attribute=attribute
    )
    after = fair.mitigation_report(y, s, groups, mitigation, min_negatives=support)
    if progress:
        progress(f"fairness: mitigated {attribute} on the validation period")
    gap_before, gap_after = after.gap_change(attribute, "fpr")
    narrowed = gap_before is not None and gap_after is not None and gap_after < gap_before
    verdict = (
        f"the mitigation narrowed the {attribute} false-positive-rate gap on the evaluation "
        f"period from {gap_before:.4%} to {gap_after:.4%}"
        if narrowed
        else f"the mitigation did not narrow the {attribute} false-positive-rate gap on the "
        f"evaluation period ({gap_before} -> {gap_after}): do not deploy it; see docs/fairness.md"
    )
    return {
        "model_version": manifest["version"],
        "data_seed": data_seed(data_dir),
        "threshold": threshold,
        "mitigation_narrowed_gap": narrowed,
        "verdict": verdict,
        "min_negatives": support,
        "audit": before.to_dict(),
        "mitigated_attribute": attribute,
        "mitigation": mitigation.to_dict(),
        "after": after.to_dict(),
        "table": before.table() + "\n\n" + after.table() + "\n\n" + verdict,
    }
