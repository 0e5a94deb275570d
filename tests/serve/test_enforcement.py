"""Blocks are enforced, lifted and survive a restart; rings are blocked at once; step-up works."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from rules import PolicyConfig, ruleset_from_yaml
from serve.api import create_app
from serve.enforcement import BlockList, Challenges, EnforcementError
from serve.pipeline import ScoringPipeline
from tests.serve.conftest import running
from tests.serve.test_api import KEYS, call, token


def txns_of(history: object) -> list:
    return [e for e in history.events if e.event_type == "transaction"]  # type: ignore[attr-defined]


def test_a_block_is_enforced_until_lifted_and_survives_a_restart(
    history_and_model: tuple, tmp_path: Path
) -> None:
    history, (model, manifest) = history_and_model
    txns = txns_of(history)
    target = txns[0]
    rules = ruleset_from_yaml(
        f"""
version: "1"
rules:
  - id: caught
    when: txn.txn_id == "{target.txn_id}"
    action: block
    priority: 10
"""
    )
    blocks = BlockList(tmp_path / "blocks")
    pipeline = ScoringPipeline(model, manifest, ruleset=rules, blocks=blocks)
    first = pipeline.process([target])[0]
    assert (first.decision, first.decided_by) == ("block", "rule:caught")
    later = [t for t in txns[1:] if t.account_id == target.account_id]
    assert later
    decided = pipeline.process(later[:1])[0]
    assert decided.decision == "block"
    assert decided.decided_by == "list:blocked_account"
    assert target.txn_id in decided.reasons[0]
    kinds = {(b.kind, b.id) for b in blocks.active()}
    assert ("account", target.account_id) in kinds
    blocks.close()
    # a restart reads the log back
    again = BlockList(tmp_path / "blocks")
    assert again.blocked([("account", target.account_id)]) is not None
    assert again.lift("account", target.account_id, by="analyst")
    for kind, entity in (("card", target.card_id), ("device", target.device_id)):
        if entity is not None:
            again.lift(kind, entity, by="analyst")
    pipeline.blocks = again
    if len(later) > 1:
        assert pipeline.process(later[1:2])[0].decided_by != "list:blocked_account"
    again.close()
    assert BlockList(tmp_path / "blocks").blocked([("account", target.account_id)]) is None


def test_blocks_expire() -> None:
    now = [datetime(2026, 11, 29, tzinfo=UTC)]
    blocks = BlockList(clock=lambda: now[0])
    blocks.block("card", "c1", reason="r", by="model", ttl=timedelta(hours=1))
    assert blocks.blocked([("card", "c1")]) is not None
    now[0] += timedelta(hours=1, seconds=1)
    assert blocks.blocked([("card", "c1")]) is None
    with pytest.raises(EnforcementError, match="kind"):
        blocks.block("merchant", "m1", reason="r", by="x")


def test_investigators_block_a_ring_and_lift_blocks_over_the_api(
    history_and_model: tuple,
) -> None:
    history, (model, manifest) = history_and_model
    pipeline = ScoringPipeline(model, manifest, blocks=BlockList())
    pipeline.process(history.events)
    pipeline.features.flush_rings()
    ring = next(
        r
        for a in sorted({t.account_id for t in txns_of(history)})
        if (r := pipeline.features.ring_of(a)) is not None
    )
    with running(create_app(pipeline, KEYS)) as url:
        gateway, analyst = token(["score"]), token(["investigate"])
        status, _ = call(url, f"/v1/rings/{ring.id}/block", auth=gateway, method="POST")
        assert status == 403
        status, body = call(url, f"/v1/rings/{ring.id}/block", auth=analyst, method="POST")
        assert status == 200
        assert body["blocked_accounts"] == len(ring.accounts)
        status, body = call(url, "/v1/blocks", auth=analyst)
        assert {b["id"] for b in body["blocks"]} >= set(ring.accounts)
        member = sorted(ring.accounts)[0]
        status, body = call(url, f"/v1/blocks/account/{member}/lift", auth=analyst, method="POST")
        assert (status, body["by"]) == (200, "gw_test")
        status, _ = call(url, f"/v1/blocks/account/{member}/lift", auth=analyst, method="POST")
        assert status == 404
        status, _ = call(url, "/v1/rings/no_such_ring/block", auth=analyst, method="POST")
        assert status == 404


def test_step_up_opens_a_challenge_that_a_totp_code_completes(history_and_model: tuple) -> None:
    history, (model, manifest) = history_and_model
    txns = txns_of(history)
    enrolled, other = txns[0], next(t for t in txns if t.account_id != txns[0].account_id)
    rules = ruleset_from_yaml(
        """
version: "1"
rules:
  - {id: ask, when: "true", action: step_up, priority: 1}
"""
    )
    challenges = Challenges()
    secret = challenges.enrol(enrolled.account_id)
    # thresholds out of reach: the rule decides, whatever the model says
    quiet = PolicyConfig(block_threshold=1.0, review_threshold=1.0)
    pipeline = ScoringPipeline(model, manifest, ruleset=rules, challenges=challenges, policy=quiet)
    d = pipeline.process([enrolled])[0]
    assert (d.decision, d.decided_by) == ("step_up", "rule:ask")
    assert d.challenge_id
    not_enrolled = pipeline.process([other])[0]
    assert not_enrolled.decision == "review"
    assert "no MFA enrolment" in not_enrolled.reasons[-1]
    with running(create_app(pipeline, KEYS)) as url:
        gw = token(["score"])
        path = f"/v1/challenges/{d.challenge_id}/verify"
        status, body = call(url, path, {"code": "000000"}, auth=gw)
        assert (status, body["passed"]) == (200, False)
        code = pyotp.TOTP(secret).now()
        status, body = call(url, path, {"code": code}, auth=gw)
        assert (status, body["passed"], body["attempts"]) == (200, True, 2)
        status, body = call(url, path, {"code": code}, auth=gw)
        assert status == 409
        status, _ = call(url, "/v1/challenges/nope/verify", {"code": code}, auth=gw)
        assert status == 404


def test_a_published_rule_set_is_live_at_the_next_batch(
    history_and_model: tuple, tmp_path: Path
) -> None:
    from rules.store import RuleStore, StoreFollower

    history, (model, manifest) = history_and_model
    txns = txns_of(history)
    store = RuleStore(tmp_path / "rules")
    pipeline = ScoringPipeline(
        model,
        manifest,
        rules_from=StoreFollower(store),
        reload_every_s=0.0,
        policy=PolicyConfig(block_threshold=1.0, review_threshold=1.0),
    )
    assert pipeline.process(txns[:1])[0].decided_by == "model"
    store.publish(
        'version: "1"\nrules:\n  - {id: all, when: "true", action: review, priority: 1}\n',
        who="risk_team",
    )
    d = pipeline.process(txns[1:2])[0]
    assert (d.decision, d.decided_by, d.ruleset_version) == ("review", "rule:all", "1")
    store.publish(
        'version: "2"\nrules:\n  - {id: none, when: "false", action: block}\n', who="risk_team"
    )
    store.set_shadow("1", who="risk_team")
    d = pipeline.process(txns[2:3])[0]
    assert (d.decision, d.ruleset_version, d.shadow_decision) == ("approve", "2", "review")
    assert [e.action for e in store.history()] == ["publish", "publish", "shadow"]


def test_only_sure_model_blocks_go_on_the_list(history_and_model: tuple) -> None:
    history, (model, manifest) = history_and_model
    txns = txns_of(history)[:50]
    eager = {**manifest, "thresholds": {"block": 0.0, "review": 0.0}}  # the model blocks all
    unsure = ScoringPipeline(model, eager, blocks=BlockList(), enforce_score=1.01)
    assert {d.decision for d in unsure.process(txns)} == {"block"}
    assert unsure.blocks is not None
    assert unsure.blocks.active() == []
    sure = ScoringPipeline(model, eager, blocks=BlockList(), enforce_score=0.0)
    sure.process(txns[:1])
    assert sure.blocks is not None
    assert {b.kind for b in sure.blocks.active()} <= {"account", "card"}
    assert sure.blocks.active()
