"""`ringfence train / evaluate / score / fairness` end to end, on generated data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gnn import registry
from gnn.data import load_history
from ingest.events import encode_event
from serve.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model-data")
    assert (
        main(
            [
                "generate",
                "--seed",
                "31",
                "--days",
                "12",
                "--accounts",
                "1200",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    assert main(["train", "--data", str(data), "--out", str(models), "--epochs", "4", "-q"]) == 0
    return models


def test_train_writes_a_versioned_model(trained: Path, data: Path) -> None:
    folder = registry.resolve(trained)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == folder.name == (trained / "LATEST").read_text().strip()
    assert manifest["data"]["fingerprint"] == registry.fingerprint(data)
    assert manifest["features"]["transaction"] == list(registry.feature_spec()["transaction"])
    assert manifest["seed"] == 0
    assert manifest["created_at"].endswith("+00:00")
    t = manifest["thresholds"]
    assert 0 < t["review"] <= t["block"] < 1
    gnn = manifest["metrics"]["gnn"]["test"]
    assert gnn["pr_auc"] > 0.6  # small data, 4 epochs: far above the ~1% fraud rate
    for kind in ("tabular.txt", "isolation_forest.pkl", "graph_autoencoder.pt"):
        assert (folder / "baselines" / kind).is_file()


def test_evaluate_compares_models_and_writes_a_report(
    trained: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(
        capsys,
        "evaluate",
        "--model",
        str(trained),
        "--data",
        str(data),
        "--report",
        str(tmp_path / "report"),
        "-q",
    )
    assert set(out["models"]) == {"gnn", "tabular", "isolation_forest", "graph_autoencoder"}
    g = out["models"]["gnn"]
    for key in (
        "roc_auc",
        "pr_auc",
        "recall_at_0.1%_fpr",
        "recall_at_1%_fpr",
        "precision_at_threshold",
        "typologies",
    ):
        assert key in g
    assert g["roc_auc"] > 0.9
    assert out["meta"]["data_seed"] == 31
    assert out["ring_typologies"]["gnn_lead"] is not None
    report = Path(out["report"])
    text = report.read_text()
    assert "graph_autoencoder" in text
    assert "PR-AUC" in text
    for png in ("pr_curves.png", "roc_curves.png", "score_histograms.png"):
        assert (report.parent / png).read_bytes()[:4] == b"\x89PNG"


def test_score_builds_history_as_it_goes(
    trained: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = load_history(data).events
    lines = [encode_event(e) for e in events]
    lines.insert(100, b'{"event_type": "transaction", "txn_id": "x1", "amount": "-3"}')
    lines.insert(5, b"{not json")
    # a file not in time order is scored in time order all the same
    rng = np.random.default_rng(1)
    order = rng.permutation(len(lines))
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(lines[i] for i in order) + b"\n")
    out = run(
        capsys,
        "score",
        "--model",
        str(trained),
        "--input",
        str(src),
        "--out",
        str(tmp_path / "scores.csv"),
        "-q",
    )
    assert out["received"] == len(lines)
    assert out["accepted"] + out["rejected"] == out["received"]
    assert out["rejected"] == 2
    rejected = [json.loads(x) for x in Path(out["rejected_file"]).read_text().splitlines()]
    assert any("amount" in e for r in rejected for e in r["errors"])
    with (tmp_path / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    txns = [e for e in events if e.event_type == "transaction"]
    assert [r["txn_id"] for r in rows] == [t.txn_id for t in txns]
    assert {r["decision"] for r in rows} <= {"approve", "review", "block"}
    assert sum(out["decisions"].values()) == len(rows)
    # the same scores as the training path's vectorised replay of the same history
    from gnn.train import predict, prepare

    model, _ = registry.load(trained)
    dense = predict(model, prepare(load_history(data)).inputs)
    np.testing.assert_allclose([float(r["score"]) for r in rows], dense, atol=2e-6)


def test_fairness_reports_groups_and_a_mitigation(
    trained: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, "fairness", "--model", str(trained), "--data", str(data), "-q")
    assert set(out["audit"]["attributes"]) == {"age_band", "sex", "region", "nationality"}
    assert out["mitigated_attribute"] in out["audit"]["attributes"]
    assert out["mitigation"]["attribute"] == out["mitigated_attribute"]
    assert "before" in json.dumps(out["after"])
    assert isinstance(out["mitigation_narrowed_gap"], bool)
    assert out["mitigated_attribute"] in out["verdict"]


def test_explain_gives_reasons_for_a_transaction(
    trained: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (data / "truth" / "transactions.csv").open() as fh:
        fraud = [r["txn_id"] for r in csv.DictReader(fh) if r["is_fraud"] == "1"]
    scored = {e.txn_id for e in load_history(data).events if e.event_type == "transaction"}
    txn = next(t for t in reversed(fraud) if t in scored)
    out = run(capsys, "explain", "--model", str(trained), "--data", str(data), "--txn", txn, "-q")
    assert out["txn_id"] == txn
    assert out["reasons"]
    assert out["decision"] in ("approve", "review", "block")
    assert out["neighbours"]
    assert (
        main(["explain", "--model", str(trained), "--data", str(data), "--txn", "nope", "-q"]) == 2
    )
    assert "--txn" in capsys.readouterr().err


def test_model_commands_refuse_bad_arguments(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--withhold-typology", "nope", "-q"]) == 2
    assert "withhold-typology" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(data), "-q"]) == 1
    assert "model" in capsys.readouterr().err


def test_train_and_evaluate_a_graph_of_your_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gnn.generic import make_synthetic_graph, save_npz

    path = save_npz(make_synthetic_graph(1500, seed=3, n_splits=2), tmp_path / "g.npz")
    out = tmp_path / "model"
    trained = run(capsys, "train", "--graph", str(path), "--out", str(out), "--grid", "tiny", "-q")
    assert len(trained["splits"]) == 2
    again = run(capsys, "evaluate", "--graph", str(path), "--model", str(out), "-q")
    assert again["mean"]["test_pr_auc"] == pytest.approx(trained["mean"]["test_pr_auc"])
    assert main(["train", "--graph", str(tmp_path / "missing.npz"), "--out", str(out), "-q"]) == 1
