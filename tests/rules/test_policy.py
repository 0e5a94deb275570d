import pytest

from rules.lang import Context
from rules.policy import PolicyConfig, decide
from rules.ruleset import Rule, RuleSet


def rules(*items):
    return RuleSet("1", tuple(items))


TRUSTED = Rule("trusted", 'txn.account_id == "a1"', "allow", priority=10)
BIG = Rule("big", "txn.amount > 1000", "review", priority=5)
MULE = Rule("mule", "graph.ring_risk > 0.5", "block", priority=20)
CTX = {"txn": {"account_id": "a1", "amount": 5000}, "graph": {"ring_risk": 0.1}}


def test_model_thresholds():
    config = PolicyConfig(block_threshold=0.9, review_threshold=0.6, step_up_threshold=0.4)
    assert decide(0.95, {}, rules(), config).action == "block"
    assert decide(0.7, {}, rules(), config).action == "review"
    assert decide(0.5, {}, rules(), config).action == "step_up"
    low = decide(0.1, {}, rules(), config)
    assert (low.action, low.decided_by) == ("approve", "model")


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="thresholds"):
        PolicyConfig(block_threshold=0.5, review_threshold=0.6)


def test_allow_rule_does_not_override_a_model_block_by_default():
    decision = decide(0.95, CTX, rules(TRUSTED))
    assert (decision.action, decision.decided_by) == ("block", "model")
    assert any("does not override" in reason for reason in decision.reasons)


def test_allow_rule_overrides_a_model_block_when_configured():
    config = PolicyConfig(allow_overrides_model=True)
    decision = decide(0.95, CTX, rules(TRUSTED), config)
    assert (decision.action, decision.decided_by) == ("approve", "rule:trusted")


def test_allow_rule_overrides_a_model_review():
    assert decide(0.7, CTX, rules(TRUSTED)).action == "approve"


def test_highest_priority_decides():
    decision = decide(0.1, CTX, rules(BIG, TRUSTED))
    assert (decision.action, decision.decided_by) == ("approve", "rule:trusted")
    risky = {**CTX, "graph": {"ring_risk": 0.9}}
    decision = decide(0.1, risky, rules(BIG, TRUSTED, MULE))
    assert (decision.action, decision.decided_by) == ("block", "rule:mule")


def test_ties_go_to_the_more_severe_action():
    review = Rule("r", "true", "review", priority=1)
    block = Rule("b", "true", "block", priority=1)
    assert decide(0.0, {}, rules(review, block)).decided_by == "rule:b"


def test_model_wins_when_more_severe_than_the_rule():
    decision = decide(0.95, CTX, rules(BIG))
    assert (decision.action, decision.decided_by) == ("block", "model")


def test_weights_adjust_the_score_and_tags_do_not_decide():
    tag = Rule("risky_bin", "true", "tag", weight=0.3)
    decision = decide(0.65, {}, rules(tag))
    assert decision.adjusted_score == pytest.approx(0.95)
    assert (decision.action, decision.decided_by) == ("block", "model")
    off = decide(0.65, {}, rules(tag), PolicyConfig(apply_weights=False))
    assert off.action == "review"


def test_deny_list_blocks_first():
    context = Context(CTX, lists={"blocked_accounts": {"a1"}})
    config = PolicyConfig(deny_lists=(("blocked_accounts", "txn.account_id"),))
    decision = decide(0.0, context, rules(TRUSTED), config)
    assert (decision.action, decision.decided_by) == ("block", "list")
    assert len(decision.outcomes) == 1


def test_errors_are_reported_and_optionally_reviewed():
    broken = Rule("broken", "txn.missing > 1", "block")
    decision = decide(0.1, CTX, rules(broken))
    assert decision.action == "approve"
    assert decision.outcomes[0].result == "error"
    assert any("missing field txn.missing" in reason for reason in decision.reasons)
    strict = decide(0.1, CTX, rules(broken), PolicyConfig(review_on_error=True))
    assert (strict.action, strict.decided_by) == ("review", "rule:broken")


def test_missing_score_is_not_a_crash():
    decision = decide(None, {}, rules())
    assert (decision.action, decision.score) == ("approve", None)
    assert decide(float("nan"), {}, rules()).score is None


def test_shadow_rule_set_does_not_change_the_live_decision():
    live_rules = rules(BIG)
    shadow_rules = RuleSet("2-candidate", (MULE.__class__("mule", "true", "block", priority=20),))
    alone = decide(0.1, CTX, live_rules)
    both = decide(0.1, CTX, live_rules, shadow=shadow_rules)
    assert (both.action, both.decided_by, both.reasons) == (
        alone.action,
        alone.decided_by,
        alone.reasons,
    )
    assert both.shadow is not None
    assert (both.shadow.action, both.shadow.decided_by) == ("block", "rule:mule")
    assert both.shadow.ruleset_version == "2-candidate"
    assert alone.shadow is None
