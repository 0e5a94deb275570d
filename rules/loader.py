"""Reading rule sets from files: the one place in ``rules`` that touches the disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rules.errors import RULESET, RuleProblem, RuleSetError
from rules.ruleset import RuleSet, ruleset_from_yaml


def read_ruleset(path: str | Path, *, detectors: Sequence[str] | None = None) -> RuleSet:
    """Read and validate a YAML or JSON rule set file.

    Raises:
        RuleSetError: when the file cannot be read or the rule set is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleSetError([RuleProblem(RULESET, RULESET, f"cannot read {path}: {exc}")]) from exc
    return ruleset_from_yaml(text, detectors=detectors)
