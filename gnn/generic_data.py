"""Labelled graphs brought by the user: the file formats, their validation, and a synthetic maker.

A labelled graph is node features ``x`` [N, F], an edge list ``edge_index`` [2, E], labels ``y``
[N] (1 fraud, 0 legitimate, -1 unlabelled) and one or more train/validation/test splits. It
comes as one ``.npz`` file or as two Parquet files (``nodes.parquet``, ``edges.parquet``); the
exact layout is in ``docs/generic-graph.md``. :func:`load_graph` reads either, checks every
array, and returns a :class:`LabelledGraph` whose edges are undirected (both directions), with
self-loops and duplicates removed, sorted by (source, target).

>>> g = make_synthetic_graph(300, seed=1, n_splits=2)
>>> g.x.shape, g.n_splits, bool((g.edge_index[0] != g.edge_index[1]).all())
((300, 16), 2, True)
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.errors import RingfenceError, SourceError

RANDOM_SPLIT = (0.6, 0.2, 0.2)
"""Shares of each class's labelled nodes put in train, validation and test by a random split."""

MASKS = ("train_mask", "val_mask", "test_mask")
RESERVED_NODE_COLUMNS = frozenset({"y", "node_id", "id", "node_time"})
"""Columns of ``nodes.parquet`` that are never features (besides the mask columns)."""

_MASK_COLUMN = re.compile(r"^(train|val|test)_mask(?:_(\d+))?$")
_FEATURE_COLUMN = re.compile(r"^x_(\d+)$")


class GraphFormatError(SourceError, ValueError):
    """A labelled graph file is missing, unreadable or invalid.

    ``field`` names the array or column at fault (``x``, ``edge_index``, ``train_mask[:, 1]``,
    ``edges.parquet:src``...) and ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str, *, source: str | Path | None = None) -> None:
        self.field = field
        self.reason = reason
        self.source = str(source) if source is not None else None
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{field}: {reason}")


class ModelFolderError(RingfenceError, ValueError):
    """A model folder is missing, incomplete, of another format, or cannot be written."""


@dataclass(frozen=True)
class Split:
    """One train/validation/test split: three disjoint boolean masks over the nodes."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        """How many nodes each part holds."""
        return {
            "train": int(self.train.sum()),
            "val": int(self.val.sum()),
            "test": int(self.test.sum()),
        }


@dataclass
class LabelledGraph:
    """A validated labelled graph.

    Attributes:
        x: float32 [N, F] node features, as given (not standardised).
        edge_index: int64 [2, E] undirected edges, each in both directions, no self-loops or
            duplicates, sorted by (source, target).
        y: int64 [N] labels: 1 positive (fraud), 0 negative, -1 unlabelled.
        splits: the splits, from the file's masks or made at random (see ``split_origin``).
        feature_names: one name per column of ``x``.
        split_origin: ``"file"`` or a description of the random split.
        fingerprint: sha256 of the input file(s) (``None`` for a graph made in memory).
        files: the input file(s) read, with each one's sha256.
        notes: what loading changed or ignored (self-loops dropped, arrays ignored...).
    """

    x: np.ndarray
    edge_index: np.ndarray
    y: np.ndarray
    splits: list[Split]
    feature_names: list[str] = field(default_factory=list)
    split_origin: str = "file"
    fingerprint: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        """N, the number of nodes."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """F, the number of feature columns."""
        return int(self.x.shape[1])

    @property
    def n_edges(self) -> int:
        """Undirected edges (half of ``edge_index``'s columns)."""
        return int(self.edge_index.shape[1] // 2)

    @property
    def n_splits(self) -> int:
        """S, the number of splits."""
        return len(self.splits)

    def summary(self) -> dict[str, Any]:
        """Counts worth reporting next to metrics."""
        return {
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "features": self.n_features,
            "labelled": int((self.y >= 0).sum()),
            "positives": int((self.y == 1).sum()),
            "splits": self.n_splits,
            "split_origin": self.split_origin,
        }


# --------------------------------------------------------------------------------------------
# Loading


def load_graph(path: str | Path, *, split_seed: int = 0, random_splits: int = 3) -> LabelledGraph:
    """Read and validate a labelled graph from a ``.npz`` file or Parquet files.

    Args:
        path: a ``.npz`` file; or a directory holding ``nodes.parquet`` and ``edges.parquet``;
            or a path prefix ``P`` with ``P.nodes.parquet`` and ``P.edges.parquet``; or a
            ``*nodes.parquet`` file whose edges file has ``edges`` in place of ``nodes``.
        split_seed: seeds the random split made when the input has no masks.
        random_splits: how many random splits to make when the input has no masks.

    Returns:
        The graph, undirected, without self-loops or duplicate edges.

    Raises:
        GraphFormatError: the input is missing, unreadable or invalid; the message names the
            array or column and the reason.
    """
    p = Path(path)
    naming: _NpzNames | _ParquetNames
    if p.suffix == ".npz":
        if not p.is_file():
            raise GraphFormatError("path", "no such file", source=p)
        arrays, files = _read_npz(p), {str(p): _sha256(p)}
        naming = _NpzNames()
    else:
        nodes_path, edges_path = _parquet_paths(p)
        arrays = _read_parquet(nodes_path, edges_path)
        files = {str(nodes_path): _sha256(nodes_path), str(edges_path): _sha256(edges_path)}
        naming = _ParquetNames()
        p = nodes_path
    graph = build_graph(
        arrays, split_seed=split_seed, random_splits=random_splits, naming=naming, source=p
    )
    graph.files = files
    graph.fingerprint = _combined_fingerprint(files)
    return graph


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _combined_fingerprint(files: Mapping[str, str]) -> str:
    """The file's sha256; for several files, the sha256 of their hex digests joined in order."""
    digests = list(files.values())
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise GraphFormatError("path", f"not a readable .npz file ({exc})", source=path) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise GraphFormatError("path", "a single .npy array, not a .npz archive", source=path)
    arrays: dict[str, Any] = {}
    with data:
        for name in data.files:
            try:
                arrays[name] = data[name]
            except ValueError:
                raise GraphFormatError(
                    name, "is an object array (pickled arrays are not read)", source=path
                ) from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise GraphFormatError(name, f"unreadable ({exc})", source=path) from None
    return arrays


def _parquet_paths(p: Path) -> tuple[Path, Path]:
    if p.is_dir():
        nodes, edges = p / "nodes.parquet", p / "edges.parquet"
    elif p.name.endswith("nodes.parquet"):
        nodes = p
        edges = p.with_name(p.name[: -len("nodes.parquet")] + "edges.parquet")
    else:
        nodes = p.with_name(p.name + ".nodes.parquet")
        edges = p.with_name(p.name + ".edges.parquet")
        if not nodes.exists() and not edges.exists():
            raise GraphFormatError(
                "path",
                "not a .npz file, a directory with nodes.parquet and edges.parquet, "
                f"nor a prefix of {nodes.name} and {edges.name}",
                source=p,
            )
    for f in (nodes, edges):
        if not f.is_file():
            raise GraphFormatError(f.name, "no such file", source=f)
    return nodes, edges


def _read_parquet(nodes_path: Path, edges_path: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read(path: Path) -> pa.Table:
        try:
            return pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise GraphFormatError(
                path.name, f"not a readable Parquet file ({exc})", source=path
            ) from None

    nodes, edges = read(nodes_path), read(edges_path)
    arrays: dict[str, Any] = {"_notes": []}

    def column(table: pa.Table, name: str, where: str) -> pa.ChunkedArray:
        if name not in table.column_names:
            raise GraphFormatError(
                f"{where}:{name}",
                f"missing column (columns present: {', '.join(table.column_names) or 'none'})",
                source=nodes_path if where == "nodes.parquet" else edges_path,
            )
        return table.column(name)

    # Labels: null means unlabelled.
    y_col = column(nodes, "y", "nodes.parquet")
    if pa.types.is_floating(y_col.type):  # pandas stores an integer column with gaps as floats
        y_col = y_col.fill_null(-1.0)
    elif pa.types.is_integer(y_col.type) or pa.types.is_boolean(y_col.type):
        y_col = y_col.cast(pa.int64()).fill_null(-1)
    else:
        raise GraphFormatError(
            "nodes.parquet:y", f"must be integers or booleans, got {y_col.type}", source=nodes_path
        )
    arrays["y"] = np.asarray(y_col.to_numpy())

    # Masks: train_mask/val_mask/test_mask (one split) or train_mask_0, val_mask_0, ... (several).
    plain: dict[str, str] = {}
    numbered: dict[str, dict[int, str]] = {}
    for name in nodes.column_names:
        m = _MASK_COLUMN.match(name)
        if m is None:
            continue
        kind = f"{m.group(1)}_mask"
        if m.group(2) is None:
            plain[kind] = name
        else:
            numbered.setdefault(kind, {})[int(m.group(2))] = name
    if plain and numbered:
        raise GraphFormatError(
            "nodes.parquet:" + next(iter(plain.values())),
            "mixes unnumbered mask columns with numbered ones (train_mask_0...); use one style",
            source=nodes_path,
        )
    for kind, name in plain.items():
        arrays[kind] = _mask_column(nodes, name, nodes_path)
    for kind, by_k in numbered.items():
        ks = sorted(by_k)
        if ks != list(range(len(ks))):
            raise GraphFormatError(
                f"nodes.parquet:{kind}_*",
                f"split numbers must run 0..S-1 without gaps, got {ks}",
                source=nodes_path,
            )
        arrays[kind] = np.stack([_mask_column(nodes, by_k[k], nodes_path) for k in ks], axis=1)
        arrays[f"_{kind}_names"] = [by_k[k] for k in ks]

    # Features: x_0..x_{F-1} if any such column exists, else every other numeric column.
    numbered_x = {
        int(m.group(1)): name
        for name in nodes.column_names
        if (m := _FEATURE_COLUMN.match(name)) is not None
    }
    if numbered_x:
        ks = sorted(numbered_x)
        if ks != list(range(len(ks))):
            raise GraphFormatError(
                "nodes.parquet:x_*",
                f"feature columns must be x_0..x_{{F-1}} without gaps, got numbers {ks}",
                source=nodes_path,
            )
        feature_columns = [numbered_x[k] for k in ks]
    else:
        feature_columns = []
        skipped = []
        for name in nodes.column_names:
            if name in RESERVED_NODE_COLUMNS or _MASK_COLUMN.match(name):
                continue
            t = nodes.column(name).type
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
                feature_columns.append(name)
            else:
                skipped.append(name)
        if skipped:
            arrays["_notes"].append(f"non-numeric node columns ignored: {', '.join(skipped)}")
    cols = []
    for name in feature_columns:
        col = nodes.column(name)
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise GraphFormatError(
                f"nodes.parquet:{name}",
                f"feature column must be numeric, got {t}",
                source=nodes_path,
            )
        if col.null_count:
            raise GraphFormatError(
                f"nodes.parquet:{name}",
                f"{col.null_count} null value(s); fill or drop them first",
                source=nodes_path,
            )
        cols.append(col.cast(pa.float64()).to_numpy())
    arrays["x"] = (
        np.stack(cols, axis=1) if cols else np.zeros((nodes.num_rows, 0), dtype=np.float64)
    )
    arrays["_feature_names"] = feature_columns

    # Edges: src, dst as node row numbers.
    ends = []
    for name in ("src", "dst"):
        col = column(edges, name, "edges.parquet")
        if not pa.types.is_integer(col.type):
            raise GraphFormatError(
                f"edges.parquet:{name}",
                f"must be integer node row numbers, got {col.type}",
                source=edges_path,
            )
        if col.null_count:
            raise GraphFormatError(
                f"edges.parquet:{name}", f"{col.null_count} null value(s)", source=edges_path
            )
        ends.append(col.cast(pa.int64()).to_numpy())
    arrays["edge_index"] = np.stack(ends) if ends[0].size else np.zeros((2, 0), dtype=np.int64)
    return arrays


def _mask_column(table: Any, name: str, source: Path) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name)
    if col.null_count:
        raise GraphFormatError(
            f"nodes.parquet:{name}", f"{col.null_count} null value(s)", source=source
        )
    if not (pa.types.is_boolean(col.type) or pa.types.is_integer(col.type)):
        raise GraphFormatError(
            f"nodes.parquet:{name}", f"must be boolean, got {col.type}", source=source
        )
    return np.asarray(col.to_numpy())


class _NpzNames:
    """How errors name things in a ``.npz`` file."""

    def array(self, name: str) -> str:
        return name

    def mask(self, kind: str, k: int, n_splits: int, arrays: Mapping[str, Any]) -> str:
        return kind if n_splits == 1 and arrays[kind].ndim == 1 else f"{kind}[:, {k}]"


class _ParquetNames:
    """How errors name things in Parquet files."""

    def array(self, name: str) -> str:
        if name == "edge_index":
            return "edges.parquet:src/dst"
        if name == "x":
            return "nodes.parquet:features"
        return f"nodes.parquet:{name}"

    def mask(self, kind: str, k: int, n_splits: int, arrays: Mapping[str, Any]) -> str:
        names = arrays.get(f"_{kind}_names")
        return f"nodes.parquet:{names[k] if names else kind}"


# --------------------------------------------------------------------------------------------
# Validation


def build_graph(
    arrays: Mapping[str, Any],
    *,
    split_seed: int = 0,
    random_splits: int = 3,
    naming: Any = None,
    source: str | Path | None = None,
) -> LabelledGraph:
    """Validate arrays (``x``, ``edge_index``, ``y``, optional masks) into a LabelledGraph.

    Used by :func:`load_graph`; call it directly for arrays already in memory.

    Args:
        arrays: a mapping with the arrays of the ``.npz`` format.
        split_seed: seeds the random split made when there are no masks.
        random_splits: how many random splits to make when there are no masks.
        naming: how errors name arrays (internal; ``.npz`` names by default).
        source: the file named in errors.

    Returns:
        The graph, undirected, without self-loops or duplicate edges.

    Raises:
        GraphFormatError: an array is missing or invalid.
    """
    names = naming if naming is not None else _NpzNames()

    def fail(name: str, reason: str) -> GraphFormatError:
        return GraphFormatError(names.array(name), reason, source=source)

    for required in ("x", "edge_index", "y"):
        if required not in arrays:
            listed = ", ".join(k for k in arrays if not k.startswith("_")) or "none"
            raise fail(required, f"missing (arrays present: {listed})")
    notes: list[str] = list(arrays.get("_notes", []))

    # x
    x = np.asarray(arrays["x"])
    if x.ndim != 2:
        raise fail("x", f"must have shape [N, F], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise fail("x", f"must be real numbers, got dtype {x.dtype}")
    n, f = x.shape
    if n == 0:
        raise fail("x", "has no nodes (N = 0)")
    if f == 0:
        raise fail("x", "has no feature columns (F = 0)")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise fail("x", f"{int(bad.sum())} NaN or infinite value(s), first at x[{row}, {col}]")
    x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        raise fail("x", "values too large for 32-bit floats (|x| > 3.4e38)")

    # y
    y = np.asarray(arrays["y"])
    if y.ndim != 1 or y.shape[0] != n:
        raise fail("y", f"must have shape [N] = [{n}] (N from x), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise fail("y", "NaN or infinite label(s); use -1 for unlabelled nodes")
        if (y != np.round(y)).any():
            raise fail("y", "labels must be whole numbers (1, 0, -1 for unlabelled)")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise fail("y", f"must be integers (1, 0, -1 for unlabelled), got dtype {y.dtype}")
    y = y.astype(np.int64)
    wrong = ~np.isin(y, (-1, 0, 1))
    if wrong.any():
        values = sorted({int(v) for v in y[wrong][:1000]})[:5]
        raise fail("y", f"labels must be 1, 0 or -1 (unlabelled), found {values}")
    for cls in (0, 1):
        if not (y == cls).any():
            raise fail("y", f"no node is labelled {cls}; both classes are needed")

    # edge_index
    ei = np.asarray(arrays["edge_index"])
    if ei.ndim != 2 or ei.shape[0] != 2:
        hint = " (transpose it: edge_index.T)" if ei.ndim == 2 and ei.shape[1] == 2 else ""
        raise fail("edge_index", f"must have shape [2, E], got shape {ei.shape}{hint}")
    if ei.shape[1] and not np.issubdtype(ei.dtype, np.integer):
        raise fail("edge_index", f"must be integer node numbers, got dtype {ei.dtype}")
    ei = ei.astype(np.int64)
    if ei.size:
        out = (ei < 0) | (ei >= n)
        if out.any():
            col = int(np.argwhere(out.any(axis=0))[0, 0])
            raise fail(
                "edge_index",
                f"{int(out.any(axis=0).sum())} edge(s) point outside 0..{n - 1} (N = {n}), "
                f"first edge_index[:, {col}] = ({ei[0, col]}, {ei[1, col]})",
            )
    edge_index, dropped_loops, given = _undirected(ei, n)
    notes.append(
        f"edge_index: {given} edge(s) given, {edge_index.shape[1] // 2} undirected edge(s) after "
        f"adding reverse edges, merging duplicates and dropping {dropped_loops} self-loop(s)"
    )

    # masks
    present = [k for k in MASKS if k in arrays]
    if present and len(present) < len(MASKS):
        missing = [k for k in MASKS if k not in arrays]
        raise fail(
            missing[0], f"missing while {', '.join(present)} given: give all three masks or none"
        )
    if present:
        splits = _file_splits(arrays, y, n, names, source)
        origin = "file"
    else:
        splits = random_split(y, seed=split_seed, n_splits=random_splits)
        shares = "/".join(str(round(100 * s)) for s in RANDOM_SPLIT)
        origin = (
            f"random stratified {shares} of labelled nodes, {random_splits} split(s), "
            f"seed {split_seed}"
        )
        notes.append(f"no masks: {origin}")
    feature_names = list(arrays.get("_feature_names") or [f"x_{i}" for i in range(f)])
    return LabelledGraph(
        x=x32,
        edge_index=edge_index,
        y=y,
        splits=splits,
        feature_names=feature_names,
        split_origin=origin,
        notes=notes,
    )


def _undirected(ei: np.ndarray, n: int) -> tuple[np.ndarray, int, int]:
    """Both directions of every edge, no self-loops or duplicates, sorted by (source, target)."""
    given = ei.shape[1]
    loops = ei[0] == ei[1]
    src, dst = ei[0, ~loops], ei[1, ~loops]
    keys = np.unique(np.concatenate([src * n + dst, dst * n + src]))
    return np.stack([keys // n, keys % n]).astype(np.int64), int(loops.sum()), given


def _as_mask(a: np.ndarray, label: str, fail: Any) -> np.ndarray:
    if a.dtype == np.bool_:
        return a
    if np.issubdtype(a.dtype, np.integer) and np.isin(a, (0, 1)).all():
        return a.astype(bool)
    raise fail(label, f"must be boolean (or 0/1), got dtype {a.dtype}")


def _file_splits(
    arrays: Mapping[str, Any], y: np.ndarray, n: int, names: Any, source: str | Path | None
) -> list[Split]:
    def fail(label: str, reason: str) -> GraphFormatError:
        return GraphFormatError(label, reason, source=source)

    masks: dict[str, np.ndarray] = {}
    n_splits = None
    for kind in MASKS:
        a = np.asarray(arrays[kind])
        label = names.array(kind)
        if a.ndim not in (1, 2) or a.shape[0] != n:
            raise fail(label, f"must have shape [N] or [N, S] with N = {n}, got shape {a.shape}")
        a = _as_mask(a, label, fail)
        a = a[:, None] if a.ndim == 1 else a
        if a.shape[1] == 0:
            raise fail(label, "has no splits (S = 0)")
        if n_splits is None:
            n_splits = a.shape[1]
        elif a.shape[1] != n_splits:
            raise fail(label, f"has {a.shape[1]} split(s), train_mask has {n_splits}")
        masks[kind] = a
    assert n_splits is not None
    splits = []
    for k in range(n_splits):
        parts = {kind: masks[kind][:, k] for kind in MASKS}
        label = {kind: names.mask(kind, k, n_splits, arrays) for kind in MASKS}
        for i, first in enumerate(MASKS):
            for second in MASKS[i + 1 :]:
                both = parts[first] & parts[second]
                if both.any():
                    raise fail(
                        f"{label[first]}/{label[second].removeprefix('nodes.parquet:')}",
                        f"overlap on {int(both.sum())} node(s), first node {int(np.argmax(both))}",
                    )
        for kind in MASKS:
            m = parts[kind]
            unlabelled = m & (y < 0)
            if unlabelled.any():
                raise fail(
                    label[kind],
                    f"selects {int(unlabelled.sum())} unlabelled node(s) (y = -1), "
                    f"first node {int(np.argmax(unlabelled))}",
                )
            if not m.any():
                raise fail(label[kind], "selects no node (empty split)")
            for cls in (0, 1):
                if not (y[m] == cls).any():
                    raise fail(label[kind], f"selects no node labelled {cls}; both classes needed")
        splits.append(Split(parts["train_mask"], parts["val_mask"], parts["test_mask"]))
    return splits


def random_split(y: np.ndarray, *, seed: int = 0, n_splits: int = 3) -> list[Split]:
    """Stratified random splits of the labelled nodes, 60/20/20 of each class.

    Split ``k`` draws from ``numpy.random.default_rng([seed, k])``, so the same seed always
    gives the same splits.

    Raises:
        GraphFormatError: a class has fewer than 3 labelled nodes, or ``n_splits`` < 1.
    """
    if n_splits < 1:
        raise GraphFormatError("random_splits", f"must be at least 1, got {n_splits}")
    for cls in (0, 1):
        count = int((y == cls).sum())
        if count < 3:
            raise GraphFormatError(
                "y", f"a random split needs at least 3 nodes labelled {cls}, found {count}"
            )
    n = y.shape[0]
    splits = []
    for k in range(n_splits):
        rng = np.random.default_rng([seed, k])
        parts = [np.zeros(n, dtype=bool) for _ in range(3)]
        for cls in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == cls))
            n_val = max(1, round(RANDOM_SPLIT[1] * idx.size))
            n_test = max(1, round(RANDOM_SPLIT[2] * idx.size))
            n_train = idx.size - n_val - n_test
            parts[0][idx[:n_train]] = True
            parts[1][idx[n_train : n_train + n_val]] = True
            parts[2][idx[n_train + n_val :]] = True
        splits.append(Split(*parts))
    return splits


# --------------------------------------------------------------------------------------------
# Writing


def _stacked_masks(graph: LabelledGraph) -> dict[str, np.ndarray]:
    out = {}
    for kind, attr in zip(MASKS, ("train", "val", "test"), strict=True):
        cols = [getattr(s, attr) for s in graph.splits]
        out[kind] = cols[0] if len(cols) == 1 else np.stack(cols, axis=1)
    return out


def save_npz(graph: LabelledGraph, path: str | Path, *, masks: bool = True) -> Path:
    """Write a graph in the ``.npz`` format (masks [N] for one split, [N, S] for several).

    Args:
        graph: the graph.
        path: the file to write (``.npz`` is appended if missing).
        masks: write the splits' masks (without them, a loader makes random splits).

    Returns:
        The path written.
    """
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    arrays: dict[str, np.ndarray] = {"x": graph.x, "edge_index": graph.edge_index, "y": graph.y}
    if masks:
        arrays.update(_stacked_masks(graph))
    np.savez_compressed(p, **arrays)  # type: ignore[arg-type]
    return p


def save_parquet(graph: LabelledGraph, directory: str | Path, *, masks: bool = True) -> Path:
    """Write a graph as ``nodes.parquet`` and ``edges.parquet`` in a directory.

    Features go in columns ``x_0..x_{F-1}``, labels in ``y`` (null for unlabelled), masks in
    ``train_mask``/``val_mask``/``test_mask`` for one split or ``train_mask_0``, ``val_mask_0``,
    ``test_mask_0``, ``train_mask_1``... for several.

    Returns:
        The directory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cols: dict[str, Any] = {f"x_{i}": graph.x[:, i] for i in range(graph.n_features)}
    cols["y"] = pa.array(graph.y, mask=graph.y < 0, type=pa.int64())
    if masks:
        for k, split in enumerate(graph.splits):
            suffix = "" if graph.n_splits == 1 else f"_{k}"
            cols[f"train_mask{suffix}"] = split.train
            cols[f"val_mask{suffix}"] = split.val
            cols[f"test_mask{suffix}"] = split.test
    pq.write_table(pa.table(cols), d / "nodes.parquet")
    pq.write_table(
        pa.table({"src": graph.edge_index[0], "dst": graph.edge_index[1]}), d / "edges.parquet"
    )
    return d


# --------------------------------------------------------------------------------------------
# Synthetic graphs


def make_synthetic_graph(
    n_nodes: int = 2000,
    seed: int = 0,
    *,
    n_features: int = 16,
    n_splits: int = 3,
    fraud_share: float = 0.06,
    community_size: tuple[int, int] = (6, 20),
    links: tuple[int, int] = (4, 3),
    random_degree: float = 6.0,
    signal: float = 0.5,
    unlabelled_share: float = 0.1,
) -> LabelledGraph:
    """A labelled graph whose labels depend on the neighbourhood: fraud rings in a crowd.

    Nodes fall into communities of ``community_size`` nodes; the communities that hold
    ``fraud_share`` of the nodes are fraud rings (all members positive), the rest are honest.
    Each member links to ``links`` random members of its own community (rings a little more
    densely than honest communities), and every node also has about ``random_degree`` random
    links anywhere (camouflage). Features
    are Gaussian noise plus a per-community offset; positives are shifted by ``signal`` along
    one fixed direction, so one node's features say little (ROC-AUC about 0.6-0.7) while the
    average over its ring says much more. ``unlabelled_share`` of the nodes get ``y = -1``.
    The ``n_splits`` splits are stratified random 60/20/20 splits of the labelled nodes
    (seeded by ``seed``), given as masks as if read from a file.

    Args:
        n_nodes: N.
        seed: seeds everything.
        n_features: F.
        n_splits: S.
        fraud_share: share of nodes in fraud rings.
        community_size: smallest and largest community.
        links: links drawn from each member to random members of its own community, for
            fraud rings and for honest communities.
        random_degree: average number of random links per node.
        signal: shift of positives' features along the fraud direction (noise has std 1).
        unlabelled_share: share of nodes without a label.

    Returns:
        The graph (``split_origin`` is ``"synthetic"``).
    """
    if n_nodes < 50:
        raise ValueError("n_nodes must be at least 50")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_nodes)
    lo, hi = community_size
    communities: list[np.ndarray] = []
    fraud: list[bool] = []
    start, fraud_nodes, fraud_target = 0, 0, round(fraud_share * n_nodes)
    while start < n_nodes:
        members = order[start : start + int(rng.integers(lo, hi + 1))]
        start += len(members)
        communities.append(members)
        fraud.append(fraud_nodes < fraud_target)
        fraud_nodes += len(members) if fraud[-1] else 0

    y = np.zeros(n_nodes, dtype=np.int64)
    direction = rng.normal(size=n_features)
    direction /= np.linalg.norm(direction)
    x = rng.normal(size=(n_nodes, n_features))
    src_parts, dst_parts = [], []
    for members, is_fraud in zip(communities, fraud, strict=True):
        x[members] += rng.normal(scale=0.3, size=n_features)
        inner = links[0] if is_fraud else links[1]
        if is_fraud:
            y[members] = 1
            x[members] += signal * direction
        if len(members) > 1:
            a = np.repeat(members, inner)
            b = members[rng.integers(0, len(members), size=a.size)]
            src_parts.append(a)
            dst_parts.append(b)
    n_random = round(random_degree * n_nodes / 2)
    src_parts.append(rng.integers(0, n_nodes, size=n_random))
    dst_parts.append(rng.integers(0, n_nodes, size=n_random))
    ei = np.stack([np.concatenate(src_parts), np.concatenate(dst_parts)]).astype(np.int64)
    edge_index, _, _ = _undirected(ei, n_nodes)

    unlabelled = rng.random(n_nodes) < unlabelled_share
    y[unlabelled] = -1
    splits = random_split(y, seed=seed, n_splits=n_splits)
    return LabelledGraph(
        x=x.astype(np.float32),
        edge_index=edge_index,
        y=y,
        splits=splits,
        feature_names=[f"x_{i}" for i in range(n_features)],
        split_origin="synthetic",
    )


def stack_arrays(graph: LabelledGraph) -> dict[str, np.ndarray]:
    """The graph's arrays as the ``.npz`` format names them (for comparisons and saving)."""
    return {"x": graph.x, "edge_index": graph.edge_index, "y": graph.y, **_stacked_masks(graph)}


__all__ = [
    "RANDOM_SPLIT",
    "GraphFormatError",
    "LabelledGraph",
    "ModelFolderError",
    "Split",
    "build_graph",
    "load_graph",
    "make_synthetic_graph",
    "random_split",
    "save_npz",
    "save_parquet",
    "stack_arrays",
]
