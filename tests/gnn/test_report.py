"""gnn.report: the files written, the Markdown tables, the plots, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gnn import metrics, report
from gnn.report import ModelResult, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TYPOLOGIES = ["mule_network", "account_takeover", "synthetic_identity"]


def _results(n: int = 4000, *, typed: bool = True) -> dict[str, ModelResult]:
    rng = np.random.default_rng(3)
    y = (rng.random(n) < 0.03).astype(int)
    typ = np.where(y == 1, rng.choice(TYPOLOGIES, n), "") if typed else None
    out = {}
    for i, name in enumerate(["GNN", "LightGBM", "IsolationForest"]):
        raw = rng.normal(size=n) + (1.0 + i) * y
        s = 1 / (1 + np.exp(-(raw - 2))) if i < 2 else raw  # the last is not a probability
        t = metrics.choose_threshold(y, s, target_fpr=0.01)
        out[name] = ModelResult(y=y, scores=s, threshold=t, typologies=typ)
    return out


META = {"data_seed": 4242, "model_version": "gnn-2026.11.0", "created_at": "2026-11-28T10:00:00Z"}


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5000


def test_writes_every_file(tmp_path: Path) -> None:
    results = _results()
    out = tmp_path / "nested" / "report"
    path = write_report(out, results, title="Test period, 2026-10", meta=META)
    assert path == out / "report.md"
    for file in report.PLOTS.values():
        assert _is_png(out / file), file
    assert (out / "metrics.json").is_file()

    md = path.read_text(encoding="utf-8")
    assert md.startswith("# Test period, 2026-10\n")
    for name in results:
        assert name in md
    assert "| Metric | GNN | LightGBM | IsolationForest |" in md
    for label in ("ROC-AUC", "PR-AUC", "Recall @ 0.1% FPR", "Recall @ 1% FPR"):
        assert f"| {label} |" in md
    assert "| Precision @ threshold |" in md
    for typology in TYPOLOGIES:
        assert md.count(f"| {typology} |") == 2  # the recall table and the PR-AUC table
    assert "4242" in md
    assert "gnn-2026.11.0" in md
    assert "2026-11-28T10:00:00Z" in md
    assert "| thresholds |" in md
    for file in report.PLOTS.values():
        assert f"]({file})" in md


def test_metrics_json_matches_summary(tmp_path: Path) -> None:
    results = _results()
    write_report(tmp_path, results, title="t", meta=META)
    doc = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert doc["title"] == "t"
    assert doc["meta"]["data_seed"] == 4242
    assert list(doc["models"]) == list(results)
    for name, r in results.items():
        expected = metrics.summary(r.y, r.scores, threshold=r.threshold, typologies=r.typologies)
        got = doc["models"][name]
        assert got["roc_auc"] == pytest.approx(expected["roc_auc"])
        assert got["recall_at_1%_fpr"] == pytest.approx(expected["recall_at_1%_fpr"])
        assert set(got["typologies"]) == set(TYPOLOGIES)
        for typology, row in expected["typologies"].items():
            assert got["typologies"][typology] == pytest.approx(row)
    assert doc["models"]["IsolationForest"]["ece"] is None
    assert doc["models"]["GNN"]["ece"] is not None


def test_table_values_in_markdown(tmp_path: Path) -> None:
    results = _results()
    path = write_report(tmp_path, results, title="t", meta=META)
    md = path.read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| ROC-AUC |"))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")][1:]
    expected = [metrics.roc_auc(r.y, r.scores) for r in results.values()]  # column order
    assert [float(c) for c in cells] == pytest.approx(expected, abs=5e-5)
    assert row.count("**") == 2  # exactly one best value in bold


def test_given_summary_is_used(tmp_path: Path) -> None:
    r = _results()["GNN"]
    summary = metrics.summary(r.y, r.scores, threshold=r.threshold, typologies=r.typologies)
    summary["roc_auc"] = 0.123456
    given = ModelResult(r.y, r.scores, r.threshold, r.typologies, summary=summary)
    path = write_report(tmp_path, {"GNN": given}, title="t", meta={})
    assert "| ROC-AUC | 0.1235 |" in path.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "metrics.json").read_text())["models"]["GNN"]["roc_auc"] == (
        0.123456
    )


def test_optional_plots_are_left_out(tmp_path: Path) -> None:
    results = _results(typed=False)
    only_raw = {"IsolationForest": results["IsolationForest"]}
    path = write_report(tmp_path, only_raw, title="t", meta={})
    md = path.read_text(encoding="utf-8")
    assert not (tmp_path / report.PLOTS["typology_recall"]).exists()
    assert not (tmp_path / report.PLOTS["calibration"]).exists()
    assert "No typology labels were given." in md
    assert "No calibration diagram" in md
    for kind in ("pr", "roc", "histograms"):
        assert _is_png(tmp_path / report.PLOTS[kind])
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert "created_at" in doc["meta"]  # filled in when missing
    assert doc["plots"] == sorted(report.PLOTS[k] for k in ("pr", "roc", "histograms"))


def test_names_are_escaped(tmp_path: Path) -> None:
    r = _results()["GNN"]
    path = write_report(tmp_path, {"GNN | v2": r}, title="t", meta={"note": "a|b"})
    md = path.read_text(encoding="utf-8")
    assert "| Metric | GNN \\| v2 |" in md
    assert "a\\|b" in md


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="results is empty"):
        write_report(tmp_path, {}, title="t", meta={})
    bad = ModelResult(y=[0, 0, 0], scores=[0.1, 0.2, 0.3], threshold=0.5)
    with pytest.raises(ValueError, match=r"^model 'broken': y has no positive"):
        write_report(tmp_path, {"broken": bad}, title="t", meta={})
    short = ModelResult(y=[0, 1, 0], scores=[0.1, 0.2], threshold=0.5)
    with pytest.raises(ValueError, match=r"^model 'short': s has 2 values but y has 3"):
        write_report(tmp_path, {"short": short}, title="t", meta={})


def test_curves_are_thinned_within_a_cell() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    y = (rng.random(n) < 0.01).astype(int)
    s = rng.normal(size=n) + 2 * y
    _, tp, fp = metrics.operating_points(y, s)
    recall = tp / tp[-1]
    fpr = fp / fp[-1]
    keep = report._thin(fpr, recall)
    cells = report._CELLS
    assert keep[0] == 0
    assert keep[-1] == recall.size - 1
    assert keep.size <= 4 * (cells + 1)
    # Every point shares a grid cell with the kept point before it or the one after it.
    i = np.arange(recall.size)
    after = keep[np.searchsorted(keep, i, side="left")]
    before = keep[np.searchsorted(keep, i, side="right") - 1]

    def gap(j: np.ndarray) -> np.ndarray:
        return np.maximum(np.abs(fpr[j] - fpr), np.abs(recall[j] - recall))

    assert np.max(np.minimum(gap(before), gap(after))) <= 1 / cells
