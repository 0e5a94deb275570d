"""Ring detection: groups of accounts tied by shared identifiers and money patterns.

>>> from graph.rings import RingConfig, RingDetector
>>> RingDetector(RingConfig()).rings()
[]

See :mod:`graph.rings.detector` for how a batch is handled and ``docs/rings.md`` for the knobs
and what they measured.
"""

from graph.rings.config import RingConfig
from graph.rings.detector import RingDetector
from graph.rings.ring import TYPOLOGIES, Ring

__all__ = ["TYPOLOGIES", "Ring", "RingConfig", "RingDetector"]
