import pytest

from rules.errors import RuleLimitError, RuleSyntaxError
from rules.lang import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_SOURCE_CHARS,
    Binary,
    Context,
    Field,
    Literal,
    Unary,
    compile_expression,
    parse_expression,
)


def value(source, data=None, **kwargs):
    result = compile_expression(source).evaluate(Context(data or {}, **kwargs))
    assert result.error is None, result.error
    return result.value


def test_and_binds_tighter_than_or():
    tree = parse_expression("a or b and c")
    assert isinstance(tree, Binary)
    assert tree.op == "or"
    assert isinstance(tree.right, Binary)
    assert tree.right.op == "and"


def test_not_binds_looser_than_comparison():
    tree = parse_expression("not a == b")
    assert isinstance(tree, Unary)
    assert isinstance(tree.operand, Binary)
    assert tree.operand.op == "=="


def test_arithmetic_precedence_and_parentheses():
    assert value("1 + 2 * 3") == 7
    assert value("(1 + 2) * 3") == 9
    assert value("10 - 4 - 3") == 3
    assert value("-2 * -3") == 6


def test_not_in_is_one_operator():
    tree = parse_expression('x not in ["a"]')
    assert isinstance(tree, Binary)
    assert tree.op == "not in"


def test_literals_and_field_paths():
    tree = parse_expression("features.accounts_per_device")
    assert tree == Field(0, 28, ("features", "accounts_per_device"))
    assert parse_expression("null") == Literal(0, 4, None)
    assert value('"a\\"b"') == 'a"b'
    assert value("'x'") == "x"
    assert value("1.5e3") == 1500.0


def test_examples_from_the_brief():
    data = {
        "score": 0.95,
        "features": {"accounts_per_device": 3},
        "txn": {"channel": "wallet", "amount": 1200, "account_id": "a9"},
        "graph": {"ring_risk": 0.7},
        "velocity": {"account": {"1h": {"count": 11}}},
        "facts": {},
    }
    lists = {"allow_accounts": {"a1"}}
    for source in (
        "score >= 0.9 and features.accounts_per_device >= 3",
        'txn.channel in ["card_not_present", "wallet"] and txn.amount > 1000',
        'not list("allow_accounts").contains(txn.account_id)',
        "graph.ring_risk > 0.5",
        'velocity("account", "1h").count > 10',
        'not detector("impossible_travel")',
    ):
        assert value(source, data, lists=lists) is True, source


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("score >= ", "expected a value", 10),
        ("score = 1", "compare with '=='", 7),
        ("a && b", "use 'and'", 3),
        ("(a", "expected ')'", 3),
        ("a b", "expected an operator", 3),
        ("1 < x < 3", "do not chain", 7),
        ('"open', "unterminated string", 1),
        ("evil(1)", "unknown function 'evil'", 1),
        ("x.__class__()", "unknown method", 3),
        ("abs(1, 2)", "takes 1 argument", 1),
        ("list(x)", "string literals only", 6),
        ("a and", "expected a value", 6),
        ("", "empty expression", 1),
        ("a ? b", "unexpected character '?'", 3),
    ],
)
def test_syntax_errors_name_the_position(source, message, column):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_expression(source)
    assert message in str(caught.value)
    assert caught.value.column == column
    assert caught.value.line == 1


def test_error_on_a_later_line_shows_that_line():
    with pytest.raises(RuleSyntaxError) as caught:
        parse_expression("score > 0.5\n  and )")
    assert (caught.value.line, caught.value.column) == (2, 7)
    assert "  and )" in str(caught.value)


def test_limits():
    with pytest.raises(RuleLimitError, match="longer than"):
        parse_expression("a" * (MAX_SOURCE_CHARS + 1))
    with pytest.raises(RuleLimitError, match="nested deeper"):
        parse_expression("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(RuleLimitError, match="nodes"):
        parse_expression(" or ".join(["a"] * MAX_NODES))
    with pytest.raises(RuleLimitError):
        parse_expression("not " * 200 + "true")
    parse_expression("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1))


def test_no_eval_of_python_syntax():
    for source in ("__import__('os')", "lambda: 1", "[x for x in y]", "a[0]", "a if b else c"):
        with pytest.raises(RuleSyntaxError):
            parse_expression(source)


def test_fields_read_mappings_only_never_attributes():
    class Txn:
        amount = 5

    result = compile_expression("txn.amount").evaluate({"txn": Txn()})
    assert result.error is not None
    assert result.path == "txn.amount"


def test_and_or_short_circuit_skips_the_missing_field():
    assert value("false and missing.field") is False
    assert value("true or missing.field") is True


def test_missing_field_error_keeps_the_trace():
    result = compile_expression("score > 0.5 and txn.amount > 10").evaluate({"score": 0.9})
    assert result.error == "missing field txn.amount"
    assert result.path == "txn.amount"
    assert result.trace == ["score -> 0.9", "score > 0.5 -> True"]


def test_field_through_a_non_mapping():
    result = compile_expression("txn.amount.value").evaluate({"txn": {"amount": 3}})
    assert result.error == "missing field txn.amount.value: txn.amount is a number, not a mapping"


def test_member_of_a_call_result():
    result = compile_expression('velocity("account", "1h").sum > 1').evaluate(
        {"velocity": {"account": {"1h": {"count": 1}}}}
    )
    assert result.error is not None
    assert 'velocity("account", "1h").sum' in result.error


def test_unknown_list_is_an_error():
    result = compile_expression('list("nope").contains(1)').evaluate({})
    assert result.error == "unknown list 'nope'"
