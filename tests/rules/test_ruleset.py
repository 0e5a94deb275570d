import pytest

from rules.errors import RuleSetError
from rules.evaluate import evaluate
from rules.loader import read_ruleset
from rules.ruleset import LiveRuleSet, Rule, RuleChange, RuleSet, diff, ruleset_from_yaml

GOOD = """
version: "2024-06-01.1"
rules:
  - id: device_farm
    description: many accounts on one device and a high score
    when: score >= 0.9 and features.accounts_per_device >= 3
    action: block
    priority: 100
    weight: 0.2
    tags: [device]
  - id: big_cnp
    when: txn.channel in ["card_not_present", "wallet"] and txn.amount > 1000
    action: review
"""


def problems(text):
    with pytest.raises(RuleSetError) as caught:
        ruleset_from_yaml(text)
    return {(p.rule_id, p.field) for p in caught.value.problems}, str(caught.value)


def test_loads_a_good_set():
    rules = ruleset_from_yaml(GOOD)
    assert rules.version == "2024-06-01.1"
    assert [r.id for r in rules] == ["device_farm", "big_cnp"]
    farm = rules.get("device_farm")
    assert farm is not None
    assert (farm.action, farm.priority, farm.weight, farm.tags) == ("block", 100, 0.2, ("device",))
    assert rules.get("big_cnp").priority == 0


def test_errors_name_every_rule_and_field():
    found, message = problems(
        """
version: "1"
rules:
  - {id: a, when: "score >", action: block}
  - {id: b, when: "score > 1", action: nuke, priority: high}
  - {id: c, when: "detector('teleport')", action: tag, colour: red}
  - {when: "true", action: tag}
  - {id: a, when: "true", action: tag}
"""
    )
    assert found == {
        ("a", "when"),
        ("b", "action"),
        ("b", "priority"),
        ("c", "when"),
        ("c", "colour"),
        ("#4", "id"),
        ("a", "id"),
    }
    assert "rule 'b', field 'action'" in message
    assert "unknown detector 'teleport'" in message
    assert "duplicate rule id" in message


def test_set_level_errors():
    assert ("(ruleset)", "version") in problems("rules: []")[0]
    assert ("(ruleset)", "rules") in problems("version: '1'")[0]
    assert ("(ruleset)", "(ruleset)") in problems("[1, 2")[0]
    assert ("(ruleset)", "(ruleset)") in problems("just text")[0]


def test_json_is_accepted_and_files_are_read(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"version": "3", "rules": [{"id": "r", "when": "true", "action": "tag"}]}')
    assert read_ruleset(path).version == "3"
    with pytest.raises(RuleSetError, match="cannot read"):
        read_ruleset(tmp_path / "missing.yaml")


def test_content_hash_ignores_order_and_version():
    rules = ruleset_from_yaml(GOOD)
    reordered = RuleSet("other", tuple(reversed(rules.rules)))
    assert rules.content_hash == reordered.content_hash
    changed = RuleSet(rules.version, (*rules.rules[:1], Rule("big_cnp", "true", "review")))
    assert changed.content_hash != rules.content_hash


def test_diff():
    old = ruleset_from_yaml(GOOD)
    new = RuleSet(
        "2",
        (
            Rule(
                "device_farm",
                old.rules[0].when,
                "review",
                priority=50,
                weight=0.2,
                description=old.rules[0].description,
                tags=("device",),
            ),
            Rule("ring", "graph.ring_risk > 0.5", "review"),
        ),
    )
    change = diff(old, new)
    assert change.added == ("ring",)
    assert change.removed == ("big_cnp",)
    assert change.changed == (RuleChange("device_farm", ("action", "priority")),)
    assert not change.empty
    assert diff(old, old).empty


def test_live_rule_set_reload():
    live = LiveRuleSet(ruleset_from_yaml(GOOD))
    assert live.reload(GOOD) is None
    with pytest.raises(RuleSetError):
        live.reload("version: '9'\nrules: [{id: x, when: '(', action: tag}]")
    assert live.current.version == "2024-06-01.1"
    change = live.reload(GOOD.replace("2024-06-01.1", "2"))
    assert change is not None
    assert change.empty
    assert live.current.version == "2"


def test_rule_outcomes():
    rule = Rule("r", "txn.amount > 10", "review")
    assert evaluate(rule, {"txn": {"amount": 11}}).result == "hit"
    assert evaluate(rule, {"txn": {"amount": 9}}).result == "no_hit"
    mismatch = evaluate(rule, {"txn": {"amount": "11"}})
    assert mismatch.result == "error"
    assert mismatch.error == "cannot compare string > number"
    assert mismatch.trace == ("txn.amount -> '11'",)
    not_boolean = evaluate(Rule("n", "txn.amount", "tag"), {"txn": {"amount": 1}})
    assert (not_boolean.result, not_boolean.error) == (
        "error",
        "condition gave a number, expected a boolean",
    )


def test_bad_action_in_code_is_refused():
    with pytest.raises(ValueError, match="action"):
        Rule("x", "true", "deny")
