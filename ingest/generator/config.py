"""Profiles and knobs of the generator.

``PROFILES`` holds the keyword arguments of :func:`ingest.generator.generate` for each named
size, so ``generate(out, seed=7, start=..., **PROFILES["small"])`` works. The fraud knobs scale
with the number of accounts (:meth:`FraudConfig.for_accounts`); pass a :class:`FraudConfig` to
``generate`` to change them.

>>> FraudConfig.for_accounts(300).synthetic_rings
1
>>> FraudConfig.for_accounts(10_000).mule_networks
8
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

PROFILES: Final[dict[str, dict[str, Any]]] = {
    "small": {"accounts": 300, "days": 7},
    "default": {"accounts": 10_000, "days": 30},
}
"""Named sizes: ``small`` (about 7 thousand events, for tests) and ``default`` (about a million)."""

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FraudConfig:
    """How much of each fraud typology to plant. Ranges are inclusive ``(low, high)``.

    Args:
        synthetic_rings: rings of synthetic identities.
        synthetic_size: accounts per synthetic ring (sharing devices, phones, e-mails, addresses).
        buildup_rate: small everyday purchases per synthetic account per day before bust-out.
        bust_out_txns: high-value purchases per synthetic account on the bust-out day.
        mule_networks: mule networks.
        mules: first-line mules per network (each receives from several victims).
        victims_per_mule: scam victims paying into each mule.
        layer_accounts: second-line accounts between the mules and the collector.
        round_trip_rings: rings cycling money A->B->C->A.
        round_trip_size: accounts per cycle.
        round_trip_cycles: cycles per ring.
        card_testing_rings: card testers (one device, a few IPs, several stolen cards).
        cards_per_tester: stolen cards each tester tries.
        tests_per_card: tiny test payments per card, within minutes.
        decline_rate: share of test payments declined.
        takeover_rings: account takeover crews.
        takeover_victims: accounts each crew takes over.
        drains_per_victim: transfers out of each taken-over account.
        collusive_merchants: collusive merchants (each with a ring of cards).
        collusive_cards: cards in each merchant's ring.
        collusive_txns: purchases per ring card at the merchant.
        reversal_rate: share of those purchases later refunded.
        travel_rings: skimming gangs cashing out cloned cards far away.
        travel_victims: cloned cards per gang.
        remote_txns: far-away payments per cloned card, minutes after a payment at home.
    """

    synthetic_rings: int = 8
    synthetic_size: Range = (3, 12)
    buildup_rate: float = 0.7
    bust_out_txns: Range = (3, 8)
    mule_networks: int = 8
    mules: Range = (3, 6)
    victims_per_mule: Range = (3, 8)
    layer_accounts: Range = (1, 3)
    round_trip_rings: int = 8
    round_trip_size: Range = (3, 5)
    round_trip_cycles: Range = (2, 6)
    card_testing_rings: int = 8
    cards_per_tester: Range = (3, 6)
    tests_per_card: Range = (5, 25)
    decline_rate: float = 0.6
    takeover_rings: int = 10
    takeover_victims: Range = (2, 4)
    drains_per_victim: Range = (2, 5)
    collusive_merchants: int = 6
    collusive_cards: Range = (4, 8)
    collusive_txns: Range = (3, 8)
    reversal_rate: float = 0.3
    travel_rings: int = 10
    travel_victims: Range = (3, 8)
    remote_txns: Range = (1, 4)

    @classmethod
    def for_accounts(cls, accounts: int) -> FraudConfig:
        """The default knobs scaled to ``accounts``.

        Ring counts are proportional (at least 1); below 1,000 accounts, ring sizes come from
        ``_SMALL_RANGES`` so that small data sets keep fraud under 2% of transactions.
        """
        base = cls()
        scale = accounts / 10_000
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(base, f.name)
            if isinstance(value, int) and not isinstance(value, bool):
                changes[f.name] = max(1, round(value * scale))
        if accounts < 1000:
            changes.update(_SMALL_RANGES)
            changes["buildup_rate"] = 0.4
        return dataclasses.replace(base, **changes)


_SMALL_RANGES: Final[dict[str, Any]] = {
    "synthetic_size": (3, 3),
    "bust_out_txns": (2, 2),
    "mules": (2, 2),
    "victims_per_mule": (2, 3),
    "layer_accounts": (1, 1),
    "round_trip_size": (3, 3),
    "round_trip_cycles": (1, 2),
    "cards_per_tester": (2, 2),
    "tests_per_card": (3, 5),
    "takeover_victims": (1, 2),
    "drains_per_victim": (2, 3),
    "collusive_cards": (2, 3),
    "collusive_txns": (2, 2),
    "travel_victims": (2, 3),
    "remote_txns": (1, 2),
}
"""Ring sizes used below 1,000 accounts, so that small data sets keep fraud under 2%."""
