"""Explanations: which features and which neighbours drove a transaction's score.

For one scored transaction (its position in a :class:`gnn.online.HistoryGraph`):

- **feature attributions**: Integrated Gradients (Captum) over the model's aggregated inputs
  (the transaction's own features, its entities' features and their history means), from a
  baseline of the training averages, so an attribution says how much a feature's distance from
  the usual moved the logit;
- **neighbour attributions**: Integrated Gradients over a mask on every edge of the
  transaction's subgraph (message passing, :meth:`gnn.model.FraudSAGE.forward`), summed per
  entity (the entity's link to the transaction and the links from its past transactions) and
  kept per past transaction, so an investigator sees which device, IP, account or transfer
  mattered;
- **reason codes**: the strongest positive attributions in plain words with the numbers behind
  them ("device dev_1 is used by 7 accounts", "account acc_9 is in ring R12 ...").

Explanations run only for flagged or requested transactions: they cost tens of milliseconds
(``perf/gnn_bench.py``), the score itself microseconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from gnn.features import ENTITY_FEATURES, RELATIONS, TXN_FEATURES, TXN_INDEX
from gnn.model import NEIGHBOUR_SLOTS, TXN, FraudSAGE, intra_op_threads
from gnn.online import HistoryGraph

EdgeType = tuple[str, str, str]
_HISTORY_WORD = {
    "by": "paid by",
    "to": "paid to",
    "with": "with",
    "on": "on",
    "from": "from",
    "at": "at",
}
REL_WORD = {
    "by": "account",
    "to": "payee account",
    "with": "card",
    "on": "device",
    "from": "IP",
    "at": "merchant",
}


@dataclass(slots=True)
class Explanation:
    """Why a transaction scored what it did."""

    txn_id: str
    score: float
    features: list[dict[str, Any]]
    neighbours: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    reasons: list[str]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "txn_id": self.txn_id,
            "score": self.score,
            "reasons": self.reasons,
            "features": self.features,
            "neighbours": self.neighbours,
            "transactions": self.transactions,
            "seconds": self.seconds,
        }


def _count(v: float) -> int:
    return round(math.expm1(v))


def _conv_layers(model: FraudSAGE, et: EdgeType) -> list[torch.nn.Module]:
    out = []
    if et in model.conv1.convs:
        out.append(model.conv1.convs[et])
    if et[2] == TXN and et[1] in model.conv2:
        out.append(model.conv2[et[1]])
    return out


def masked_logit(model: FraudSAGE, data: HeteroData, masks: dict[EdgeType, Tensor]) -> Tensor:
    """The target's logit with each edge's message scaled by its mask (1 = as is, 0 = off)."""
    try:
        for et, mask in masks.items():
            for conv in _conv_layers(model, et):
                set_masks(conv, mask, data[et].edge_index, apply_sigmoid=False)
        return model(data)
    finally:
        clear_masks(model)


def without_edges(data: HeteroData, drop: dict[EdgeType, set[int]]) -> HeteroData:
    """A copy of ``data`` without the listed edges (by position in each edge type)."""
    out = data.clone()
    for et, gone in drop.items():
        if gone:
            ei = data[et].edge_index
            keep = torch.ones(ei.shape[1], dtype=torch.bool)
            keep[list(gone)] = False
            out[et].edge_index = ei[:, keep]
    return out


class Explainer:
    """Explains scores of the transactions of a history.

    Args:
        model: the trained model.
        graph: the history (feature rows in time order, indexed).
        ring_of: optional lookup of an account's ring (``id``, ``typology``, ``accounts``,
            ``risk``), for reason codes.
        steps: Integrated Gradients steps.
    """

    def __init__(
        self,
        model: FraudSAGE,
        graph: HistoryGraph,
        *,
        ring_of: Callable[[str], Any] | None = None,
        steps: int = 24,
    ) -> None:
        self.model = model.eval()
        self.graph = graph
        self.ring_of = ring_of
        self.steps = steps

    # -- features --------------------------------------------------------------------------

    def feature_attributions(self, position: int) -> tuple[float, list[dict[str, Any]]]:
        """The score and per-feature attributions (to the logit) of one transaction."""
        d = self.graph.dense_at(position)
        x, ex, has, nb, cnt = d.tensors()
        m = self.model
        base = (
            m.txn_mean.expand_as(x),
            m.ent_mean.expand_as(ex),
            m.txn_mean.expand_as(nb),
        )

        def f(xi: Tensor, exi: Tensor, nbi: Tensor) -> Tensor:
            k = xi.shape[0]
            return m.forward_dense(xi, exi, has.expand(k, -1), nbi, cnt.expand(k, -1))

        ig = IntegratedGradients(f)
        attr = ig.attribute((x, ex, nb), baselines=base, n_steps=self.steps)
        with torch.no_grad():
            score = float(torch.sigmoid(m.forward_dense(x, ex, has, nb, cnt))[0])
        rows: list[dict[str, Any]] = []
        xa, exa, nba = (a[0].detach().numpy() for a in attr)
        for i, name in enumerate(TXN_FEATURES):
            rows.append({"feature": name, "value": float(x[0, i]), "attribution": float(xa[i])})
        for s, (rel, _) in enumerate(RELATIONS):
            if has[0, s] == 0:
                continue
            for i, name in enumerate(ENTITY_FEATURES):
                rows.append(
                    {
                        "feature": f"{REL_WORD[rel]}.{name}",
                        "value": float(ex[0, s, i]),
                        "attribution": float(exa[s, i]),
                    }
                )
        for j, (slot, rel2) in enumerate(NEIGHBOUR_SLOTS):
            if cnt[0, j] == 0:
                continue
            total = float(nba[j].sum())
            rows.append(
                {
                    "feature": f"{REL_WORD[RELATIONS[slot][0]]}.history_{rel2}",
                    "value": float(cnt[0, j]),
                    "attribution": total,
                }
            )
        rows.sort(key=lambda r: -abs(r["attribution"]))
        return score, rows

    # -- neighbours ------------------------------------------------------------------------

    def edge_attributions(self, position: int) -> tuple[HeteroData, dict[EdgeType, np.ndarray]]:
        """The transaction's subgraph and an attribution per edge (Integrated Gradients)."""
        data = self.graph.subgraph([position])
        types = [et for et in FraudSAGE.edge_types() if data[et].edge_index.shape[1] > 0]
        ones = tuple(torch.ones(1, data[et].edge_index.shape[1]) for et in types)
        m = self.model

        def f(*masks: Tensor) -> Tensor:
            outs = [
                masked_logit(m, data, {et: mk[i] for et, mk in zip(types, masks, strict=True)})
                for i in range(masks[0].shape[0])
            ]
            return torch.cat(outs)

        ig = IntegratedGradients(f)
        attr = ig.attribute(
            ones,
            baselines=tuple(torch.zeros_like(o) for o in ones),
            n_steps=self.steps,
            internal_batch_size=self.steps,
        )
        return data, {et: a[0].detach().numpy() for et, a in zip(types, attr, strict=True)}

    def neighbour_attributions(
        self, data: HeteroData, edges: dict[EdgeType, np.ndarray]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per entity (its link and its history's links summed) and per past transaction."""
        entity: dict[tuple[str, int], dict[str, Any]] = {}
        txns: dict[int, float] = {}
        for et, attr in edges.items():
            src, dst = data[et].edge_index
            for k in range(len(attr)):
                if et[0] == TXN:  # a past transaction -> an entity
                    kind, node = et[2], int(dst[k])
                    txns[int(src[k])] = txns.get(int(src[k]), 0.0) + float(attr[k])
                else:  # the entity -> the transaction
                    kind, node = et[0], int(src[k])
                e = entity.setdefault(
                    (kind, node),
                    {
                        "kind": kind,
                        "id": data[kind].entity[node],
                        "relations": [],
                        "attribution": 0.0,
                        "history": 0,
                    },
                )
                e["attribution"] += float(attr[k])
                if et[0] == TXN:
                    e["history"] += 1
                elif et[1][4:] not in e["relations"]:
                    e["relations"].append(et[1][4:])
        ids = data[TXN].txn_id
        target = int(data[TXN].target[0])
        neighbours = sorted(entity.values(), key=lambda e: -abs(e["attribution"]))
        past = sorted(
            ({"txn_id": ids[t], "attribution": a} for t, a in txns.items() if t != target),
            key=lambda r: -abs(r["attribution"]),
        )
        return neighbours, past

    # -- all of it -------------------------------------------------------------------------

    def explain(self, position: int, *, top: int = 8) -> Explanation:
        """Features, neighbours, past transactions and reason codes for one transaction."""
        started = time.perf_counter()
        with intra_op_threads(1):
            score, features = self.feature_attributions(position)
            data, edges = self.edge_attributions(position)
        neighbours, past = self.neighbour_attributions(data, edges)
        row = self.graph.rows[position]
        reasons = reason_codes(row, features, neighbours, ring_of=self.ring_of, top=4)
        return Explanation(
            row.txn_id,
            score,
            features[:top],
            neighbours[:top],
            past[:top],
            reasons,
            seconds=time.perf_counter() - started,
        )


def _score_without(
    model: FraudSAGE, data: HeteroData, chosen: list[tuple[EdgeType, int, float]]
) -> float:
    gone: dict[EdgeType, set[int]] = {}
    for et, i, _ in chosen:
        gone.setdefault(et, set()).add(i)
    return float(torch.sigmoid(model(without_edges(data, gone)))[0])


def faithfulness(
    explainer: Explainer, positions: list[int], *, k: int = 3, draws: int = 5, seed: int = 0
) -> dict[str, Any]:
    """How much removing the top-``k`` attributed edges lowers the score, against random ones.

    For each transaction: the score drop when its ``k`` edges with the highest attribution are
    removed from its subgraph, and the mean drop over ``draws`` random choices of ``k`` edges
    of the same subgraph. An explanation is faithful when the first is larger on average.
    """
    rng = np.random.default_rng(seed)
    model = explainer.model
    top_drops: list[float] = []
    random_drops: list[float] = []
    with intra_op_threads(1), torch.no_grad():
        for pos in positions:
            with torch.enable_grad():
                data, edges = explainer.edge_attributions(pos)
            flat = [(et, i, a) for et, attr in edges.items() for i, a in enumerate(attr)]
            if len(flat) <= k:
                continue
            base = float(torch.sigmoid(model(data))[0])
            flat.sort(key=lambda t: -t[2])

            top_drops.append(base - _score_without(model, data, flat[:k]))
            random_drops.append(
                base
                - float(
                    np.mean(
                        [
                            _score_without(
                                model, data, [flat[j] for j in rng.choice(len(flat), k, False)]
                            )
                            for _ in range(draws)
                        ]
                    )
                )
            )
    n = len(top_drops)
    return {
        "transactions": n,
        "k": k,
        "mean_drop_top": float(np.mean(top_drops)) if n else None,
        "mean_drop_random": float(np.mean(random_drops)) if n else None,
        "top_beats_random": int(sum(t > r for t, r in zip(top_drops, random_drops, strict=True))),
    }


def reason_codes(
    row: Any,
    features: Iterable[dict[str, Any]],
    neighbours: list[dict[str, Any]],
    *,
    ring_of: Callable[[str], Any] | None = None,
    top: int = 4,
) -> list[str]:
    """Plain-language reasons from the strongest positive attributions of one transaction.

    Args:
        row: the transaction's feature row (:class:`gnn.features.TxnRow`).
        features: attributions as :meth:`Explainer.feature_attributions` lists them, strongest
            first (``feature``, ``value``, ``attribution``); read only as far as needed, so a
            lazy iterable will do.
        neighbours: entity attributions (may be empty).
        ring_of: an account's ring, for naming it.
        top: how many feature reasons at most (two neighbour reasons may follow).
    """
    x = row.x
    ix = TXN_INDEX
    ents = dict(zip((r for r, _ in RELATIONS), row.entities, strict=True))
    out: list[str] = []
    ring = ring_of(ents["by"]) if ring_of and ents["by"] else None

    def ring_text() -> str:
        if ring is None:
            return ""
        return f" in ring {ring.id} ({ring.typology}, {len(ring.accounts)} accounts)"

    phrases: dict[str, Callable[[], str]] = {
        "accounts_per_device": lambda: (
            f"device {ents['on']} is used by {_count(x[ix['accounts_per_device']])} accounts"
            + ring_text()
        ),
        "accounts_per_ip": lambda: (
            f"IP {ents['from']} is used by {_count(x[ix['accounts_per_ip']])} accounts"
        ),
        "accounts_per_phone": lambda: (
            f"its phone number is shared by {_count(x[ix['accounts_per_phone']])} accounts"
        ),
        "accounts_per_email": lambda: (
            f"its e-mail is shared by {_count(x[ix['accounts_per_email']])} accounts"
        ),
        "ring_member": lambda: f"account {ents['by']} is{ring_text() or ' in a ring'}",
        "ring_risk": lambda: (
            f"account {ents['by']} is{ring_text() or ' in a ring'} of risk {x[ix['ring_risk']]:.2f}"
        ),
        "ring_size": lambda: (
            f"account {ents['by']} is{ring_text() or ' in a ring'} of "
            f"{_count(x[ix['ring_size']])} accounts"
        ),
        "amount_z": lambda: (
            f"the amount is {x[ix['amount_z']]:.1f} standard deviations from this account's usual"
        ),
        "amount_vs_max": lambda: "the amount is above anything this account paid before",
        "new_payee": lambda: f"first transfer to {ents['to']}",
        "payee_payers": lambda: (
            f"payee {ents['to']} was paid by {_count(x[ix['payee_payers']])} accounts"
        ),
        "payee_age": lambda: f"payee {ents['to']} is a new account",
        "received_24h": lambda: "the account received money in the last 24 hours",
        "recent_password_reset": lambda: "the password was reset shortly before",
        "recent_contact_change": lambda: "the e-mail, phone or address changed shortly before",
        "new_device_login": lambda: "a new device logged in shortly before",
        "failed_logins_24h": lambda: (
            f"{_count(x[ix['failed_logins_24h']])} failed logins in the last 24 hours"
        ),
        "geo_speed": lambda: (
            f"{_count(x[ix['geo_distance']])} km from the last location at "
            f"{_count(x[ix['geo_speed']])} km/h"
        ),
        "new_device": lambda: f"a device this account never used ({ents['on']})",
        "new_ip": lambda: f"an IP this account never used ({ents['from']})",
        "tiny_amount": lambda: "a tiny amount, as in card testing",
        "emulator": lambda: f"device {ents['on']} is an emulator",
        "foreign_currency": lambda: "a currency this account does not usually pay in",
        "country_mismatch": lambda: "a merchant country other than the account's usual one",
        "round_amount": lambda: "a round amount",
        "log_amount": lambda: f"a large amount (about {_count(x[ix['log_amount']]):,} EUR)",
        "card_declines": lambda: (
            f"card {ents['with']} was declined {_count(x[ix['card_declines']])} times"
        ),
    }
    words = {w: r for r, w in REL_WORD.items()}

    def entity_phrase(name: str, value: float) -> str | None:
        word, _, what = name.partition(".")
        rel = words.get(word)
        if rel is None:
            return None
        who = f"{word} {ents[rel]}"
        if what.startswith("history_"):
            how = _HISTORY_WORD[what[len("history_") :]]
            return f"the {round(value)} earlier transactions {how} {who} raise the score"
        if what == "accounts":
            return f"{who} is linked to {_count(value)} accounts"
        if what == "signal":
            if word == "device":
                return f"{who} is an emulator"
            found = ring_of(ents[rel]) if ring_of else None
            if found is not None:
                return (
                    f"{who} is in ring {found.id} ({found.typology}, "
                    f"{len(found.accounts)} accounts, risk {value:.2f})"
                )
            return f"{who} was in a ring of risk {value:.2f}"
        if what == "age":
            return f"{who} was first seen {_count(value)} days before"
        if what == "events":
            return f"{who} was seen {_count(value)} times before"
        if what == "failure_rate":
            return f"{value:.0%} of {who}'s earlier transactions failed"
        if what == "mean_amount":
            return f"{who}'s earlier amounts average {_count(value)}"
        return None

    for f in features:  # strongest first: the rest are weaker
        if len(out) >= top or f["attribution"] <= 0:
            break
        name = f["feature"]
        if "." in name:
            text = entity_phrase(name, f["value"])
            if text is not None and text not in out:
                out.append(text)
            continue
        say = phrases.get(name)
        if say is None and "_count_" in name:
            kind, _, window = name.split("_")
            say = lambda k=kind, w=window, n=name: (  # noqa: E731
                f"{_count(x[ix[n]])} earlier transactions on this {k} in {w}"
            )
        text = say() if say is not None else f"{name} = {f['value']:.3g}"
        if text not in out:
            out.append(text)
    for n in neighbours[:2]:
        if n["attribution"] > 0 and len(out) < top + 2:
            out.append(
                f"{n['kind']} {n['id']} and its {n['history']} earlier transactions "
                "pushed the score up"
            )
    return out
