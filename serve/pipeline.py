"""The scoring pipeline: one hot path for the HTTP API and the stream.

Canonical event in -> online features -> entity state -> GNN score (incremental) -> decision
-> remembered by ``txn_id``. Events come in micro-batches (a request's transactions, or a poll
of the bus); the batch is scored in one model call after each transaction has read its
entities' state as it was just before it, so a batch decides exactly as one-by-one scoring
would.

Idempotent by ``txn_id``: a transaction seen before (a gateway's retry) gets its first decision
back and changes no state.

The decision here is the model's (``block`` at or above the blocking threshold, ``review`` at
or above the review threshold); reasons for flagged transactions come from a one-step
gradient-times-input attribution over the model's inputs (cheap enough for the hot path; the
full Captum explanation is served on demand).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final, Protocol

import numpy as np
import torch

from gnn.explain import REL_WORD, Explainer, reason_codes
from gnn.features import ENTITY_FEATURES, RELATIONS, TXN_FEATURES, FeatureState, TxnRow
from gnn.model import NEIGHBOUR_SLOTS, FraudSAGE, intra_op_threads
from gnn.online import HistoryGraph, OnlineState, batch_tensors
from gnn.scoring import model_decision
from rules import Context, PolicyConfig, RuleSet, decide
from rules.store import StoreFollower
from serve.alerts import Alert
from serve.enforcement import DEFAULT_TTL, BlockList, Challenges
from serve.heap import HEAP

log = logging.getLogger(__name__)


class ModelBackend(Protocol):
    """Where the scores come from: the in-process model (default) or a remote server.

    ``score`` gets the batch's rows (already appended to the pipeline's history, in order) and
    the dense inputs the in-process model reads (:func:`gnn.online.batch_tensors`), and returns
    one probability per row. It is called inside the pipeline's lock.
    """

    def score(self, rows: Sequence[TxnRow], inputs: tuple[torch.Tensor, ...]) -> list[float]:
        """The fraud probability of each row."""
        ...


DecisionHook = Callable[[Sequence[Any], Sequence["Decision"]], None]
"""Called after each batch with the batch's events and its new decisions (in the lock)."""


class AlertSink(Protocol):
    """Where alerts go (an :class:`serve.alerts.AlertDispatcher`): returns at once.

    A sink with a ``wants(severity) -> bool`` method is asked first: an alert of a severity it
    does not take is not built.
    """

    def submit(self, alert: Alert) -> bool:
        """Queue an alert; never raises."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline decided about one transaction."""

    txn_id: str
    score: float
    decision: str
    reasons: tuple[str, ...]
    decided_by: str
    model_version: str
    ring_id: str | None = None
    replayed: bool = False
    ruleset_version: str | None = None
    rule_outcomes: tuple[Any, ...] = ()
    challenge_id: str | None = None
    shadow_decision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "txn_id": self.txn_id,
            "score": self.score,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "decided_by": self.decided_by,
            "model_version": self.model_version,
            "ring_id": self.ring_id,
            "replayed": self.replayed,
            "ruleset_version": self.ruleset_version,
            "challenge_id": self.challenge_id,
            "shadow_decision": self.shadow_decision,
            "rules": [
                {"rule_id": o.rule_id, "result": o.result, "error": o.error}
                for o in self.rule_outcomes
                if o.result != "no_hit"
            ]
            if self.rule_outcomes
            else [],
        }


@dataclass(slots=True, eq=False)
class Batch:
    """A batch between :meth:`ScoringPipeline.begin` and :meth:`ScoringPipeline.finish`."""

    events: list[Any]
    observe: list[Any]
    """The events that go into the state, in order."""
    order: list[tuple[str, Any]]
    """Per transaction asked about: a replayed Decision, the index of its row among the
    batch's transactions, ``-1 - index`` for a repeat within the batch, or None for one in a
    batch begun before."""
    ticket: int | None = None
    rows: list[TxnRow | None] | None = None
    rings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PipelineStats:
    """Counters since start."""

    events: int = 0
    transactions: int = 0
    replayed: int = 0
    alert_failures: int = 0
    backend_failures: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


class ScoringPipeline:
    """Scores transactions as they come, keeping the feature and entity state.

    Args:
        model: the trained model.
        manifest: its registry manifest (version, thresholds).
        remember: how many decisions to keep for idempotent replays.
        clock: seconds, for latencies (injected).
    """

    def __init__(
        self,
        model: FraudSAGE,
        manifest: dict[str, Any],
        *,
        remember: int = 1_000_000,
        clock: Callable[[], float] = time.perf_counter,
        ruleset: RuleSet | None = None,
        lists: Mapping[str, Collection[Any]] | None = None,
        policy: PolicyConfig | None = None,
        blocks: BlockList | None = None,
        challenges: Challenges | None = None,
        block_ttl: timedelta = DEFAULT_TTL,
        block_kinds: tuple[str, ...] = ("account", "card"),
        enforce_score: float = 0.98,
        alerts: AlertSink | None = None,
        keep_history: bool = True,
        rules_from: StoreFollower | None = None,
        reload_every_s: float = 1.0,
        backend: ModelBackend | None = None,
        on_decisions: DecisionHook | None = None,
        feature_worker: Any = None,
    ) -> None:
        self.model = model.eval()
        self.dense = model.fused()  # forward_dense, fused: most of a small batch's cost
        self.version = str(manifest["version"])
        t = manifest["thresholds"]
        self.block = float(t["block"])
        self.review = float(t.get("review", t["block"]))
        self.worker = feature_worker
        self.features: Any = feature_worker if feature_worker is not None else FeatureState()
        """The feature state: in process, or the worker (``ring_of`` and ``ring`` on both)."""
        self._flying: dict[str, Batch] = {}
        self._open: deque[Batch] = deque()
        self.state = OnlineState()
        self.stats = PipelineStats()
        self._decided: OrderedDict[str, Decision] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        self._clock = clock
        self.ruleset = ruleset
        self.lists = dict(lists or {})
        self.blocks = blocks
        self.challenges = challenges
        self.alerts = alerts
        self.history = HistoryGraph() if keep_history else None
        self.shadow: RuleSet | None = None
        self._rules_from = rules_from
        self._reload_every = reload_every_s
        self._reloaded_at = -float("inf")
        self.block_ttl = block_ttl
        self.block_kinds = block_kinds
        self.enforce_score = enforce_score
        self.backend = backend
        self.on_decisions = on_decisions
        self.policy = policy or PolicyConfig(
            block_threshold=self.block, review_threshold=min(self.review, self.block)
        )

    def process(self, events: Sequence[Any]) -> list[Decision]:
        """Fold ``events`` in (in order) and decide each transaction among them."""
        return self.finish(self.begin(events))

    def begin(self, events: Sequence[Any]) -> Batch:
        """Start a batch: replays are answered, the rest goes to the feature state.

        With a :class:`serve.feature_worker.FeatureWorker`, the feature rows are computed in
        its process while this one decides the batches begun before; batches are finished in
        the order they were begun (:meth:`finish`). ``process`` is ``finish(begin(events))``.
        """
        with self._lock:
            self._follow_rules()
            observe: list[Any] = []
            order: list[tuple[str, int | Decision | None]] = []
            in_batch: dict[str, int] = {}
            n = 0
            for event in events:
                if event.event_type == "transaction":
                    txn_id = event.txn_id
                    seen = self._decided.get(txn_id)
                    if seen is not None:
                        self.stats.replayed += 1
                        order.append((txn_id, _replay(seen)))
                        continue
                    earlier = in_batch.get(txn_id)
                    if earlier is not None:  # twice in one batch: once into the state
                        self.stats.replayed += 1
                        order.append((txn_id, -1 - earlier))
                        continue
                    if txn_id in self._flying:  # in a batch begun before, decided by then
                        self.stats.replayed += 1
                        order.append((txn_id, None))
                        continue
                    in_batch[txn_id] = n
                    order.append((txn_id, n))
                    n += 1
                self.stats.events += 1
                observe.append(event)
            batch = Batch(list(events), observe, order)
            if self.worker is not None:
                batch.ticket = self.worker.submit(observe)
            else:
                batch.rows = [self.features.observe(e) for e in observe]
                # the rings as they stand after the batch, as the worker reports them
                batch.rings = self.features.rings_of(batch.rows)
            for txn_id in in_batch:
                self._flying[txn_id] = batch
            self._open.append(batch)
            return batch

    def finish(self, batch: Batch) -> list[Decision]:
        """Decide a batch :meth:`begin` started (the oldest one not finished)."""
        with self._lock:
            if not self._open or self._open[0] is not batch:
                raise RuntimeError("batches are finished in the order they were begun")
            try:
                if batch.ticket is not None:
                    rows, rings = self.worker.collect(batch.ticket, len(batch.observe))  # type: ignore[union-attr]
                else:
                    rows, rings = batch.rows, batch.rings  # type: ignore[assignment]
            finally:
                self._open.popleft()
                for txn_id, got in batch.order:
                    if type(got) is int and got >= 0:
                        self._flying.pop(txn_id, None)
            txn_rows: list[TxnRow] = []
            txns: list[Any] = []
            for event, row in zip(batch.observe, rows, strict=True):
                if row is not None:
                    txn_rows.append(row)
                    txns.append(event)
            nbs = self.state.fold(txn_rows)
            if self.history is not None:
                for row in txn_rows:
                    self.history.append(row)
            fresh = self._decide(txn_rows, txns, nbs, rings.get) if txn_rows else []
            out: list[Decision] = []
            for txn_id, got in batch.order:
                if isinstance(got, Decision):
                    out.append(got)
                    continue
                if got is None:
                    out.append(_replay(self._decided[txn_id]))
                    continue
                if got < 0:
                    out.append(_replay(fresh[-1 - got]))
                    continue
                d = fresh[got]
                self._decided[txn_id] = d
                out.append(d)
                self.stats.transactions += 1
                self.stats.decisions[d.decision] = self.stats.decisions.get(d.decision, 0) + 1
            while len(self._decided) > self._remember:
                self._decided.popitem(last=False)
            if self.on_decisions is not None and fresh:
                self.on_decisions(batch.events, fresh)
            HEAP.grew(len(txn_rows))
            return out

    def warm(self, events: Sequence[Any]) -> int:
        """Fold past events into the state only: no blocks, alerts or decision hook.

        For rebuilding the state on start (the bus's history, a journal); returns how many
        transactions were scored (their decisions are remembered for idempotent replays).
        """
        saved = self.blocks, self.alerts, self.on_decisions
        self.blocks, self.alerts, self.on_decisions = None, None, None
        try:
            before = self.stats.transactions
            self.process(events)
            return self.stats.transactions - before
        finally:
            self.blocks, self.alerts, self.on_decisions = saved

    def remember(self, decisions: Sequence[Decision]) -> None:
        """Take ``decisions`` as the answers already given (a journal read back on start)."""
        with self._lock:
            for d in decisions:
                self._decided[d.txn_id] = d
                self._decided.move_to_end(d.txn_id)
            while len(self._decided) > self._remember:
                self._decided.popitem(last=False)

    def _follow_rules(self) -> None:
        """Pick up a newly published live or shadow rule set (hot reload, between batches)."""
        follower = self._rules_from
        if follower is None:
            return
        t = self._clock()
        if t - self._reloaded_at < self._reload_every:
            return
        self._reloaded_at = t
        follower.reload_if_changed()
        live = follower.live.current
        self.ruleset = live if live.version else None
        self.shadow = follower.shadow

    def explain(self, txn_id: str) -> dict[str, Any] | None:
        """The full explanation of a scored transaction (None if not in the history)."""
        with self._lock:
            if self.history is None:
                return None
            position = self.history.position.get(txn_id)
            if position is None:
                return None
            explainer = Explainer(self.model, self.history, ring_of=self.features.ring_of)
            out = explainer.explain(position).to_dict()
        decided = self.decision(txn_id)
        if decided is not None:
            out["decision"] = decided.decision
            out["decided_by"] = decided.decided_by
        out["model_version"] = self.version
        return out

    def decision(self, txn_id: str) -> Decision | None:
        """The decision already made about ``txn_id``, if remembered."""
        with self._lock:
            return self._decided.get(txn_id)

    def _decide(
        self,
        rows: list[TxnRow],
        txns: list[Any],
        nbs: tuple[np.ndarray, np.ndarray],
        ring_of: Callable[[str], Any],
    ) -> list[Decision]:
        x, ex, has, nb, cnt = batch_tensors(rows, nbs)
        with intra_op_threads(1):
            scores = self._remote_scores(rows, (x, ex, has, nb, cnt))
            if scores is None:
                with torch.no_grad():
                    scores = torch.sigmoid(self.dense(x, ex, has, nb, cnt)).tolist()
            flagged = [i for i, s in enumerate(scores) if s >= self.review]
            attributions = self._attributions(flagged, x, ex, has, nb, cnt) if flagged else {}
        out = []
        for i, (row, s) in enumerate(zip(rows, scores, strict=True)):
            action = model_decision(s, self.block, self.review)
            decided_by = "model"
            reasons: tuple[str, ...] = ()
            if i in attributions:
                reasons = tuple(reason_codes(row, attributions[i], [], ring_of=ring_of))
            ring = ring_of(row.entities[0]) if row.entities[0] else None
            ruleset_version = None
            shadow_action = None
            outcomes: tuple[Any, ...] = ()
            if self.ruleset is not None:
                ctx = Context(rule_context(txns[i], row, s, ring), lists=self.lists)
                verdict = decide(s, ctx, self.ruleset, self.policy, shadow=self.shadow)
                action, decided_by = verdict.action, verdict.decided_by
                if verdict.shadow is not None:
                    shadow_action = verdict.shadow.action
                if decided_by != "model":
                    reasons = (*verdict.reasons, *reasons)
                ruleset_version = verdict.ruleset_version
                outcomes = verdict.outcomes
            action, decided_by, reasons, challenge = self._enforce(
                row, action, decided_by, reasons, ring, s
            )
            decision = Decision(
                row.txn_id,
                s,
                action,
                reasons,
                decided_by,
                self.version,
                ring.id if ring is not None else None,
                ruleset_version=ruleset_version,
                rule_outcomes=outcomes,
                challenge_id=challenge,
                shadow_decision=shadow_action,
            )
            out.append(decision)
            if self.alerts is not None and not decided_by.startswith("list:"):
                self._alert(decision, row.entities[0] or "")
        return out

    def _remote_scores(
        self, rows: list[TxnRow], inputs: tuple[torch.Tensor, ...]
    ) -> list[float] | None:
        """The backend's scores; None without one, or when it fails.

        The batch's rows are already in the state, so a failed call must not fail the batch
        (a retry would fold them in twice): the same model version scores them in process
        (the backend checks it serves this version), and the failure is counted and logged.
        """
        if self.backend is None:
            return None
        try:
            return self.backend.score(rows, inputs)
        except Exception as exc:
            self.stats.backend_failures += 1
            log.warning("model backend failed; %d scored in process: %s", len(rows), exc)
            return None

    def _alert(self, d: Decision, account: str) -> None:
        """Blocks and reviews become alerts (never raising, never waiting)."""
        if d.decision == "block":
            severity = "critical"
        elif d.decision == "review":
            severity = "high" if d.score >= 0.5 else "medium"
        else:
            return
        wants = getattr(self.alerts, "wants", None)  # an AlertSink may say it takes none
        if wants is not None and not wants(severity):
            return
        where = f" in ring {d.ring_id}" if d.ring_id else ""
        try:
            self.alerts.submit(  # type: ignore[union-attr]
                Alert.new(
                    severity,
                    d.decision,
                    f"{d.decision.title()}: {d.txn_id} ({d.score:.2f}){where}",
                    "; ".join(d.reasons) or f"decided by {d.decided_by}",
                    txn_id=d.txn_id,
                    account_id=account,
                    score=d.score,
                    reasons=d.reasons,
                    ring_id=d.ring_id,
                )
            )
        except Exception:
            self.stats.alert_failures += 1

    def _enforce(
        self,
        row: TxnRow,
        action: str,
        decided_by: str,
        reasons: tuple[str, ...],
        ring: Any,
        score: float,
    ) -> tuple[str, str, tuple[str, ...], str | None]:
        """Apply the block list, record new blocks, open step-up challenges.

        A block puts the transaction's account and card on the list (``block_kinds``); a
        device is checked against the list but not added by default: households and shops
        share devices, and blocking one would stop every honest user of it. A block the model
        decided alone goes on the list only at ``enforce_score`` or above (a rule's or a
        list's always does): at the blocking threshold about one honest transaction in a
        thousand is blocked, and listing its account for a week would block all the rest.
        """
        account, _, card, device = row.entities[:4]
        entities = (("account", account), ("card", card), ("device", device))
        if self.blocks is not None:
            hit = self.blocks.blocked(entities)
            if hit is not None:
                why = f"{hit.kind} {hit.id} is blocked until {hit.expires_at:%Y-%m-%d %H:%M} UTC"
                return "block", f"list:blocked_{hit.kind}", (f"{why}: {hit.reason}",), None
            sure = decided_by != "model" or score >= self.enforce_score
            if action == "block" and sure:
                reason = f"{decided_by} blocked {row.txn_id}"
                for kind, entity in entities:
                    if entity is not None and kind in self.block_kinds:
                        self.blocks.block(
                            kind,
                            entity,
                            reason=reason,
                            by=decided_by,
                            ttl=self.block_ttl,
                            txn_id=row.txn_id,
                            ring_id=ring.id if ring is not None else None,
                        )
        if action == "step_up":
            if self.challenges is not None and account and self.challenges.enrolled(account):
                return action, decided_by, reasons, self.challenges.open(account, row.txn_id).id
            return "review", decided_by, (*reasons, "step-up asked, but no MFA enrolment"), None
        return action, decided_by, reasons, None

    def _attributions(
        self, idx: list[int], *inputs: torch.Tensor
    ) -> dict[int, Iterator[dict[str, Any]]]:
        """Gradient x (input - training mean) per input, for the flagged rows, strongest first.

        One backward pass for the batch; each row's inputs are ranked in one vectorised sort,
        and the dicts are built lazily (reason codes read only the first few).
        """
        x, ex, has, nb, cnt = (t[idx] for t in inputs)
        m = self.model
        x = x.clone().requires_grad_(True)
        ex = ex.clone().requires_grad_(True)
        nb = nb.clone().requires_grad_(True)
        self.dense(x, ex, has, nb, cnt).sum().backward()
        gx, gex, gnb = (t.grad if t.grad is not None else torch.zeros_like(t) for t in (x, ex, nb))
        n = len(idx)
        with torch.no_grad():
            attribution = torch.cat(
                (
                    gx * (x - m.txn_mean),
                    (gex * (ex - m.ent_mean)).reshape(n, -1),
                    (gnb * (nb - m.txn_mean)).sum(-1),
                ),
                dim=1,
            ).numpy()
            value = torch.cat((x, ex.reshape(n, -1), cnt), dim=1).numpy()
            present = torch.cat(
                (
                    torch.ones_like(x, dtype=torch.bool),
                    (has > 0).repeat_interleave(len(ENTITY_FEATURES), dim=1),
                    cnt > 0,
                ),
                dim=1,
            ).numpy()
        # absent inputs sort last and are never read (their attribution is set to -inf)
        ranked = np.argsort(np.where(present, -attribution, np.inf), axis=1, kind="stable")
        return {
            i: _ranked(ranked[k], present[k], value[k], attribution[k]) for k, i in enumerate(idx)
        }


def _ranked(
    order: np.ndarray, present: np.ndarray, value: np.ndarray, attribution: np.ndarray
) -> Iterator[dict[str, Any]]:
    for j in order:
        if not present[j]:
            return
        yield {
            "feature": _INPUT_NAMES[j],
            "value": float(value[j]),
            "attribution": float(attribution[j]),
        }


_INPUT_NAMES: Final = (
    *TXN_FEATURES,
    *(f"{REL_WORD[rel]}.{n}" for rel, _ in RELATIONS for n in ENTITY_FEATURES),
    *(f"{REL_WORD[RELATIONS[slot][0]]}.history_{rel2}" for slot, rel2 in NEIGHBOUR_SLOTS),
)
"""The names of the model's inputs, in the order :meth:`ScoringPipeline._attributions` ranks."""


def _replay(d: Decision) -> Decision:
    return dataclasses.replace(d, replayed=True)


def rule_context(event: Any, row: TxnRow, score: float, ring: Any) -> dict[str, Any]:
    """What rules see of a transaction: its fields, its features, the score and graph facts.

    ``features`` holds the model's inputs as they are (counts as log1p); ``graph`` holds the
    facts in plain units: accounts per device, IP, card, phone and e-mail, and the account's
    ring.
    """
    txn = {
        name: (float(v) if isinstance(v, Decimal) else v)
        for name in event.__struct_fields__
        if name != "extra" and (v := getattr(event, name)) is not None
    }
    txn["timestamp"] = event.timestamp.timestamp()
    features = dict(zip(TXN_FEATURES, row.x.tolist(), strict=True))
    graph: dict[str, Any] = {
        f"accounts_per_{k}": round(math.expm1(features[f"accounts_per_{k}"]))
        for k in ("device", "ip", "card", "phone", "email")
    }
    graph["ring_id"] = ring.id if ring is not None else None
    graph["ring_risk"] = float(ring.risk) if ring is not None else 0.0
    graph["ring_size"] = len(ring.accounts) if ring is not None else 0
    graph["ring_typology"] = ring.typology if ring is not None else None
    return {"txn": txn, "features": features, "score": score, "graph": graph}
