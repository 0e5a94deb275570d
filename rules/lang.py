"""The rule language: a tokenizer, a recursive-descent parser and a compiler to closures.

The parser builds an AST; the compiler turns it into closures once. Nothing here calls ``eval``:
user text only ever becomes data.

Grammar (lowest precedence first)::

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") sum]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | postfix
    postfix    := primary ("." NAME ["(" arguments ")"])*
    primary    := NUMBER | STRING | "true" | "false" | "null" | "[" [arguments] "]"
                | "(" expression ")" | NAME "(" [arguments] ")" | NAME ("." NAME)*
    arguments  := expression ("," expression)*

Comparisons do not chain (``a < b < c`` is a syntax error). Bounded cost: the text, the number of
AST nodes and the nesting depth are limited when parsing, and the language has no loops, so
evaluation is linear in the size of the expression and of the lists it scans.

>>> rule = compile_expression('txn.channel in ["card_not_present", "wallet"] and txn.amount > 1000')
>>> result = rule.evaluate({"txn": {"channel": "wallet", "amount": 1500}})
>>> result.value, result.error
(True, None)
>>> rule.evaluate({"txn": {"channel": "wallet"}}).error
'missing field txn.amount'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rules.detectors import DEFAULT_DETECTORS, Detector
from rules.errors import EvalFault, RuleLimitError, RuleSyntaxError
from rules.operators import FUNCTIONS, METHODS, OPERATORS, type_name

MAX_SOURCE_CHARS = 4096
"""The longest expression text accepted."""
MAX_NODES = 256
"""The most AST nodes one expression may have."""
MAX_DEPTH = 32
"""The deepest nesting of parentheses, calls, lists and prefix operators."""

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOLS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-", "*", "/")
_HINTS = {
    "=": "'=' is not an operator; compare with '=='",
    "&": "use 'and' instead of '&&'",
    "|": "use 'or' instead of '||'",
    "!": "use 'not' instead of '!'",
}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


# -- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is ``number``, ``string``, ``name``, ``op`` or ``end``."""

    kind: str
    text: str
    value: Any
    start: int
    end: int


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``end`` token.

    Raises:
        RuleSyntaxError: on a character or string the language does not know.

    >>> [t.text for t in tokenize("score >= 0.9")]
    ['score', '>=', '0.9', '']
    """
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char.isspace():
            i += 1
            continue
        if "0" <= char <= "9":
            match = _NUMBER.match(source, i)
            assert match is not None
            text = match.group()
            value: Any = float(text) if ("." in text or "e" in text or "E" in text) else int(text)
            tokens.append(Token("number", text, value, i, match.end()))
            i = match.end()
        elif char.isascii() and (char.isalpha() or char == "_"):
            match = _NAME.match(source, i)
            assert match is not None
            tokens.append(Token("name", match.group(), match.group(), i, match.end()))
            i = match.end()
        elif char in "\"'":
            value, end = _read_string(source, i)
            tokens.append(Token("string", source[i:end], value, i, end))
            i = end
        else:
            symbol = next((s for s in _SYMBOLS if source.startswith(s, i)), None)
            if symbol is None:
                hint = _HINTS.get(char, f"unexpected character {char!r}")
                raise RuleSyntaxError(hint, source, i)
            tokens.append(Token("op", symbol, symbol, i, i + len(symbol)))
            i += len(symbol)
    tokens.append(Token("end", "", None, n, n))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    parts: list[str] = []
    i = start + 1
    while i < len(source):
        char = source[i]
        if char == quote:
            return "".join(parts), i + 1
        if char == "\\":
            escaped = source[i + 1 : i + 2]
            if escaped not in _ESCAPES:
                raise RuleSyntaxError(f"unknown escape '\\{escaped}' in string", source, i)
            parts.append(_ESCAPES[escaped])
            i += 2
            continue
        if char == "\n":
            break
        parts.append(char)
        i += 1
    raise RuleSyntaxError("unterminated string", source, start)


# -- the AST -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """An AST node; ``start`` and ``end`` locate its text in the source."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A number, string, boolean or null."""

    value: Any


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    """A list literal ``[a, b, c]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Field(Node):
    """A dotted path into the evaluation data, such as ``txn.amount``."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """``not x`` (op ``not``) or ``-x`` (op ``neg``)."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """A binary operator: comparison, membership, arithmetic, ``and``, ``or``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A call of a whitelisted function."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Member(Node):
    """``value.name``: a key of a mapping value (``velocity("account", "1h").count``)."""

    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class Method(Node):
    """``value.name(args)``: a whitelisted method (``list("x").contains(y)``)."""

    target: Node
    name: str
    args: tuple[Node, ...]


# -- the parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.nodes = 0
        self.depth = 0

    # helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_op(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "op" and token.text == text

    def is_keyword(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "name" and token.text == word

    def fail(self, message: str, token: Token | None = None) -> RuleSyntaxError:
        token = token or self.peek()
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        return RuleSyntaxError(f"{message}, found {found}", self.source, token.start)

    def expect_op(self, text: str) -> Token:
        if not self.is_op(text):
            raise self.fail(f"expected {text!r}")
        return self.advance()

    def made(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleLimitError(
                f"expression has more than {MAX_NODES} nodes", self.source, node.start
            )
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleLimitError(
                f"expression nested deeper than {MAX_DEPTH}", self.source, self.peek().start
            )

    # grammar
    def parse(self) -> Node:
        node = self.expression()
        if self.peek().kind != "end":
            raise self.fail("expected an operator or the end of the expression")
        return node

    def expression(self) -> Node:
        self.enter()
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> Node:
        node = self.and_()
        while self.is_keyword("or"):
            self.advance()
            right = self.and_()
            node = self.made(Binary(node.start, right.end, "or", node, right))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.is_keyword("and"):
            self.advance()
            right = self.not_()
            node = self.made(Binary(node.start, right.end, "and", node, right))
        return node

    def not_(self) -> Node:
        if self.is_keyword("not"):
            start = self.advance().start
            self.enter()
            operand = self.not_()
            self.depth -= 1
            return self.made(Unary(start, operand.end, "not", operand))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        token = self.peek()
        if (token.kind == "op" and token.text in COMPARISONS) or self.is_keyword("in"):
            op = self.advance().text
        elif self.is_keyword("not") and self.is_keyword("in", 1):
            self.advance()
            self.advance()
            op = "not in"
        else:
            return left
        right = self.sum()
        after = self.peek()
        if (after.kind == "op" and after.text in COMPARISONS) or self.is_keyword("in"):
            raise self.fail("comparisons do not chain; join them with 'and'")
        return self.made(Binary(left.start, right.end, op, left, right))

    def sum(self) -> Node:
        node = self.product()
        while self.is_op("+") or self.is_op("-"):
            op = self.advance().text
            right = self.product()
            node = self.made(Binary(node.start, right.end, op, node, right))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.is_op("*") or self.is_op("/"):
            op = self.advance().text
            right = self.unary()
            node = self.made(Binary(node.start, right.end, op, node, right))
        return node

    def unary(self) -> Node:
        if self.is_op("-"):
            start = self.advance().start
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and type(operand.value) in (int, float):
                return Literal(start, operand.end, -operand.value)
            return self.made(Unary(start, operand.end, "neg", operand))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.is_op("."):
            self.advance()
            name = self.peek()
            if name.kind != "name":
                raise self.fail("expected a name after '.'")
            self.advance()
            if self.is_op("("):
                spec = METHODS.get(name.text)
                if spec is None:
                    known = ", ".join(sorted(METHODS))
                    raise self.fail(f"unknown method (known: {known})", name)
                args, end = self.arguments(")")
                self.check_arity(spec.name, spec.min_args, spec.max_args, args, name)
                node = self.made(Method(node.start, end, node, name.text, args))
            else:
                node = self.made(Member(node.start, name.end, node, name.text))
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token.kind in ("number", "string"):
            self.advance()
            return self.made(Literal(token.start, token.end, token.value))
        if self.is_op("["):
            items, end = self.arguments("]")
            return self.made(ListNode(token.start, end, items))
        if self.is_op("("):
            self.advance()
            node = self.expression()
            self.expect_op(")")
            return node
        if token.kind != "name":
            raise self.fail("expected a value")
        if token.text in ("true", "false", "null"):
            self.advance()
            value = {"true": True, "false": False, "null": None}[token.text]
            return self.made(Literal(token.start, token.end, value))
        if token.text in KEYWORDS:
            raise self.fail("expected a value")
        self.advance()
        if self.is_op("("):
            return self.call(token)
        path = [token.text]
        end = token.end
        while self.is_op(".") and self.peek(1).kind == "name" and not self.is_op("(", 2):
            self.advance()
            part = self.advance()
            path.append(part.text)
            end = part.end
        return self.made(Field(token.start, end, tuple(path)))

    def call(self, name: Token) -> Node:
        spec = FUNCTIONS.get(name.text)
        if spec is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.fail(f"unknown function {name.text!r} (known: {known})", name)
        args, end = self.arguments(")")
        self.check_arity(spec.name, spec.min_args, spec.max_args, args, name)
        if spec.literal_args:
            for arg in args:
                if not (isinstance(arg, Literal) and isinstance(arg.value, str)):
                    raise RuleSyntaxError(
                        f"{spec.name}() takes string literals only", self.source, arg.start
                    )
        return self.made(Call(name.start, end, name.text, args))

    def arguments(self, closing: str) -> tuple[tuple[Node, ...], int]:
        self.advance()  # the opening bracket
        self.enter()
        items: list[Node] = []
        if not self.is_op(closing):
            items.append(self.expression())
            while self.is_op(","):
                self.advance()
                items.append(self.expression())
        end = self.expect_op(closing).end
        self.depth -= 1
        return tuple(items), end

    def check_arity(
        self, name: str, least: int, most: int, args: tuple[Node, ...], token: Token
    ) -> None:
        if not least <= len(args) <= most:
            wanted = str(least) if least == most else f"{least} to {most}"
            raise RuleSyntaxError(
                f"{name}() takes {wanted} argument(s), got {len(args)}", self.source, token.start
            )


def parse_expression(source: str) -> Node:
    """Parse ``source`` to its AST.

    Raises:
        RuleSyntaxError: with the line and column of the fault.
        RuleLimitError: when the text is too long, too large or nested too deep.

    >>> parse_expression("score >= 0.9")
    Binary(start=0, end=12, op='>=', left=Field(start=0, end=5, path=('score',)), right=Literal(start=9, end=12, value=0.9))
    >>> parse_expression("score >= )")
    Traceback (most recent call last):
    rules.errors.RuleSyntaxError: expected a value, found ')' at line 1, column 10
      score >= )
               ^
    """  # noqa: E501
    if not isinstance(source, str):
        raise RuleSyntaxError(f"expression must be text, got {type_name(source)}", "", 0)
    if len(source) > MAX_SOURCE_CHARS:
        raise RuleLimitError(
            f"expression longer than {MAX_SOURCE_CHARS} characters", source, MAX_SOURCE_CHARS
        )
    if not source.strip():
        raise RuleSyntaxError("empty expression", source, 0)
    return _Parser(source).parse()


# -- evaluation --------------------------------------------------------------------------------

_NO_LISTS: Mapping[str, Collection[Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Context:
    """What an expression is evaluated against.

    Args:
        data: nested mappings: ``txn``, ``features``, ``score``, ``graph``, ``velocity``,
            ``facts``... Field paths walk mappings only, never object attributes.
        lists: named lists for ``list(name)``; sets make lookups fast.
        detectors: detectors for ``detector(name)``; the built-in ones by default.
    """

    data: Mapping[str, Any]
    lists: Mapping[str, Collection[Any]] = field(default_factory=lambda: _NO_LISTS)
    detectors: Mapping[str, Detector] = field(default_factory=lambda: DEFAULT_DETECTORS)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of evaluating an expression: a value, or the fault that stopped it.

    ``steps`` is the trace: (expression text, value) for each field read, call and operator, in
    evaluation order, up to the fault if there was one.
    """

    value: Any
    error: str | None
    path: str | None
    steps: tuple[tuple[str, Any], ...]

    @property
    def trace(self) -> list[str]:
        """The steps as readable lines, such as ``txn.amount -> 1500``."""
        return [f"{text} -> {value!r}" for text, value in self.steps]


class _Env:
    __slots__ = ("data", "detectors", "lists", "steps")

    def __init__(self, context: Context) -> None:
        self.data = context.data
        self.lists = context.lists
        self.detectors = context.detectors
        self.steps: list[tuple[str, Any]] = []


Compiled = Callable[[_Env], Any]


@dataclass(frozen=True)
class Expression:
    """A parsed and compiled expression; build it with ``compile_expression``."""

    source: str
    tree: Node = field(repr=False)
    run: Compiled = field(repr=False, compare=False)
    quick: Compiled = field(repr=False, compare=False)
    """The same closures without the trace: the same value or fault, cheaper."""

    def evaluate(self, context: Context | Mapping[str, Any], *, traced: bool = True) -> Evaluation:
        """Evaluate against ``context`` (a Context, or plain data). Never raises.

        Untraced (``traced=False``), the value or fault is the same and ``steps`` is empty:
        for a first pass on the hot path, traced again only where the trace is wanted.
        """
        if not isinstance(context, Context):
            context = Context(context if isinstance(context, Mapping) else {})
        env = _Env(context)
        try:
            value = (self.run if traced else self.quick)(env)
        except EvalFault as fault:
            return Evaluation(None, fault.message, fault.path, tuple(env.steps))
        except Exception as exc:  # a fault we did not foresee is still an outcome
            message = f"unexpected fault: {type(exc).__name__}: {exc}"
            return Evaluation(None, message, None, tuple(env.steps))
        return Evaluation(value, None, None, tuple(env.steps))


def quick_values(expressions: Iterable[Expression], context: Context) -> list[Any]:
    """Each expression's value on ``context``, untraced, one after another; never raises.

    The hot path's first pass: the values alone, with :data:`FAULT` where an expression
    faulted. :meth:`Expression.evaluate` gives the same value or fault with its message.
    """
    env = _Env(context)  # untraced closures leave no steps: one serves them all
    out = []
    for expression in expressions:
        try:
            out.append(expression.quick(env))
        except Exception:  # any fault: the traced evaluation reports it
            out.append(FAULT)
    return out


FAULT: Any = object()
"""What :func:`quick_values` gives for an expression that faulted."""


def compile_expression(source: str) -> Expression:
    """Parse ``source`` and compile it to closures, once; evaluate it many times.

    >>> compile_expression("abs(-2) + max(1, 3)").evaluate({}).value
    5
    """
    tree = parse_expression(source)
    return Expression(source, tree, _compile(tree, source, True), _compile(tree, source, False))


def _compile(node: Node, source: str, traced: bool) -> Compiled:
    """Closures for ``node``; ``traced`` ones record each step's text and value."""
    text = source[node.start : node.end]
    if isinstance(node, Literal):
        constant = node.value
        return lambda env: constant
    if isinstance(node, ListNode):
        items = [_compile(item, source, traced) for item in node.items]
        return lambda env: [item(env) for item in items]
    if isinstance(node, Field):
        return _compile_field(node.path, traced)
    if isinstance(node, Member):
        return _compile_member(_compile(node.target, source, traced), node.name, text, traced)
    if isinstance(node, Binary) and node.op in ("and", "or"):
        left, right = _compile(node.left, source, traced), _compile(node.right, source, traced)
        return _compile_logical(node.op, text, left, right, traced)
    run = _compile_step(node, source, traced)
    if not traced:
        return run

    def step(env: _Env) -> Any:
        value = run(env)
        env.steps.append((text, value))
        return value

    return step


def _compile_step(node: Node, source: str, traced: bool) -> Compiled:
    """An operator, call or method: its value, without the step's own trace line."""
    if isinstance(node, Unary):
        operand = _compile(node.operand, source, traced)
        unary = OPERATORS[node.op].apply
        return lambda env: unary(operand(env))
    if isinstance(node, Binary):
        left, right = _compile(node.left, source, traced), _compile(node.right, source, traced)
        binary = OPERATORS[node.op].apply
        return lambda env: binary(left(env), right(env))
    if isinstance(node, Call):
        args = [_compile(arg, source, traced) for arg in node.args]
        function = FUNCTIONS[node.name].apply
        return lambda env: function(env, *[arg(env) for arg in args])
    if isinstance(node, Method):
        target = _compile(node.target, source, traced)
        args = [_compile(arg, source, traced) for arg in node.args]
        method = METHODS[node.name].apply
        return lambda env: method(target(env), *[arg(env) for arg in args])
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover - the parser makes no others


def _compile_field(path: tuple[str, ...], traced: bool) -> Compiled:
    dotted = ".".join(path)

    def read(env: _Env) -> Any:
        value: Any = env.data
        for depth, key in enumerate(path):
            if type(value) is not dict and not isinstance(value, Mapping):
                parent = ".".join(path[:depth])
                raise EvalFault(
                    f"missing field {dotted}: {parent} is a {type_name(value)}, not a mapping",
                    dotted,
                )
            try:
                value = value[key]
            except KeyError:
                raise EvalFault(f"missing field {dotted}", dotted) from None
        if traced:
            env.steps.append((dotted, value))
        return value

    return read


def _compile_member(target: Compiled, name: str, text: str, traced: bool) -> Compiled:
    def member(env: _Env) -> Any:
        value = target(env)
        if not isinstance(value, Mapping) or name not in value:
            found = type_name(value) if not isinstance(value, Mapping) else "mapping without it"
            raise EvalFault(f"missing field {text} ({found})", text)
        result = value[name]
        if traced:
            env.steps.append((text, result))
        return result

    return member


def _compile_logical(op: str, text: str, left: Compiled, right: Compiled, traced: bool) -> Compiled:
    is_and = op == "and"

    def logical(env: _Env) -> bool:
        first = left(env)
        if type(first) is not bool:
            raise EvalFault(f"{op!r} needs booleans, got {type_name(first)}")
        if first is not is_and:  # false for 'and', true for 'or': the answer is known
            if traced:
                env.steps.append((text, first))
            return first
        second = right(env)
        if type(second) is not bool:
            raise EvalFault(f"{op!r} needs booleans, got {type_name(second)}")
        if traced:
            env.steps.append((text, second))
        return second

    return logical
