"""Small generated data sets, shared by the GNN tests (made once per session)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gnn.data import History, load_history
from ingest.generator import PROFILES, generate


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small-profile data folder (seed 5): about 6,000 events, 1% fraud."""
    out = tmp_path_factory.mktemp("small-data")
    profile = PROFILES["small"]
    generate(
        out, seed=5, days=profile["days"], accounts=profile["accounts"], start=date(2026, 10, 1)
    )
    return out


@pytest.fixture(scope="session")
def medium_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 accounts over 12 days (seed 21): enough fraud in each period to train on."""
    out = tmp_path_factory.mktemp("medium-data")
    generate(out, seed=21, days=12, accounts=1500, start=date(2026, 10, 1))
    return out


@pytest.fixture(scope="session")
def small_history(small_data: Path) -> History:
    """The small data set's accepted events in time order, with labels."""
    return load_history(small_data)
