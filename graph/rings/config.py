"""The knobs of ring detection, in one frozen object.

Times are in seconds and amounts in the account's currency (the detector does no conversion, so
amount thresholds assume the accounts mostly hold currencies of similar value; set them per
deployment). Every default below is what ``docs/rings.md`` measured with.

>>> RingConfig().degree_cap("ip")
12
>>> RingConfig(allowlist=(("ip", "10.0.0.1"),)).blocked("ip", "10.0.0.1")
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeVar

HOUR: Final = 3600.0
DAY: Final = 86400.0

_T = TypeVar("_T")


def take_due(filed: dict[int, set[_T]], last: int) -> set[_T]:
    """What is filed under day numbers up to ``last`` (the indexes' prunes file by day).

    Days before ``last`` are wholly due and leave ``filed``; ``last`` itself stays, since only
    part of it may be behind the horizon (the caller checks those exactly).

    >>> filed = {3: {"a"}, 4: {"b"}, 5: {"c"}}
    >>> sorted(take_due(filed, 4)), sorted(filed)
    (['a', 'b'], [4, 5])
    """
    out: set[_T] = set()
    for day in [d for d in filed if d <= last]:
        out |= filed[day] if day == last else filed.pop(day)
    return out


DEFAULT_DEGREE_CAPS: Final = (
    ("device", 12),
    ("ip", 12),
    ("card", 4),
    ("email", 12),
    ("phone", 12),
    ("address", 12),
)


@dataclass(frozen=True, slots=True)
class RingConfig:
    """How rings are found. Every field has a default; see ``docs/rings.md``.

    Shared identifiers:

    Args:
        identifier_kinds: identifier kinds that may tie accounts together.
        personal_kinds: kinds that normally belong to one person. Two accounts are linked
            strongly (a link that can found a ring) only when they share identifiers of at least
            ``min_shared_kinds`` kinds, one of them personal. Sharing only a home's address, IP
            and computer is what households do; sharing only an e-mail is what namesakes do.
        min_shared_kinds: distinct identifier kinds two accounts must share to be linked. One
            kind is enough when it is personal and both accounts switched to it late (two
            accounts changing to the same new e-mail is a takeover crew's mark).
        link_window_s: two accounts' uses of an identifier must come this close in time for
            the identifier to link them (time decay of identifier links).
        degree_caps: ``(kind, n)`` pairs: an identifier used by more than ``n`` accounts within
            ``hub_window_s`` is a hub (public Wi-Fi, carrier NAT, a shared emulator image); it
            stops linking and the links it made are withdrawn. Kinds not listed have no cap.
        hub_window_s: the window in which an identifier's users are counted; users idle for
            longer are forgotten, so an identifier reused slowly over months is not a hub.
        allowlist: ``(kind, id)`` identifiers that never link (known shared infrastructure).
        attach_min_shared: an account outside a ring that uses at least this many of the ring's
            own identifiers (those shared by two strongly linked members) joins it.
        household_kinds: personal kinds that people living together often share (a family
            e-mail). Between two accounts that share an address they do not count as personal,
            so a couple sharing an e-mail is not a ring.

    Money patterns:

    Args:
        min_transfer: smaller transfers are ignored by every money pattern.
        busy_counterparties: an account with more distinct transfer counterparties than this
            within ``retention_s`` (employers, utilities, landlords) is a money hub: it takes
            part in no money pattern, and the patterns it was part of are withdrawn.
        dwell_s: how long money may rest in an account and still count as passed through.
        pass_ratio: the share of the money received that must leave again within ``dwell_s``.
        pass_ratio_max: at most this multiple of the money received may leave in that time (an
            account paying out much more than it received is spending its own money).
        min_flow: the least money received for a pass-through to count.
        mule_min_senders: distinct senders that make a pass-through a mule star (fan-in then
            fan-out); a pass-through with fewer senders links only as part of a layering chain
            (money passing through two accounts in a row).
        cycle_min_len: shortest cycle reported (``A->B->A`` repayments are common and honest).
        cycle_max_len: longest cycle searched for.
        cycle_window_s: all transfers of a cycle fall within this span.
        cycle_tolerance: each hop's amount lies within this fraction of the closing transfer's.
        collector_window_s: transfers from two or more members of one ring to the same account
            within this span make that account the ring's collector.
        collector_min_senders: ring members that must pay the collector.
        kickback_min_recipients: accounts an account must pay back for a kickback pattern
            (collusive merchant): each paid one merchant ``kickback_min_payments`` times or
            more, ``kickback_min_refunds`` of them declined or refunded, and got back between
            ``kickback_share[0]`` and ``kickback_share[1]`` times what it paid there.
        kickback_min_payments: see ``kickback_min_recipients``.
        kickback_min_refunds: see ``kickback_min_recipients``.
        kickback_share: see ``kickback_min_recipients``.

    Rings:

    Args:
        community_min_size: components with more accounts than this are split into Louvain
            communities of the account projection (shared identifiers and money flow).
        community_resolution: Louvain resolution (higher gives smaller communities).
        community_refresh: a split component is re-partitioned once it has grown by this
            fraction since its last partition; in between new accounts join the community of
            their strongest neighbour.
        seed: random seed of the Louvain runs (same input, same rings).
        small_payment: declined payments at or below this amount count as card tests.
        min_card_tests: card tests that make an account look card-tested.
        takeover_gap_s: an identifier that first appears on an account this long after the
            account's first use of that kind is a late change (account takeover evidence).
        takeover_kinds: the identifier kinds whose late change counts (not IPs: people roam).
        max_evidence: at most this many evidence items are kept per ring (strongest first).
        retention_s: transfers and idle identifier uses older than this (behind the newest
            timestamp seen) are forgotten; rings and their evidence are kept.
    """

    identifier_kinds: tuple[str, ...] = ("device", "ip", "card", "email", "phone", "address")
    personal_kinds: tuple[str, ...] = ("card", "email", "phone")
    min_shared_kinds: int = 2
    link_window_s: float = 30 * DAY
    degree_caps: tuple[tuple[str, int], ...] = DEFAULT_DEGREE_CAPS
    hub_window_s: float = 30 * DAY
    allowlist: tuple[tuple[str, str], ...] = ()
    attach_min_shared: int = 2
    household_kinds: tuple[str, ...] = ("email",)

    min_transfer: float = 100.0
    busy_counterparties: int = 30
    dwell_s: float = 30 * HOUR
    pass_ratio: float = 0.7
    pass_ratio_max: float = 1.25
    min_flow: float = 300.0
    mule_min_senders: int = 2
    cycle_min_len: int = 3
    cycle_max_len: int = 5
    cycle_window_s: float = 7 * DAY
    cycle_tolerance: float = 0.1
    collector_window_s: float = 7 * DAY
    collector_min_senders: int = 2
    kickback_min_recipients: int = 3
    kickback_min_payments: int = 2
    kickback_min_refunds: int = 1
    kickback_share: tuple[float, float] = (0.1, 1.0)

    community_min_size: int = 60
    community_resolution: float = 1.0
    community_refresh: float = 0.25
    seed: int = 0
    small_payment: float = 3.0
    min_card_tests: int = 2
    takeover_gap_s: float = 1 * DAY
    takeover_kinds: tuple[str, ...] = ("device", "email", "phone")
    max_evidence: int = 200
    retention_s: float = 35 * DAY

    _caps: dict[str, int] = field(init=False, repr=False, compare=False)
    _blocked: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.min_shared_kinds < 1:
            raise ValueError(f"min_shared_kinds: must be at least 1, got {self.min_shared_kinds}")
        if not 2 <= self.cycle_min_len <= self.cycle_max_len <= 8:
            raise ValueError("cycle lengths: need 2 <= cycle_min_len <= cycle_max_len <= 8")
        if not 0 < self.pass_ratio <= 1:
            raise ValueError(f"pass_ratio: must be in (0, 1], got {self.pass_ratio}")
        if not 0 <= self.cycle_tolerance < 1:
            raise ValueError(f"cycle_tolerance: must be in [0, 1), got {self.cycle_tolerance}")
        if self.community_min_size < 2:
            raise ValueError("community_min_size: must be at least 2")
        object.__setattr__(self, "_caps", dict(self.degree_caps))
        object.__setattr__(self, "_blocked", frozenset(f"{k}:{i}" for k, i in self.allowlist))

    def degree_cap(self, kind: str) -> int | None:
        """The most accounts an identifier of ``kind`` may link, or None for no cap."""
        return self._caps.get(kind)

    def blocked(self, kind: str, ident: str) -> bool:
        """Whether the identifier is on the allowlist (it never links)."""
        return f"{kind}:{ident}" in self._blocked

    @property
    def blocked_keys(self) -> frozenset[str]:
        """Allowlisted identifiers as ``kind:id`` keys."""
        return self._blocked
