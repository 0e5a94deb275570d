"""How well detected rings match the generator's ground truth, account by account.

An account is *flagged* when a ring of two or more accounts contains it. The truth
(``truth/accounts.csv``) lists every account that took part in a fraud ring, with the ring's
typology and the account's role (ring member, mule, victim, collector...); every other account
is honest. For each typology ``T``:

* **recall**: the share of ``T``'s accounts that are flagged (by any ring);
* **precision**: flagged ``T`` accounts over those plus the honest accounts flagged in rings
  attributed to ``T``. A ring is attributed to the typology most of its fraud accounts have
  (ties by name); a ring with no fraud account is attributed to no typology, and its honest
  accounts count against the overall precision only;
* **F1**: their harmonic mean.

Overall, precision is fraud accounts over all flagged accounts and recall is flagged fraud
accounts over all fraud accounts. ``honest_flagged_share`` is the share of honest accounts
wrongly flagged. ``typology_agreement`` is the share of flagged fraud accounts whose ring has
their own typology (what the detector says it is, not only that it is a ring), and
``ring_purity`` the share of flagged fraud accounts whose ring is mostly made of their own truth
ring (rings that do not glue several fraud rings together).

>>> truth = [("a", "mule_network", "mule"), ("b", "mule_network", "victim"), ("c", "", "customer")]
>>> rep = evaluate([{"accounts": ["a", "c"], "typology": "mule_network"}], Path("."), truth=truth)
>>> r = rep.rows["mule_network"]
>>> r.precision, r.recall, rep.honest_flagged
(0.5, 0.5, 1)
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    """Scores for one typology (or all of them)."""

    accounts: int
    flagged: int
    false_positives: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "accounts": self.accounts,
            "flagged": self.flagged,
            "false_positives": self.false_positives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The evaluation of a set of rings against the truth.

    Attributes:
        rows: per truth typology.
        overall: all typologies together.
        honest_accounts: accounts the truth calls honest.
        honest_flagged: of those, how many are in a ring.
        honest_flagged_share: ``honest_flagged / honest_accounts``.
        rings: rings of two or more accounts evaluated.
        false_rings: of those, rings without a single fraud account.
        typology_agreement: flagged fraud accounts whose ring's typology is their own, as a share.
        ring_purity: flagged fraud accounts in a ring whose most common truth ring is their
            own, as a share of flagged fraud accounts.
        recall_by_role: per ``(typology, role)``, the share of those accounts flagged.
    """

    rows: dict[str, Row]
    overall: Row
    honest_accounts: int
    honest_flagged: int
    honest_flagged_share: float
    rings: int
    false_rings: int
    typology_agreement: float
    ring_purity: float = 0.0
    recall_by_role: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "typologies": {t: r.to_dict() for t, r in self.rows.items()},
            "overall": self.overall.to_dict(),
            "honest_accounts": self.honest_accounts,
            "honest_flagged": self.honest_flagged,
            "honest_flagged_share": round(self.honest_flagged_share, 5),
            "rings": self.rings,
            "false_rings": self.false_rings,
            "typology_agreement": round(self.typology_agreement, 4),
            "ring_purity": round(self.ring_purity, 4),
            "recall_by_role": {k: round(v, 4) for k, v in self.recall_by_role.items()},
        }

    def table(self) -> str:
        """The scores as a Markdown table."""
        lines = [
            "| typology | accounts | flagged | honest in its rings | precision | recall | F1 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, r in [*self.rows.items(), ("all", self.overall)]:
            lines.append(
                f"| {name} | {r.accounts} | {r.flagged} | {r.false_positives} | "
                f"{r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |"
            )
        lines.append("")
        lines.append(
            f"Honest accounts in a ring: {self.honest_flagged} of {self.honest_accounts} "
            f"({100 * self.honest_flagged_share:.2f}%). Rings: {self.rings}, without any fraud "
            f"account: {self.false_rings}. "
            f"Typology agreement: {100 * self.typology_agreement:.1f}%, "
            f"ring purity: {100 * self.ring_purity:.1f}%."
        )
        return "\n".join(lines)


def read_truth(truth_dir: Path) -> list[tuple[str, ...]]:
    """``(account_id, typology, role, ring_id)`` rows of ``truth_dir/accounts.csv``.

    An honest account has an empty typology and ring id.
    """
    with (truth_dir / "accounts.csv").open(encoding="utf-8", newline="") as fh:
        return [
            (r["account_id"], r["typology"], r["role"], r["ring_id"]) for r in csv.DictReader(fh)
        ]


def _score(tp: int, fp: int, positives: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else (1.0 if positives == 0 else 0.0)
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _members(ring: Any) -> tuple[list[str], str]:
    if isinstance(ring, Mapping):
        return list(ring["accounts"]), str(ring.get("typology", "unknown"))
    return list(ring.accounts), str(getattr(ring, "typology", "unknown"))


def evaluate(
    rings: Iterable[Any],
    truth_dir: Path,
    *,
    truth: Iterable[tuple[str, ...]] | None = None,
) -> Report:
    """Score rings against the generator's truth.

    Args:
        rings: :class:`~graph.rings.Ring` objects, or dicts with ``accounts`` (and
            ``typology``), e.g. from ``Ring.to_dict()``.
        truth_dir: the generator's ``truth/`` folder.
        truth: ``(account_id, typology, role[, ring_id])`` rows to use instead of reading
            ``truth_dir`` (without ring ids, every fraud ring counts as pure).
    """
    rows = list(truth) if truth is not None else read_truth(truth_dir)
    typologies: dict[str, set[str]] = {}
    roles: dict[str, set[str]] = {}
    honest: set[str] = set()
    ring_ids: dict[str, set[str]] = {}
    for account, typology, role, *rest in rows:
        if typology:
            typologies.setdefault(account, set()).add(typology)
            roles.setdefault(account, set()).add(f"{typology}/{role}")
            ring_ids.setdefault(account, set()).add(rest[0] if rest and rest[0] else typology)
        else:
            honest.add(account)
    honest -= typologies.keys()
    names = sorted({t for ts in typologies.values() for t in ts})

    flagged: dict[str, str] = {}
    fp_by: Counter[str] = Counter()
    n_rings = false_rings = pure = 0
    for ring in rings:
        accounts, predicted = _members(ring)
        if len(accounts) < 2:
            continue
        n_rings += 1
        truth_rings = Counter(x for a in accounts for x in ring_ids.get(a, ()))
        if truth_rings:
            main = min(truth_rings, key=lambda x: (-truth_rings[x], x))
            pure += sum(1 for a in accounts if main in ring_ids.get(a, ()))
        votes = Counter(t for a in accounts for t in typologies.get(a, ()))
        if not votes:
            false_rings += 1
        owner = min(votes, key=lambda t: (-votes[t], t)) if votes else ""
        for a in accounts:
            flagged[a] = predicted
            if a not in typologies:
                fp_by[owner] += 1

    report_rows: dict[str, Row] = {}
    for name in names:
        members = [a for a, ts in typologies.items() if name in ts]
        tp = sum(1 for a in members if a in flagged)
        p, r, f = _score(tp, fp_by[name], len(members))
        report_rows[name] = Row(len(members), tp, fp_by[name], p, r, f)
    fraud_flagged = [a for a in typologies if a in flagged]
    honest_flagged = sum(1 for a in flagged if a not in typologies)
    p, r, f = _score(len(fraud_flagged), honest_flagged, len(typologies))
    overall = Row(len(typologies), len(fraud_flagged), honest_flagged, p, r, f)
    agree = sum(1 for a in fraud_flagged if flagged[a] in typologies[a])
    by_role: dict[str, list[int]] = {}
    for a, rs in roles.items():
        for key in rs:
            hit = by_role.setdefault(key, [0, 0])
            hit[0] += a in flagged
            hit[1] += 1
    return Report(
        rows=report_rows,
        overall=overall,
        honest_accounts=len(honest),
        honest_flagged=honest_flagged,
        honest_flagged_share=honest_flagged / len(honest) if honest else 0.0,
        rings=n_rings,
        false_rings=false_rings,
        typology_agreement=agree / len(fraud_flagged) if fraud_flagged else 0.0,
        ring_purity=pure / len(fraud_flagged) if fraud_flagged else 0.0,
        recall_by_role={k: v[0] / v[1] for k, v in sorted(by_role.items())},
    )
