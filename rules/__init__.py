"""Rules: the rule language, rule sets, built-in detectors and the decision policy.

Pure: nothing here does I/O except ``rules.loader.read_ruleset``, which reads one file, and
``rules.store`` (published versions, the live and shadow pointers and the audit log).

>>> from rules import Rule, RuleSet, decide
>>> rules = RuleSet("1", (Rule("farm", "features.accounts_per_device >= 3", "review"),))
>>> decision = decide(0.2, {"features": {"accounts_per_device": 4}}, rules)
>>> decision.action, decision.decided_by
('review', 'rule:farm')
"""

from rules.detectors import (
    DEFAULT_DETECTORS,
    DetectorResult,
    ImpossibleTravel,
    NewDeviceHighAmount,
    VelocityBurst,
    great_circle_km,
)
from rules.errors import EvalFault, RuleLimitError, RuleProblem, RuleSetError, RuleSyntaxError
from rules.evaluate import Outcome, evaluate, evaluate_all
from rules.lang import Context, Evaluation, Expression, compile_expression, parse_expression
from rules.loader import read_ruleset
from rules.policy import Decision, PolicyConfig, decide
from rules.ruleset import (
    ACTIONS,
    LiveRuleSet,
    Rule,
    RuleChange,
    RuleSet,
    RuleSetDiff,
    diff,
    ruleset_from_mapping,
    ruleset_from_yaml,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_DETECTORS",
    "Context",
    "Decision",
    "DetectorResult",
    "EvalFault",
    "Evaluation",
    "Expression",
    "ImpossibleTravel",
    "LiveRuleSet",
    "NewDeviceHighAmount",
    "Outcome",
    "PolicyConfig",
    "Rule",
    "RuleChange",
    "RuleLimitError",
    "RuleProblem",
    "RuleSet",
    "RuleSetDiff",
    "RuleSetError",
    "RuleSyntaxError",
    "VelocityBurst",
    "compile_expression",
    "decide",
    "diff",
    "evaluate",
    "evaluate_all",
    "great_circle_km",
    "parse_expression",
    "read_ruleset",
    "ruleset_from_mapping",
    "ruleset_from_yaml",
]
