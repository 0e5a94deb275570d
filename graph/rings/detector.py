"""The ring detector: edge updates in, rings out, incrementally.

:meth:`RingDetector.update` takes the :class:`~graph.model.EdgeUpdate` s of a batch of events
(``edges_from_event`` of each) and returns the ids of the rings the batch created, changed or
removed. One batch is handled in three steps:

1. **Observe** every update (constant work each): identifier uses go to the
   :class:`~graph.rings.identifiers.IdentifierIndex`, transfers that went through to the
   :class:`~graph.rings.money.MoneyIndex`, payments to per-account, per-merchant counts.
2. **Link**: account pairs whose shared identifiers became strong enough (``min_shared_kinds``
   kinds, one of them personal) are linked, pairs that lost a hub identifier are unlinked, the
   money patterns found around the batch's transfers link their accounts, and the patterns of
   accounts that turned out to be money hubs are withdrawn. Components of the
   link graph are kept with union-find; a withdrawn link rebuilds its component only.
3. **Materialise** the rings of the components the batch touched, and only those: find their
   collectors, split components larger than ``community_min_size`` into Louvain communities,
   attach accounts that use two or more of a ring's own identifiers, derive typology and risk
   from the evidence, and keep ids stable.

Timestamps may arrive in any order; every window is in event time, and links do not depend on
the order in which their evidence arrived.

>>> from graph.model import EdgeUpdate
>>> d = RingDetector()
>>> batch = [EdgeUpdate(rel, f"acc_{i}", kind, value, 1_000.0 + i)
...          for i in range(3)
...          for rel, kind, value in (("USES_DEVICE", "device", "dev_x"),
...                                   ("HAS_PHONE", "phone", "+447700900123"))]
>>> changed = d.update(batch)
>>> [(r.accounts, r.typology) for r in d.rings()]
[(['acc_0', 'acc_1', 'acc_2'], 'synthetic_identity')]
>>> d.ring_of("acc_1").id in changed
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any

import msgspec

from graph.model import EdgeUpdate
from graph.rings.components import LinkGraph, louvain_groups
from graph.rings.config import DAY, RingConfig
from graph.rings.identifiers import IdentifierIndex, Pair, kind_of, pair_of
from graph.rings.money import Evidence, MoneyIndex
from graph.rings.ring import TYPOLOGIES, MemberFacts, Ring, assess, evidence_weight

SNAPSHOT_VERSION = 1


class _Group:
    """A ring in the making: core accounts, attachments and what ties them."""

    __slots__ = ("attached", "core", "entities")

    def __init__(self, core: set[str]) -> None:
        self.core = core
        self.attached: set[str] = set()
        self.entities: dict[str, list[str]] = {}

    @property
    def accounts(self) -> set[str]:
        return self.core | self.attached


class RingDetector:
    """Finds fraud rings in a stream of edge updates.

    Args:
        config: the knobs; see :class:`~graph.rings.config.RingConfig`.
    """

    def __init__(self, config: RingConfig | None = None) -> None:
        self.config = config if config is not None else RingConfig()
        self._ids = IdentifierIndex(self.config)
        self._money = MoneyIndex(self.config)
        self._graph = LinkGraph()
        self._strong: set[Pair] = set()
        self._id_degree: dict[str, int] = {}
        self._evidence: dict[str, Evidence] = {}
        self._ev_of: dict[str, set[str]] = {}
        self._first_kind: dict[str, dict[str, float]] = {}
        self._small: dict[str, int] = {}
        self._rings: dict[str, Ring] = {}
        self._ring_of: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._community: dict[str, tuple[int, int]] = {}
        self._partition_size: dict[int, int] = {}
        self._next_partition = 0
        self._watermark = float("-inf")
        self._pruned_at = float("-inf")
        self._earlier: set[str] = set()
        self._kinds = frozenset(self.config.identifier_kinds)

    def __repr__(self) -> str:
        return f"RingDetector(rings={len(self._rings)}, accounts={len(self._ring_of)})"

    # -- queries -------------------------------------------------------------------------------

    def rings(
        self,
        *,
        min_size: int = 2,
        since: float | datetime | None = None,
        typology: str | None = None,
    ) -> list[Ring]:
        """Current rings, riskiest first (ties by id).

        Args:
            min_size: only rings with at least this many accounts.
            since: only rings with evidence at or after this time (epoch seconds or an aware
                datetime).
            typology: only rings of this typology.
        """
        if typology is not None and typology not in TYPOLOGIES:
            raise ValueError(f"typology: expected one of {TYPOLOGIES}, got {typology!r}")
        if isinstance(since, datetime):
            if since.tzinfo is None:
                raise ValueError("since: datetime must be timezone-aware")
            since = since.timestamp()
        out = [
            r
            for r in self._rings.values()
            if len(r.accounts) >= min_size
            and (since is None or r.last_seen >= since)
            and (typology is None or r.typology == typology)
        ]
        return sorted(out, key=lambda r: (-r.risk, r.id))

    def ring_of(self, account_id: str) -> Ring | None:
        """The ring an account belongs to, if any."""
        rid = self._ring_of.get(account_id)
        return None if rid is None else self._rings[rid]

    def ring(self, ring_id: str) -> Ring | None:
        """A ring by id; an id merged into another ring resolves to the survivor."""
        seen = set()
        while ring_id not in self._rings and ring_id in self._aliases and ring_id not in seen:
            seen.add(ring_id)
            ring_id = self._aliases[ring_id]
        return self._rings.get(ring_id)

    # -- input ---------------------------------------------------------------------------------

    def update(self, updates: Iterable[EdgeUpdate]) -> set[str]:
        """Apply a batch of edge updates.

        ``update(batch)`` is ``observe(batch)`` followed by the link and materialise steps
        over everything observed since the last update; rings change only here.

        Returns:
            The ids of the rings this batch created, changed (members, identifiers, evidence,
            typology or risk) or removed (merged into an older ring, or no longer linked);
            :meth:`ring` resolves a merged id to the ring that absorbed it.
        """
        self.observe(updates)
        earlier, self._earlier = self._earlier, set()
        dirty = self._link(earlier)
        changed = self._materialise(dirty)
        watermark = self._watermark
        if watermark - self._pruned_at >= DAY:
            horizon = watermark - self.config.retention_s
            self._ids.prune(horizon)
            self._money.prune(horizon)
            self._pruned_at = watermark
        return changed

    def observe(self, updates: Iterable[EdgeUpdate]) -> None:
        """Step 1 alone: fold edge updates into the indexes; the rings wait for :meth:`update`.

        A caller that updates the rings every few thousand events can observe each smaller
        batch as it comes, so the work of an update is only the link and materialise steps.
        Observing in several calls and then updating gives the rings one call would.
        """
        ids, money = self._ids, self._money
        observe, grow, users_of = ids.observe, ids.grow, ids.users
        used, until, linked = ids.used, ids.until, ids._linked
        add_transfer, pay, paid = money.add, money.pay, money.paid
        first_kind, small = self._first_kind, self._small
        kinds = self._kinds
        small_payment = self.config.small_payment
        watermark = self._watermark
        earlier = self._earlier  # accounts seen using a kind earlier than thought
        for rel, src, kind, dst, ts, amount, failed in updates:
            if ts > watermark:
                watermark = ts
            if rel == "PAYS":
                if failed:
                    pay(src, dst, amount, failed)
                    if 0 < amount <= small_payment:
                        small[src] = small.get(src, 0) + 1
                    continue
                by_merchant = paid.get(src)  # the usual case, inline: a repeat payment
                if by_merchant is None or (agg := by_merchant.get(dst)) is None or agg[1]:
                    pay(src, dst, amount, failed)
                else:
                    agg[0] += 1
                    agg[2] += amount
            elif rel == "TRANSFERS_TO":
                if not failed:
                    add_transfer(src, dst, ts, amount)
            elif kind in kinds:
                by_kind = first_kind.get(src)
                if by_kind is None:
                    first_kind[src] = {kind: ts}
                else:
                    before = by_kind.get(kind)
                    if before is None:
                        by_kind[kind] = ts
                    elif before > ts:
                        by_kind[kind] = ts
                        earlier.add(src)
                key = f"{kind}:{dst}"
                users = users_of.get(key)
                if users is None or (span := users.get(src)) is None:
                    observe(key, src, ts)
                    continue
                if ts > span[1]:  # the usual case, inline: a known user uses it again
                    span[1] = ts
                    if ts >= until[key]:
                        used(key, ts)
                elif ts < span[0]:
                    span[0] = ts
                else:
                    continue
                n = len(users)  # grow's own test, inline: most shared keys paired all their users
                if n > 1 and linked.get(key, 0) < n * (n - 1) // 2:
                    grow(key, src, span, users)
        self._watermark = watermark

    # -- linking -------------------------------------------------------------------------------

    def _late(self, account: str, key: str) -> bool:
        """Whether ``account`` took identifier ``key`` up late (after others of its kind)."""
        span = self._ids.users.get(key, {}).get(account)
        earliest = self._first_kind.get(account, {}).get(kind_of(key))
        gap = self.config.takeover_gap_s
        return span is not None and earliest is not None and span[0] - earliest >= gap

    def _is_strong(self, pair: Pair, shared: dict[str, float] | None) -> bool:
        """Whether a pair's shared identifiers make a ring link (see ``RingConfig``)."""
        cfg = self.config
        if not shared:
            return False
        kinds = {kind_of(k) for k in shared}
        if len(kinds) < cfg.min_shared_kinds:
            return any(
                kind_of(k) in cfg.personal_kinds
                and kind_of(k) in cfg.takeover_kinds
                and self._late(pair[0], k)
                and self._late(pair[1], k)
                for k in shared
            )
        if not cfg.personal_kinds:
            return True
        personal = [k for k in shared if kind_of(k) in cfg.personal_kinds]
        if not personal:
            return False
        if "address" in kinds:  # they live together: what a household shares does not count
            personal = [k for k in personal if kind_of(k) not in cfg.household_kinds]
            return bool(personal)
        return True

    def _link(self, earlier: set[str]) -> set[str]:
        """Turn this batch's observations into links; returns the accounts to re-materialise."""
        g, ids = self._graph, self._ids
        dirty: set[str] = set()
        changed_pairs, grown = ids.drain()
        for a in earlier:  # whether it took an identifier up late may have changed
            for key in ids.keys_of.get(a, ()):
                for b in ids.users.get(key, ()):
                    p = pair_of(a, b)
                    if p in ids.pairs:
                        changed_pairs.add(p)
        for p in sorted(changed_pairs):
            strong = self._is_strong(p, ids.pairs.get(p))
            if strong and p not in self._strong:
                self._strong.add(p)
                g.link(*p)
                dirty.update(p)
                for a in p:
                    self._id_degree[a] = self._id_degree.get(a, 0) + 1
            elif not strong and p in self._strong:
                self._strong.discard(p)
                g.unlink(*p)
                dirty.update(p)
                for a in p:
                    self._id_degree[a] -= 1
        for key in grown:
            users = ids.users.get(key)
            if users and any(a in self._ring_of or g.size(a) > 1 for a in users):
                dirty.update(users)
        for ev in self._money.detect():
            dirty |= self._set_evidence(ev)
        dirty |= {a for a in self._money.senders if g.size(a) > 1}  # collectors to look for
        hubs = self._money.drain_busy()
        if hubs:
            dirty |= self._withdraw_money_hubs(hubs)
        for comp in g.rebuild():
            dirty |= comp
        return dirty

    def _withdraw_money_hubs(self, hubs: set[str]) -> set[str]:
        """Drop the patterns new money hubs took part in; judge their pass-throughs again."""
        dirty: set[str] = set()
        keys = {k for h in hubs for k in self._ev_of.get(h, ())}
        pivots = {self._evidence[k]["pivot"] for k in keys} | hubs
        judged = ("mule:", "layer:", "kickback:")
        keys |= {k for p in pivots for k in self._ev_of.get(p, ()) if k.startswith(judged)}
        for key in sorted(keys):
            dirty |= self._drop_evidence(key)
        for ev in self._money.reevaluate(pivots):
            dirty |= self._set_evidence(ev)
        return dirty

    def _drop_evidence(self, key: str) -> set[str]:
        ev = self._evidence.pop(key, None)
        if ev is None:
            return set()
        pivot = ev["pivot"]
        for a in ev["accounts"]:
            keys = self._ev_of.get(a)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._ev_of[a]
            self._graph.unlink(pivot, a)
        return set(ev["accounts"])

    def _set_evidence(self, ev: Evidence) -> set[str]:
        """Keep a money finding (replacing an older one with its key) and link its accounts.

        Returns the accounts whose links or evidence changed.
        """
        key = ev["key"]
        old = self._evidence.get(key)
        if ev["type"] == "cycle":
            seen = set(old.get("occurrences", ())) if old is not None else set()
            seen.add(ev["first_seen"])
            ev = {
                **ev,
                "occurrences": sorted(seen)[:50],
                "first_seen": min(seen),
                "last_seen": max(ev["last_seen"], old["last_seen"] if old else ev["last_seen"]),
            }
        if old == ev:
            return set()
        before = set(old["accounts"]) if old is not None else set()
        after = set(ev["accounts"])
        self._evidence[key] = ev
        pivot = ev["pivot"]
        for a in sorted(before - after):
            self._ev_of.get(a, set()).discard(key)
            self._graph.unlink(pivot, a)
        for a in sorted(after - before):
            self._ev_of.setdefault(a, set()).add(key)
            self._graph.link(pivot, a)
        return before | after

    # -- materialising -------------------------------------------------------------------------

    def _materialise(self, dirty: set[str]) -> set[str]:
        g = self._graph
        if not dirty:
            return set()
        for _ in range(3):  # collectors can join components: settle that first
            grew = False
            for root in sorted({g.find(a) for a in dirty}):
                comp = g.component(root)
                if len(comp) < 2:
                    continue
                for ev in self._money.collectors(self._active(comp), comp):
                    touched = self._set_evidence(ev)
                    if touched:
                        dirty |= touched
                        grew = True
            if not grew:
                break
        for comp in g.rebuild():
            dirty |= comp
        roots: set[str] = set()
        old_ids: set[str] = set()
        todo = sorted({g.find(a) for a in dirty} | {a for a in dirty if a in self._ring_of})
        while todo:
            r = g.find(todo.pop())
            if r in roots:
                continue
            roots.add(r)
            for a in g.component(r):
                rid = self._ring_of.get(a)
                if rid is not None and rid not in old_ids:
                    old_ids.add(rid)
                    todo.extend(self._rings[rid].core)
        groups: list[_Group] = []
        for r in sorted(roots):
            comp = g.component(r)
            if len(comp) > 1:
                groups += [_Group(c) for c in self._split(comp) if len(c) > 1]
        groups.sort(key=lambda grp: min(grp.core))
        self._attach(groups, old_ids)
        drafts = [self._draft(grp) for grp in groups]
        return self._assign(groups, drafts, old_ids)

    def _active(self, comp: set[str]) -> set[str]:
        """Accounts in the ring for what they did, not for whom they paid or were paid by.

        These are identifier-linked accounts, pass-throughs, cycle accounts and kickback payers.
        Only they make a collector, so collectors do not cascade through victims and friends.
        """
        out: set[str] = set()
        for a in comp:
            if self._id_degree.get(a):
                out.add(a)
                continue
            for key in self._ev_of.get(a, ()):
                ev = self._evidence[key]
                t = ev["type"]
                if (
                    t == "cycle"
                    or (t in ("mule_star", "kickback") and ev["pivot"] == a)
                    or (t == "layering" and a in ev["chain"])
                ):
                    out.add(a)
                    break
        return out

    def _split(self, comp: set[str]) -> list[set[str]]:
        """The component itself, or its Louvain communities when it is large."""
        cfg = self.config
        if len(comp) <= cfg.community_min_size:
            for a in comp:
                self._community.pop(a, None)
            return [comp]
        labels = {a: self._community[a] for a in comp if a in self._community}
        pids = {pid for pid, _ in labels.values()}
        weights = self._projection(comp)
        if len(pids) == 1:
            pid = next(iter(pids))
            if len(comp) <= self._partition_size[pid] * (1 + cfg.community_refresh):
                return self._extend_partition(comp, labels, weights, pid)
        pid = self._next_partition
        self._next_partition += 1
        self._partition_size[pid] = len(comp)
        groups = louvain_groups(weights, comp, resolution=cfg.community_resolution, seed=cfg.seed)
        for i, grp in enumerate(groups):
            for a in grp:
                self._community[a] = (pid, i)
        return groups

    def _extend_partition(
        self,
        comp: set[str],
        labels: dict[str, tuple[int, int]],
        weights: dict[Pair, float],
        pid: int,
    ) -> list[set[str]]:
        """New accounts join the community of their strongest neighbour (between partitions)."""
        nbrs: dict[str, dict[str, float]] = {}
        for (a, b), w in weights.items():
            nbrs.setdefault(a, {})[b] = nbrs.setdefault(a, {}).get(b, 0.0) + w
            nbrs.setdefault(b, {})[a] = nbrs.setdefault(b, {}).get(a, 0.0) + w
        pending = sorted(a for a in comp if a not in labels)
        while pending:
            left = []
            for a in pending:
                score: dict[tuple[int, int], float] = {}
                for b, w in nbrs.get(a, {}).items():
                    if b in labels:
                        score[labels[b]] = score.get(labels[b], 0.0) + w
                if score:
                    labels[a] = max(sorted(score), key=lambda lab: score[lab])
                    self._community[a] = labels[a]
                else:
                    left.append(a)
            if len(left) == len(pending):
                extra = max((lab for _, lab in labels.values()), default=-1) + 1
                for a in left:
                    labels[a] = (pid, extra)
                    self._community[a] = labels[a]
                break
            pending = left
        by_label: dict[tuple[int, int], set[str]] = {}
        for a in comp:
            by_label.setdefault(labels[a], set()).add(a)
        return sorted(by_label.values(), key=lambda c: (-len(c), min(c)))

    def _projection(self, comp: set[str]) -> dict[Pair, float]:
        """Account-to-account weights: kinds of identifiers shared, plus money links."""
        weights: dict[Pair, float] = {}
        ids = self._ids
        for a in sorted(comp):  # pairs through identifiers (linked or not) and through links
            near = {b for key in ids.keys_of.get(a, ()) for b in ids.users.get(key, ())}
            near.update(self._graph.adj.get(a, ()))
            for b in near:
                if a < b and b in comp:
                    shared = ids.pairs.get((a, b))
                    if shared:
                        weights[(a, b)] = float(len({kind_of(k) for k in shared}))
        for key in sorted({k for a in comp for k in self._ev_of.get(a, ())}):
            ev = self._evidence[key]
            pivot = ev["pivot"]
            for a in ev["accounts"]:
                if a != pivot and a in comp:
                    p = pair_of(pivot, a)
                    weights[p] = weights.get(p, 0.0) + 1.0
        return weights

    def _ring_keys(self, core: set[str]) -> dict[str, list[str]]:
        """Identifiers shared by strongly linked core accounts, with the accounts sharing them.

        Identifiers that only weakly linked accounts share (the home of two ring members who
        happen to live together) are not the ring's own.
        """
        pairs, strong, adj = self._ids.pairs, self._strong, self._graph.adj
        tied: dict[str, set[str]] = {}
        for a in sorted(core):
            for b in adj.get(a, ()):
                if a < b and (a, b) in strong and b in core:
                    for key in pairs.get((a, b), ()):
                        tied.setdefault(key, set()).update((a, b))
        return {k: sorted(v) for k, v in tied.items()}

    def _attach(self, groups: list[_Group], old_ids: set[str]) -> None:
        """Attach outside accounts that use enough of a ring's own identifiers."""
        g, users_of = self._graph, self._ids.users
        best: dict[str, tuple[int, int]] = {}
        for i, grp in enumerate(groups):
            grp.entities = self._ring_keys(grp.core)
            counts: dict[str, int] = {}
            for key in grp.entities:
                for x in users_of.get(key, ()):
                    if x not in grp.core:
                        counts[x] = counts.get(x, 0) + 1
            for x, n in counts.items():
                if n < self.config.attach_min_shared or g.size(x) > 1:
                    continue
                rid = self._ring_of.get(x)
                if rid is not None and rid not in old_ids:
                    continue
                if x not in best or n > best[x][0]:
                    best[x] = (n, i)
        for x, (_, i) in best.items():
            groups[i].attached.add(x)
        for grp in groups:
            for key in grp.entities:
                users = users_of.get(key, {})
                extra = [x for x in grp.attached if x in users]
                if extra:
                    grp.entities[key] = sorted({*grp.entities[key], *extra})

    def _facts(self, grp: _Group) -> dict[str, MemberFacts]:
        gap = self.config.takeover_gap_s
        users_of = self._ids.users
        facts: dict[str, MemberFacts] = {}
        for a in grp.core:
            late = 0
            by_kind = self._first_kind.get(a, {})
            for key in grp.entities:
                if kind_of(key) not in self.config.takeover_kinds:
                    continue
                span = users_of.get(key, {}).get(a)
                if span is None:
                    continue
                earliest = by_kind.get(kind_of(key))
                if earliest is not None and span[0] - earliest >= gap:
                    late += 1
            facts[a] = MemberFacts(small_payments=self._small.get(a, 0), late_identifiers=late)
        return facts

    def _draft(self, grp: _Group) -> Ring:
        """The ring a group makes, with a placeholder id."""
        pairs, users_of = self._ids.pairs, self._ids.users
        shared: list[Evidence] = []
        for key, accounts in grp.entities.items():
            kind, ident = key.split(":", 1)
            users = users_of.get(key, {})
            times = [
                t
                for a, b in _pairs(grp.core & set(accounts))
                if (t := pairs.get((a, b), {}).get(key)) is not None
            ]
            spans = [users[a] for a in accounts if a in users]
            first = min(times + [s[0] for s in spans])
            last = max(times + [s[1] for s in spans])
            shared.append(
                {
                    "key": key,
                    "type": "shared_identifier",
                    "kind": kind,
                    "id": ident,
                    "accounts": accounts,
                    "first_seen": first,
                    "last_seen": last,
                }
            )
        money_keys = sorted({k for a in grp.core for k in self._ev_of.get(a, ())})
        found = [self._evidence[k] for k in money_keys]
        evidence = [{k: v for k, v in e.items() if k != "pivot"} for e in found] + shared
        evidence.sort(key=lambda e: (-evidence_weight(e), -len(e["accounts"]), e["key"]))
        evidence = evidence[: self.config.max_evidence]
        typology, risk, reasons = assess(
            evidence,
            self._facts(grp),
            personal_kinds=self.config.personal_kinds,
            min_card_tests=self.config.min_card_tests,
        )
        keys = set(grp.entities) | {f"merchant:{e['merchant']}" for e in found if "merchant" in e}
        entities = sorted(tuple(k.split(":", 1)) for k in keys)
        return Ring(
            id="",
            accounts=sorted(grp.accounts),
            entities=[(k, i) for k, i in entities],
            evidence=evidence,
            risk=risk,
            typology=typology,
            first_seen=min(e["first_seen"] for e in evidence),
            last_seen=max(e["last_seen"] for e in evidence),
            reasons=reasons,
            core=sorted(grp.core),
        )

    def _new_id(self, draft: Ring) -> str:
        earliest = min(draft.evidence, key=lambda e: (e["first_seen"], str(e.get("key"))))
        seed = f"{earliest['first_seen']:.0f}|{earliest.get('key')}|{min(draft.core)}"
        base = "ring_" + hashlib.blake2b(seed.encode(), digest_size=5).hexdigest()
        rid, n = base, 1
        while rid in self._rings or rid in self._aliases:
            n += 1
            rid = f"{base}_{n}"
        return rid

    def _assign(self, groups: list[_Group], drafts: list[Ring], old_ids: set[str]) -> set[str]:
        """Give each draft an id (the oldest overlapping ring's), store them, report changes."""
        members = [set(d.accounts) for d in drafts]
        ids: list[str | None] = [None] * len(drafts)
        old = sorted(old_ids, key=lambda rid: (self._rings[rid].first_seen, rid))
        for rid in old:
            prev = set(self._rings[rid].accounts)
            overlaps = [
                (len(prev & m), -i) for i, m in enumerate(members) if ids[i] is None and prev & m
            ]
            if overlaps:
                ids[-max(overlaps)[1]] = rid
        previous = {rid: self._rings[rid] for rid in old_ids}
        for rid, ring in previous.items():
            for a in ring.accounts:
                if self._ring_of.get(a) == rid:
                    del self._ring_of[a]
            del self._rings[rid]
        changed: set[str] = set()
        for i, draft in enumerate(drafts):
            rid = ids[i] or self._new_id(draft)
            ring = replace(draft, id=rid)
            prev_ring = previous.get(rid)
            first = (
                ring.first_seen if prev_ring is None else min(prev_ring.first_seen, ring.first_seen)
            )
            if first != ring.first_seen:
                ring = replace(ring, first_seen=first)
            self._rings[rid] = ring
            for a in ring.accounts:
                self._ring_of[a] = rid
            if prev_ring is None or prev_ring.signature() != ring.signature():
                changed.add(rid)
        for rid, ring in previous.items():
            if rid in self._rings:
                continue
            changed.add(rid)
            holders: dict[str, int] = {}
            for a in ring.accounts:
                new = self._ring_of.get(a)
                if new is not None:
                    holders[new] = holders.get(new, 0) + 1
            if holders:
                self._aliases[rid] = max(sorted(holders), key=lambda h: holders[h])
        return changed

    # -- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The detector's whole state as bytes (MessagePack); see :meth:`restore`."""
        state = {
            "version": SNAPSHOT_VERSION,
            "config": {f.name: getattr(self.config, f.name) for f in fields(self.config) if f.init},
            "ids": self._ids.state(),
            "money": self._money.state(),
            "links": self._graph.links(),
            "strong": [list(p) for p in self._strong],
            "evidence": self._evidence,
            "first_kind": self._first_kind,
            "small": self._small,
            "rings": [_fields(r) for r in self._rings.values()],
            "aliases": self._aliases,
            "community": [[a, pid, lab] for a, (pid, lab) in self._community.items()],
            "partition_size": [[pid, n] for pid, n in self._partition_size.items()],
            "next_partition": self._next_partition,
            "watermark": self._watermark,
            "pruned_at": self._pruned_at,
            "earlier": sorted(self._earlier),
        }
        return msgspec.msgpack.encode(state)

    @classmethod
    def restore(cls, data: bytes) -> RingDetector:
        """A detector in the state a :meth:`snapshot` recorded.

        Raises:
            ValueError: the data is not a snapshot of a version this code reads.
        """
        try:
            state = msgspec.msgpack.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a ring detector snapshot: {exc}") from exc
        if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a ring detector snapshot of version 1")
        raw = state["config"]
        conf: dict[str, Any] = {}
        for name, value in raw.items():
            conf[name] = _tuples(value) if isinstance(value, list) else value
        d = cls(RingConfig(**conf))
        d._ids.load(state["ids"])
        d._money.load(state["money"])
        d._graph = LinkGraph.from_links(state["links"])
        d._strong = {(a, b) for a, b in state["strong"]}
        for p in d._strong:
            for a in p:
                d._id_degree[a] = d._id_degree.get(a, 0) + 1
        d._evidence = state["evidence"]
        for key, ev in d._evidence.items():
            for a in ev["accounts"]:
                d._ev_of.setdefault(a, set()).add(key)
        d._first_kind = state["first_kind"]
        d._small = state["small"]
        for raw_ring in state["rings"]:
            raw_ring["entities"] = [(k, i) for k, i in raw_ring["entities"]]
            ring = Ring(**raw_ring)
            d._rings[ring.id] = ring
            for a in ring.accounts:
                d._ring_of[a] = ring.id
        d._aliases = state["aliases"]
        d._community = {a: (pid, lab) for a, pid, lab in state["community"]}
        d._partition_size = {pid: n for pid, n in state["partition_size"]}
        d._next_partition = state["next_partition"]
        d._watermark = state["watermark"]
        d._pruned_at = state["pruned_at"]
        d._earlier = set(state.get("earlier", ()))
        return d


def _pairs(accounts: set[str]) -> list[Pair]:
    ordered = sorted(accounts)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]


def _fields(ring: Ring) -> dict[str, Any]:
    return asdict(ring)


def _tuples(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_tuples(v) if isinstance(v, list) else v for v in value)
