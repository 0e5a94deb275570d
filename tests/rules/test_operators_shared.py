"""One suite for every operator, function and method of the language: the same checks on each.

Each registry entry needs cases here, so a new operator without tests fails this suite.
"""

import contextlib
import math
from datetime import UTC, datetime

import pytest

from rules.errors import EvalFault
from rules.evaluate import evaluate, evaluate_all
from rules.lang import FAULT, Context, compile_expression, quick_values
from rules.operators import FUNCTIONS, METHODS, OPERATORS
from rules.ruleset import Rule

LISTS = {"allow": {"a1", "a2"}}
DATA = {
    "txn": {"amount": 1500, "channel": "wallet", "account_id": "a1"},
    "velocity": {"account": {"1h": {"count": 12}}},
}

# name -> (template with x and y as operands, [(x, y, expected)], sample good operands)
CASES = {
    "==": ("x == y", [(1, 1.0, True), ("a", "a", True), (1, "1", False), (None, None, True)]),
    "!=": ("x != y", [(1, 2, True), ("a", "a", False), (True, 1, True)]),
    "<": ("x < y", [(1, 2, True), ("a", "b", True), (2, 2, False)]),
    "<=": ("x <= y", [(2, 2, True), (3, 2, False)]),
    ">": ("x > y", [(3, 2, True), ("b", "a", True)]),
    ">=": ("x >= y", [(2, 2, True), (1, 2, False)]),
    "in": ("x in y", [(1, [1, 2], True), ("ab", "cab", True), (3, [1, 2], False)]),
    "not in": ("x not in y", [(3, [1, 2], True), (1, [1], False)]),
    "+": ("x + y", [(1, 2, 3), (0.5, 0.25, 0.75)]),
    "-": ("x - y", [(5, 2, 3)]),
    "*": ("x * y", [(4, 2.5, 10.0)]),
    "/": ("x / y", [(9, 3, 3.0)]),
    "and": ("x and y", [(True, True, True), (True, False, False), (False, True, False)]),
    "or": ("x or y", [(False, False, False), (False, True, True), (True, False, True)]),
    "not": ("not x", [(True, None, False), (False, None, True)]),
    "neg": ("-x", [(3, None, -3), (-1.5, None, 1.5)]),
    "list": ('list("allow").contains(x)', [("a1", None, True), ("zz", None, False)]),
    "detector": ('detector("velocity_burst") == x', [(True, None, True)]),
    "velocity": ('velocity("account", "1h").count == x', [(12, None, True)]),
    "abs": ("abs(x)", [(-3, None, 3), (2.5, None, 2.5)]),
    "min": ("min(x)", [([3, 1, 2], None, 1), ([0.5], None, 0.5)]),
    "max": ("max(x)", [([3, 1, 2], None, 3), ([-1, -2], None, -1)]),
    "len": ("len(x)", [("abc", None, 3), ([1, 2], None, 2), ({"a": 1}, None, 1)]),
    "contains": ("x.contains(y)", [([1, 2], 2, True), ("fraud", "ra", True), ([], 1, False)]),
}

JUNK = [
    None,
    True,
    0,
    -1.5,
    math.nan,
    math.inf,
    10**400,
    "",
    "text",
    [],
    [None, "a", 1],
    {},
    {"a": {"b": 1}},
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1),  # naive, from bad data, on purpose
    object(),
    b"bytes",
    {1, 2},
]

NAMES = sorted(set(OPERATORS) | set(FUNCTIONS) | set(METHODS))


def _context(x, y):
    return Context({**DATA, "x": x, "y": y}, lists=LISTS)


def _junk_context(x, y):
    """Junk everywhere the operators read: the operands, the counters, the transaction."""
    return Context({"x": x, "y": y, "velocity": {"account": {"1h": x}}, "txn": y}, lists=LISTS)


def test_every_operator_has_cases():
    assert set(CASES) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_examples(name):
    template, examples = CASES[name]
    expression = compile_expression(template)
    for x, y, expected in examples:
        result = expression.evaluate(_context(x, y))
        assert result.error is None, (name, x, y, result.error)
        assert result.value == expected, (name, x, y)
        assert result.steps, "every evaluation leaves a trace"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    template, examples = CASES[name]
    expression = compile_expression(template)
    for x, y, _ in examples:
        first = expression.evaluate(_context(x, y))
        second = compile_expression(template).evaluate(_context(x, y))
        assert (first.value, first.error, first.trace) == (second.value, second.error, second.trace)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_an_outcome_never_an_exception(name):
    template, _ = CASES[name]
    rule = Rule(f"r_{name}", f"({template}) == true", "tag")
    results = set()
    for x in JUNK:
        for y in JUNK:
            outcome = evaluate(rule, _junk_context(x, y))
            assert outcome.result in ("hit", "no_hit", "error")
            assert outcome.trace or outcome.error
            results.add(outcome.result)
    if name not in ("==", "!="):
        assert "error" in results, "some junk must be a type fault"


@pytest.mark.parametrize("name", NAMES)
def test_missing_operand_names_the_path(name):
    template, _ = CASES[name]
    outcome = evaluate(Rule("r", f"({template}) == true", "tag"), Context(DATA, lists=LISTS))
    assert outcome.result == "error"
    assert outcome.missing == "x"
    assert outcome.error == "missing field x"


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_implementations_raise_only_faults(name):
    spec = OPERATORS[name]
    for x in JUNK:
        for y in JUNK:
            args = (x, y)[: spec.arity]
            with contextlib.suppress(EvalFault):
                spec.apply(*args)


@pytest.mark.parametrize("name", NAMES)
def test_untraced_evaluation_gives_the_same_value_and_fault(name):
    template, examples = CASES[name]
    expression = compile_expression(f"({template}) == true")
    contexts = [_context(x, y) for x, y, _ in examples]
    contexts += [_junk_context(x, y) for x in JUNK for y in JUNK]
    for context in contexts:
        traced = expression.evaluate(context)
        quick = expression.evaluate(context, traced=False)
        assert (quick.value, quick.error, quick.path) == (traced.value, traced.error, traced.path)
        # only a detector's own finding is kept untraced
        assert all(step in traced.steps for step in quick.steps)
        assert len(quick.steps) < len(traced.steps) or not traced.steps


def test_the_hot_path_traces_hits_and_errors_only():
    rules = [
        Rule("hit", "x > 1", "tag"),
        Rule("miss", "x < 1", "tag"),
        Rule("broken", "missing.field > 1", "tag"),
        Rule("not_a_condition", "x + 1", "tag"),
    ]
    context = _context(5, 0)
    full = evaluate_all(rules, context)
    hot = evaluate_all(rules, context, trace_misses=False)
    assert [o.result for o in hot] == [o.result for o in full]
    assert [o.result for o in hot] == ["hit", "no_hit", "error", "error"]
    assert [o.error for o in hot] == [o.error for o in full]
    assert hot[3].error == "condition gave a number, expected a boolean"
    assert hot[0].trace == full[0].trace != ()
    assert hot[2].trace == full[2].trace
    assert full[1].trace != ()
    assert hot[1].trace == ()
    # the hot path's first pass: each rule's value alone, a fault as FAULT
    assert quick_values([r.expression for r in rules], context) == [True, False, FAULT, 6]
