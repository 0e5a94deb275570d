"""Backtesting a candidate rule set on labelled history, beside the live one.

The history is replayed through the scoring pipeline once per rule set, on the same events in the
same order, so both sets see the same model scores and the same graph. Then, against the labels:

- per rule: hits, hits on fraud, errors, precision (share of its hits that are fraud) and recall
  (share of all fraud it hits);
- overall: decisions by action, and the precision and recall of ``block`` and of
  ``block`` + ``review``;
- against the live set: transactions whose decision changes, fraud newly caught (flagged, that
  is blocked or reviewed, where it was not), fraud newly missed, honest transactions newly blocked
  and newly released.

Precision is ``None`` when nothing was flagged; recall is ``None`` when there is no fraud.
Transactions without a label count as honest (and are counted in ``unlabelled``).

The arithmetic (``summarize`` and ``compare``) is pure; ``backtest`` runs pipelines that the caller
builds (``serve`` owns the pipeline; ``rules`` never imports it).

>>> from types import SimpleNamespace as D
>>> from rules.evaluate import Outcome
>>> from rules.ruleset import Rule, RuleSet
>>> rules = RuleSet("1", (Rule("r", "true", "review"),))
>>> decisions = [D(txn_id="a", decision="review", rule_outcomes=(Outcome("r", "hit", ()),)),
...              D(txn_id="b", decision="approve", rule_outcomes=(Outcome("r", "no_hit", ()),))]
>>> report = summarize(decisions, {"a": True, "b": False}, rules)
>>> report.rules[0].hits, report.rules[0].precision, report.rules[0].recall
(1, 1.0, 1.0)
>>> report.flagged.precision, report.block.recall
(1.0, 0.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rules.ruleset import RuleSet

FLAGGED = frozenset({"block", "review"})
"""The decisions that count as catching a transaction."""

_EXAMPLES = 20


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class RuleStats:
    """How one rule did on the history."""

    rule_id: str
    action: str
    hits: int
    fraud_hits: int
    errors: int
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True)
class Rates:
    """How a set of decisions (``block``, or ``block`` + ``review``) did against the labels."""

    predicted: int
    true_positives: int
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True)
class RunReport:
    """One rule set's replay: decisions by action, by decider, and per-rule figures."""

    version: str
    content_hash: str
    decisions: dict[str, int]
    decided_by_rules: int
    block: Rates
    flagged: Rates
    rules: tuple[RuleStats, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """What the candidate changes against the live rule set."""

    changed: int
    transitions: dict[str, int]
    fraud_newly_caught: int
    fraud_newly_missed: int
    honest_newly_blocked: int
    honest_newly_released: int
    examples: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """The backtest: the history's size, the candidate's replay, the live one's and the change."""

    model_version: str
    transactions: int
    fraud: int
    unlabelled: int
    fraud_rate: float | None
    candidate: RunReport
    live: RunReport | None
    change: Change | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _rates(decisions: Sequence[Any], fraud: Mapping[str, bool], actions: Collection[str]) -> Rates:
    total_fraud = sum(1 for d in decisions if fraud.get(d.txn_id, False))
    predicted = [d for d in decisions if d.decision in actions]
    tp = sum(1 for d in predicted if fraud.get(d.txn_id, False))
    return Rates(len(predicted), tp, _ratio(tp, len(predicted)), _ratio(tp, total_fraud))


def summarize(decisions: Sequence[Any], fraud: Mapping[str, bool], ruleset: RuleSet) -> RunReport:
    """The figures of one replay.

    Args:
        decisions: the pipeline's decisions (``txn_id``, ``decision``, ``rule_outcomes``), one per
            transaction.
        fraud: whether each transaction is fraud (missing: honest).
        ruleset: the rule set that decided.
    """
    total_fraud = sum(1 for d in decisions if fraud.get(d.txn_id, False))
    hits: Counter[str] = Counter()
    fraud_hits: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for d in decisions:
        is_fraud = fraud.get(d.txn_id, False)
        for outcome in d.rule_outcomes:
            if outcome.result == "hit":
                hits[outcome.rule_id] += 1
                fraud_hits[outcome.rule_id] += is_fraud
            elif outcome.result == "error":
                errors[outcome.rule_id] += 1
    rules = tuple(
        RuleStats(
            rule.id,
            rule.action,
            hits[rule.id],
            fraud_hits[rule.id],
            errors[rule.id],
            _ratio(fraud_hits[rule.id], hits[rule.id]),
            _ratio(fraud_hits[rule.id], total_fraud),
        )
        for rule in ruleset
    )
    return RunReport(
        ruleset.version,
        ruleset.content_hash,
        dict(sorted(Counter(d.decision for d in decisions).items())),
        sum(1 for d in decisions if str(getattr(d, "decided_by", "")).startswith("rule:")),
        _rates(decisions, fraud, {"block"}),
        _rates(decisions, fraud, FLAGGED),
        rules,
    )


def compare(live: Sequence[Any], candidate: Sequence[Any], fraud: Mapping[str, bool]) -> Change:
    """What changes from the live decisions to the candidate's, transaction by transaction.

    >>> from types import SimpleNamespace as D
    >>> live = [D(txn_id="a", decision="approve"), D(txn_id="b", decision="approve")]
    >>> cand = [D(txn_id="a", decision="block"), D(txn_id="b", decision="block")]
    >>> change = compare(live, cand, {"a": True})
    >>> change.changed, change.fraud_newly_caught, change.honest_newly_blocked
    (2, 1, 1)
    >>> change.transitions
    {'approve->block': 2}
    """
    before = {d.txn_id: d.decision for d in live}
    transitions: Counter[str] = Counter()
    examples: dict[str, list[str]] = {
        "fraud_newly_caught": [],
        "fraud_newly_missed": [],
        "honest_newly_blocked": [],
        "honest_newly_released": [],
    }
    for d in candidate:
        old = before.get(d.txn_id)
        if old is None or old == d.decision:
            continue
        transitions[f"{old}->{d.decision}"] += 1
        if fraud.get(d.txn_id, False):
            kind = (
                "fraud_newly_caught"
                if d.decision in FLAGGED and old not in FLAGGED
                else "fraud_newly_missed"
                if old in FLAGGED and d.decision not in FLAGGED
                else None
            )
        else:
            kind = (
                "honest_newly_blocked"
                if d.decision == "block"
                else "honest_newly_released"
                if old == "block"
                else None
            )
        if kind is not None:
            examples[kind].append(d.txn_id)
    return Change(
        sum(transitions.values()),
        dict(sorted(transitions.items())),
        len(examples["fraud_newly_caught"]),
        len(examples["fraud_newly_missed"]),
        len(examples["honest_newly_blocked"]),
        len(examples["honest_newly_released"]),
        {k: v[:_EXAMPLES] for k, v in examples.items()},
    )


PipelineFactory = Callable[[RuleSet], Any]
"""Builds a fresh scoring pipeline (``process(events) -> decisions``) deciding with a rule set;
``serve`` supplies it (``ScoringPipeline(model, manifest, ruleset=...)``), so ``rules`` imports
nothing from ``serve``."""


def replay(
    make_pipeline: PipelineFactory, events: Sequence[Any], ruleset: RuleSet, *, batch: int = 512
) -> tuple[list[Any], str]:
    """Replay ``events`` (in time order) through a fresh pipeline.

    Returns:
        The decisions (one per transaction, replays left out) and the pipeline's model version.
    """
    pipeline = make_pipeline(ruleset)
    out: list[Any] = []
    for start in range(0, len(events), batch):
        out.extend(d for d in pipeline.process(events[start : start + batch]) if not d.replayed)
    return out, str(getattr(pipeline, "version", ""))


def backtest(
    make_pipeline: PipelineFactory,
    events: Sequence[Any],
    labels: Mapping[str, Any],
    candidate: RuleSet,
    live: RuleSet | None = None,
    *,
    batch: int = 512,
) -> BacktestReport:
    """Replay labelled history with the candidate rule set (and the live one) and compare.

    Args:
        make_pipeline: builds a fresh scoring pipeline deciding with a given rule set.
        events: canonical events in time order (``gnn.data.load_history(...).events``).
        labels: ``{txn_id: label}`` with an ``is_fraud`` attribute (or plain booleans).
        candidate: the rule set to try.
        live: the rule set in force, to compare against; none by default.
        batch: events per pipeline call (batches decide exactly as one by one).
    """
    fraud = {txn_id: bool(getattr(label, "is_fraud", label)) for txn_id, label in labels.items()}
    cand_decisions, model_version = replay(make_pipeline, events, candidate, batch=batch)
    live_decisions = (
        replay(make_pipeline, events, live, batch=batch)[0] if live is not None else None
    )
    total_fraud = sum(1 for d in cand_decisions if fraud.get(d.txn_id, False))
    return BacktestReport(
        model_version=model_version,
        transactions=len(cand_decisions),
        fraud=total_fraud,
        unlabelled=sum(1 for d in cand_decisions if d.txn_id not in fraud),
        fraud_rate=_ratio(total_fraud, len(cand_decisions)),
        candidate=summarize(cand_decisions, fraud, candidate),
        live=None
        if live is None or live_decisions is None
        else summarize(live_decisions, fraud, live),
        change=None if live_decisions is None else compare(live_decisions, cand_decisions, fraud),
    )
