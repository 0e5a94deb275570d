"""The link graph between accounts: union-find over links, with removal by local rebuild.

Links join two accounts whose shared identifiers are strong enough, and the accounts of a money
pattern to its pivot account; a pair may be linked several times, once per reason. A link is
withdrawn when its reason goes (an identifier turns out to be a hub, an account turns out to be
a money hub). Components are kept with union-find (union by size, path halving) together with
each root's member set. Removing a pair's last link marks its component;
:meth:`LinkGraph.rebuild` then recomputes that component alone by a breadth-first search over
its links, so the work is bounded by the component's size.

:func:`louvain_groups` splits a large component into communities of its weighted account
projection with networkx's Louvain implementation.

>>> g = LinkGraph()
>>> g.link("a", "b"); g.link("b", "c")
>>> sorted(g.component("a"))
['a', 'b', 'c']
>>> g.unlink("a", "b"); sorted(sorted(c) for c in g.rebuild())
[['a'], ['b', 'c']]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx


class LinkGraph:
    """Accounts joined by links (each pair may be joined several times), and their components."""

    def __init__(self) -> None:
        self.adj: dict[str, dict[str, int]] = {}
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._stale: set[str] = set()

    def __repr__(self) -> str:
        return f"LinkGraph(accounts={len(self._parent)}, components={len(self._members)})"

    def find(self, a: str) -> str:
        """The root of ``a``'s component (``a`` itself when it has no links)."""
        parent = self._parent
        if a not in parent:
            return a
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def component(self, a: str) -> set[str]:
        """The accounts linked to ``a``, directly or not (``{a}`` when none)."""
        return self._members.get(self.find(a), {a})

    def size(self, a: str) -> int:
        """How many accounts ``a``'s component has."""
        members = self._members.get(self.find(a))
        return 1 if members is None else len(members)

    def _union(self, a: str, b: str) -> None:
        for x in (a, b):
            if x not in self._parent:
                self._parent[x] = x
                self._members[x] = {x}
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ma, mb = self._members[ra], self._members[rb]
        if len(ma) < len(mb):
            ra, rb, ma, mb = rb, ra, mb, ma
        self._parent[rb] = ra
        ma |= mb
        del self._members[rb]
        if rb in self._stale:
            self._stale.discard(rb)
            self._stale.add(ra)

    def link(self, a: str, b: str, times: int = 1) -> None:
        """Join ``a`` and ``b`` once more (``times`` more)."""
        if a == b:
            return
        for x, y in ((a, b), (b, a)):
            nbrs = self.adj.setdefault(x, {})
            nbrs[y] = nbrs.get(y, 0) + times
        self._union(a, b)

    def unlink(self, a: str, b: str) -> None:
        """Withdraw one link between ``a`` and ``b``; when none is left, see :meth:`rebuild`."""
        nbrs = self.adj.get(a)
        if nbrs is None or b not in nbrs:
            return
        for x, y in ((a, b), (b, a)):
            nbrs = self.adj[x]
            nbrs[y] -= 1
            if nbrs[y] <= 0:
                del nbrs[y]
                if not nbrs:
                    del self.adj[x]
                self._stale.add(self.find(a))

    def rebuild(self) -> list[set[str]]:
        """Recompute the components that lost links; returns the resulting components."""
        out: list[set[str]] = []
        stale, self._stale = self._stale, set()
        adj = self.adj
        for root in sorted(stale):
            members = self._members.pop(self.find(root), None)
            if members is None:
                continue
            for a in members:
                self._parent.pop(a, None)
            seen: set[str] = set()
            for start in sorted(members):
                if start in seen:
                    continue
                comp = {start}
                todo = [start]
                while todo:
                    x = todo.pop()
                    for y in adj.get(x, ()):
                        if y not in comp:
                            comp.add(y)
                            todo.append(y)
                seen |= comp
                if len(comp) > 1:
                    r = min(comp)
                    for a in comp:
                        self._parent[a] = r
                    self._members[r] = comp
                out.append(comp)
        return out

    def links(self) -> list[list[Any]]:
        """Every linked pair once, with how many times it is linked: ``[a, b, times]``."""
        return [[a, b, n] for a, nbrs in self.adj.items() for b, n in nbrs.items() if a < b]

    @classmethod
    def from_links(cls, links: Iterable[list[Any]]) -> LinkGraph:
        """A graph with the given links (the inverse of :meth:`links`)."""
        g = cls()
        for a, b, n in links:
            g.link(a, b, n)
        return g


def louvain_groups(
    weights: dict[tuple[str, str], float], nodes: Iterable[str], *, resolution: float, seed: int
) -> list[set[str]]:
    """Louvain communities of a weighted undirected graph, largest first, ties by member.

    Args:
        weights: edge weights keyed by account pairs.
        nodes: every account (isolated ones form their own community).
        resolution: Louvain resolution; above 1 favours smaller communities.
        seed: random seed (same input, same communities).

    >>> w = {("a", "b"): 3.0, ("b", "c"): 3.0, ("c", "a"): 3.0, ("c", "d"): 0.1,
    ...      ("d", "e"): 3.0, ("e", "f"): 3.0, ("f", "d"): 3.0}
    >>> [sorted(c) for c in louvain_groups(w, "abcdef", resolution=1.0, seed=0)]
    [['a', 'b', 'c'], ['d', 'e', 'f']]
    """
    g: nx.Graph = nx.Graph()
    g.add_nodes_from(sorted(nodes))
    for (a, b), w in sorted(weights.items()):
        if g.has_edge(a, b):
            g[a][b]["weight"] += w
        else:
            g.add_edge(a, b, weight=w)
    groups = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)
    return sorted((set(c) for c in groups), key=lambda c: (-len(c), min(c)))
