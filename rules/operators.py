"""The rule language's operators and functions: one spec per concept, in two registries.

``OPERATORS`` holds the unary and binary operators, ``FUNCTIONS`` the whitelisted functions and
``METHODS`` the methods callable on a value (``list("x").contains(y)``). Every implementation
either returns a value or raises ``EvalFault`` for a data fault (a type mismatch, an unknown
list); the evaluator turns the fault into an ``error`` outcome. The shared test suite finds every
entry of these registries and runs the same checks on each.

Types the language knows: null, boolean, number (int or float, never a boolean), string, list,
mapping, datetime (timezone-aware) and a named list (``list("name")``).

>>> OPERATORS["<"].apply(1, 2.5)
True
>>> OPERATORS["+"].apply(1, "a")
Traceback (most recent call last):
rules.errors.EvalFault: '+' needs numbers, got number and string
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rules.errors import EvalFault


def is_number(value: object) -> bool:
    """Whether ``value`` is a number of the language (a real number that is not a boolean)."""
    kind = type(value)
    if kind is int or kind is float:
        return True
    if kind is str or kind is bool or value is None:  # the common answers, without the ABC
        return False
    return isinstance(value, numbers.Real)


def type_name(value: object) -> str:
    """The language's name for the type of ``value``.

    >>> [type_name(v) for v in (None, True, 3, "a", [1], {"a": 1})]
    ['null', 'boolean', 'number', 'string', 'list', 'mapping']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, NamedList):
        return "named list"
    if isinstance(value, list | tuple | set | frozenset):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, datetime):
        return "datetime"
    return type(value).__name__


@dataclass(frozen=True, slots=True, repr=False)
class NamedList:
    """A list supplied with the context (allow lists, deny lists), named in rules by ``list()``."""

    name: str
    members: Collection[Any]

    def __repr__(self) -> str:
        return f"list({self.name!r}, {len(self.members)} members)"

    def contains(self, item: object) -> bool:
        """Whether ``item`` is a member; an unhashable item is a fault, not an error."""
        try:
            return item in self.members
        except TypeError as exc:
            raise EvalFault(f"cannot look up a {type_name(item)} in list {self.name!r}") from exc


class Env(Protocol):
    """What functions see of an evaluation: the data, the named lists and the detectors."""

    data: Mapping[str, Any]
    lists: Mapping[str, Collection[Any]]
    detectors: Mapping[str, Callable[[Mapping[str, Any]], Any]]
    steps: list[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    """One operator: its symbol, arity (1 or 2) and implementation.

    ``and`` and ``or`` short-circuit in the compiler; their ``apply`` is the plain truth table.
    """

    symbol: str
    arity: int
    apply: Callable[..., Any]
    doc: str


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One whitelisted function or method.

    Holds its name, the range of its argument count, and whether every argument must be a string
    literal (checked when the expression is parsed).
    """

    name: str
    min_args: int
    max_args: int
    literal_args: bool
    apply: Callable[..., Any]
    doc: str


# -- operators ---------------------------------------------------------------------------------


def _equal(left: object, right: object) -> bool:
    if type(left) is str and type(right) is str:
        return left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if type_name(left) != type_name(right):
        return False
    try:
        result = left == right
        return result if type(result) is bool else bool(result)
    except Exception as exc:
        raise EvalFault(f"cannot compare {type_name(left)} values for equality") from exc


def _not_equal(left: object, right: object) -> bool:
    return not _equal(left, right)


def _ordered(symbol: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if (is_number(left) and is_number(right)) or (
            type(left) is type(right) and isinstance(left, str | datetime)
        ):
            try:
                return bool(compare(left, right))
            except TypeError as exc:  # naive against aware datetimes
                raise EvalFault(f"cannot order these values with {symbol!r}: {exc}") from exc
        raise EvalFault(f"cannot compare {type_name(left)} {symbol} {type_name(right)}")

    return apply


def _member(item: object, container: object) -> bool:
    if isinstance(container, NamedList):
        return container.contains(item)
    if isinstance(container, str):
        if not isinstance(item, str):
            raise EvalFault(f"'in' a string needs a string on the left, got {type_name(item)}")
        return item in container
    if isinstance(container, set | frozenset):
        try:
            return item in container
        except TypeError as exc:
            raise EvalFault(f"cannot look up a {type_name(item)} in a set") from exc
    if isinstance(container, list | tuple):
        return any(_equal(item, member) for member in container)
    raise EvalFault(f"'in' needs a list or string on the right, got {type_name(container)}")


def _not_member(item: object, container: object) -> bool:
    return not _member(item, container)


def _arithmetic(symbol: str, compute: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        if not (is_number(left) and is_number(right)):
            raise EvalFault(
                f"{symbol!r} needs numbers, got {type_name(left)} and {type_name(right)}"
            )
        try:
            return compute(left, right)
        except ZeroDivisionError as exc:
            raise EvalFault("division by zero") from exc
        except ArithmeticError as exc:
            raise EvalFault(f"{symbol!r} overflowed") from exc

    return apply


def _boolean(symbol: str, value: object) -> bool:
    if type(value) is not bool:
        raise EvalFault(f"{symbol!r} needs booleans, got {type_name(value)}")
    return value


def _and(left: object, right: object) -> bool:
    return _boolean("and", left) and _boolean("and", right)


def _or(left: object, right: object) -> bool:
    return _boolean("or", left) or _boolean("or", right)


def _not(value: object) -> bool:
    return not _boolean("not", value)


def _negate(value: object) -> Any:
    if not is_number(value):
        raise EvalFault(f"'-' needs a number, got {type_name(value)}")
    return -value  # type: ignore[operator]


OPERATORS: dict[str, OperatorSpec] = {
    spec.symbol: spec
    for spec in (
        OperatorSpec("==", 2, _equal, "equal; numbers compare by value, other types never equal"),
        OperatorSpec("!=", 2, _not_equal, "not equal"),
        OperatorSpec("<", 2, _ordered("<", lambda a, b: a < b), "less than"),
        OperatorSpec("<=", 2, _ordered("<=", lambda a, b: a <= b), "less than or equal"),
        OperatorSpec(">", 2, _ordered(">", lambda a, b: a > b), "greater than"),
        OperatorSpec(">=", 2, _ordered(">=", lambda a, b: a >= b), "greater than or equal"),
        OperatorSpec("in", 2, _member, "membership in a list, named list or string"),
        OperatorSpec("not in", 2, _not_member, "negated membership"),
        OperatorSpec("+", 2, _arithmetic("+", lambda a, b: a + b), "addition"),
        OperatorSpec("-", 2, _arithmetic("-", lambda a, b: a - b), "subtraction"),
        OperatorSpec("*", 2, _arithmetic("*", lambda a, b: a * b), "multiplication"),
        OperatorSpec("/", 2, _arithmetic("/", lambda a, b: a / b), "division"),
        OperatorSpec("and", 2, _and, "logical and (short-circuit)"),
        OperatorSpec("or", 2, _or, "logical or (short-circuit)"),
        OperatorSpec("not", 1, _not, "logical negation"),
        OperatorSpec("neg", 1, _negate, "arithmetic negation (unary '-')"),
    )
}
"""Every operator of the language, by symbol (unary minus is ``neg``)."""


# -- functions ---------------------------------------------------------------------------------


def _list(env: Env, name: str) -> NamedList:
    members = env.lists.get(name)
    if members is None:
        raise EvalFault(f"unknown list {name!r}", path=f"list({name!r})")
    return NamedList(name, members)


def _detector(env: Env, name: str) -> bool:
    detect = env.detectors.get(name)
    if detect is None:
        raise EvalFault(f"unknown detector {name!r}", path=f"detector({name!r})")
    result = detect(env.data)
    env.steps.append((f"detector({name!r}): {result.detail}", result.hit))
    return bool(result.hit)


def _velocity(env: Env, entity: str, window: str) -> Mapping[str, Any]:
    path = f"velocity.{entity}.{window}"
    node: Any = env.data
    for key in ("velocity", entity, window):
        if not isinstance(node, Mapping) or key not in node:
            raise EvalFault(f"missing field {path}", path=path)
        node = node[key]
    if not isinstance(node, Mapping):
        raise EvalFault(f"{path} is a {type_name(node)}, expected a mapping of counters", path)
    return node


def _abs(env: Env, value: object) -> Any:
    if not is_number(value):
        raise EvalFault(f"abs() needs a number, got {type_name(value)}")
    return abs(value)  # type: ignore[arg-type]


def _extreme(name: str, pick: Callable[[Sequence[Any]], Any]) -> Callable[..., Any]:
    def apply(env: Env, *args: Any) -> Any:
        values = args
        if len(args) == 1:
            if not isinstance(args[0], list | tuple):
                raise EvalFault(f"{name}() of one argument needs a list, got {type_name(args[0])}")
            values = tuple(args[0])
        if not values:
            raise EvalFault(f"{name}() of an empty list")
        for value in values:
            if not is_number(value):
                raise EvalFault(f"{name}() needs numbers, got {type_name(value)}")
        if any(isinstance(v, float) and math.isnan(v) for v in values):
            return math.nan
        return pick(values)

    return apply


def _len(env: Env, value: object) -> int:
    if isinstance(value, str | list | tuple | set | frozenset | Mapping):
        return len(value)
    if isinstance(value, NamedList):
        return len(value.members)
    raise EvalFault(f"len() needs a string, list or mapping, got {type_name(value)}")


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("list", 1, 1, True, _list, "the named list supplied with the context"),
        FunctionSpec("detector", 1, 1, True, _detector, "run a built-in detector: true on a hit"),
        FunctionSpec("velocity", 2, 2, True, _velocity, "counters of an entity's time window"),
        FunctionSpec("abs", 1, 1, False, _abs, "absolute value"),
        FunctionSpec("min", 1, 16, False, _extreme("min", min), "smallest of numbers or a list"),
        FunctionSpec("max", 1, 16, False, _extreme("max", max), "largest of numbers or a list"),
        FunctionSpec("len", 1, 1, False, _len, "length of a string, list or mapping"),
    )
}
"""Every function of the language, by name. ``apply(env, *args)``."""


def _contains(container: object, item: object) -> bool:
    return _member(item, container)


METHODS: dict[str, FunctionSpec] = {
    "contains": FunctionSpec(
        "contains", 1, 1, False, _contains, "``x.contains(y)`` is ``y in x`` (lists, strings)"
    ),
}
"""Methods callable on a value, by name. ``apply(receiver, *args)``."""
