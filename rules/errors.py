"""The rule package's errors.

::

    RingfenceError (ingest.errors)
    +-- RuleSyntaxError         an expression does not parse; carries the position
    |   +-- RuleLimitError      an expression is too long, too large or nested too deep
    +-- RuleSetError            a rule set is invalid; carries one RuleProblem per bad field

None is retryable: the same text fails the same way. ``EvalFault`` is not part of the hierarchy:
it is raised and caught inside evaluation only, and always ends as an ``error`` outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.errors import RingfenceError


def line_and_column(source: str, position: int) -> tuple[int, int]:
    r"""The 1-based line and column of a 0-based offset into ``source``.

    >>> line_and_column("a and\n  b", 8)
    (2, 3)
    """
    before = source[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column


class RuleSyntaxError(RingfenceError):
    """An expression does not parse. ``position`` is the 0-based offset of the fault."""

    def __init__(self, message: str, source: str, position: int) -> None:
        self.reason = message
        self.source = source
        self.position = position
        self.line, self.column = line_and_column(source, position)
        text_line = source.splitlines()[self.line - 1] if source.strip() else ""
        pointer = " " * (self.column - 1) + "^"
        super().__init__(
            f"{message} at line {self.line}, column {self.column}\n  {text_line}\n  {pointer}"
        )


class RuleLimitError(RuleSyntaxError):
    """An expression is over a size or depth limit (checked while parsing)."""


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One reason a rule set is invalid: the rule (``(ruleset)`` for the set), field and why."""

    rule_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"rule {self.rule_id!r}, field {self.field!r}: {self.message}"


RULESET = "(ruleset)"
"""The ``rule_id`` of a RuleProblem about the rule set as a whole."""


class RuleSetError(RingfenceError):
    """A rule set failed validation. ``problems`` lists every bad field of every rule."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(map(str, self.problems)))


class EvalFault(Exception):
    """A data fault met while evaluating (missing field, type mismatch); becomes an outcome.

    ``path`` names the missing field when there is one.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(message)
