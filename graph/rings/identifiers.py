"""Shared identifiers: which accounts use each identifier, and which pairs of accounts share some.

An identifier is keyed ``kind:id`` (``device:dev_1``). For each one the index keeps its users
with the first and last time each used it. Two users are *paired* through it when their uses
come within ``link_window_s`` of each other; a pair's evidence is the set of identifiers it
shares. The detector decides from that evidence whether the pair is linked strongly.

Hub safeguards live here. An identifier used by more than its kind's degree cap within
``hub_window_s`` becomes a hub: it is dropped, it never links again, and the pairs it made lose
it (the detector then re-checks those pairs and splits rings that relied on it). Users idle for
longer than ``hub_window_s`` are forgotten, so slow reuse over months is not a hub. Allowlisted
identifiers are ignored from the start.

Work per observation: a dictionary lookup when the account already uses the identifier (almost
every observation), at most ``cap`` pair checks when it is new or its span of use grows.
Identifiers are filed by the day of their last use, so :meth:`IdentifierIndex.prune` visits
those that may have gone idle, not the whole index.

>>> from graph.rings.config import RingConfig
>>> ix = IdentifierIndex(RingConfig(degree_caps=(("ip", 2),)))
>>> ix.observe("ip:1.2.3.4", "a", 0.0)
>>> ix.observe("ip:1.2.3.4", "b", 60.0)
>>> sorted(ix.pairs)
[('a', 'b')]
>>> ix.observe("ip:1.2.3.4", "c", 120.0)   # a third user: over the cap of 2, a hub
>>> ix.is_hub("ip:1.2.3.4"), sorted(ix.pairs)
(True, [])
"""

from __future__ import annotations

from typing import Any

from graph.rings.config import DAY, RingConfig, take_due

Span = list[float]
"""``[first, last]`` use of an identifier by one account, updated in place: a new tuple per use
would make its (settled, frozen) ``users`` dict young again for the garbage collector."""

Pair = tuple[str, str]
"""Two account ids, sorted."""


def pair_of(a: str, b: str) -> Pair:
    """The sorted pair of two account ids."""
    return (a, b) if a < b else (b, a)


def kind_of(key: str) -> str:
    """The kind of an identifier key (``device`` for ``device:dev_1``)."""
    return key.split(":", 1)[0]


class IdentifierIndex:
    """Users per identifier, hubs, and the identifiers each pair of accounts shares.

    Args:
        config: the detector's knobs (caps, windows, allowlist).

    Attributes:
        users: identifier key -> account -> ``(first, last)`` use.
        keys_of: account -> identifier keys it uses that have (had) another user.
        hubs: identifier key -> time it became a hub.
        pairs: pair of accounts -> identifier key -> time the pair was first linked by it.
        changed: pairs whose evidence changed since :meth:`drain` was last called.
        grown: identifiers that gained a user since :meth:`drain` was last called.
    """

    def __init__(self, config: RingConfig) -> None:
        self.config = config
        self._caps = {k: config.degree_cap(k) for k in config.identifier_kinds}
        self._blocked = config.blocked_keys
        self._window = config.link_window_s
        self.users: dict[str, dict[str, Span]] = {}
        self.keys_of: dict[str, set[str]] = {}
        self.hubs: dict[str, float] = {}
        self.pairs: dict[Pair, dict[str, float]] = {}
        self._linked: dict[str, int] = {}
        self.changed: set[Pair] = set()
        self.grown: set[str] = set()
        self.until: dict[str, float] = {}
        """identifier key -> the end of the day (UTC) its last use falls in."""
        self._idle: dict[int, set[str]] = {}
        """day number -> the identifiers whose last use falls in that day."""

    def __repr__(self) -> str:
        return f"IdentifierIndex(identifiers={len(self.users)}, hubs={len(self.hubs)})"

    def is_hub(self, key: str) -> bool:
        """Whether the identifier stopped linking because too many accounts use it."""
        return key in self.hubs

    def observe(self, key: str, account: str, ts: float) -> None:
        """Record that ``account`` used identifier ``key`` at ``ts``."""
        if key in self.hubs or key in self._blocked:
            return
        users = self.users.get(key)
        if users is None:
            self.users[key] = {account: [ts, ts]}
            self.used(key, ts)
            return
        if ts >= self.until[key]:
            self.used(key, ts)
        span = users.get(account)
        if span is not None:
            if ts > span[1]:
                span[1] = ts
            elif ts < span[0]:
                span[0] = ts
            else:
                return
            if len(users) > 1:
                self.grow(key, account, span, users)
            return
        users[account] = [ts, ts]
        cap = self._caps.get(kind_of(key))
        if cap is not None and len(users) > cap:
            latest = max(s[1] for s in users.values())
            horizon = latest - self.config.hub_window_s
            stale = [a for a, s in users.items() if s[1] < horizon]
            if len(users) - len(stale) > cap:
                self._make_hub(key, ts)
                return
            for a in stale:
                self._forget(key, a)
            if account not in users:
                return
        self.grown.add(key)
        for a in users:
            self.keys_of.setdefault(a, set()).add(key)
        if len(users) == 3:  # no longer private to a pair: the pairs it made are judged again
            rest = [a for a in users if a != account]
            p = pair_of(rest[0], rest[1])
            if key in self.pairs.get(p, ()):
                self.changed.add(p)
        self._pair_up(key, account, users[account], users)

    def used(self, key: str, ts: float) -> None:
        """File ``key`` under the day of ``ts``, a use later than the day it is filed under.

        :meth:`observe` calls this; a hot loop that extends spans itself calls it when
        ``ts >= until[key]``.
        """
        day = int(ts // DAY)
        before = self.until.get(key)
        if before is not None:
            self._idle[int(before // DAY) - 1].discard(key)
        self.until[key] = (day + 1) * DAY
        filed = self._idle.get(day)
        if filed is None:
            filed = self._idle[day] = set()
        filed.add(key)

    def _unfile(self, key: str) -> None:
        before = self.until.pop(key, None)
        if before is not None:
            filed = self._idle.get(int(before // DAY) - 1)
            if filed is not None:
                filed.discard(key)

    def grow(self, key: str, account: str, span: Span, users: dict[str, Span]) -> None:
        """A user's span of use of a shared identifier grew: pair it with users it now meets.

        :meth:`observe` calls this; callers that update ``span`` themselves (a hot loop that
        handles repeat uses inline) call it after.
        """
        n = len(users)
        if self._linked.get(key, 0) < n * (n - 1) // 2:
            self._pair_up(key, account, span, users)

    def _pair_up(self, key: str, account: str, span: Span, users: dict[str, Span]) -> None:
        window = self._window
        for other, s in users.items():
            if other == account:
                continue
            if span[0] - window > s[1] or s[0] - window > span[1]:
                continue
            p = (account, other) if account < other else (other, account)
            ev = self.pairs.get(p)
            if ev is None:
                ev = self.pairs[p] = {}
            elif key in ev:
                continue
            ev[key] = max(span[0], s[0])
            self._linked[key] = self._linked.get(key, 0) + 1
            self.changed.add(p)

    def _unpair(self, key: str, a: str, b: str) -> None:
        p = pair_of(a, b)
        ev = self.pairs.get(p)
        if ev is not None and ev.pop(key, None) is not None:
            self.changed.add(p)
            if not ev:
                del self.pairs[p]

    def _forget(self, key: str, account: str) -> None:
        """Drop an idle user of an identifier; the pairs it made stay (they are history)."""
        users = self.users[key]
        del users[account]
        keys = self.keys_of.get(account)
        if keys is not None:
            keys.discard(key)
        rest = list(users)
        self._linked[key] = sum(
            1
            for i, a in enumerate(rest)
            for b in rest[i + 1 :]
            if key in self.pairs.get(pair_of(a, b), ())
        )

    def _make_hub(self, key: str, ts: float) -> None:
        users = self.users.pop(key)
        self._unfile(key)
        self._linked.pop(key, None)
        self.grown.discard(key)
        self.hubs[key] = ts
        accounts = list(users)
        for i, a in enumerate(accounts):
            keys = self.keys_of.get(a)
            if keys is not None:
                keys.discard(key)
            for b in accounts[i + 1 :]:
                self._unpair(key, a, b)

    def drain(self) -> tuple[set[Pair], set[str]]:
        """The pairs changed and identifiers grown since the last call, and reset both."""
        changed, grown = self.changed, self.grown
        self.changed, self.grown = set(), set()
        return changed, grown

    def prune(self, horizon: float) -> None:
        """Forget identifiers nobody has used since ``horizon`` (their pairs stay).

        Only the identifiers filed under days up to ``horizon``'s are looked at.
        """
        due = take_due(self._idle, int(horizon // DAY))
        idle = [k for k in due if max(s[1] for s in self.users[k].values()) < horizon]
        for key in idle:
            self._unfile(key)
            users = self.users.pop(key)
            self._linked.pop(key, None)
            for a in users:
                keys = self.keys_of.get(a)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.keys_of[a]

    # -- persistence ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "users": self.users,
            "hubs": self.hubs,
            "pairs": [[a, b, ev] for (a, b), ev in self.pairs.items()],
            "linked": self._linked,
            "changed": [list(p) for p in sorted(self.changed)],
            "grown": sorted(self.grown),
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state` output."""
        self.users = {k: {a: [s[0], s[1]] for a, s in u.items()} for k, u in state["users"].items()}
        self.hubs = dict(state["hubs"])
        self.pairs = {(a, b): dict(ev) for a, b, ev in state["pairs"]}
        self._linked = dict(state["linked"])
        self.changed = {(a, b) for a, b in state.get("changed", ())}
        self.grown = set(state.get("grown", ()))
        self.until, self._idle = {}, {}
        for key, users in self.users.items():
            self.used(key, max(s[1] for s in users.values()))
        self.keys_of = {}
        for key, users in self.users.items():
            if len(users) > 1:
                for a in users:
                    self.keys_of.setdefault(a, set()).add(key)
        for (a, b), ev in self.pairs.items():
            for key in ev:
                if key in self.users:
                    self.keys_of.setdefault(a, set()).add(key)
                    self.keys_of.setdefault(b, set()).add(key)
