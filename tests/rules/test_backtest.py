"""Backtesting rule sets on generated, labelled history through the scoring pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gnn import registry
from gnn.data import History, load_history
from gnn.train import TrainConfig, train
from ingest.generator import generate
from rules import RuleSet, ruleset_from_yaml
from rules.backtest import BacktestReport, backtest, replay
from rules.store import RuleStore, StoreFollower
from serve.pipeline import ScoringPipeline

LIVE = """
version: "live"
rules:
  - {id: everything, when: "true", action: tag}
  - {id: nothing, when: "false", action: tag}
"""
CANDIDATE = """
version: "candidate"
rules:
  - {id: everything, when: "true", action: tag}
  - {id: nothing, when: "false", action: tag}
  - {id: risky, when: "score >= 0.2", action: block, priority: 10}
  - {id: broken, when: "txn.no_such_field > 1", action: review}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, Any, dict[str, Any]]:
    root = tmp_path_factory.mktemp("backtest")
    generate(root / "data", seed=5, days=7, accounts=300)
    train(root / "data", root / "models", seed=0, config=TrainConfig(epochs=2), baselines=False)
    model, manifest = registry.load(root / "models")
    return load_history(root / "data"), model, manifest


def factory(model: Any, manifest: dict[str, Any]) -> Callable[[RuleSet], ScoringPipeline]:
    return lambda ruleset: ScoringPipeline(model, manifest, ruleset=ruleset)


@pytest.fixture(scope="module")
def report(world: tuple[History, Any, dict[str, Any]]) -> BacktestReport:
    history, model, manifest = world
    return backtest(
        factory(model, manifest),
        history.events,
        history.labels,
        ruleset_from_yaml(CANDIDATE),
        ruleset_from_yaml(LIVE),
    )


def test_totals_match_the_labels(
    world: tuple[History, Any, dict[str, Any]], report: BacktestReport
) -> None:
    history, _, manifest = world
    txns = {e.txn_id for e in history.events if e.event_type == "transaction"}
    assert report.transactions == len(txns)
    assert report.fraud == sum(
        1 for t in txns if t in history.labels and history.labels[t].is_fraud
    )
    assert 0 < report.fraud < report.transactions
    assert report.unlabelled == len(txns - history.labels.keys())
    assert report.fraud_rate == pytest.approx(report.fraud / report.transactions)
    assert report.model_version == manifest["version"]
    for run in (report.candidate, report.live):
        assert run is not None
        assert sum(run.decisions.values()) == report.transactions


def test_per_rule_figures(report: BacktestReport) -> None:
    rules = {r.rule_id: r for r in report.candidate.rules}
    everything = rules["everything"]
    assert everything.hits == report.transactions
    assert everything.fraud_hits == report.fraud
    assert everything.recall == 1.0
    assert everything.precision == pytest.approx(report.fraud_rate)
    nothing = rules["nothing"]
    assert (nothing.hits, nothing.fraud_hits, nothing.precision, nothing.recall) == (
        0,
        0,
        None,
        0.0,
    )
    broken = rules["broken"]
    assert (broken.hits, broken.errors) == (0, report.transactions)
    for r in report.candidate.rules:
        assert 0 <= r.fraud_hits <= r.hits <= report.transactions
        assert r.recall == pytest.approx(r.fraud_hits / report.fraud)
        if r.hits:
            assert r.precision == pytest.approx(r.fraud_hits / r.hits)


def test_rule_hits_agree_with_the_pipeline(
    world: tuple[History, Any, dict[str, Any]], report: BacktestReport
) -> None:
    history, model, manifest = world
    decisions, _ = replay(factory(model, manifest), history.events, ruleset_from_yaml(CANDIDATE))
    risky = [d for d in decisions if d.score >= 0.2]
    stats = {r.rule_id: r for r in report.candidate.rules}["risky"]
    assert stats.hits == len(risky)
    assert stats.fraud_hits == sum(1 for d in risky if history.labels[d.txn_id].is_fraud)
    assert all(d.decision == "block" for d in risky)


def test_overall_rates_and_change(report: BacktestReport) -> None:
    cand, live, change = report.candidate, report.live, report.change
    assert live is not None
    assert change is not None
    for run in (cand, live):
        assert run.block.predicted == run.decisions.get("block", 0)
        assert run.flagged.predicted == run.block.predicted + run.decisions.get("review", 0)
        assert run.block.true_positives <= run.flagged.true_positives <= report.fraud
        assert run.flagged.recall == pytest.approx(run.flagged.true_positives / report.fraud)
    assert live.decided_by_rules == 0  # tag rules never decide
    assert cand.decided_by_rules > 0
    # the candidate only adds a blocking rule: decisions move towards block, never away
    assert cand.block.predicted >= live.block.predicted
    assert change.changed == sum(change.transitions.values()) > 0
    assert all(key.endswith("->block") for key in change.transitions)
    assert change.fraud_newly_missed == change.honest_newly_released == 0
    assert change.fraud_newly_caught + change.honest_newly_blocked <= change.changed
    assert cand.flagged.true_positives - live.flagged.true_positives == change.fraud_newly_caught
    honest_blocked = cand.block.predicted - cand.block.true_positives
    live_honest_blocked = live.block.predicted - live.block.true_positives
    assert honest_blocked - live_honest_blocked == change.honest_newly_blocked
    assert len(change.examples["honest_newly_blocked"]) == min(20, change.honest_newly_blocked)


def test_without_live_there_is_no_change(world: tuple[History, Any, dict[str, Any]]) -> None:
    history, model, manifest = world
    events = history.events[:2000]
    out = backtest(factory(model, manifest), events, history.labels, ruleset_from_yaml(LIVE))
    assert out.live is None
    assert out.change is None
    assert out.to_dict()["candidate"]["version"] == "live"


def test_a_pipeline_reloads_a_published_rule_set(
    world: tuple[History, Any, dict[str, Any]], tmp_path: Path
) -> None:
    history, model, manifest = world
    store = RuleStore(tmp_path)
    store.publish(LIVE, who="ana")
    follower = StoreFollower(store)
    follower.reload_if_changed()
    pipeline = ScoringPipeline(model, manifest, ruleset=follower.live.current)
    first = pipeline.process(history.events[:1000])
    assert {d.ruleset_version for d in first} == {"live"}
    store.publish(CANDIDATE, who="ana")
    if follower.reload_if_changed() is not None:
        pipeline.ruleset = follower.live.current
    later = pipeline.process(history.events[1000:3000])
    assert later
    assert {d.ruleset_version for d in later if not d.replayed} == {"candidate"}
