"""`ringfence rings` after `ringfence ingest`: the graph follows the bus with no extra step."""

from __future__ import annotations

import json

import pytest

from serve.cli import main


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("rings")
    assert main(["demo", "--profile", "small", "--seed", "5", "--data-dir", str(root), "-q"]) == 0
    return root


def rings_json(state, capsys, *extra):
    assert main(["rings", "--data-dir", str(state), "-q", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_rings_reflect_everything_ingested(state, capsys):
    capsys.readouterr()
    out = rings_json(state, capsys)
    assert out["count"] == len(out["rings"]) > 0
    assert out["events"] == out["bus_offset"] > 5000
    for ring in out["rings"]:
        assert len(ring["accounts"]) >= 2
        assert ring["accounts"] == sorted(ring["accounts"])
        assert 0.0 <= ring["risk"] <= 1.0
        assert "entities" in ring


def test_state_persists_and_ids_are_stable_across_runs(state, capsys):
    first = rings_json(state, capsys)
    second = rings_json(state, capsys)
    assert second["events"] == first["events"]  # nothing new applied, nothing applied twice
    assert [r["id"] for r in second["rings"]] == [r["id"] for r in first["rings"]]


def test_filters(state, capsys):
    everything = rings_json(state, capsys)
    big = rings_json(state, capsys, "--min-size", "5")
    assert all(len(r["accounts"]) >= 5 for r in big["rings"])
    assert big["count"] < everything["count"]
    typology = everything["rings"][0]["typology"]
    only = rings_json(state, capsys, "--typology", typology)
    assert {r["typology"] for r in only["rings"]} == {typology}
    late = rings_json(state, capsys, "--since", "2026-10-07")
    assert late["count"] <= everything["count"]


def test_bad_since_is_a_usage_error(state, capsys):
    assert main(["rings", "--data-dir", str(state), "-q", "--since", "last tuesday"]) == 2
    assert "--since: not an ISO 8601 date" in capsys.readouterr().err


def test_evaluate_against_the_generators_truth(state, capsys):
    truth = state / "demo-data" / "small-seed5" / "truth"
    out = rings_json(state, capsys, "--evaluate", str(truth))
    assert out["typologies"]["round_tripping"]["f1"] >= 0.95
    assert (
        main(
            ["rings", "--data-dir", str(state), "-q", "--evaluate", str(truth), "--format", "table"]
        )
        == 0
    )
    assert "synthetic_identity" in capsys.readouterr().out
