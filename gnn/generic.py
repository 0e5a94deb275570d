"""Bring your own labelled graph: train and evaluate a GraphSAGE on it.

:func:`train_generic` reads a labelled graph (``.npz`` or Parquet, see ``docs/generic-graph.md``
and :mod:`gnn.generic_data`), tunes a GraphSAGE (:mod:`gnn.generic_model`) on each split's
validation nodes, scores the chosen model once on the split's test nodes, trains two
feature-only baselines (logistic regression and the same network without message passing) so
the report shows what the graph adds, and writes a model folder. :func:`evaluate_generic`
loads that folder and scores it on a graph's test nodes again. These back the commands
``ringfence train --graph FILE --out DIR`` and ``ringfence evaluate --graph FILE --model DIR``.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     path = save_npz(make_synthetic_graph(300, seed=3, n_splits=1), Path(d) / "g.npz")
...     m = train_generic(path, Path(d) / "model", grid='{"hidden": [8], "max_epochs": [5]}')
...     e = evaluate_generic(Path(d) / "model", path)
>>> e["splits"][0]["test"] == m["splits"][0]["test"]
True
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from gnn.generic_data import (
    GraphFormatError,
    LabelledGraph,
    ModelFolderError,
    Split,
    build_graph,
    load_graph,
    make_synthetic_graph,
    random_split,
    save_npz,
    save_parquet,
)
from gnn.generic_model import (
    GRIDS,
    FeatureScaler,
    GenericSage,
    Params,
    adjacency,
    auto_threads,
    cpu_threads,
    fit,
    grid_params,
    log_degree,
    predict,
    scores,
    tune,
)

FORMAT = "ringfence.generic-sage"
FORMAT_VERSION = 1
"""The model folder's format and version, written in its ``model.json``."""

LOGREG_C = (0.01, 0.1, 1.0, 10.0)
"""Inverse regularisation strengths tried by the logistic-regression baseline."""

METRIC_KEYS = ("val_roc_auc", "val_pr_auc", "test_roc_auc", "test_pr_auc")


def _inputs(
    graph: LabelledGraph, scaler: FeatureScaler, degree_scaler: FeatureScaler
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The GNN's inputs, the adjacency, and the baselines' inputs.

    The GNN reads the standardised features plus the standardised log-degree; the baselines
    read the standardised features only.
    """
    base = scaler(graph.x)
    deg = degree_scaler(log_degree(graph.edge_index, graph.n_nodes))
    x_gnn = torch.from_numpy(np.concatenate([base, deg], axis=1))
    return x_gnn, adjacency(graph.edge_index, graph.n_nodes), base


def _logreg(base: np.ndarray, y: np.ndarray, split: Split) -> dict[str, Any]:
    """The logistic-regression baseline: C chosen on validation PR-AUC, classes balanced."""
    best: dict[str, Any] | None = None
    for c in LOGREG_C:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(base[split.train], y[split.train])
        coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        val = scores(y[split.val], _linear(base[split.val], coef, intercept))
        if best is None or val["pr_auc"] > best["val"]["pr_auc"] + 1e-12:
            best = {"C": c, "coef": coef.tolist(), "intercept": intercept, "val": val}
    assert best is not None
    return best


def _linear(x: np.ndarray, coef: Sequence[float] | np.ndarray, intercept: float) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ np.asarray(coef, dtype=np.float64) + intercept


def _summarise(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (0 for one split) of each metric over the splits."""
    mean, std = {}, {}
    for key in METRIC_KEYS:
        part, metric = key.split("_", 1)
        values = [r[part][metric] for r in rows]
        mean[key] = statistics.fmean(values)
        std[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _positive_rate(y: np.ndarray, mask: np.ndarray) -> float:
    return float((y[mask] == 1).mean())


def train_generic(
    path: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    grid: str = "small",
    random_splits: int = 3,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train a GraphSAGE per split of a labelled graph and write a model folder.

    For each split: every hyperparameter set of ``grid`` is trained on the training nodes and
    early-stopped on the validation PR-AUC; the set with the best validation PR-AUC is kept and
    scored once on the test nodes. Two feature-only baselines are trained on the same split:
    logistic regression (C chosen on validation) and the chosen network without message
    passing (an MLP).

    Args:
        path: the graph (``.npz`` file, or Parquet directory / prefix; see :func:`load_graph`).
        out: the model folder to write. An existing model folder there is replaced; any other
            non-empty folder is refused.
        seed: seeds random splits, initialisation and dropout; the same seed gives the same
            metrics.
        progress: called with one line of text per trained grid point.
        grid: ``tiny``, ``small`` (default, 4 runs per split), ``medium`` (16), ``large`` (48),
            or a JSON object of lists such as ``'{"hidden": [64, 128], "lr": [0.01]}'``.
        random_splits: how many random splits to make if the graph has no masks.
        threads: torch CPU threads while training; ``None`` picks one per 100,000 nodes, at
            most torch's setting (see :func:`~gnn.generic_model.auto_threads`). Metrics are
            reproducible for a given seed and thread count.

    Returns:
        The metrics dict (also written to ``out/metrics.json``): ``splits`` (per split ``val``
        and ``test`` ROC-AUC and PR-AUC, chosen ``params``), ``mean`` and ``std`` over splits,
        ``baseline`` (``logreg`` and ``mlp``, same layout), ``seed``, ``fingerprint``...

    Raises:
        GraphFormatError: the graph is missing or invalid.
        ModelFolderError: ``out`` is a non-empty folder that is not a model folder.
        ValueError: ``grid`` is not a grid.
    """
    started = time.perf_counter()
    out = Path(out)
    _check_out(out)
    candidates = grid_params(grid)
    graph = load_graph(path, split_seed=seed, random_splits=random_splits)
    used = auto_threads(threads, graph.n_nodes)
    with cpu_threads(used):
        return _train(
            graph,
            path,
            out,
            seed=seed,
            say=progress or (lambda _line: None),
            grid=grid,
            candidates=candidates,
            random_splits=random_splits,
            started=started,
            threads=used,
        )


def _train(
    graph: LabelledGraph,
    path: str | Path,
    out: Path,
    *,
    seed: int,
    say: Callable[[str], None],
    grid: str,
    candidates: list[Params],
    random_splits: int,
    started: float,
    threads: int,
) -> dict[str, Any]:
    for note in graph.notes:
        say(f"note: {note}")
    say(
        f"graph: {graph.n_nodes} nodes, {graph.n_edges} undirected edges, {graph.n_features} "
        f"features, {graph.n_splits} split(s); grid {grid!r} ({len(candidates)} run(s) per "
        f"split); {threads} thread(s)"
    )
    scaler = FeatureScaler.fit(graph.x)
    degree_scaler = FeatureScaler.fit(log_degree(graph.edge_index, graph.n_nodes))
    x_gnn, adj, base = _inputs(graph, scaler, degree_scaler)
    x_base = torch.from_numpy(base)

    rows, logreg_rows, mlp_rows, saved = [], [], [], []
    states: dict[str, dict[str, torch.Tensor]] = {}
    for k, split in enumerate(graph.splits):
        t0 = time.perf_counter()
        label = f"split {k + 1}/{graph.n_splits}: "
        best = tune(x_gnn, adj, graph.y, split, candidates, seed=seed, progress=say, label=label)
        test = scores(graph.y[split.test], predict(best.state, best.params, x_gnn, adj)[split.test])
        gnn_seconds = time.perf_counter() - t0
        lr = _logreg(base, graph.y, split)
        lr_test = scores(
            graph.y[split.test], _linear(base[split.test], lr["coef"], lr["intercept"])
        )
        mlp = fit(x_base, None, graph.y, split, best.params, seed=seed, mlp=True)
        mlp_test = scores(
            graph.y[split.test], predict(mlp.state, mlp.params, x_base, None)[split.test]
        )
        rows.append(
            {
                "split": k,
                "val": best.val,
                "test": test,
                "params": best.params.to_dict(),
                "best_epoch": best.best_epoch,
                "sizes": split.sizes(),
                "test_positive_rate": _positive_rate(graph.y, split.test),
                "train_seconds": gnn_seconds,
            }
        )
        logreg_rows.append(
            {"split": k, "val": lr["val"], "test": lr_test, "params": {"C": lr["C"]}}
        )
        mlp_rows.append(
            {
                "split": k,
                "val": mlp.val,
                "test": mlp_test,
                "params": mlp.params.to_dict(),
                "best_epoch": mlp.best_epoch,
            }
        )
        states[f"split_{k}.pt"] = best.state
        states[f"mlp_split_{k}.pt"] = mlp.state
        saved.append(
            {
                "split": k,
                "params": best.params.to_dict(),
                "weights": f"split_{k}.pt",
                "mlp_params": mlp.params.to_dict(),
                "mlp_weights": f"mlp_split_{k}.pt",
                "logreg": {"C": lr["C"], "coef": lr["coef"], "intercept": lr["intercept"]},
            }
        )
        say(
            f"{label}GraphSAGE test ROC-AUC {test['roc_auc']:.4f} PR-AUC {test['pr_auc']:.4f}; "
            f"logreg PR-AUC {lr_test['pr_auc']:.4f}; MLP PR-AUC {mlp_test['pr_auc']:.4f} "
            f"({gnn_seconds:.1f}s)"
        )

    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    metrics = _report(graph, rows, logreg_rows, mlp_rows, seed=seed, grid=grid)
    metrics["created_at"] = created_at
    metrics["train_seconds"] = time.perf_counter() - started
    metrics["threads"] = threads
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created_at,
        "seed": seed,
        "grid": grid,
        "torch": torch.__version__,
        "input": {
            "path": str(path),
            "fingerprint": graph.fingerprint,
            "files": graph.files,
            "split_origin": graph.split_origin,
            "split_seed": seed,
            "random_splits": random_splits,
        },
        "graph": graph.summary(),
        "features": {
            "names": graph.feature_names,
            "scaler": scaler.to_dict(),
            "degree_scaler": degree_scaler.to_dict(),
        },
        "splits": saved,
    }
    _write_folder(out, manifest, metrics, states)
    say(f"wrote {out}")
    return metrics


def _report(
    graph: LabelledGraph,
    rows: list[dict[str, Any]],
    logreg_rows: list[dict[str, Any]],
    mlp_rows: list[dict[str, Any]],
    *,
    seed: int,
    grid: str,
) -> dict[str, Any]:
    mean, std = _summarise(rows)
    baseline = {}
    for name, what, brows in (
        ("logreg", "logistic regression on node features (no graph)", logreg_rows),
        ("mlp", "the chosen network without message passing (no graph)", mlp_rows),
    ):
        b_mean, b_std = _summarise(brows)
        baseline[name] = {"model": what, "splits": brows, "mean": b_mean, "std": b_std}
    return {
        "model": "GraphSAGE",
        "splits": rows,
        "mean": mean,
        "std": std,
        "baseline": baseline,
        "seed": seed,
        "grid": grid,
        "fingerprint": graph.fingerprint,
        "graph": graph.summary(),
    }


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ModelFolderError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "model.json").is_file():
        raise ModelFolderError(f"{out}: not empty and not a model folder; refusing to write there")


def _write_folder(
    out: Path,
    manifest: dict[str, Any],
    metrics: dict[str, Any],
    states: dict[str, dict[str, torch.Tensor]],
) -> None:
    """Write the folder next to ``out`` and move it into place, replacing an older model."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary folder
    try:
        for name, state in states.items():
            torch.save(state, tmp / name)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a model folder, checked for format and version.

    Raises:
        ModelFolderError: no model folder there, or one of another format or a newer version.
    """
    path = Path(model_dir) / "model.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{model_dir}: no model.json; not a model folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: not a {FORMAT} model")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path}: format version {manifest.get('format_version')!r}, this Ringfence reads "
            f"version {FORMAT_VERSION}"
        )
    return manifest


def _load_state(model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(model_dir / name, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelFolderError(f"{model_dir / name}: cannot load weights ({exc})") from None
    if not isinstance(state, dict):
        raise ModelFolderError(f"{model_dir / name}: not a state dict")
    return state


def _split_row(
    k: int, y: np.ndarray, logits: np.ndarray, split: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """One split's validation and test scores of one model."""
    return {
        "split": k,
        "val": scores(y[split.val], logits[split.val]),
        "test": scores(y[split.test], logits[split.test]),
        "params": params,
    }


def evaluate_generic(
    model_dir: str | Path, path: str | Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Score a trained model folder on a labelled graph's test nodes, split by split.

    The graph must have the model's number of features; its splits come from its masks, or,
    without masks, the same random splits as at training (the seed is in ``model.json``).
    Each split's model is scored on that split's test nodes (and validation nodes); the
    baselines are scored too.

    Args:
        model_dir: a folder written by :func:`train_generic`.
        path: the graph (``.npz`` file, or Parquet directory / prefix).
        threads: torch CPU threads (``None``: as for training, by graph size).

    Returns:
        The metrics dict laid out as :func:`train_generic`'s, plus ``model_fingerprint`` (the
        training input's) and ``fingerprint_matches``.

    Raises:
        ModelFolderError: the model folder is missing or invalid.
        GraphFormatError: the graph is invalid or does not fit the model.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    inp = manifest["input"]
    graph = load_graph(path, split_seed=inp["split_seed"], random_splits=inp["random_splits"])
    with cpu_threads(auto_threads(threads, graph.n_nodes)):
        return _evaluate(model_dir, manifest, graph, path)


def _evaluate(
    model_dir: Path, manifest: dict[str, Any], graph: LabelledGraph, path: str | Path
) -> dict[str, Any]:
    inp = manifest["input"]
    trained_f = len(manifest["features"]["scaler"]["mean"])
    if graph.n_features != trained_f:
        raise GraphFormatError(
            "x",
            f"has {graph.n_features} feature column(s), the model was trained on {trained_f}",
            source=path,
        )
    if graph.n_splits != len(manifest["splits"]):
        raise GraphFormatError(
            "train_mask",
            f"has {graph.n_splits} split(s), the model has {len(manifest['splits'])}",
            source=path,
        )
    scaler = FeatureScaler.from_dict(manifest["features"]["scaler"])
    degree_scaler = FeatureScaler.from_dict(manifest["features"]["degree_scaler"])
    x_gnn, adj, base = _inputs(graph, scaler, degree_scaler)
    x_base = torch.from_numpy(base)
    rows, logreg_rows, mlp_rows = [], [], []
    for saved, split in zip(manifest["splits"], graph.splits, strict=True):
        k = saved["split"]
        params = Params.from_dict(saved["params"])
        logits = predict(_load_state(model_dir, saved["weights"]), params, x_gnn, adj)
        rows.append(
            _split_row(k, graph.y, logits, split, saved["params"])
            | {"sizes": split.sizes(), "test_positive_rate": _positive_rate(graph.y, split.test)}
        )
        lr = saved["logreg"]
        lr_logits = _linear(base, lr["coef"], lr["intercept"])
        logreg_rows.append(_split_row(k, graph.y, lr_logits, split, {"C": lr["C"]}))
        mlp_params = Params.from_dict(saved["mlp_params"])
        mlp_logits = predict(_load_state(model_dir, saved["mlp_weights"]), mlp_params, x_base, None)
        mlp_rows.append(_split_row(k, graph.y, mlp_logits, split, saved["mlp_params"]))
    metrics = _report(
        graph, rows, logreg_rows, mlp_rows, seed=manifest["seed"], grid=manifest["grid"]
    )
    metrics["model_fingerprint"] = inp["fingerprint"]
    metrics["fingerprint_matches"] = inp["fingerprint"] == graph.fingerprint
    metrics["model_dir"] = str(model_dir)
    return metrics


def format_report(metrics: dict[str, Any]) -> str:
    """A plain-text table of a metrics dict: per split, then mean ± std, then the baselines."""
    lines = [
        f"{'model':<22} {'split':>5} {'val ROC':>8} {'val PR':>8} {'test ROC':>8} {'test PR':>8}"
    ]

    def block(
        name: str, rows: list[dict[str, Any]], mean: dict[str, float], std: dict[str, float]
    ) -> None:
        for r in rows:
            values = (
                r["val"]["roc_auc"],
                r["val"]["pr_auc"],
                r["test"]["roc_auc"],
                r["test"]["pr_auc"],
            )
            lines.append(f"{name:<22} {r['split']:>5} " + " ".join(f"{v:>8.4f}" for v in values))
        lines.append(f"{name:<22} {'mean':>5} " + " ".join(f"{mean[k]:>8.4f}" for k in METRIC_KEYS))
        lines.append(f"{'':<22} {'± std':>5} " + " ".join(f"{std[k]:>8.4f}" for k in METRIC_KEYS))

    block("GraphSAGE", metrics["splits"], metrics["mean"], metrics["std"])
    for name, b in metrics["baseline"].items():
        block(f"baseline: {name}", b["splits"], b["mean"], b["std"])
    return "\n".join(lines)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GRIDS",
    "GenericSage",
    "GraphFormatError",
    "LabelledGraph",
    "ModelFolderError",
    "Params",
    "Split",
    "build_graph",
    "evaluate_generic",
    "format_report",
    "load_graph",
    "make_synthetic_graph",
    "random_split",
    "read_manifest",
    "save_npz",
    "save_parquet",
    "train_generic",
]
