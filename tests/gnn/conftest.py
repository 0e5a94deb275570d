"""Small generated data sets, shared by the GNN tests (made once per session)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

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


def from_source(module: ModuleType) -> ModuleType:
    """A module compiled by ``make native`` run from its .py as plain Python, beside the build.

    The module itself when it is not compiled; tests compare the two for the same bits.
    """
    if not module.compiled():
        return module
    name = module.__name__.rsplit(".", 1)[-1]
    path = Path(module.__file__ or "").with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_source", path)
    assert spec is not None
    assert spec.loader is not None
    source = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = source  # dataclasses look their module up
    spec.loader.exec_module(source)
    return source


def assert_build_current(module: ModuleType) -> None:
    """The module runs compiled, from a build newer than its source (`make native` ran)."""
    name = module.__name__
    assert module.compiled(), f"{name} is not compiled: run `make native`"
    built = Path(module.__file__ or "")
    assert built.stat().st_mtime >= built.with_name(f"{name.rsplit('.', 1)[-1]}.py").stat().st_mtime
