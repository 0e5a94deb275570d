"""The GraphSAGE for user-supplied labelled graphs, its training loop and the hyperparameter grids.

The network (:class:`GenericSage`):

* an input projection ``Linear(F_in, hidden)`` + ReLU + dropout;
* ``layers`` blocks ``h = h + dropout(relu(norm(SAGEConv(h))))``: mean aggregation over the
  neighbours with separate weights for the node itself and for its neighbours
  (``root_weight=True``), BatchNorm (or LayerNorm), and a residual connection;
* a head on ``[h, x]`` (the raw input concatenated back, a skip connection): ``Linear`` + ReLU
  + dropout + ``Linear(hidden, 1)``, one logit per node.

With ``layers=0`` it is an MLP on the node's own features: the feature-only baseline.

Training is full-batch with Adam on ``BCEWithLogitsLoss(pos_weight=negatives/positives)``
counted on the training nodes, with early stopping on the validation PR-AUC: training stops
after ``patience`` epochs without a gain of ``min_delta``, and the weights of the best
validation epoch are kept.

>>> import torch
>>> net = GenericSage(4, Params(hidden=8, layers=2))
>>> adj = adjacency(np.array([[0, 1], [1, 0]]), 2)
>>> net.eval()(torch.zeros(2, 4), adj).shape
torch.Size([2])
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from torch_geometric.nn import SAGEConv

from gnn.generic_data import Split

CLIP = 10.0
"""Standardised features are clipped to [-CLIP, CLIP]."""


@dataclass(frozen=True)
class Params:
    """Hyperparameters of one training run."""

    hidden: int = 64
    layers: int = 2
    dropout: float = 0.3
    lr: float = 0.01
    weight_decay: float = 5e-4
    norm: str = "batch"
    skip: bool = True
    max_epochs: int = 200
    patience: int = 50
    min_delta: float = 1e-3

    def __post_init__(self) -> None:
        checks = {
            "hidden": isinstance(self.hidden, int) and self.hidden >= 1,
            "layers": isinstance(self.layers, int) and self.layers >= 0,
            "dropout": isinstance(self.dropout, int | float) and 0 <= self.dropout < 1,
            "lr": isinstance(self.lr, int | float) and self.lr > 0,
            "weight_decay": isinstance(self.weight_decay, int | float) and self.weight_decay >= 0,
            "norm": self.norm in ("batch", "layer", "none"),
            "skip": isinstance(self.skip, bool),
            "max_epochs": isinstance(self.max_epochs, int) and self.max_epochs >= 1,
            "patience": isinstance(self.patience, int) and self.patience >= 1,
            "min_delta": isinstance(self.min_delta, int | float) and self.min_delta >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid hyperparameter(s): {shown}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        """The inverse of :meth:`to_dict` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        return cls(**d)


GRIDS: dict[str, dict[str, list[Any]]] = {
    "tiny": {
        "hidden": [32],
        "layers": [2],
        "dropout": [0.2],
        "max_epochs": [120],
        "patience": [30],
    },
    "small": {"layers": [2, 3], "dropout": [0.2, 0.5]},
    "medium": {
        "hidden": [64, 128],
        "layers": [2, 3],
        "dropout": [0.2, 0.5],
        "lr": [0.01, 0.003],
    },
    "large": {
        "hidden": [64, 128, 256],
        "layers": [2, 3],
        "dropout": [0.2, 0.5],
        "lr": [0.01, 0.003],
        "weight_decay": [0.0, 5e-4],
    },
}
"""Named grids: each key lists the values tried (the product of all lists); unset keys keep
:class:`Params`' defaults. ``small`` (4 runs per split) is the default."""


def grid_params(grid: str) -> list[Params]:
    """The hyperparameter sets of a grid: a name from :data:`GRIDS` or a JSON object of lists.

    >>> [p.layers for p in grid_params('{"layers": [2, 3], "hidden": [16]}')]
    [2, 3]

    Raises:
        ValueError: an unknown grid name, invalid JSON, or an unknown hyperparameter.
    """
    if grid in GRIDS:
        spec: Any = GRIDS[grid]
    else:
        try:
            spec = json.loads(grid)
        except json.JSONDecodeError:
            raise ValueError(
                f"grid must be one of {', '.join(GRIDS)} or a JSON object of lists, got {grid!r}"
            ) from None
        if not isinstance(spec, dict) or not spec:
            raise ValueError("a JSON grid must be a non-empty object of lists")
    keys = list(spec)
    values = [v if isinstance(v, list) else [v] for v in spec.values()]
    out = []
    for combo in itertools.product(*values):
        params = Params.from_dict(dict(zip(keys, combo, strict=True)))
        if params.layers < 1:
            raise ValueError("layers must be at least 1 (0 layers is the MLP baseline)")
        out.append(params)
    return out


class GenericSage(nn.Module):
    """Residual GraphSAGE with an input projection, normalisation and a skip to the head."""

    def __init__(self, in_dim: int, params: Params) -> None:
        super().__init__()
        h = params.hidden
        self.params = params
        self.inp = nn.Linear(in_dim, h)
        self.convs = nn.ModuleList(
            SAGEConv(h, h, aggr="mean", root_weight=True) for _ in range(params.layers)
        )
        self.norms = nn.ModuleList(_norm(params.norm, h) for _ in range(params.layers))
        self.drop = Dropout(params.dropout)
        head_in = h + (in_dim if params.skip else 0)
        self.head = nn.Sequential(
            nn.Linear(head_in, h), nn.ReLU(), Dropout(params.dropout), nn.Linear(h, 1)
        )

    def forward(self, x: torch.Tensor, adj: torch.Tensor | None) -> torch.Tensor:
        """One logit per node; ``adj`` is the adjacency from :func:`adjacency` (unused by MLPs)."""
        h = self.drop(torch.relu(self.inp(x)))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + self.drop(torch.relu(norm(conv(h, adj))))
        if self.params.skip:
            h = torch.cat([h, x], dim=1)
        return self.head(h).squeeze(-1)


class Dropout(nn.Module):
    """Inverted dropout, its mask drawn with ``torch.rand``.

    On CPU this is about twice as fast as ``nn.Dropout`` (which draws with ``bernoulli_``), and
    as reproducible under a seed.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with a share ``p`` of its entries zeroed and the rest scaled by 1/(1-p)."""
        if not self.training or self.p == 0.0:
            return x
        mask = (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    return nn.Identity()


def adjacency(edge_index: np.ndarray, n_nodes: int) -> torch.Tensor:
    """The sparse CSR adjacency (row = target) that SAGEConv aggregates over.

    ``edge_index`` must be sorted by source and hold both directions of every edge, as
    ``load_graph`` returns it, so the matrix is symmetric and its rows are the sources.
    """
    src = torch.from_numpy(np.ascontiguousarray(edge_index[0]))
    dst = torch.from_numpy(np.ascontiguousarray(edge_index[1]))
    crow = torch.zeros(n_nodes + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(src, minlength=n_nodes), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            crow, dst, torch.ones(dst.numel()), (n_nodes, n_nodes), check_invariants=False
        )


@dataclass
class FeatureScaler:
    """Standardises features with statistics of all nodes (no labels used), then clips."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> FeatureScaler:
        """Mean and standard deviation per column (std 0 becomes 1)."""
        x64 = x.astype(np.float64)
        std = x64.std(axis=0)
        return cls(x64.mean(axis=0), np.where(std > 0, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardised and clipped float32 features."""
        z = (x.astype(np.float64) - self.mean) / self.std
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        """A JSON-ready view."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> FeatureScaler:
        """The inverse of :meth:`to_dict`."""
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def log_degree(edge_index: np.ndarray, n_nodes: int) -> np.ndarray:
    """``log1p(degree)`` per node, a [N, 1] column: the GNN's one structural input feature."""
    deg = np.bincount(edge_index[0], minlength=n_nodes).astype(np.float64)
    return np.log1p(deg)[:, None]


def scores(y: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision) of logits against 0/1 labels."""
    return {
        "roc_auc": float(roc_auc_score(y, logits)),
        "pr_auc": float(average_precision_score(y, logits)),
    }


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and use deterministic kernels for the block, restoring the setting after."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


THREAD_NODES = 100_000
"""``auto_threads`` gives one CPU thread per this many nodes."""


def auto_threads(threads: int | None, n_nodes: int) -> int:
    """The CPU threads to train with: ``threads`` if given, else one per ``THREAD_NODES`` nodes.

    Full-batch steps on small graphs are too short to gain from more threads, and on a busy
    machine extra threads can make them many times slower; the automatic choice never exceeds
    torch's current setting.

    >>> auto_threads(None, 2_000), auto_threads(3, 2_000)
    (1, 3)
    """
    if threads is not None:
        return threads
    return max(1, min(torch.get_num_threads(), 1 + n_nodes // THREAD_NODES))


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (``None``: leave the setting alone).

    Results are reproducible for a given seed and thread count.
    """
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Fit:
    """The outcome of one training run: the best validation epoch's weights and scores."""

    params: Params
    state: dict[str, torch.Tensor]
    val: dict[str, float]
    best_epoch: int
    epochs: int
    seconds: float


def fit(
    x: torch.Tensor,
    adj: torch.Tensor | None,
    y: np.ndarray,
    split: Split,
    params: Params,
    *,
    seed: int,
    mlp: bool = False,
) -> Fit:
    """Train one network full-batch, stopping early on the validation PR-AUC.

    Args:
        x: [N, F_in] standardised input features.
        adj: adjacency from :func:`adjacency` (``None`` for the MLP).
        y: [N] labels (only the split's nodes are read).
        split: which nodes train and which validate.
        params: hyperparameters.
        seed: seeds initialisation and dropout.
        mlp: train the feature-only MLP (``layers=0``) instead of the GraphSAGE.

    Returns:
        The best epoch's weights and validation scores.
    """
    started = time.perf_counter()
    if mlp:
        params = replace(params, layers=0)
    with deterministic(seed):
        model = GenericSage(x.shape[1], params)
        opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        train_idx = torch.from_numpy(np.flatnonzero(split.train))
        val_idx = np.flatnonzero(split.val)
        y_train = torch.from_numpy(y[split.train].astype(np.float32))
        y_val = y[split.val]
        positives = float(y_train.sum())
        pos_weight = torch.tensor((y_train.numel() - positives) / positives)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        best = anchor = -1.0
        best_state: dict[str, torch.Tensor] = {}
        best_val: dict[str, float] = {}
        best_epoch = stale = epoch = 0
        for epoch in range(1, params.max_epochs + 1):
            model.train()
            opt.zero_grad()
            loss = loss_fn(model(x, adj)[train_idx], y_train)
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                logits = model(x, adj)[val_idx].numpy()
            val = scores(y_val, logits)
            if val["pr_auc"] > best:
                best, best_val, best_epoch = val["pr_auc"], val, epoch
                best_state = copy.deepcopy(model.state_dict())
            if val["pr_auc"] > anchor + params.min_delta:
                anchor, stale = val["pr_auc"], 0
            else:
                stale += 1
                if stale >= params.patience:
                    break
    return Fit(params, best_state, best_val, best_epoch, epoch, time.perf_counter() - started)


def predict(
    state: dict[str, torch.Tensor], params: Params, x: torch.Tensor, adj: torch.Tensor | None
) -> np.ndarray:
    """Logits of a trained network for every node."""
    model = GenericSage(x.shape[1], params)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model(x, adj).numpy()


def tune(
    x: torch.Tensor,
    adj: torch.Tensor,
    y: np.ndarray,
    split: Split,
    grid: list[Params],
    *,
    seed: int,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> Fit:
    """Train every grid point on the split and keep the best validation PR-AUC (first on ties)."""
    best: Fit | None = None
    for i, params in enumerate(grid, 1):
        result = fit(x, adj, y, split, params, seed=seed)
        if progress is not None:
            shown = ", ".join(
                f"{k}={v}"
                for k, v in params.to_dict().items()
                if k in ("hidden", "layers", "dropout", "lr", "weight_decay")
            )
            progress(
                f"{label}grid {i}/{len(grid)} ({shown}): val PR-AUC {result.val['pr_auc']:.4f} "
                f"at epoch {result.best_epoch}, {result.seconds:.1f}s"
            )
        if best is None or result.val["pr_auc"] > best.val["pr_auc"] + 1e-12:
            best = result
    assert best is not None
    return best
