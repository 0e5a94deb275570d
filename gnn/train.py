"""Training: features from a data folder, a temporal split, the GNN and its baselines.

``ringfence train --data DIR --out models/`` runs :func:`train`:

1. :func:`prepare`: ingest the folder (:func:`gnn.data.load_history`), replay it through
   :class:`gnn.features.FeatureState` in time order, and build the model's aggregated inputs
   (:func:`gnn.online.dense_inputs`).
2. :func:`temporal_split`: train on the first 60% of the period, validate on the next 20%,
   test on the last 20% (by time, never shuffled: the model is judged on days it never saw).
3. :func:`fit_gnn`: :class:`gnn.model.FraudSAGE`, mini-batches, Adam, early stopping on the
   validation PR-AUC. Class imbalance: fraud is well under 1% of transactions, so the loss
   weighs a fraud example ``sqrt(honest / fraud)`` times an honest one (about 15 times at
   0.4% fraud). Full inverse-frequency weighting (about 240 times) made training noisy and the
   scores badly calibrated; resampling would throw away honest variety. The square root keeps
   rare fraud visible to the gradient while the score stays usable as a ranking and, after
   the validation-chosen threshold, as a decision.
4. Baselines on the same split: LightGBM on the same features without the graph aggregation
   (the transaction's own features and its entities' features), and, unsupervised, an
   Isolation Forest on the transaction features.
5. The blocking threshold is chosen on the validation split (the score at which 0.1% of honest
   validation transactions would be blocked), then everything is written to the registry
   (:mod:`gnn.registry`).

Everything is seeded: the same data, seed and arguments give the same model.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnn import metrics, registry
from gnn.autoencoder import GraphAutoencoder, autoencoder_scores, fit_autoencoder
from gnn.data import History, load_history
from gnn.features import FeatureState, TxnRow
from gnn.model import FraudSAGE, intra_op_threads
from gnn.online import DenseInputs, dense_inputs

Progress = Callable[[str], None] | None

TRAIN_SHARE = 0.6
VAL_SHARE = 0.2
BLOCK_FPR = 0.001
"""The blocking threshold blocks this share of honest validation transactions."""
REVIEW_FPR = 0.01
"""The review threshold sends this share of honest validation transactions to review."""


@dataclass(slots=True)
class Prepared:
    """A history turned into model inputs, with labels, in time order."""

    rows: list[TxnRow]
    inputs: DenseInputs
    y: np.ndarray  # 1 = fraud
    typology: np.ndarray  # '' for honest
    ts: np.ndarray
    accounts: np.ndarray
    events: int = 0
    rejected: int = 0
    unlabelled: int = 0
    state: FeatureState | None = None

    @property
    def txn_ids(self) -> list[str]:
        """The transactions' ids, in row order."""
        return [r.txn_id for r in self.rows]


@dataclass(slots=True)
class Split:
    """Row indexes of the three periods, and their time bounds."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    bounds: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """Counts and ISO times, for the manifest."""
        from datetime import UTC, datetime

        iso = [datetime.fromtimestamp(b, UTC).isoformat() for b in self.bounds]
        return {
            "train": {"rows": len(self.train), "from": iso[0], "to": iso[1]},
            "val": {"rows": len(self.val), "from": iso[1], "to": iso[2]},
            "test": {"rows": len(self.test), "from": iso[2], "to": iso[3]},
        }


@dataclass(slots=True)
class TrainConfig:
    """Hyperparameters of :func:`fit_gnn`."""

    hidden: int = 64
    dropout: float = 0.1
    epochs: int = 12
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 3
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def prepare(history: History, *, progress: Progress = None) -> Prepared:
    """Features and aggregated inputs for every transaction of ``history``."""
    started = time.perf_counter()
    state = FeatureState()
    rows = state.observe_all(history.events)
    state.flush_rings()
    if progress:
        progress(f"features: {len(rows):,} transactions in {time.perf_counter() - started:.1f} s")
    inputs = dense_inputs(rows)
    labels = history.labels
    y = np.zeros(len(rows), dtype=np.int8)
    typ = np.empty(len(rows), dtype=object)
    unlabelled = 0
    for i, r in enumerate(rows):
        label = labels.get(r.txn_id)
        if label is None:
            unlabelled += 1
            typ[i] = ""
            continue
        y[i] = label.is_fraud
        typ[i] = label.typology if label.is_fraud else ""
    accounts = np.array([r.entities[0] for r in rows], dtype=object)
    return Prepared(
        rows,
        inputs,
        y,
        typ,
        np.array([r.ts for r in rows]),
        accounts,
        len(history.events),
        history.rejected,
        unlabelled,
        state,
    )


def temporal_split(ts: np.ndarray, shares: tuple[float, float] = (TRAIN_SHARE, VAL_SHARE)) -> Split:
    """Rows by time: the first ``shares[0]`` of the period, the next ``shares[1]``, the rest.

    Cuts fall on whole UTC days when the period spans at least five days.
    """
    if len(ts) == 0:
        raise ValueError("ts: no transactions to split")
    lo, hi = float(ts.min()), float(ts.max())
    span = hi - lo
    c1, c2 = lo + shares[0] * span, lo + (shares[0] + shares[1]) * span
    if span >= 5 * 86400:
        c1, c2 = (math.floor(c / 86400) * 86400 for c in (c1, c2))
    train = np.flatnonzero(ts < c1)
    val = np.flatnonzero((ts >= c1) & (ts < c2))
    test = np.flatnonzero(ts >= c2)
    return Split(train, val, test, (lo, c1, c2, hi + 1))


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def predict(model: FraudSAGE, inputs: DenseInputs, batch: int = 65536) -> np.ndarray:
    """Fraud probabilities for every row of ``inputs``."""
    model.eval()
    out = np.empty(len(inputs), dtype=np.float64)
    with torch.no_grad():
        for s in range(0, len(inputs), batch):
            part = inputs.take(np.arange(s, min(s + batch, len(inputs))))
            out[s : s + len(part)] = torch.sigmoid(model.forward_dense(*part.tensors())).numpy()
    return out


def pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision; NaN without both classes."""
    return metrics.pr_auc(y, s) if 0 < y.sum() < len(y) else float("nan")


def fit_gnn(
    prep: Prepared,
    split: Split,
    config: TrainConfig,
    *,
    train_rows: np.ndarray | None = None,
    progress: Progress = None,
) -> tuple[FraudSAGE, dict[str, Any]]:
    """Train :class:`FraudSAGE` on the training rows; early stopping on validation PR-AUC.

    Runs with one intra-op thread: the batches are small, and a second thread that has to
    wait for a busy core stalls every operation (see :func:`gnn.model.intra_op_threads`).
    """
    with intra_op_threads(1):
        return _fit_gnn(prep, split, config, train_rows, progress)


def _fit_gnn(
    prep: Prepared,
    split: Split,
    config: TrainConfig,
    train_rows: np.ndarray | None,
    progress: Progress,
) -> tuple[FraudSAGE, dict[str, Any]]:
    _seed(config.seed)
    rows = split.train if train_rows is None else train_rows
    inputs = prep.inputs
    model = FraudSAGE(hidden=config.hidden, dropout=config.dropout)
    x = torch.from_numpy(inputs.x[rows])
    ex = torch.from_numpy(inputs.entity_x[rows]).reshape(-1, inputs.entity_x.shape[-1])
    present = torch.from_numpy(inputs.has[rows]).reshape(-1) > 0
    model.set_scaling(x.mean(0), x.std(0), ex[present].mean(0), ex[present].std(0))
    y_all = torch.from_numpy(prep.y.astype(np.float32))
    pos = float(prep.y[rows].sum())
    neg = float(len(rows) - pos)
    pos_weight = math.sqrt(neg / max(pos, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    val_y = prep.y[split.val]
    val_inputs = inputs.take(split.val)
    best = (-1.0, 0)
    best_state: dict[str, torch.Tensor] = {}
    curve = []
    for epoch in range(config.epochs):
        model.train()
        started = time.perf_counter()
        order = rows[torch.randperm(len(rows), generator=gen).numpy()]
        total = 0.0
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            logits = model.forward_dense(*inputs.take(idx).tensors())
            loss = loss_fn(logits, y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        ap = pr_auc(val_y, predict(model, val_inputs))
        curve.append({"epoch": epoch + 1, "loss": total / len(order), "val_pr_auc": ap})
        if progress:
            progress(
                f"epoch {epoch + 1}/{config.epochs}: loss {total / len(order):.4f}, "
                f"validation PR-AUC {ap:.4f} ({time.perf_counter() - started:.1f} s)"
            )
        if ap > best[0]:
            best = (ap, epoch + 1)
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch + 1 - best[1] >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, {
        "pos_weight": pos_weight,
        "best_epoch": best[1],
        "val_pr_auc": best[0],
        "curve": curve,
    }


def tabular_matrix(inputs: DenseInputs) -> np.ndarray:
    """The baseline's inputs: the transaction's features and its entities' (no aggregation)."""
    n = len(inputs)
    return np.concatenate([inputs.x, inputs.entity_x.reshape(n, -1), inputs.has], axis=1)


def fit_tabular(
    prep: Prepared, split: Split, seed: int, train_rows: np.ndarray | None = None
) -> Any:
    """LightGBM on :func:`tabular_matrix`, with the GNN's class weighting; early stopping."""
    import lightgbm as lgb

    rows = split.train if train_rows is None else train_rows
    x = tabular_matrix(prep.inputs)
    pos = float(prep.y[rows].sum())
    model = lgb.LGBMClassifier(
        n_estimators=400,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        scale_pos_weight=math.sqrt((len(rows) - pos) / max(pos, 1.0)),
        random_state=seed,
        n_jobs=1,  # OpenMP threads beside other busy processes stall (161 s against 1 s)
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
    )
    model.fit(
        x[rows],
        prep.y[rows],
        eval_X=(x[split.val],),
        eval_y=(prep.y[split.val],),
        eval_metric="average_precision",
        callbacks=[lgb.early_stopping(40, verbose=False)],
    )
    return model


def fit_isolation_forest(prep: Prepared, split: Split, seed: int) -> Any:
    """An Isolation Forest on the training period's transaction features (labels unused)."""
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=200, max_samples=512, random_state=seed, n_jobs=1)
    model.fit(prep.inputs.x[split.train])
    return model


BASELINES = ("tabular", "isolation_forest", "graph_autoencoder")
"""The baseline kinds, in report order."""


def scores_of(kind: str, model: Any, prep: Prepared, rows: np.ndarray) -> np.ndarray:
    """Scores (higher = more suspicious) of one model kind on ``rows``."""
    inputs = prep.inputs.take(rows)
    if kind == "gnn":
        return predict(model, inputs)
    if kind == "tabular":
        x = tabular_matrix(inputs)
        if hasattr(model, "predict_proba"):
            return model.predict_proba(x)[:, 1]  # type: ignore[no-any-return]
        return np.asarray(model.predict(x), dtype=np.float64)
    if kind == "isolation_forest":
        return -model.score_samples(inputs.x)  # type: ignore[no-any-return]
    if kind == "graph_autoencoder":
        return autoencoder_scores(model, inputs)
    raise ValueError(f"kind: unknown model kind {kind!r}")


def save_baselines(folder: Path, models: dict[str, Any]) -> None:
    """Write the baselines into ``folder/baselines``.

    LightGBM as text, the autoencoder's weights, the Isolation Forest pickled (so load only
    registries you wrote).
    """
    out = folder / "baselines"
    out.mkdir(exist_ok=True)
    if "tabular" in models:
        models["tabular"].booster_.save_model(str(out / "tabular.txt"))
    if "isolation_forest" in models:
        with (out / "isolation_forest.pkl").open("wb") as fh:
            pickle.dump(models["isolation_forest"], fh)
    if "graph_autoencoder" in models:
        ae = models["graph_autoencoder"]
        torch.save({"width": ae.width, "state": ae.state_dict()}, out / "graph_autoencoder.pt")


def load_baselines(folder: Path) -> dict[str, Any]:
    """The baselines saved with a model version (those present)."""
    import lightgbm as lgb

    out: dict[str, Any] = {}
    base = folder / "baselines"
    if (base / "tabular.txt").is_file():
        out["tabular"] = lgb.Booster(model_file=str(base / "tabular.txt"))
    if (base / "isolation_forest.pkl").is_file():
        with (base / "isolation_forest.pkl").open("rb") as fh:
            out["isolation_forest"] = pickle.load(fh)  # noqa: S301 - our own registry
    if (base / "graph_autoencoder.pt").is_file():
        saved = torch.load(base / "graph_autoencoder.pt", weights_only=True)
        ae = GraphAutoencoder(saved["width"])
        ae.load_state_dict(saved["state"])
        out["graph_autoencoder"] = ae.eval()
    return out


def quick_metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC and precision/recall at ``threshold`` (NaN without both classes)."""
    if not 0 < y.sum() < len(y):
        nan = float("nan")
        return {
            "roc_auc": nan,
            "pr_auc": nan,
            "precision_at_threshold": nan,
            "recall_at_threshold": nan,
        }
    return {
        "roc_auc": metrics.roc_auc(y, s),
        "pr_auc": metrics.pr_auc(y, s),
        "precision_at_threshold": metrics.precision_at(y, s, threshold),
        "recall_at_threshold": metrics.recall_at(y, s, threshold),
    }


def block_threshold(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """The threshold flagging at most ``fpr`` of honest rows (0.5 without both classes)."""
    if not 0 < y.sum() < len(y):
        return 0.5
    return metrics.threshold_at_fpr(y, s, fpr)


def train(
    data_dir: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    config: TrainConfig | None = None,
    withhold_typology: str | None = None,
    baselines: bool = True,
    progress: Progress = None,
    prepared: Prepared | None = None,
) -> Path:
    """Train on a data folder and write a model version to the registry ``out``.

    Args:
        data_dir: a folder as ``ringfence generate`` writes.
        out: the registry folder.
        seed: seeds every random draw.
        config: GNN hyperparameters.
        withhold_typology: train without this typology's fraud labels (its transactions are
            left out of training and validation), to measure how detectors do on a pattern
            nobody labelled.
        baselines: also fit the tabular and unsupervised baselines.
        progress: called with a line now and then.
        prepared: reuse already-prepared inputs of ``data_dir``.

    Returns:
        The version folder.
    """
    config = config or TrainConfig(seed=seed)
    config.seed = seed
    started = time.perf_counter()
    data_dir = Path(data_dir)
    fp = registry.fingerprint(data_dir)
    prep = prepared or prepare(load_history(data_dir, progress=progress), progress=progress)
    split = temporal_split(prep.ts)
    train_rows, val_rows = split.train, split.val
    if withhold_typology is not None:
        keep = prep.typology != withhold_typology
        train_rows, val_rows = train_rows[keep[train_rows]], val_rows[keep[val_rows]]
        split = Split(train_rows, val_rows, split.test, split.bounds)
    if progress:
        progress(
            f"split: train {len(split.train):,}, validation {len(split.val):,}, "
            f"test {len(split.test):,} transactions"
        )
    model, fit = fit_gnn(prep, split, config, progress=progress)
    val_scores = predict(model, prep.inputs.take(split.val))
    threshold = block_threshold(prep.y[split.val], val_scores, BLOCK_FPR)
    review = min(threshold, block_threshold(prep.y[split.val], val_scores, REVIEW_FPR))
    test_scores = predict(model, prep.inputs.take(split.test))
    results: dict[str, Any] = {
        "gnn": {
            "val": quick_metrics(prep.y[split.val], val_scores, threshold),
            "test": quick_metrics(prep.y[split.test], test_scores, threshold),
        }
    }
    extras: dict[str, Any] = {}
    if baselines:
        extras = {
            "tabular": fit_tabular(prep, split, seed),
            "isolation_forest": fit_isolation_forest(prep, split, seed),
            "graph_autoencoder": fit_autoencoder(prep.inputs, rows=split.train, seed=seed),
        }
        for kind, m in extras.items():
            vs = scores_of(kind, m, prep, split.val)
            t = block_threshold(prep.y[split.val], vs, BLOCK_FPR)
            results[kind] = {
                "threshold": t,
                "test": quick_metrics(prep.y[split.test], scores_of(kind, m, prep, split.test), t),
            }
        if progress:
            progress("baselines: LightGBM, Isolation Forest and graph autoencoder fitted")
    manifest = {
        "version": registry.new_version(fp),
        "created_at": _now_iso(),
        "seed": seed,
        "data": {
            "path": str(data_dir),
            "fingerprint": fp,
            "events": prep.events,
            "transactions": len(prep.rows),
            "fraud_rate": float(prep.y.mean()) if len(prep.y) else 0.0,
            "unlabelled": prep.unlabelled,
            "rejected": prep.rejected,
        },
        "split": split.to_dict(),
        "withheld_typology": withhold_typology,
        "training": {
            "class_weighting": "BCE with pos_weight = sqrt(honest / fraud)",
            "config": {
                k: getattr(config, k)
                for k in ("hidden", "dropout", "epochs", "batch_size", "lr", "weight_decay")
            },
            **fit,
        },
        "thresholds": {
            "block": threshold,
            "review": review,
            "block_fpr_on_validation": BLOCK_FPR,
            "review_fpr_on_validation": REVIEW_FPR,
        },
        "metrics": results,
        "train_seconds": round(time.perf_counter() - started, 1),
    }

    folder = registry.save(
        Path(out), model, manifest, (lambda f: save_baselines(f, extras)) if extras else None
    )
    if progress:
        g = results["gnn"]["test"]
        progress(
            f"model {manifest['version']}: test PR-AUC {g['pr_auc']:.4f}, ROC-AUC "
            f"{g['roc_auc']:.4f}; written to {folder} ({manifest['train_seconds']} s)"
        )
    return folder


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
