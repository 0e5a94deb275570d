"""The decision policy: the model score, deny lists and rule outcomes in; one decision out.

Order of precedence:

1. A deny list (``PolicyConfig.deny_lists``) holding the event's value blocks (``decided_by``
   ``"list"``).
2. The model's action comes from its score plus the weights of the rules that hit (clamped to
   [0, 1]): ``block`` at or above ``block_threshold``, ``review`` at or above
   ``review_threshold``, ``step_up`` at or above ``step_up_threshold`` (when set), else
   ``approve``.
3. Among the rules that hit (``tag`` rules aside), the highest ``priority`` decides; ties go to
   the more severe action, then to the smaller id. An ``allow`` rule approves, except against a
   model ``block`` unless ``allow_overrides_model`` is set. Another rule's action stands unless
   the model's is more severe (severity: approve < step_up < review < block).
4. With ``review_on_error``, a rule that could not be decided turns an approval into a review.

Every rule is evaluated in every case, so the outcomes and their traces are always there for
investigators. A shadow rule set is decided the same way, on the same inputs, and returned beside
the live decision without changing it.

>>> from rules.ruleset import Rule, RuleSet
>>> rules = RuleSet("1", (Rule("trusted", 'txn.account_id == "a1"', "allow", priority=10),))
>>> decide(0.95, {"txn": {"account_id": "a1"}}, rules).action
'block'
>>> decide(0.95, {"txn": {"account_id": "a1"}}, rules,
...        PolicyConfig(allow_overrides_model=True)).decided_by
'rule:trusted'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rules.detectors import lookup
from rules.errors import EvalFault
from rules.evaluate import Outcome, evaluate_all
from rules.lang import Context
from rules.operators import is_number
from rules.ruleset import Rule, RuleSet

Action = Literal["approve", "review", "step_up", "block"]

SEVERITY: Mapping[str, int] = {"approve": 0, "step_up": 1, "review": 2, "block": 3}
"""How severe each decision is; the more severe of the model's and a rule's action stands."""

_RULE_SEVERITY = {"allow": -1, "tag": -2, **SEVERITY}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's settings (plain parameters; ``serve`` builds them from its settings).

    Args:
        block_threshold: adjusted model scores at or above it block.
        review_threshold: adjusted scores at or above it (and under the block threshold) review.
        step_up_threshold: adjusted scores at or above it (and under the review threshold) ask
            for MFA; ``None`` for no step-up band.
        allow_overrides_model: whether an ``allow`` rule may approve what the model would block.
        apply_weights: whether rule weights adjust the model score.
        review_on_error: whether a rule ``error`` turns an approval into a review.
        deny_lists: ``(list name, field path)`` pairs: block when the field's value is listed.
        trace_misses: whether rules that did not hit keep their evaluation trace too (off:
            hits and errors are traced, misses are not, which is cheaper on the hot path).
    """

    block_threshold: float = 0.9
    review_threshold: float = 0.6
    step_up_threshold: float | None = None
    allow_overrides_model: bool = False
    apply_weights: bool = True
    review_on_error: bool = False
    deny_lists: tuple[tuple[str, str], ...] = ()
    trace_misses: bool = False

    def __post_init__(self) -> None:
        low = self.review_threshold if self.step_up_threshold is None else self.step_up_threshold
        if not 0.0 <= low <= self.review_threshold <= self.block_threshold <= 1.0:
            raise ValueError(
                "thresholds must satisfy 0 <= step_up <= review <= block <= 1, got "
                f"step_up={self.step_up_threshold}, review={self.review_threshold}, "
                f"block={self.block_threshold}"
            )

    def model_action(self, score: float) -> Action:
        """The action the thresholds give an (adjusted) score."""
        if score >= self.block_threshold:
            return "block"
        if score >= self.review_threshold:
            return "review"
        if self.step_up_threshold is not None and score >= self.step_up_threshold:
            return "step_up"
        return "approve"


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one event.

    Args:
        action: ``approve``, ``review``, ``step_up`` or ``block``.
        decided_by: ``"model"``, ``"rule:<id>"`` or ``"list"``.
        reasons: why, in words, most important first.
        outcomes: every rule's outcome, with its trace.
        score: the model score given (``None`` when there was none).
        adjusted_score: the score plus the hit rules' weights, clamped to [0, 1].
        ruleset_version: the version of the rule set that decided.
        shadow: the shadow rule set's decision, when one was given; it changes nothing above.
    """

    action: Action
    decided_by: str
    reasons: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    score: float | None
    adjusted_score: float
    ruleset_version: str
    shadow: Decision | None = None


def _deny_list_hit(context: Context, config: PolicyConfig) -> str | None:
    for name, path in config.deny_lists:
        members = context.lists.get(name)
        if not members:
            continue
        try:
            value = lookup(context.data, path)
            if value is not None and value in members:
                return f"{path} {value!r} is on deny list {name!r}"
        except (EvalFault, TypeError):
            continue
    return None


def _decide_one(
    score: float | None, context: Context, ruleset: RuleSet, config: PolicyConfig
) -> Decision:
    outcomes = evaluate_all(ruleset, context, trace_misses=config.trace_misses)
    hits: list[Rule] = [rule for rule, o in zip(ruleset, outcomes, strict=True) if o.hit]
    errors = [o for o in outcomes if o.result == "error"]

    usable = score is not None and is_number(score) and not math.isnan(score)
    base = float(score) if usable else 0.0  # type: ignore[arg-type]
    weights = sum(rule.weight for rule in hits) if config.apply_weights else 0.0
    adjusted = min(1.0, max(0.0, base + weights))
    model = config.model_action(adjusted)
    model_reason = (
        f"model score {base:.3f} (adjusted {adjusted:.3f}) gives {model}"
        if usable
        else f"no usable model score ({score!r}); adjusted {adjusted:.3f} gives {model}"
    )

    reasons: list[str] = []
    action: Action = model
    decided_by = "model"
    listed = _deny_list_hit(context, config)
    deciders = [rule for rule in hits if rule.action != "tag"]
    top = (
        min(deciders, key=lambda r: (-r.priority, -_RULE_SEVERITY[r.action], r.id))
        if deciders
        else None
    )
    if listed is not None:
        action, decided_by = "block", "list"
        reasons.append(listed)
    elif top is not None and top.action == "allow":
        if model == "block" and not config.allow_overrides_model:
            reasons.append(f"allow rule {top.id} does not override a model block")
        else:
            action, decided_by = "approve", f"rule:{top.id}"
            reasons.append(f"rule {top.id} allows")
    elif top is not None:
        rule_action: Action = top.action  # type: ignore[assignment]
        if SEVERITY[rule_action] >= SEVERITY[model]:
            action, decided_by = rule_action, f"rule:{top.id}"
            reasons.append(f"rule {top.id} (priority {top.priority}) gives {rule_action}")
    if config.review_on_error and errors and action == "approve":
        action, decided_by = "review", f"rule:{errors[0].rule_id}"
        reasons.append(f"rule {errors[0].rule_id} could not be decided")
    reasons.append(model_reason)
    reasons.extend(f"rule {rule.id} hit ({rule.action})" for rule in hits)
    reasons.extend(f"rule {o.rule_id} error: {o.error}" for o in errors)
    return Decision(
        action,
        decided_by,
        tuple(reasons),
        tuple(outcomes),
        float(score) if usable else None,  # type: ignore[arg-type]
        adjusted,
        ruleset.version,
    )


def decide(
    score: float | None,
    context: Context | Mapping[str, Any],
    ruleset: RuleSet,
    config: PolicyConfig | None = None,
    *,
    shadow: RuleSet | None = None,
) -> Decision:
    """Decide one event from its model score, its context and a rule set. Never raises.

    Args:
        score: the model's fraud score in [0, 1] (a high score is indicative of fraud), or
            ``None`` when no model scored the event.
        context: the evaluation data, or a Context with named lists and detectors.
        ruleset: the live rule set.
        config: thresholds and switches; the defaults when omitted.
        shadow: a rule set to try on live traffic: decided alongside, returned as ``shadow``.
    """
    config = config or PolicyConfig()
    if not isinstance(context, Context):
        context = Context(context)
    live = _decide_one(score, context, ruleset, config)
    if shadow is None:
        return live
    return Decision(
        live.action,
        live.decided_by,
        live.reasons,
        live.outcomes,
        live.score,
        live.adjusted_score,
        live.ruleset_version,
        shadow=_decide_one(score, context, shadow, config),
    )
