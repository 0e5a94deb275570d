"""`ringfence rules backtest / publish / rollback / shadow / history` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gnn.train import TrainConfig, train
from ingest.generator import generate
from serve.cli import main

V1 = 'version: "1"\nrules:\n  - {id: all, when: "true", action: tag}\n'
V2 = (
    'version: "2"\nrules:\n  - {id: all, when: "true", action: tag}\n'
    '  - {id: risky, when: "score >= 0.2", action: block}\n'
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("v1", V1), ("v2", V2), ("bad", "version: 3\nrules: [{id: x}]")):
        (tmp_path / f"{name}.yaml").write_text(text)
        out[name] = str(tmp_path / f"{name}.yaml")
    out["dir"] = str(tmp_path / "state")
    return out


def test_publish_rollback_shadow_history(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    d = files["dir"]
    first = run(capsys, "rules", "publish", files["v1"], "--who", "ana", "--data-dir", d)
    assert (first["action"], first["version"], first["who"]) == ("publish", "1", "ana")
    second = run(capsys, "rules", "publish", files["v2"], "--who", "bo", "--data-dir", d)
    assert second["diff"]["added"] == ["risky"]
    back = run(capsys, "rules", "rollback", "1", "--who", "cy", "--data-dir", d)
    assert (back["action"], back["previous"]) == ("rollback", "2")
    shadow = run(capsys, "rules", "shadow", "2", "--who", "cy", "--data-dir", d)
    assert shadow["version"] == "2"
    history = run(capsys, "rules", "history", "--data-dir", d)
    assert (history["live"], history["shadow"], history["versions"]) == ("1", "2", ["1", "2"])
    assert [e["action"] for e in history["history"]] == ["publish", "publish", "rollback", "shadow"]
    assert all(e["at"].endswith("+00:00") for e in history["history"])
    cleared = run(capsys, "rules", "shadow", "none", "--who", "cy", "--data-dir", d)
    assert cleared["version"] is None
    assert (Path(d) / "rules" / "audit.jsonl").is_file()


def test_usage_errors_exit_2_and_change_nothing(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    d = files["dir"]
    run(capsys, "rules", "publish", files["v1"], "--who", "ana", "--data-dir", d)
    cases = [
        ["publish", files["bad"], "--who", "ana"],  # invalid rule set
        ["publish", files["v1"]],  # no --who
        ["publish", "--who", "ana"],  # no file
        ["publish", str(Path(d) / "missing.yaml"), "--who", "ana"],
        ["rollback", "9", "--who", "ana"],  # unknown version
        ["shadow", "9", "--who", "ana"],
        ["backtest", "--ruleset", files["v1"]],  # no --data / --model
    ]
    for argv in cases:
        assert main(["rules", *argv, "--data-dir", d]) == 2, argv
    err = capsys.readouterr().err
    assert "rule 'x', field 'action'" in err
    assert "no rule set version '9'" in err
    assert "--data, --model" in err
    assert len(run(capsys, "rules", "history", "--data-dir", d)["history"]) == 1


def test_backtest(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, models = tmp_path / "data", tmp_path / "models"
    generate(data, seed=9, days=7, accounts=300)
    train(data, models, seed=0, config=TrainConfig(epochs=2), baselines=False)
    out = run(
        capsys,
        "rules",
        "backtest",
        "--ruleset",
        files["v2"],
        "--live",
        files["v1"],
        "--data",
        str(data),
        "--model",
        str(models),
        "-q",
    )
    assert out["transactions"] > 0
    everything = out["candidate"]["rules"][0]
    assert (everything["rule_id"], everything["hits"], everything["recall"]) == (
        "all",
        out["transactions"],
        1.0,
    )
    assert out["live"]["version"] == "1"
    assert out["change"]["changed"] == sum(out["change"]["transitions"].values())
    bad = ["rules", "backtest", "--ruleset", files["bad"], "--data", str(data)]
    assert main([*bad, "--model", str(models)]) == 2
