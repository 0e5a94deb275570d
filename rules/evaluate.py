"""Evaluating rules: every rule ends as an ``Outcome``, never an exception.

The result is ``hit``, ``no_hit`` or ``error``, with the evaluation trace kept for investigators.

>>> from rules.ruleset import Rule
>>> rule = Rule("big_cnp", 'txn.channel == "card_not_present" and txn.amount > 1000', "review")
>>> evaluate(rule, {"txn": {"channel": "card_not_present", "amount": 2500}}).result
'hit'
>>> outcome = evaluate(rule, {"txn": {"channel": "card_not_present"}})
>>> outcome.result, outcome.error, outcome.missing
('error', 'missing field txn.amount', 'txn.amount')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rules.lang import Context, quick_values
from rules.operators import type_name
from rules.ruleset import Rule

Result = Literal["hit", "no_hit", "error"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one rule gave on one context.

    Args:
        rule_id: the rule.
        result: ``hit``, ``no_hit`` or ``error``.
        steps: each field read, call and operator with its value, in evaluation order (up to
            the fault, for an error), as ``(text, value)`` pairs; :attr:`trace` words them.
        error: why the rule could not be decided, for an ``error``.
        missing: the missing field's path, when that was the fault.
    """

    rule_id: str
    result: Result
    steps: tuple[tuple[str, Any], ...]
    error: str | None = None
    missing: str | None = None

    @property
    def trace(self) -> tuple[str, ...]:
        """The steps as ``text -> value`` lines (worded when asked, not on the hot path)."""
        return tuple(f"{text} -> {value!r}" for text, value in self.steps)

    @property
    def hit(self) -> bool:
        """Whether the rule hit."""
        return self.result == "hit"


def evaluate(rule: Rule, context: Context | Mapping[str, Any]) -> Outcome:
    """Evaluate ``rule`` on ``context``. Never raises: data faults give an ``error`` outcome."""
    evaluation = rule.expression.evaluate(context)
    trace = evaluation.steps
    if evaluation.error is not None:
        return Outcome(rule.id, "error", trace, evaluation.error, evaluation.path)
    value = evaluation.value
    if type(value) is not bool:
        message = f"condition gave a {type_name(value)}, expected a boolean"
        return Outcome(rule.id, "error", trace, message)
    return Outcome(rule.id, "hit" if value else "no_hit", trace)


def evaluate_all(
    rules: Iterable[Rule], context: Context | Mapping[str, Any], *, trace_misses: bool = True
) -> list[Outcome]:
    """Evaluate every rule on the same context, in order.

    With ``trace_misses=False`` (the scoring hot path) each rule runs untraced first, and again
    traced only when it hits or fails: the rules that did not hit, most of them on most
    transactions, cost no trace, and their outcomes carry no steps.
    """
    if not isinstance(context, Context):
        context = Context(context)
    if trace_misses:
        return [evaluate(rule, context) for rule in rules]
    rules = list(rules)
    values = quick_values((rule.expression for rule in rules), context)
    return [
        _no_hit(rule.id) if value is False else evaluate(rule, context)
        for rule, value in zip(rules, values, strict=True)
    ]


def _no_hit(rule_id: str) -> Outcome:
    """The untraced ``no_hit`` outcome of a rule: the same every time, made once."""
    outcome = _NO_HITS.get(rule_id)
    if outcome is None:
        outcome = _NO_HITS[rule_id] = Outcome(rule_id, "no_hit", ())
    return outcome


_NO_HITS: dict[str, Outcome] = {}
