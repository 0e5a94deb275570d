"""Synthetic multi-source data with planted fraud, behind ``ringfence generate``.

:func:`generate` writes, into one folder, what a fraud team would receive from its upstream
systems: bank event streams (JSON lines), gateway settlement files (CSV, each gateway with its
own columns, dates and codes), a core-banking SQLite database, a wallet's NoSQL customer
documents and an identity provider's text log, plus ``sources.yaml`` (the manifest ingest reads,
grammar in ``docs/sources.md``) and ``truth/`` (labels, rings, defects). See
``docs/generator.md``.

>>> sorted(PROFILES)
['default', 'small']
>>> PROFILES["small"]
{'accounts': 300, 'days': 7}

Typical use (what the CLI does)::

    report = generate(Path("data"), seed=7, start=date(2026, 10, 1), **PROFILES["small"])
    print(report.events, report.fraud_rate)
"""

from ingest.generator.config import PROFILES, FraudConfig
from ingest.generator.runner import DEFAULT_START, GenerationReport, generate
from ingest.typologies import TYPOLOGIES

__all__ = ["DEFAULT_START", "PROFILES", "TYPOLOGIES", "FraudConfig", "GenerationReport", "generate"]
