"""A transaction subgraph as JSON, for scoring it in another process (TorchServe).

:func:`to_payload` turns the :class:`~torch_geometric.data.HeteroData` that
:meth:`gnn.online.HistoryGraph.subgraph` builds into a JSON-ready dict, and :func:`from_payload`
turns it back, checking it against the model's graph (node types, feature widths, edge types,
index ranges). The format (``docs/torchserve.md``)::

    {
      "format": "ringfence.subgraph/1",
      "nodes": {
        "txn":     {"x": [[...71 floats...], ...], "txn_id": ["t-1", ...]},
        "account": {"x": {"base64": "...", "shape": [n, 6]}},
        ...                                   one entry per entity kind, possibly 0 rows
      },
      "edges": [
        {"type": ["txn", "by", "account"], "index": [[src, ...], [dst, ...]]},
        ...                                   every edge type of FraudSAGE.edge_types()
      ],
      "target": [0, 5, ...]                   the txn nodes to score
    }

A feature matrix is either nested lists (one list per node) or ``{"base64", "shape"}``: the
float32 values, little-endian, row-major, base64-encoded. Both are exact: a float32 written as
a JSON number and read back as float64 converts back to the same float32. Edge types missing
from ``edges`` are empty; node types missing from ``nodes`` have no nodes. ``txn_id`` is
optional (scores then name transactions ``#<node index>``).

:func:`merge` joins several subgraphs into one disjoint graph, so that a batch of requests is
scored in one forward pass.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from gnn.features import ENTITY_FEATURES, ENTITY_KINDS, TXN_FEATURES
from gnn.model import TXN, FraudSAGE

FORMAT: Final = "ringfence.subgraph/1"
NODE_TYPES: Final = (TXN, *ENTITY_KINDS)
EDGE_TYPES: Final = tuple(FraudSAGE.edge_types())
WIDTH: Final = {TXN: len(TXN_FEATURES)} | {k: len(ENTITY_FEATURES) for k in ENTITY_KINDS}
"""Feature columns per node type."""

Encoding = Literal["list", "base64"]


class PayloadError(ValueError):
    """A payload is not a valid subgraph for the model."""


def _matrix_out(x: Tensor, encoding: Encoding) -> Any:
    arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
    if encoding == "list":
        return arr.tolist()
    raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    return {"base64": base64.b64encode(raw).decode("ascii"), "shape": list(arr.shape)}


def to_payload(data: HeteroData, encoding: Encoding = "base64") -> dict[str, Any]:
    """The JSON-ready payload of a subgraph (see the module doc).

    Args:
        data: a subgraph as :meth:`gnn.online.HistoryGraph.subgraph` builds it.
        encoding: feature matrices as nested lists or base64 float32.
    """
    if encoding not in ("list", "base64"):
        raise PayloadError(f"encoding must be 'list' or 'base64', not {encoding!r}")
    nodes: dict[str, Any] = {}
    for kind in NODE_TYPES:
        if kind not in data.node_types:
            continue
        store = data[kind]
        entry: dict[str, Any] = {"x": _matrix_out(store.x, encoding)}
        if kind == TXN and "txn_id" in store:
            entry["txn_id"] = [str(t) for t in store.txn_id]
        nodes[kind] = entry
    edges = [
        {"type": list(et), "index": data[et].edge_index.tolist()}
        for et in EDGE_TYPES
        if et in data.edge_types and data[et].edge_index.numel()
    ]
    return {
        "format": FORMAT,
        "nodes": nodes,
        "edges": edges,
        "target": data[TXN].target.tolist(),
    }


def _matrix_in(kind: str, value: Any) -> Tensor:
    width = WIDTH[kind]
    arr: np.ndarray
    if isinstance(value, Mapping):
        shape = value.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(s, int) and s >= 0 for s in shape)
        ):
            raise PayloadError(f"nodes.{kind}.x.shape must be [rows, {width}], not {shape!r}")
        try:
            raw = base64.b64decode(value.get("base64", ""), validate=True)
        except (binascii.Error, TypeError, ValueError) as err:
            raise PayloadError(f"nodes.{kind}.x.base64 is not base64: {err}") from None
        if len(raw) != 4 * shape[0] * shape[1]:
            raise PayloadError(
                f"nodes.{kind}.x.base64 holds {len(raw)} bytes, not 4 x {shape[0]} x {shape[1]}"
            )
        arr = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    elif isinstance(value, list):
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise PayloadError(f"nodes.{kind}.x is not a matrix of numbers: {err}") from None
        if arr.size == 0:
            arr = arr.reshape(0, width)
    else:
        raise PayloadError(f"nodes.{kind}.x must be a list of rows or {{base64, shape}}")
    if arr.ndim != 2 or arr.shape[1] != width:
        raise PayloadError(f"nodes.{kind}.x has shape {list(arr.shape)}, expected [rows, {width}]")
    if not np.isfinite(arr).all():
        raise PayloadError(f"nodes.{kind}.x holds a value that is not finite")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _index_in(name: str, value: Any, bound: int) -> Tensor:
    try:
        arr = np.asarray(value, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise PayloadError(f"{name} is not a list of integers: {err}") from None
    return _check_range(name, arr, bound)


def _check_range(name: str, arr: np.ndarray, bound: int) -> Tensor:
    if arr.size and (arr.min() < 0 or arr.max() >= bound):
        raise PayloadError(f"{name} points outside its {bound} nodes")
    return torch.from_numpy(np.ascontiguousarray(arr))


def from_payload(payload: Mapping[str, Any]) -> HeteroData:
    """The subgraph a payload describes, ready for :meth:`gnn.model.FraudSAGE.forward`.

    Raises:
        PayloadError: the payload is malformed or does not fit the model's graph.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError(f"a payload is a JSON object, not {type(payload).__name__}")
    fmt = payload.get("format", FORMAT)
    if fmt != FORMAT:
        raise PayloadError(f"format {fmt!r} is not {FORMAT!r}")
    nodes = payload.get("nodes")
    if not isinstance(nodes, Mapping) or TXN not in nodes:
        raise PayloadError("nodes must be an object with at least a 'txn' entry")
    unknown = set(nodes) - set(NODE_TYPES)
    if unknown:
        raise PayloadError(f"unknown node types {sorted(unknown)}; known: {list(NODE_TYPES)}")
    data = HeteroData()
    counts: dict[str, int] = {}
    for kind in NODE_TYPES:
        entry = nodes.get(kind, {"x": []})
        if not isinstance(entry, Mapping) or "x" not in entry:
            raise PayloadError(f"nodes.{kind} must be an object with 'x'")
        x = _matrix_in(kind, entry["x"])
        data[kind].x = x
        counts[kind] = x.shape[0]
    n_txn = counts[TXN]
    ids = nodes[TXN].get("txn_id")
    if ids is None:
        ids = [f"#{i}" for i in range(n_txn)]
    elif not isinstance(ids, list) or len(ids) != n_txn:
        raise PayloadError(f"nodes.txn.txn_id must list one id per txn node ({n_txn})")
    data[TXN].txn_id = [str(t) for t in ids]

    index: dict[tuple[str, str, str], Tensor] = {}
    edges = payload.get("edges", [])
    if not isinstance(edges, list):
        raise PayloadError("edges must be a list of {type, index}")
    for i, edge in enumerate(edges):
        if not isinstance(edge, Mapping):
            raise PayloadError(f"edges[{i}] must be an object with 'type' and 'index'")
        et = tuple(edge.get("type") or ())
        if et not in EDGE_TYPES:
            raise PayloadError(f"edges[{i}].type {list(et)} is not an edge type of the model")
        if et in index:
            raise PayloadError(f"edges[{i}].type {list(et)} appears twice")
        src, _, dst = et
        try:
            arr = np.asarray(edge.get("index"), dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as err:
            raise PayloadError(f"edges[{i}].index is not a list of integers: {err}") from None
        if arr.size == 0:
            arr = arr.reshape(2, 0)
        if arr.ndim != 2 or arr.shape[0] != 2:
            raise PayloadError(f"edges[{i}].index must be [[sources], [targets]]")
        rows = _check_range(f"edges[{i}].index[0]", arr[0], counts[src])
        cols = _check_range(f"edges[{i}].index[1]", arr[1], counts[dst])
        index[et] = torch.stack([rows, cols])  # type: ignore[index]
    for et in EDGE_TYPES:
        data[et].edge_index = index.get(et, torch.zeros((2, 0), dtype=torch.long))

    target = payload.get("target")
    if not isinstance(target, list) or not target:
        raise PayloadError("target must be a non-empty list of txn node indexes")
    data[TXN].target = _index_in("target", target, n_txn).reshape(-1)
    return data


def merge(graphs: Sequence[HeteroData]) -> tuple[HeteroData, list[int]]:
    """Several subgraphs as one disjoint graph, and how many targets each contributed.

    Node indexes of each graph are shifted past the nodes of the graphs before it, so one
    forward pass scores every target, each exactly as it would alone.
    """
    if len(graphs) == 1:
        return graphs[0], [int(graphs[0][TXN].target.numel())]
    offset = dict.fromkeys(NODE_TYPES, 0)
    xs: dict[str, list[Tensor]] = {k: [] for k in NODE_TYPES}
    edges: dict[tuple[str, str, str], list[Tensor]] = {et: [] for et in EDGE_TYPES}
    targets: list[Tensor] = []
    ids: list[str] = []
    sizes: list[int] = []
    for g in graphs:
        for et in EDGE_TYPES:
            src, _, dst = et
            shift = torch.tensor([[offset[src]], [offset[dst]]], dtype=torch.long)
            edges[et].append(g[et].edge_index + shift)
        targets.append(g[TXN].target + offset[TXN])
        ids += list(g[TXN].txn_id)
        sizes.append(int(g[TXN].target.numel()))
        for kind in NODE_TYPES:
            xs[kind].append(g[kind].x)
            offset[kind] += g[kind].x.shape[0]
    out = HeteroData()
    for kind in NODE_TYPES:
        out[kind].x = torch.cat(xs[kind])
    out[TXN].txn_id = ids
    out[TXN].target = torch.cat(targets)
    for et in EDGE_TYPES:
        out[et].edge_index = torch.cat(edges[et], dim=1)
    return out, sizes
