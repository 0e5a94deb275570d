r"""Rules and versioned rule sets: validation from YAML or JSON text, a content hash and a diff.

A rule set in YAML::

    version: "2024-06-01.1"
    rules:
      - id: device_farm
        description: many accounts on one device and a high model score
        when: score >= 0.9 and features.accounts_per_device >= 3
        action: block
        priority: 100
        weight: 0.2
        tags: [device]

Validation collects every problem of every rule, each naming the rule id and the field, and
raises one ``RuleSetError``. Expressions are parsed and compiled once, when the set is built.

>>> rules = ruleset_from_yaml('''
... version: "1"
... rules:
...   - {id: big, when: "txn.amount > 1000", action: review}
... ''')
>>> rules.version, [rule.id for rule in rules]
('1', ['big'])
>>> ruleset_from_yaml("version: 1\nrules: [{id: big, when: 'txn.amount >', action: deny}]")
... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
Traceback (most recent call last):
rules.errors.RuleSetError: rule 'big', field 'action': must be one of ..., got 'deny'; rule 'big',
field 'when': expected a value, found the end of the expression at line 1, column 13
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from rules.errors import RULESET, RuleProblem, RuleSetError, RuleSyntaxError
from rules.lang import Call, Expression, Node, compile_expression

ACTIONS = ("allow", "block", "review", "step_up", "tag")
"""What a rule may ask for when it hits. ``tag`` only adds its weight and a reason."""

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_FIELDS = {"id", "description", "when", "action", "priority", "weight", "tags"}


@dataclass(frozen=True)
class Rule:
    """One rule: when ``when`` is true, ask for ``action``.

    Args:
        id: unique within the set; letters, digits and ``_ . : -``.
        when: the condition, in the rule language; must give a boolean.
        action: one of ``ACTIONS``.
        description: for people.
        priority: among rules that hit, the highest priority decides.
        weight: added to the model score when the rule hits (may be negative).
        tags: free labels (``device``, ``ato``...).
    """

    id: str
    when: str
    action: str
    description: str = ""
    priority: int = 0
    weight: float = 0.0
    tags: tuple[str, ...] = ()
    expression: Expression = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(
                f"rule {self.id!r}: action must be one of {ACTIONS}, not {self.action!r}"
            )
        object.__setattr__(self, "expression", compile_expression(self.when))

    def content(self) -> dict[str, Any]:
        """The rule's content as plain data (what the hash and the diff compare)."""
        return {
            "id": self.id,
            "description": self.description,
            "when": self.when,
            "action": self.action,
            "priority": self.priority,
            "weight": self.weight,
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class RuleSet:
    """A versioned set of rules with unique ids, in the order they were written."""

    version: str
    rules: tuple[Rule, ...]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        """The rule with ``rule_id``, if any."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the rules' content, independent of their order and of the version label.

        Two sets with the same hash behave the same; a hot reload can skip a file whose hash
        did not change.
        """
        body = sorted((rule.content() for rule in self.rules), key=lambda rule: rule["id"])
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule in both sets whose content differs, and the fields that changed."""

    rule_id: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleSetDiff:
    """What changed from one rule set to another, ids sorted."""

    old_version: str
    new_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[RuleChange, ...]

    @property
    def empty(self) -> bool:
        """Whether the two sets have the same rules."""
        return not (self.added or self.removed or self.changed)


def diff(old: RuleSet, new: RuleSet) -> RuleSetDiff:
    """The rules added, removed and changed (with the changed fields) from ``old`` to ``new``.

    >>> a = RuleSet("1", (Rule("x", "score > 0.5", "review"),))
    >>> b = RuleSet("2", (Rule("x", "score > 0.7", "review"), Rule("y", "true", "tag")))
    >>> d = diff(a, b)
    >>> d.added, d.removed, d.changed
    (('y',), (), (RuleChange(rule_id='x', fields=('when',)),))
    """
    before = {rule.id: rule.content() for rule in old}
    after = {rule.id: rule.content() for rule in new}
    changed = []
    for rule_id in sorted(before.keys() & after.keys()):
        fields = tuple(k for k in before[rule_id] if before[rule_id][k] != after[rule_id][k])
        if fields:
            changed.append(RuleChange(rule_id, fields))
    return RuleSetDiff(
        old.version,
        new.version,
        tuple(sorted(after.keys() - before.keys())),
        tuple(sorted(before.keys() - after.keys())),
        tuple(changed),
    )


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for name in node.__slots__:  # type: ignore[attr-defined]
        value = getattr(node, name)
        if isinstance(value, Node):
            yield from _walk(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield from _walk(item)


def _rule(
    raw: object, index: int, problems: list[RuleProblem], known: frozenset[str] | None
) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(RuleProblem(f"#{index + 1}", RULESET, "a rule must be a mapping"))
        return None
    rule_id = raw.get("id")
    name = rule_id if isinstance(rule_id, str) and rule_id else f"#{index + 1}"
    before = len(problems)

    def bad(field_name: str, message: str) -> None:
        problems.append(RuleProblem(name, field_name, message))

    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        bad("id", f"must be 1 to 100 letters, digits or '_.:-', got {rule_id!r}")
    for extra in sorted(set(map(str, raw)) - _FIELDS):
        bad(extra, "unknown field")
    description = raw.get("description", "")
    if not isinstance(description, str):
        bad("description", "must be text")
    action = raw.get("action")
    if action not in ACTIONS:
        bad("action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")
    priority = raw.get("priority", 0)
    if type(priority) is not int:
        bad("priority", f"must be a whole number, got {priority!r}")
    weight = raw.get("weight", 0.0)
    if type(weight) not in (int, float) or weight != weight:
        bad("weight", f"must be a number, got {weight!r}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        bad("tags", "must be a list of text")
    when = raw.get("when")
    expression = None
    if not isinstance(when, str):
        bad("when", f"must be an expression (text), got {when!r}")
    else:
        try:
            expression = compile_expression(when)
        except RuleSyntaxError as exc:
            bad("when", str(exc).splitlines()[0])
        else:
            for node in _walk(expression.tree):
                if isinstance(node, Call) and node.name == "detector" and known is not None:
                    detector = node.args[0].value  # type: ignore[attr-defined]
                    if detector not in known:
                        bad(
                            "when",
                            f"unknown detector {detector!r} (known: {', '.join(sorted(known))})",
                        )
    if len(problems) > before:
        return None
    return Rule(
        id=str(rule_id),
        when=str(when),
        action=str(action),
        description=str(description),
        priority=int(priority),  # type: ignore[call-overload]
        weight=float(weight),  # type: ignore[arg-type]
        tags=tuple(tags),  # type: ignore[arg-type]
    )


def ruleset_from_mapping(raw: object, *, detectors: Sequence[str] | None = None) -> RuleSet:
    """Validate plain data (parsed YAML or JSON) into a RuleSet.

    Args:
        raw: a mapping with ``version`` and ``rules``.
        detectors: the detector names rules may call; the built-in ones by default.

    Raises:
        RuleSetError: naming every bad rule and field.
    """
    from rules.detectors import DEFAULT_DETECTORS

    known = frozenset(DEFAULT_DETECTORS if detectors is None else detectors)
    problems: list[RuleProblem] = []
    if not isinstance(raw, Mapping):
        raise RuleSetError([RuleProblem(RULESET, RULESET, "a rule set must be a mapping")])
    version = raw.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        problems.append(RuleProblem(RULESET, "version", f"must be text, got {version!r}"))
    for extra in sorted(set(map(str, raw)) - {"version", "rules"}):
        problems.append(RuleProblem(RULESET, extra, "unknown field"))
    items = raw.get("rules")
    if not isinstance(items, list):
        problems.append(RuleProblem(RULESET, "rules", "must be a list of rules"))
        items = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        rule_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(rule_id, str):
            if rule_id in seen:
                problems.append(RuleProblem(rule_id, "id", "duplicate rule id"))
            seen.add(rule_id)
        rule = _rule(item, index, problems, known)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RuleSetError(problems)
    return RuleSet(str(version), tuple(rules))


def ruleset_from_yaml(text: str, *, detectors: Sequence[str] | None = None) -> RuleSet:
    """Parse YAML (or JSON, a subset of it) and validate it into a RuleSet.

    Raises:
        RuleSetError: on text that does not parse, or any invalid rule.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError([RuleProblem(RULESET, RULESET, f"not valid YAML: {exc}")]) from exc
    return ruleset_from_mapping(raw, detectors=detectors)


class LiveRuleSet:
    r"""The rule set in force, replaced whole and atomically on reload (hot reload).

    A reload with invalid text raises and keeps the current set; one whose content and version
    are unchanged is a no-op.

    >>> live = LiveRuleSet(RuleSet("1", ()))
    >>> live.reload("version: '2'\nrules: [{id: r, when: 'score > 0.5', action: review}]").added
    ('r',)
    >>> live.current.version
    '2'
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self._current = ruleset

    @property
    def current(self) -> RuleSet:
        """The rule set in force; read it once per event so one event sees one set."""
        return self._current

    def replace(self, ruleset: RuleSet) -> RuleSetDiff:
        """Put ``ruleset`` in force; returns what changed."""
        change = diff(self._current, ruleset)
        self._current = ruleset
        return change

    def reload(self, text: str, *, detectors: Sequence[str] | None = None) -> RuleSetDiff | None:
        """Validate ``text`` and put it in force; ``None`` when nothing changed.

        Raises:
            RuleSetError: when the text is invalid; the current set stays in force.
        """
        ruleset = ruleset_from_yaml(text, detectors=detectors)
        current = self._current
        if ruleset.version == current.version and ruleset.content_hash == current.content_hash:
            return None
        return self.replace(ruleset)
