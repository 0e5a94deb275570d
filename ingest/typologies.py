"""The fraud typologies Ringfence names: one vocabulary for data labels, rings and rules.

>>> TYPOLOGIES[:2]
('synthetic_identity', 'mule_network')
"""

from __future__ import annotations

from typing import Final

TYPOLOGIES: Final = (
    "synthetic_identity",
    "mule_network",
    "round_tripping",
    "card_testing",
    "account_takeover",
    "collusive_merchant",
    "impossible_travel",
)
"""Each typology the generator plants and the detectors and rules name, in a fixed order."""
