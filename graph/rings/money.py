"""Money patterns over transfers: cycles, mule stars, layering chains and collectors.

Every transfer of at least ``min_transfer`` between two accounts is kept for ``retention_s``,
per sender and per receiver, sorted by time. Patterns are searched only around the transfers of
the current batch, in the windows the config sets, so the work per batch is bounded by the
transfers it brings and the (few) transfers of the accounts they touch. Timestamps may arrive in
any order: a pattern is found when its last transfer arrives, whichever that is.

* **Cycle** (round-tripping): ``A->B->...->A`` with ``cycle_min_len`` to ``cycle_max_len``
  accounts, every hop's amount within ``cycle_tolerance`` of the closing one, all within
  ``cycle_window_s``, and the hops in time order (some rotation of the cycle is chronological).
* **Pass-through**: an account that sends on at least ``pass_ratio`` (and at most
  ``pass_ratio_max``) of the money it received within ``dwell_s``. With ``mule_min_senders`` or
  more senders it is a **mule star** (fan-in then fan-out). Two pass-throughs in a row (money
  leaves one as part of its pass-through and enters the next as part of its own) make a
  **layering chain**.
* **Kickback** (collusive merchant): an account that pays money back to
  ``kickback_min_recipients`` or more accounts which each paid one merchant
  ``kickback_min_payments`` times or more, some of it refunded, the money paid back being a share
  (``kickback_share``) of what they spent there.
* **Collector**: an account paid by two or more members of one ring within
  ``collector_window_s`` (a ring's cash-out account); the detector asks for these per ring.

Accounts with more than ``busy_counterparties`` distinct counterparties (employers, utilities,
landlords) are money hubs and take part in no pattern. An account may become one only after it
took part in patterns (its salary run comes late in the month): :meth:`MoneyIndex.drain_busy`
names those, and the detector withdraws their patterns and judges their neighbours again.

>>> from graph.rings.config import RingConfig
>>> m = MoneyIndex(RingConfig())
>>> for src, dst, h in (("a", "b", 0), ("b", "c", 5), ("c", "a", 9)):
...     m.add(src, dst, h * 3600.0, 1000.0)
>>> sorted(e["key"] for e in m.detect())   # b and c passed the money on: a chain too
['cycle:a>b>c', 'layer:b>c']
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

from graph.rings.config import DAY, RingConfig, take_due

Transfer = tuple[float, float, str]
"""``(ts, amount, counterparty)``: the counterparty is the receiver in ``out``, the sender in
``inn``."""

TransferKey = tuple[str, str, float]
"""``(sender, receiver, ts)``."""

Evidence = dict[str, Any]
"""One finding: ``key`` (identity, for merging), ``type``, ``pivot`` (the account the others are
linked to), ``accounts``, ``first_seen``, ``last_seen`` and details by type."""


def _chronological(times: list[float]) -> bool:
    """Whether some rotation of the cycle's hop times never goes back in time."""
    descents = sum(1 for i in range(len(times)) if times[i] < times[i - 1])
    return descents <= 1


class MoneyIndex:
    """Recent transfers and the money patterns they form.

    Args:
        config: the detector's knobs.
    """

    def __init__(self, config: RingConfig) -> None:
        self.config = config
        self.out: dict[str, list[Transfer]] = {}
        self.inn: dict[str, list[Transfer]] = {}
        self.parties: dict[str, dict[str, float]] = {}
        self.pt_in: set[TransferKey] = set()
        self.pt_out: set[TransferKey] = set()
        self.episodes: dict[str, dict[str, dict[str, float]]] = {}
        self._new: list[TransferKey] = []
        self._amounts: dict[TransferKey, float] = {}
        self._newly_busy: set[str] = set()
        self.senders: set[str] = set()
        self.paid: dict[str, dict[str, list[float]]] = {}
        """account -> merchant -> [payments, declined or refunded, amount]."""
        self._refunded: set[str] = set()
        self._days: dict[int, set[str]] = {}
        """day number -> accounts that sent or received a transfer dated that day."""
        self._keys: dict[int, set[TransferKey]] = {}
        """day number -> the kept transfers dated that day."""

    def __repr__(self) -> str:
        return f"MoneyIndex(accounts={len(self.parties)}, pending={len(self._new)})"

    # -- input -------------------------------------------------------------------------------

    def add(self, src: str, dst: str, ts: float, amount: float) -> None:
        """Record a transfer that went through (declined ones should not be added)."""
        if src == dst:
            return
        day = int(ts // DAY)
        touched = self._days.get(day)
        if touched is None:
            touched = self._days[day] = set()
        touched.add(src)
        touched.add(dst)
        parties, cap = self.parties, self.config.busy_counterparties
        for a, b in ((src, dst), (dst, src)):
            p = parties.get(a)
            if p is None:
                p = parties[a] = {}
            before = p.get(b)
            if before is None:
                p[b] = ts
                if len(p) == cap + 1:
                    self._newly_busy.add(a)
            elif before < ts:
                p[b] = ts
        if amount < self.config.min_transfer:
            return
        key = (src, dst, ts)
        before = self._amounts.get(key)
        if before is not None:  # two transfers in the same second: one of their sum
            self.out[src].remove((ts, before, dst))
            self.inn[dst].remove((ts, before, src))
            amount += before
        self._amounts[key] = amount
        self._keys.setdefault(day, set()).add(key)
        insort(self.out.setdefault(src, []), (ts, amount, dst))
        insort(self.inn.setdefault(dst, []), (ts, amount, src))
        self._new.append(key)

    def pay(self, src: str, merchant: str, amount: float, failed: bool) -> None:
        """Record a payment to a merchant (kept per account and merchant: count, failed, sum)."""
        by_merchant = self.paid.get(src)
        if by_merchant is None:
            by_merchant = self.paid[src] = {}
        agg = by_merchant.get(merchant)
        if agg is None:  # updated in place from now on (see ``identifiers.Span``)
            agg = by_merchant[merchant] = [0.0, 0.0, 0.0]
        agg[0] += 1
        agg[2] += amount
        if failed:
            agg[1] += 1
        n, refunds = agg[0], agg[1]
        if failed or (refunds and n == self.config.kickback_min_payments):
            self._refunded.add(src)

    def busy(self, account: str) -> bool:
        """Whether the account has too many counterparties to link through money."""
        return len(self.parties.get(account, ())) > self.config.busy_counterparties

    # -- patterns ------------------------------------------------------------------------------

    def detect(self) -> list[Evidence]:
        """Patterns formed by the transfers added since the last call (may repeat old ones).

        Afterwards :attr:`senders` holds the accounts that sent those transfers.
        """
        new, self._new = self._new, []
        self.senders = {src for src, _, _ in new}
        found: list[Evidence] = []
        touched: dict[str, tuple[float, float]] = {}
        for src, dst, ts in new:
            found += self._cycles(src, dst, ts, self._amounts.get((src, dst, ts), 0.0))
            for a in (src, dst):
                lo, hi = touched.get(a, (ts, ts))
                touched[a] = (min(lo, ts), max(hi, ts))
        dwell = self.config.dwell_s
        for a in sorted(touched):
            lo, hi = touched[a]
            found += self._pass_through(a, lo - dwell, hi + dwell)
        refunded, self._refunded = self._refunded, set()
        payers = self.senders | {s for r in refunded for _, _, s in self.inn.get(r, ())}
        for a in sorted(payers):
            found += self._kickback(a)
        return list({(e["key"], e["first_seen"]): e for e in found}.values())

    def _kickback(self, owner: str) -> list[Evidence]:
        """Money paid back to several customers of one merchant, a share of what they spent."""
        cfg = self.config
        if self.busy(owner):
            return []
        kicks: dict[str, list[float]] = {}
        for ts, amount, r in self.out.get(owner, ()):
            k = kicks.setdefault(r, [0.0, ts, ts])
            k[0] += amount
            k[1], k[2] = min(k[1], ts), max(k[2], ts)
        lo, hi = cfg.kickback_share
        by_merchant: dict[str, list[str]] = {}
        for r, (kick, _, _) in kicks.items():
            if self.busy(r):
                continue
            for m, (n, refunds, spent) in self.paid.get(r, {}).items():
                if (
                    n >= cfg.kickback_min_payments
                    and refunds >= cfg.kickback_min_refunds
                    and lo * spent <= kick <= hi * spent
                ):
                    by_merchant.setdefault(m, []).append(r)
        if not by_merchant:
            return []
        merchant = min(by_merchant, key=lambda m: (-len(by_merchant[m]), m))
        receivers = sorted(by_merchant[merchant])
        if len(receivers) < cfg.kickback_min_recipients:
            return []
        return [
            {
                "key": f"kickback:{owner}",
                "type": "kickback",
                "pivot": owner,
                "accounts": sorted({owner, *receivers}),
                "first_seen": min(kicks[r][1] for r in receivers),
                "last_seen": max(kicks[r][2] for r in receivers),
                "account": owner,
                "merchant": merchant,
                "receivers": receivers,
                "amount": round(sum(kicks[r][0] for r in receivers), 2),
            }
        ]

    def _window(self, lst: list[Transfer], lo: float, hi: float) -> list[Transfer]:
        return lst[bisect_left(lst, (lo,)) : bisect_right(lst, (hi, float("inf")))]

    def _cycles(self, u: str, v: str, t: float, x: float) -> list[Evidence]:
        cfg = self.config
        if x < cfg.min_transfer or self.busy(u) or self.busy(v):
            return []
        lo_amt, hi_amt = x * (1 - cfg.cycle_tolerance), x * (1 + cfg.cycle_tolerance)
        lo_t, hi_t = t - cfg.cycle_window_s, t + cfg.cycle_window_s
        path, times = [u, v], [t]
        found: list[Evidence] = []

        def walk(node: str) -> None:
            for ts, amount, dst in self._window(self.out.get(node, []), lo_t, hi_t):
                if amount < lo_amt or amount > hi_amt:
                    continue
                if dst == u:
                    hops = [*times, ts]
                    if (
                        len(path) >= cfg.cycle_min_len
                        and max(hops) - min(hops) <= cfg.cycle_window_s
                        and _chronological(hops)
                    ):
                        found.append(self._cycle_evidence(list(path), hops, x))
                elif dst not in path and len(path) < cfg.cycle_max_len and not self.busy(dst):
                    path.append(dst)
                    times.append(ts)
                    walk(dst)
                    path.pop()
                    times.pop()

        walk(v)
        return found

    @staticmethod
    def _cycle_evidence(path: list[str], times: list[float], amount: float) -> Evidence:
        start = path.index(min(path))
        accounts = path[start:] + path[:start]
        return {
            "key": "cycle:" + ">".join(accounts),
            "type": "cycle",
            "pivot": accounts[0],
            "accounts": accounts,
            "first_seen": min(times),
            "last_seen": max(times),
            "amount": round(amount, 2),
            "span_h": round((max(times) - min(times)) / 3600, 1),
        }

    def _pass_through(self, a: str, lo: float, hi: float) -> list[Evidence]:
        cfg = self.config
        outs, ins = self.out.get(a), self.inn.get(a)
        if not outs or not ins or self.busy(a):
            return []
        found: list[Evidence] = []
        for t_o, _, dst in self._window(outs, lo, hi):
            if self.busy(dst):
                continue
            senders: dict[tuple[str, float], float] = {}
            for t_i, x_i, src in self._window(ins, t_o - cfg.dwell_s, t_o):
                if src != dst and not self.busy(src):
                    senders[(src, t_i)] = x_i
            received = sum(senders.values())
            if received < cfg.min_flow:
                continue
            names = {s for s, _ in senders}
            t0 = min(t for _, t in senders)
            sent: dict[tuple[str, float], float] = {}
            for t_s, x_s, r in self._window(outs, t0, t_o + cfg.dwell_s):
                if r not in names and not self.busy(r):
                    sent[(r, t_s)] = x_s
            if not cfg.pass_ratio * received <= sum(sent.values()) <= cfg.pass_ratio_max * received:
                continue
            ep = self.episodes.setdefault(a, {"in": {}, "out": {}})
            for (s, t_i), x_i in senders.items():
                ep["in"][f"{s}|{t_i}"] = x_i
                self.pt_in.add((s, a, t_i))
            for (r, t_s), x_s in sent.items():
                ep["out"][f"{r}|{t_s}"] = x_s
                self.pt_out.add((a, r, t_s))
            if len(names) >= cfg.mule_min_senders:
                found.append(self._star(a))
            for s, t_i in senders:
                if (s, a, t_i) in self.pt_out:
                    found.append(self._chain(s, a))
            for r, t_s in sent:
                if (a, r, t_s) in self.pt_in:
                    found.append(self._chain(a, r))
        return found

    def drain_busy(self) -> set[str]:
        """Accounts that became money hubs since the last call."""
        busy, self._newly_busy = self._newly_busy, set()
        return busy

    def reevaluate(self, accounts: set[str]) -> list[Evidence]:
        """Forget the pass-throughs of ``accounts`` and look for them again over all history.

        Used when an account turns out to be a money hub: the patterns it took part in are
        withdrawn and the accounts around it are judged again without it.
        """
        for a in accounts:
            ep = self.episodes.pop(a, None)
            if ep is None:
                continue
            for k in ep["in"]:
                s, t = k.rsplit("|", 1)
                self.pt_in.discard((s, a, float(t)))
            for k in ep["out"]:
                r, t = k.rsplit("|", 1)
                self.pt_out.discard((a, r, float(t)))
        found: list[Evidence] = []
        for a in sorted(accounts):
            found += self._pass_through(a, float("-inf"), float("inf"))
            found += self._kickback(a)
        return found

    def _parts(self, a: str) -> tuple[dict[str, float], dict[str, float], list[float]]:
        """Senders and receivers of ``a``'s pass-throughs (money per account) and their times."""
        ep = self.episodes.get(a, {"in": {}, "out": {}})
        senders: dict[str, float] = {}
        receivers: dict[str, float] = {}
        times: list[float] = []
        for side, acc in (("in", senders), ("out", receivers)):
            for k, x in ep[side].items():
                name, ts = k.rsplit("|", 1)
                acc[name] = acc.get(name, 0.0) + x
                times.append(float(ts))
        return senders, receivers, times

    def _star(self, a: str) -> Evidence:
        senders, receivers, times = self._parts(a)
        return {
            "key": f"mule:{a}",
            "type": "mule_star",
            "pivot": a,
            "accounts": sorted({a, *senders, *receivers}),
            "first_seen": min(times),
            "last_seen": max(times),
            "account": a,
            "senders": sorted(senders),
            "receivers": sorted(receivers),
            "received": round(sum(senders.values()), 2),
            "sent": round(sum(receivers.values()), 2),
        }

    def _chain(self, a: str, b: str) -> Evidence:
        s_a, _, t_a = self._parts(a)
        _, r_b, t_b = self._parts(b)
        times = t_a + t_b
        return {
            "key": f"layer:{a}>{b}",
            "type": "layering",
            "pivot": a,
            "accounts": sorted({a, b, *s_a, *r_b}),
            "first_seen": min(times),
            "last_seen": max(times),
            "chain": [a, b],
            "sent_in": round(sum(s_a.values()), 2),
            "sent_out": round(sum(r_b.values()), 2),
        }

    def collectors(self, payers: set[str], ring: set[str]) -> list[Evidence]:
        """Accounts outside ``ring`` paid by two or more of ``payers`` within the window."""
        cfg = self.config
        by_dst: dict[str, list[tuple[float, str, float]]] = {}
        for a in sorted(payers):
            for ts, amount, dst in self.out.get(a, ()):
                if dst not in ring:
                    by_dst.setdefault(dst, []).append((ts, a, amount))
        found: list[Evidence] = []
        for dst in sorted(by_dst):
            pays = by_dst[dst]
            if len({s for _, s, _ in pays}) < cfg.collector_min_senders or self.busy(dst):
                continue
            pays.sort()
            best: list[tuple[float, str, float]] = []
            j = 0
            for i in range(len(pays)):
                while pays[i][0] - pays[j][0] > cfg.collector_window_s:
                    j += 1
                window = pays[j : i + 1]
                if len({s for _, s, _ in window}) > len({s for _, s, _ in best}):
                    best = window
            senders = sorted({s for _, s, _ in best})
            if len(senders) < cfg.collector_min_senders:
                continue
            found.append(
                {
                    "key": f"collector:{dst}",
                    "type": "collector",
                    "pivot": dst,
                    "accounts": sorted({dst, *senders}),
                    "first_seen": best[0][0],
                    "last_seen": best[-1][0],
                    "account": dst,
                    "senders": senders,
                    "amount": round(sum(x for _, _, x in best), 2),
                }
            )
        return found

    # -- upkeep --------------------------------------------------------------------------------

    def prune(self, horizon: float) -> None:
        """Forget transfers, counterparties and pass-through records older than ``horizon``.

        Only the accounts and transfers filed under days up to ``horizon``'s are looked at:
        the work is what expires, not the whole index.
        """
        last = int(horizon // DAY)
        for a in take_due(self._days, last):
            for book in (self.out, self.inn):
                lst = book.get(a)
                if lst is None:
                    continue
                cut = bisect_left(lst, (horizon,))
                if cut:
                    del lst[:cut]
                if not lst:
                    del book[a]
            p = self.parties.get(a)
            if p is not None:
                for c in [c for c, ts in p.items() if ts < horizon]:
                    del p[c]
                if not p:
                    del self.parties[a]
            ep = self.episodes.get(a)
            if ep is not None:
                for side in ("in", "out"):
                    ep[side] = {
                        k: x for k, x in ep[side].items() if float(k.rsplit("|", 1)[1]) >= horizon
                    }
                if not ep["in"] and not ep["out"]:
                    del self.episodes[a]
        filed = self._keys.get(last)
        for key in take_due(self._keys, last):
            if key[2] < horizon:
                self.pt_in.discard(key)
                self.pt_out.discard(key)
                self._amounts.pop(key, None)
                if filed is not None:
                    filed.discard(key)

    def state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "amounts": [[s, d, t, x] for (s, d, t), x in self._amounts.items()],
            "parties": self.parties,
            "pt_in": [list(k) for k in self.pt_in],
            "pt_out": [list(k) for k in self.pt_out],
            "episodes": self.episodes,
            "new": [list(k) for k in self._new],
            "paid": self.paid,
            "refunded": sorted(self._refunded),
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state` output."""
        self._amounts = {(s, d, t): x for s, d, t, x in state["amounts"]}
        self.out, self.inn = {}, {}
        for (s, d, t), x in self._amounts.items():
            self.out.setdefault(s, []).append((t, x, d))
            self.inn.setdefault(d, []).append((t, x, s))
        for book in (self.out, self.inn):
            for lst in book.values():
                lst.sort()
        self.parties = {a: dict(p) for a, p in state["parties"].items()}
        self.pt_in = {(s, d, t) for s, d, t in state["pt_in"]}
        self.pt_out = {(s, d, t) for s, d, t in state["pt_out"]}
        self.episodes = {
            a: {"in": dict(ep["in"]), "out": dict(ep["out"])} for a, ep in state["episodes"].items()
        }
        self._new = [(s, d, t) for s, d, t in state["new"]]
        self.paid = {
            a: {m: [agg[0], agg[1], agg[2]] for m, agg in by.items()}
            for a, by in state["paid"].items()
        }
        self._refunded = set(state["refunded"])
        self._days, self._keys = {}, {}
        for a, p in self.parties.items():
            for ts in p.values():
                self._days.setdefault(int(ts // DAY), set()).add(a)
        for a, ep in self.episodes.items():
            for side in ep.values():
                for k in side:
                    self._days.setdefault(int(float(k.rsplit("|", 1)[1]) // DAY), set()).add(a)
        for key in (*self._amounts, *self.pt_in, *self.pt_out):
            self._keys.setdefault(int(key[2] // DAY), set()).add(key)
