"""Bring your own labelled graph: formats, validation, training, evaluation, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gnn.generic import (
    GraphFormatError,
    ModelFolderError,
    evaluate_generic,
    format_report,
    load_graph,
    make_synthetic_graph,
    save_npz,
    save_parquet,
    train_generic,
)
from gnn.generic_data import stack_arrays
from gnn.generic_model import grid_params
from ingest.errors import RingfenceError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "generic-graph.md"
TRAIN_KW: dict[str, Any] = {"grid": "tiny", "threads": 1}


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def without_times(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without wall-clock fields, which differ between identical runs."""
    out = json.loads(json.dumps(metrics))
    out.pop("created_at", None)
    out.pop("train_seconds", None)
    for row in out["splits"]:
        row.pop("train_seconds", None)
    return out


# ---------------------------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize("n_splits", [1, 3])
def test_npz_and_parquet_round_trip(tmp_path: Path, n_splits: int) -> None:
    g = make_synthetic_graph(300, seed=1, n_splits=n_splits)
    assert (g.y == -1).any()  # unlabelled nodes travel as -1 / null
    npz = save_npz(g, tmp_path / "g.npz")
    pdir = save_parquet(g, tmp_path / "pq")
    from_npz, from_parquet = load_graph(npz), load_graph(pdir)
    assert_same_arrays(stack_arrays(from_npz), stack_arrays(g))
    assert_same_arrays(stack_arrays(from_parquet), stack_arrays(g))
    assert from_npz.split_origin == from_parquet.split_origin == "file"
    assert from_npz.fingerprint == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert from_parquet.feature_names == [f"x_{i}" for i in range(16)]
    columns = pq.read_schema(pdir / "nodes.parquet").names
    assert ("train_mask" in columns) == (n_splits == 1)
    assert ("train_mask_2" in columns) == (n_splits == 3)


def test_parquet_path_forms_and_plain_feature_columns(tmp_path: Path) -> None:
    nodes = pa.table(
        {
            "node_id": [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
            "name": list("abcdefghij"),
            "amount": [1.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            "age_days": [5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
            "y": pa.array([0, 1, 0, 1, 0, 1, 0, 1, None, 0], type=pa.int8()),
        }
    )
    edges = pa.table({"src": [0, 1, 2, 3, 3], "dst": [1, 2, 3, 3, 4], "edge_time": [1] * 5})
    pq.write_table(nodes, tmp_path / "fraud.nodes.parquet")
    pq.write_table(edges, tmp_path / "fraud.edges.parquet")
    by_prefix = load_graph(tmp_path / "fraud", random_splits=1)
    by_file = load_graph(tmp_path / "fraud.nodes.parquet", random_splits=1)
    assert by_prefix.feature_names == ["amount", "age_days"]  # node_id and strings are skipped
    assert by_prefix.x.dtype == np.float32
    assert by_prefix.x.shape == (10, 2)
    assert by_prefix.y.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, -1, 0]
    # undirected, self-loop (3, 3) dropped, sorted by (source, target)
    assert by_prefix.edge_index.tolist() == [[0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]]
    assert by_prefix.n_edges == 4
    assert any("1 self-loop" in note for note in by_prefix.notes)
    assert_same_arrays(stack_arrays(by_prefix), stack_arrays(by_file))
    # pandas writes an integer column with gaps as floats: NaN is unlabelled
    float_y = nodes.set_column(4, "y", pa.array([0.0, 1.0] * 4 + [None, 0.0]))
    pq.write_table(float_y, tmp_path / "fraud.nodes.parquet")
    assert load_graph(tmp_path / "fraud", random_splits=1).y.tolist() == by_prefix.y.tolist()
    assert by_prefix.fingerprint == by_file.fingerprint
    assert by_prefix.split_origin.startswith("random stratified 60/20/20")


def test_random_split_is_stratified_seeded_and_disjoint(tmp_path: Path) -> None:
    g = make_synthetic_graph(500, seed=2, n_splits=1)
    path = save_npz(g, tmp_path / "g.npz", masks=False)
    a = load_graph(path, split_seed=5, random_splits=2)
    b = load_graph(path, split_seed=5, random_splits=2)
    c = load_graph(path, split_seed=6, random_splits=2)
    assert a.n_splits == 2
    assert_same_arrays(stack_arrays(a), stack_arrays(b))
    assert not np.array_equal(a.splits[0].train, c.splits[0].train)
    for split in a.splits:
        parts = (split.train, split.val, split.test)
        assert sum(p.astype(int) for p in parts).max() == 1
        assert np.array_equal(split.train | split.val | split.test, g.y >= 0)
        share = split.test[g.y == 1].sum() / (g.y == 1).sum()
        assert 0.15 < share < 0.25


# ---------------------------------------------------------------------------------------------
# Validation


def good_arrays() -> dict[str, np.ndarray]:
    y = np.array([0, 1] * 10, dtype=np.int64)
    train = np.zeros((20, 2), dtype=bool)
    val = np.zeros((20, 2), dtype=bool)
    test = np.zeros((20, 2), dtype=bool)
    train[:12], val[12:16], test[16:] = True, True, True
    return {
        "x": np.random.default_rng(0).normal(size=(20, 3)),
        "edge_index": np.array([[0, 1, 2, 3], [1, 2, 3, 4]]),
        "y": y,
        "train_mask": train,
        "val_mask": val,
        "test_mask": test,
    }


def _set(arrays: dict[str, np.ndarray], key: str, value: Any) -> None:
    arrays[key] = value


def _overlap(a: dict[str, np.ndarray]) -> None:
    a["test_mask"][0, 1] = True


def _empty_train(a: dict[str, np.ndarray]) -> None:
    a["train_mask"][:, 0] = False


def _unlabelled_in_val(a: dict[str, np.ndarray]) -> None:
    a["y"][13] = -1


def _one_class_train(a: dict[str, np.ndarray]) -> None:
    a["train_mask"][1::2, 1] = False


def _nan_feature(a: dict[str, np.ndarray]) -> None:
    a["x"][4, 2] = np.nan


BAD_NPZ = [
    ("no-x", lambda a: a.pop("x"), "x", "missing"),
    ("x-1d", lambda a: _set(a, "x", np.zeros(20)), "x", "shape [N, F]"),
    ("x-strings", lambda a: _set(a, "x", np.array([["a"]] * 20)), "x", "real numbers"),
    ("x-nan", _nan_feature, "x", "x[4, 2]"),
    ("y-length", lambda a: _set(a, "y", a["y"][:19]), "y", "[N] = [20]"),
    ("y-values", lambda a: _set(a, "y", np.array([0, 2] * 10)), "y", "found [2]"),
    ("y-fractions", lambda a: _set(a, "y", a["y"] * 0.5), "y", "whole numbers"),
    ("y-nan", lambda a: _set(a, "y", np.where(a["y"] > 0, np.nan, 0.0)), "y", "use -1"),
    ("y-strings", lambda a: _set(a, "y", a["y"].astype(str)), "y", "integers"),
    ("y-one-class", lambda a: _set(a, "y", np.zeros(20, dtype=int)), "y", "labelled 1"),
    (
        "edges-transposed",
        lambda a: _set(a, "edge_index", a["edge_index"].T),
        "edge_index",
        "transpose",
    ),
    (
        "edges-out-of-range",
        lambda a: _set(a, "edge_index", np.array([[0, 1, 2], [1, 20, 3]])),
        "edge_index",
        "edge_index[:, 1] = (1, 20)",
    ),
    ("edges-float", lambda a: _set(a, "edge_index", np.zeros((2, 3))), "edge_index", "integer"),
    ("masks-incomplete", lambda a: a.pop("val_mask"), "val_mask", "all three"),
    ("mask-length", lambda a: _set(a, "val_mask", a["val_mask"][:5]), "val_mask", "N = 20"),
    ("mask-splits", lambda a: _set(a, "val_mask", a["val_mask"][:, :1]), "val_mask", "1 split"),
    ("mask-dtype", lambda a: _set(a, "test_mask", a["test_mask"] * 0.5), "test_mask", "boolean"),
    ("masks-overlap", _overlap, "train_mask[:, 1]/test_mask[:, 1]", "overlap on 1 node"),
    ("train-empty", _empty_train, "train_mask[:, 0]", "empty split"),
    ("train-one-class", _one_class_train, "train_mask[:, 1]", "no node labelled 1"),
    ("mask-unlabelled", _unlabelled_in_val, "val_mask[:, 0]", "unlabelled"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [case[1:] for case in BAD_NPZ],
    ids=[case[0] for case in BAD_NPZ],
)
def test_bad_npz_inputs_name_the_array(
    tmp_path: Path, mutate: Any, field: str, reason: str
) -> None:
    arrays = good_arrays()
    mutate(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(GraphFormatError) as info:
        load_graph(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, RingfenceError)
    assert err.field == field
    assert reason in err.reason
    assert str(err).startswith(f"{path}: {field}: ")


def test_good_arrays_load(tmp_path: Path) -> None:
    path = tmp_path / "good.npz"
    np.savez(path, **good_arrays())
    g = load_graph(path)
    assert g.n_splits == 2
    assert g.n_nodes == 20
    assert g.n_edges == 4


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(GraphFormatError, match="no such file") as info:
        load_graph(tmp_path / "absent.npz")
    assert info.value.field == "path"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GraphFormatError, match=r"not a readable \.npz"):
        load_graph(tmp_path / "junk.npz")
    arrays = good_arrays()
    np.savez(tmp_path / "obj.npz", **arrays, extra=np.array([{"a": 1}], dtype=object))
    with pytest.raises(GraphFormatError, match="object array") as info:
        load_graph(tmp_path / "obj.npz")
    assert info.value.field == "extra"
    with pytest.raises(GraphFormatError, match=r"not a \.npz file, a directory") as info:
        load_graph(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    pq.write_table(pa.table({"y": [0, 1]}), tmp_path / "half" / "nodes.parquet")
    with pytest.raises(GraphFormatError, match="no such file") as info:
        load_graph(tmp_path / "half")
    assert info.value.field == "edges.parquet"


def write_parquet(d: Path, nodes: dict[str, Any], edges: dict[str, Any]) -> Path:
    d.mkdir()
    pq.write_table(pa.table(nodes), d / "nodes.parquet")
    pq.write_table(pa.table(edges), d / "edges.parquet")
    return d


NODES = {"x_0": [0.1 * i for i in range(10)], "y": [0, 1] * 5}
EDGES = {"src": [0, 1, 2], "dst": [1, 2, 3]}
BAD_PARQUET = [
    ("no-y", {"x_0": NODES["x_0"]}, EDGES, "nodes.parquet:y", "missing column"),
    ("y-strings", {**NODES, "y": ["0", "1"] * 5}, EDGES, "nodes.parquet:y", "integers"),
    ("no-dst", NODES, {"src": [0, 1]}, "edges.parquet:dst", "missing column"),
    ("src-float", NODES, {"src": [0.0, 1.0], "dst": [1, 2]}, "edges.parquet:src", "integer"),
    ("dst-null", NODES, {"src": [0, 1], "dst": [1, None]}, "edges.parquet:dst", "null"),
    (
        "feature-null",
        {**NODES, "x_1": [1.0] * 9 + [None]},
        EDGES,
        "nodes.parquet:x_1",
        "1 null value",
    ),
    ("feature-gap", {**NODES, "x_2": [1.0] * 10}, EDGES, "nodes.parquet:x_*", "without gaps"),
    (
        "edge-out-of-range",
        NODES,
        {"src": [0, 1], "dst": [1, 10]},
        "edges.parquet:src/dst",
        "outside 0..9",
    ),
    (
        "mixed-mask-styles",
        {**NODES, "train_mask": [True] * 10, "val_mask_0": [False] * 10},
        EDGES,
        "nodes.parquet:train_mask",
        "one style",
    ),
    (
        "mask-overlap",
        {
            **NODES,
            "train_mask_0": [True] * 6 + [False] * 4,
            "val_mask_0": [False] * 4 + [True] * 4 + [False] * 2,
            "test_mask_0": [False] * 8 + [True] * 2,
        },
        EDGES,
        "nodes.parquet:train_mask_0/val_mask_0",
        "overlap on 2 node",
    ),
]


@pytest.mark.parametrize(
    ("nodes", "edges", "field", "reason"),
    [case[1:] for case in BAD_PARQUET],
    ids=[case[0] for case in BAD_PARQUET],
)
def test_bad_parquet_inputs_name_the_column(
    tmp_path: Path, nodes: dict[str, Any], edges: dict[str, Any], field: str, reason: str
) -> None:
    d = write_parquet(tmp_path / "g", nodes, edges)
    with pytest.raises(GraphFormatError) as info:
        load_graph(d, random_splits=1)
    assert info.value.field == field
    assert reason in info.value.reason


def test_random_split_needs_three_of_each_class(tmp_path: Path) -> None:
    d = write_parquet(tmp_path / "g", {"x_0": [1.0] * 10, "y": [0] * 8 + [1] * 2}, EDGES)
    with pytest.raises(GraphFormatError, match="at least 3 nodes labelled 1") as info:
        load_graph(d)
    assert info.value.field == "y"


def test_grid_spec_errors() -> None:
    assert len(grid_params("small")) == 4
    with pytest.raises(ValueError, match="grid must be one of"):
        grid_params("huge")
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        grid_params('{"hiden": [64]}')
    with pytest.raises(ValueError, match=r"dropout=1\.5"):
        grid_params('{"dropout": [0.2, 1.5]}')
    with pytest.raises(ValueError, match="norm='group'"):
        grid_params('{"norm": ["group"]}')


# ---------------------------------------------------------------------------------------------
# Training and evaluation


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("generic")
    graph = make_synthetic_graph(2000, seed=11, n_splits=2)
    path = save_npz(graph, d / "graph.npz")
    lines: list[str] = []
    metrics = train_generic(path, d / "model", seed=0, progress=lines.append, **TRAIN_KW)
    assert any(line.startswith("split 2/2: GraphSAGE test") for line in lines)
    return path, d / "model", metrics


def test_train_writes_a_model_folder(trained: tuple[Path, Path, dict[str, Any]]) -> None:
    path, model, metrics = trained
    assert sorted(p.name for p in model.iterdir()) == [
        "metrics.json",
        "mlp_split_0.pt",
        "mlp_split_1.pt",
        "model.json",
        "split_0.pt",
        "split_1.pt",
    ]
    manifest = json.loads((model / "model.json").read_text())
    assert manifest["format"] == "ringfence.generic-sage"
    assert manifest["format_version"] == 1
    assert manifest["input"]["fingerprint"] == hashlib.sha256(path.read_bytes()).hexdigest()
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert [s["params"]["hidden"] for s in manifest["splits"]] == [32, 32]
    assert json.loads((model / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["fingerprint"] == manifest["input"]["fingerprint"]
    assert [r["split"] for r in metrics["splits"]] == [0, 1]
    assert set(metrics["mean"]) == {"val_roc_auc", "val_pr_auc", "test_roc_auc", "test_pr_auc"}
    assert set(metrics["baseline"]) == {"logreg", "mlp"}
    assert "GraphSAGE" in format_report(metrics)


def test_graph_beats_the_feature_only_baselines(
    trained: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, _, metrics = trained
    sage = metrics["mean"]["test_pr_auc"]
    best_baseline = max(b["mean"]["test_pr_auc"] for b in metrics["baseline"].values())
    # Labels follow ring membership; one node's features are only weakly informative.
    assert sage > 0.7
    assert sage > best_baseline + 0.3
    assert metrics["mean"]["test_roc_auc"] > 0.9
    for row in metrics["splits"]:
        assert row["test"]["pr_auc"] > 2 * row["test_positive_rate"]


def test_evaluate_reproduces_the_test_metrics(
    trained: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, model, metrics = trained
    again = evaluate_generic(model, path, threads=1)
    assert again["fingerprint_matches"] is True
    for trained_row, row in zip(metrics["splits"], again["splits"], strict=True):
        assert row["test"] == pytest.approx(trained_row["test"], abs=1e-9)
        assert row["val"] == pytest.approx(trained_row["val"], abs=1e-9)
    assert again["mean"] == pytest.approx(metrics["mean"], abs=1e-9)
    assert again["std"] == pytest.approx(metrics["std"], abs=1e-9)
    for name, baseline in metrics["baseline"].items():
        assert again["baseline"][name]["mean"] == pytest.approx(baseline["mean"], abs=1e-9)
    # The same graph as Parquet: same scores, another fingerprint.
    pdir = save_parquet(load_graph(path), tmp_path / "pq")
    as_parquet = evaluate_generic(model, pdir, threads=1)
    assert as_parquet["fingerprint_matches"] is False
    assert as_parquet["mean"] == pytest.approx(metrics["mean"], abs=1e-9)


def test_evaluate_refuses_what_does_not_fit(
    trained: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, model, _ = trained
    other = save_npz(make_synthetic_graph(300, seed=1, n_features=5, n_splits=2), tmp_path / "o")
    with pytest.raises(GraphFormatError, match="trained on 16") as info:
        evaluate_generic(model, other)
    assert info.value.field == "x"
    one_split = save_npz(make_synthetic_graph(300, seed=1, n_splits=1), tmp_path / "one")
    with pytest.raises(GraphFormatError, match="the model has 2"):
        evaluate_generic(model, one_split)
    with pytest.raises(ModelFolderError, match="not a model folder"):
        evaluate_generic(tmp_path, path)


def test_train_refuses_a_folder_that_is_not_a_model(
    trained: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _, _ = trained
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ModelFolderError, match="refusing"):
        train_generic(path, tmp_path, **TRAIN_KW)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    path = save_npz(make_synthetic_graph(800, seed=4, n_splits=1), tmp_path / "g.npz")
    grid = '{"hidden": [16], "layers": [2], "max_epochs": [40]}'
    a = train_generic(path, tmp_path / "a", seed=3, grid=grid, threads=1)
    b = train_generic(path, tmp_path / "a", seed=3, grid=grid, threads=1)  # replaces the model
    c = train_generic(path, tmp_path / "c", seed=4, grid=grid, threads=1)
    assert without_times(a) == without_times(b)
    assert without_times(a)["splits"] != without_times(c)["splits"]
    assert not list(tmp_path.glob(".a.*"))  # no leftovers from replacing the folder


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert blocks, "docs/generic-graph.md lost its example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOCS), "exec"), {})
